//! `ringwarden sizing simulate`: replays a rate trace (recorded by `run --record-rates`,
//! or written by hand) through the daemon's own sizing (`sizing::simulate`) and prints
//! per ring its sizes over time, its drops and the weighted loss; `--compare` runs the
//! same trace under each way of sizing.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{self, Settings};
use crate::family::Family;
use crate::obs::jsonread::{self, Value};
use crate::sizing::budget::{self, Claim};
use crate::sizing::policy::PolicyKind;
use crate::sizing::simulate::{self, Load, Outcome, Sizing, Tick};
use crate::sizing::{AdaptiveSettings, RingSettings};
use crate::sys::exit;
use crate::units::{self, fmt_approx, fmt_size};

/// `sizing simulate`'s arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulateArgs {
    pub trace: PathBuf,
    pub budget: Option<u64>,
    pub policy: Option<PolicyKind>,
    pub compare: bool,
    /// How long each swap holds the loop (`--swap-stall`, default [`STALL`]).
    pub stall: Duration,
    /// The configuration whose rings are simulated (`None`: the default file if there is
    /// one, else the built-in default).
    pub config: Option<PathBuf>,
}

/// Each swap's hold on the loop without `--swap-stall`: none, as for a trace recorded by
/// the daemon, whose drops already hold its own swaps' stalls. A trace replayed with
/// swaps its run did not have (a fixed-size run's trace under a budget) should give one:
/// swaps took 5-48 ms here under load, most near 12.
pub const STALL: Duration = Duration::ZERO;

/// A trace that cannot be used: the message names the file and line.
#[derive(Debug)]
struct TraceError {
    code: u8,
    msg: String,
}

/// The rings a trace names ("file", or "file/1" for a shard), each with its family's
/// settings, and its ticks.
struct Trace {
    names: Vec<String>,
    rings: Vec<RingSettings>,
    ticks: Vec<Tick>,
}

pub fn run(a: &SimulateArgs) -> ExitCode {
    let settings = match load_settings(a.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringwarden: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let mut trace = match read_trace(&a.trace, &settings) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ringwarden: sizing simulate: {}", e.msg);
            return ExitCode::from(e.code);
        }
    };
    // Without --budget: the configuration's, as the daemon would run it.
    let budget = a.budget.or(settings.sizing.memory_budget);
    let mut adaptive = settings.adaptive;
    if let Some(p) = a.policy {
        adaptive.policy = p;
        adaptive.enabled = true;
    }
    if let Some(b) = budget {
        let mins: u64 = trace.rings.iter().map(|r| r.min).sum();
        if mins > b {
            eprintln!(
                "ringwarden: sizing simulate: --budget {} is less than the traced rings' minimums together ({}); raise it",
                units::human(b),
                units::human(mins)
            );
            return ExitCode::from(exit::CONFIG);
        }
        let sizes = start_sizes(&trace.rings, b);
        for (r, s) in trace.rings.iter_mut().zip(sizes) {
            r.size = s;
        }
    }
    let out = if a.compare {
        compare(&trace, &adaptive, &settings, budget, a.stall)
    } else {
        let mut sizing = settings.sizing;
        sizing.memory_budget = budget;
        let o = simulate::run(
            &trace.rings,
            &adaptive,
            &sizing,
            Sizing::Adaptive(budget),
            &trace.ticks,
            a.stall,
        );
        report(&trace, &adaptive, budget, &o)
    };
    print!("{out}");
    ExitCode::SUCCESS
}

fn load_settings(path: Option<&Path>) -> Result<Settings, config::Error> {
    let default = Path::new(config::DEFAULT_PATH);
    match path {
        Some(p) => Settings::load(p),
        None if default.exists() => Settings::load(default),
        None => Ok(Settings::default()),
    }
}

/// Start sizes within the budget, as the daemon fits them (`config::fit_budget`).
fn start_sizes(rings: &[RingSettings], b: u64) -> Vec<u64> {
    let claims: Vec<Claim> = rings.iter().map(Claim::unmade).collect();
    budget::start_sizes(b, &claims)
}

fn read_trace(path: &Path, settings: &Settings) -> Result<Trace, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|e| TraceError {
        code: exit::NOINPUT,
        msg: format!("cannot read {}: {e}; give a trace file", path.display()),
    })?;
    let mut t = Trace {
        names: Vec::new(),
        rings: Vec::new(),
        ticks: Vec::new(),
    };
    let mut last_t = f64::NEG_INFINITY;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: String| TraceError {
            code: exit::DATAERR,
            msg: format!("{} line {}: {why}", path.display(), n + 1),
        };
        let v = jsonread::parse(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let time = v
            .get("t")
            .as_f64()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| bad("no \"t\" (seconds since the start, >= 0)".into()))?;
        if time <= last_t {
            return Err(bad(format!("\"t\" {time} is not after the line before")));
        }
        last_t = time;
        let mut tick = Tick {
            t: time,
            loads: Vec::new(),
        };
        let rings = v.get("rings").members();
        if rings.is_empty() && !matches!(v.get("rings"), Value::Object(_)) {
            return Err(bad(
                "no \"rings\" object (ring name -> {\"events\": N, \"peak\": BYTES})".into(),
            ));
        }
        for (name, r) in rings {
            let family = Family::parse(name.split('/').next().unwrap_or(name)).ok_or_else(|| {
                bad(format!(
                    "unknown ring {name:?}; rings are family names (file, or file/0 for a shard)"
                ))
            })?;
            let i = match t.names.iter().position(|x| x == name) {
                Some(i) => i,
                None => {
                    t.names.push(name.clone());
                    let mut rs = *settings.ring(family);
                    // Each shard of a recorded family is a ring of its own here.
                    rs.rate = rs.rate.map(|x| x / f64::from(rs.shards.max(1)));
                    rs.shards = 1;
                    t.rings.push(rs);
                    t.names.len() - 1
                }
            };
            let load =
                ring_load(r, t.rings[i].event_size).map_err(|why| bad(format!("{name}: {why}")))?;
            tick.loads.push((i, load));
        }
        t.ticks.push(tick);
    }
    if t.ticks.is_empty() {
        return Err(TraceError {
            code: exit::DATAERR,
            msg: format!("{}: no ticks; one JSON line per tick", path.display()),
        });
    }
    Ok(t)
}

/// A ring's line: `events` and `peak` (bytes, or a size like "3MiB"), optionally
/// `bursts`; or as recorded: `events`, `size`, `high_water` and `dropped`, from which the
/// peak of each of the `bursts` (default 1) follows.
fn ring_load(r: &Value, largest: u64) -> Result<Load, String> {
    let events = r
        .get("events")
        .as_u64()
        .ok_or("no \"events\" (events produced in the tick)")?;
    let dropped = r.get("dropped").as_u64();
    let bursts = match r.get("bursts") {
        Value::Null => 1,
        v => v
            .as_u64()
            .filter(|&b| b >= 1)
            .ok_or("\"bursts\" is a whole number of at least 1")?,
    };
    // What one record took, as recorded; else the family's largest.
    let measured = r.get("record").as_u64().unwrap_or(0);
    let record = if measured > 0 { measured } else { largest };
    let peak = match r.get("peak") {
        Value::Null => {
            let size = r.get("size").as_u64();
            let hw = r.get("high_water").as_u64();
            match (size, hw) {
                // The drops shared by the bursts: each overflowed by its part.
                (Some(size), Some(high_water)) => match dropped.unwrap_or(0) {
                    0 => high_water,
                    d => size.saturating_add(d.saturating_mul(record).div_ceil(bursts)),
                },
                _ => return Err("no \"peak\" (bytes), nor \"size\" and \"high_water\"".into()),
            }
        }
        v => match (v.as_u64(), v.as_str()) {
            (Some(b), _) => b,
            (None, Some(s)) => units::parse_bytes(s).map_err(|e| format!("peak: {e}"))?,
            _ => return Err("\"peak\" is a number of bytes or a size like \"3MiB\"".into()),
        },
    };
    Ok(Load {
        events,
        peak,
        bursts,
        record: measured,
        dropped,
    })
}

fn cost(r: &RingSettings) -> f64 {
    budget::event_cost(r.priority, r.loss_weight)
}

fn report(t: &Trace, adaptive: &AdaptiveSettings, b: Option<u64>, o: &Outcome) -> String {
    let span = t.ticks.last().map_or(0.0, |k| k.t);
    let mut s = String::new();
    let how = if adaptive.enabled {
        adaptive.policy.name()
    } else {
        "off (fixed sizes)"
    };
    let _ = writeln!(
        s,
        "{} ticks over {}, policy {how}, {}",
        t.ticks.len(),
        secs(span),
        b.map_or("no memory budget".to_string(), |b| format!(
            "memory budget {}",
            fmt_size(b)
        ))
    );
    let recorded = o.rings.iter().any(|r| r.recorded.is_some());
    let _ = writeln!(
        s,
        "{:<10} {:>10} {:>10} {:>10} {:>8} {:>14}  sizes (at seconds)",
        "ring",
        "events",
        "dropped",
        if recorded { "recorded" } else { "" },
        "cost",
        "weighted loss"
    );
    for ((name, r), ro) in t.names.iter().zip(&t.rings).zip(&o.rings) {
        let sizes = ro
            .sizes
            .iter()
            .map(|&(at, size)| {
                if at == 0.0 {
                    short(size)
                } else {
                    format!("{} {}", secs(at), short(size))
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "{:<10} {:>10} {:>10} {:>10} {:>8} {:>14}  {sizes}",
            name,
            ro.events,
            ro.dropped,
            ro.recorded.map_or(String::new(), |x| x.to_string()),
            num(cost(r)),
            num(ro.weighted_loss)
        );
    }
    let _ = writeln!(
        s,
        "total: {} dropped, weighted loss {}, most memory held {} (both rings of a resize counted)",
        o.rings.iter().map(|r| r.dropped).sum::<u64>(),
        num(o.weighted_loss),
        fmt_approx(o.peak_memory as f64)
    );
    s
}

fn compare(
    t: &Trace,
    adaptive: &AdaptiveSettings,
    settings: &Settings,
    b: Option<u64>,
    stall: Duration,
) -> String {
    let mut runs: Vec<(String, Outcome)> = Vec::new();
    let sizing = settings.sizing;
    runs.push((
        "fixed: start sizes".into(),
        simulate::run(&t.rings, adaptive, &sizing, Sizing::Fixed, &t.ticks, stall),
    ));
    if let Some(b) = b {
        let mut split = t.rings.clone();
        for (r, s) in split.iter_mut().zip(simulate::equal_split(&t.rings, b)) {
            r.size = s;
        }
        runs.push((
            format!("fixed: {} split evenly", fmt_size(b)),
            simulate::run(&split, adaptive, &sizing, Sizing::Fixed, &t.ticks, stall),
        ));
    }
    for p in PolicyKind::ALL {
        let a = AdaptiveSettings {
            enabled: true,
            policy: p,
            ..*adaptive
        };
        runs.push((
            format!("{}, no budget", p.name()),
            simulate::run(
                &t.rings,
                &a,
                &sizing,
                Sizing::Adaptive(None),
                &t.ticks,
                stall,
            ),
        ));
        if let Some(b) = b {
            runs.push((
                format!("{} in {}", p.name(), fmt_size(b)),
                simulate::run(
                    &t.rings,
                    &a,
                    &sizing,
                    Sizing::Adaptive(Some(b)),
                    &t.ticks,
                    stall,
                ),
            ));
        }
    }
    let mut s = String::new();
    let span = t.ticks.last().map_or(0.0, |k| k.t);
    let _ = writeln!(
        s,
        "{} ticks over {}, rings {}",
        t.ticks.len(),
        secs(span),
        t.names.join(", ")
    );
    let _ = writeln!(
        s,
        "{:<24} {:>10} {:>14} {:>12}",
        "sizing", "dropped", "weighted loss", "most memory"
    );
    for (name, o) in &runs {
        let _ = writeln!(
            s,
            "{:<24} {:>10} {:>14} {:>12}",
            name,
            o.rings.iter().map(|r| r.dropped).sum::<u64>(),
            num(o.weighted_loss),
            fmt_approx(o.peak_memory as f64)
        );
    }
    s
}

fn secs(x: f64) -> String {
    format!("{}s", units::fmt_num((x * 10.0).round() / 10.0))
}

fn short(b: u64) -> String {
    fmt_size(b).replace(' ', "")
}

fn num(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}
