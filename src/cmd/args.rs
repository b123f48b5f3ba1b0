//! The command line: hand-parsed (a parser crate would outweigh this file on an embedded
//! host). `run`'s options become [`Overrides`] applied over the configuration.
use crate::config::filter::{self, cli_list};
use std::iter::Peekable;
use std::path::{Path, PathBuf};
use std::slice;
use std::time::Duration;

use crate::config::cli::{CliError, Overrides, RunOptions, config, resolve, usage};
use crate::config::{self, WakeupMode};
use crate::family::{Family, syscalls};
use crate::sizing::{self, policy::PolicyKind};
use crate::sys::{Exit, exit, page_size};
use crate::units;

/// `--help`: [`USAGE`] with the registry's families filled in.
pub fn help() -> String {
    let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
    let (head, tail) = USAGE.split_once("{families}").unwrap_or((USAGE, ""));
    [head, &names.join(","), tail].concat()
}

const USAGE: &str = "\
ringwarden - kernel events from eBPF, every loss counted

Usage:
  ringwarden [run] [OPTIONS]    load the BPF programs and stream events as JSON lines
  ringwarden check              report what this kernel supports and which programs attach
  ringwarden config default     print the built-in configuration as a commented TOML file
  ringwarden config check PATH  validate a configuration file and show each ring's sizes
  ringwarden size --event-size B --rate R [--buffer-time T] [--safety S]
                                a ring size by the formula B × R × T × S, rounded up to a
                                power of two, with the working
  ringwarden sizing simulate --trace FILE [--budget SIZE] [--policy P] [--compare]
                     [--swap-stall DURATION] [--config PATH]
                                replay a rate trace (run --record-rates FILE, or written
                                by hand) through the daemon's sizing: per ring its sizes
                                over time, drops and weighted loss; --compare: fixed sizes,
                                an even split of the budget and each policy, side by side;
                                --swap-stall: what each resize holds the daemon's loop,
                                for swaps the traced run did not make (e.g. 12ms)
                                [default: 0]
  ringwarden status [--json] [--control-socket PATH] [--config PATH]
                                ask the running daemon: per ring sizes, books, loss and
                                latency; programs; uptime (--json: the raw document)
  ringwarden archive verify DIR check an event archive: whole JSON lines, each ring's seq
                                ranges and gaps, and whether lost and expired records account
                                for every gap (exit 0: they do; 1: not)
  ringwarden --help | --version

Options for run (each overrides the configuration file):
  -c, --config PATH            configuration file [default: /etc/ringwarden/ringwarden.toml;
                               the built-in defaults when that does not exist]
  -o, --output PATH            where events go: a file (appended), - for stdout, journal
                               for one systemd journal entry per event (RINGWARDEN_* fields,
                               see docs/events.md), or none to count events without writing them
                               (benchmarks) [default: -]
      --rotate-size SIZE       rotate the output file before it passes SIZE (e.g. 64MiB);
                               rotated files sit beside it, named by time ([output.file])
      --rotate-interval DUR    rotate the output file at least this often (e.g. 1h)
      --keep-files N           keep at most N rotated files
      --keep-age DUR           delete rotated files older than DUR (e.g. 7d)
      --max-total SIZE         keep rotated and active files together under SIZE
      --compress               gzip rotated files
      --memory-budget SIZE     most bytes all rings may hold at once, swaps included; rings
                               share it by priority and by what a lost event costs
                               ([sizing] memory_budget) [default: none]
      --only LIST              families to load, comma-separated, from:
                               {families} [default: all]
      --ring-size FAMILY=SIZE  start size of one family's ring (repeatable); a power of two,
                               at least 4KiB; suffixes KiB, MiB, GiB (or K, M, G). Outside
                               the ring's built-in min/max it moves that bound; outside a
                               min/max set in the file it is an error
      --syscalls LIST          syscalls the syscall family reports, by name or number,
                               comma-separated [default: security-relevant ones, see docs/events.md]
      --stats-interval SECS    seconds between stats lines in the log [default: 10]
      --stats-json PATH        write per-ring stats as one JSON object to PATH, atomically,
                               every interval and at exit
      --record-rates PATH      write what each ring saw every tick (events, high-water mark,
                               drops) to PATH, one JSON line per tick: a trace for
                               `ringwarden sizing simulate`
      --adaptive POLICY        resize rings at run time with POLICY: dynamic, predictive or
                               hybrid; off keeps the start sizes [default: dynamic]
      --wakeup MODE            when the kernel wakes the reader: auto (batch busy rings on a
                               short timer), batch (always) or every (each commit that finds
                               the reader caught up) [default: auto]
      --metrics-listen ADDR    serve Prometheus metrics at http://ADDR/metrics (IP:PORT, e.g.
                               127.0.0.1:9731), or off [default: off]
      --metrics-allow-remote   allow a --metrics-listen address that is not loopback
      --program-stats          turn on the kernel's BPF run statistics and show each
                               program's runs and time ([metrics] program_stats)
      --control-socket PATH    Unix socket for `ringwarden status`, or off
                               [default: /run/ringwarden/control.sock]
      --no-context             events carry only their records' fields: no exe, ancestors,
                               user, unit, cgroup or container from the process tables,
                               which are not kept ([context] enabled = false)

In-kernel filters (comma-separated; each replaces the file's list of the same name in
[filter], see docs/filters.md):
      --exclude-comm LIST      process names not reported: exact, or a prefix with a
                               trailing * (e.g. systemd-journal,prometheus*)
      --include-uid LIST       only these uids or ranges (e.g. 1000-60000,0)
      --include-cgroup LIST    only tasks in these cgroup v2 paths or below them
                               (e.g. /system.slice/nginx.service)
      --include-path LIST      file family: only opens of paths with these prefixes
      --exclude-path LIST      file family: not opens of paths with these prefixes

Options for size:
      --event-size B|FAMILY    bytes per event (suffixes KiB, MiB), or a family name for the
                               size of its records in the ring
      --rate R                 expected events per second
      --buffer-time T          how long the ring must hold events when the reader falls
                               behind: 2s, 500ms, 1m or seconds [default: 2s]
      --safety S               headroom factor for bursts [default: 3]

  -h, --help                   this text
  -V, --version                print the version

Signals: SIGINT or SIGTERM stop the daemon after draining every ring; SIGHUP re-reads the
configuration file (a bad file is reported and the running configuration stays).
Log level: RUST_LOG=debug|info|warn|error [default: info].
Exit codes: 0 ok, 1 runtime failure, 64 usage error, 78 bad configuration value.
";

#[derive(Debug)]
pub enum Command {
    /// Boxed: the settings make it far larger than the other commands.
    Run(Box<RunOptions>),
    Check,
    ConfigDefault,
    ConfigCheck(PathBuf),
    Size(SizeArgs),
    Status(StatusArgs),
    /// `archive verify DIR`.
    ArchiveVerify(PathBuf),
    /// `sizing simulate ...`.
    Simulate(super::simulate::SimulateArgs),
    Help,
    Version,
}

/// `ringwarden status`: where to ask (or why there is nowhere), and how to print.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusArgs {
    pub json: bool,
    pub socket: Result<PathBuf, SocketOff>,
}

/// The configuration `status` reads turns the control socket off (exit 1: nothing to
/// ask); holds the file as shown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the control socket is off in {0} ([control] socket = \"off\"); turn it on there, or pass --control-socket PATH"
)]
pub struct SocketOff(pub String);

impl Exit for SocketOff {
    fn exit_code(&self) -> u8 {
        exit::RUNTIME
    }
}

/// A `--ring-size` value that cannot be a ring (the message reads on its own).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingSizeArgError {
    #[error(transparent)]
    Parse(#[from] units::ParseError),
    #[error("{0:?} {1}")]
    Size(String, sizing::RingSizeError),
}

/// `ringwarden size`.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeArgs {
    pub event_size: u64,
    pub rate: f64,
    pub buffer_time: Duration,
    pub safety: f64,
}

/// The arguments after the command, option by option.
struct Args<'a> {
    it: Peekable<slice::Iter<'a, String>>,
}

impl<'a> Args<'a> {
    /// The next argument split as `--name=value` (the value inline) or `name`.
    fn next(&mut self) -> Option<(&'a str, Option<String>)> {
        let arg = self.it.next()?;
        Some(match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        })
    }

    fn value(
        &mut self,
        name: &str,
        inline: Option<String>,
        what: &str,
    ) -> Result<String, CliError> {
        if let Some(v) = inline {
            return Ok(v);
        }
        // `--output --only x` is a forgotten value, not a file named "--only".
        match self
            .it
            .next_if(|v| !v.starts_with('-') || v.as_str() == "-")
        {
            Some(v) => Ok(v.clone()),
            None => Err(usage(format!("{name} needs a value: {name} {what}"))),
        }
    }
}

pub fn parse(args: &[String]) -> Result<Command, CliError> {
    parse_in(args, Path::new(config::DEFAULT_PATH))
}

fn parse_in(args: &[String], default_path: &Path) -> Result<Command, CliError> {
    let mut a = Args {
        it: args.iter().peekable(),
    };
    let mut sub: Option<&str> = None;
    if let Some(first) = a.it.peek()
        && !first.starts_with('-')
    {
        sub = Some(first.as_str());
        a.it.next();
    }
    match sub {
        None | Some("run") => parse_run(a, default_path),
        Some("check") => {
            if let Some((arg, _)) = a.next() {
                if arg == "-h" || arg == "--help" {
                    return Ok(Command::Help);
                }
                return Err(usage(format!(
                    "check takes no arguments (got {arg:?}); run `ringwarden check`"
                )));
            }
            Ok(Command::Check)
        }
        Some("config") => parse_config(a),
        Some("size") => parse_size(a),
        Some("status") => parse_status(a, default_path),
        Some("archive") => parse_archive(a),
        Some("sizing") => parse_sizing(a),
        Some(s) => Err(usage(format!(
            "unknown command {s:?}; commands are run, check, config, size, sizing, status and archive (see --help)"
        ))),
    }
}

fn parse_archive(mut a: Args) -> Result<Command, CliError> {
    const FIX: &str = "use `ringwarden archive verify DIR`";
    match a.next() {
        Some(("-h" | "--help", _)) => Ok(Command::Help),
        Some(("verify", _)) => {
            let dir = match a.it.next() {
                Some(p) if p == "-h" || p == "--help" => return Ok(Command::Help),
                Some(p) => PathBuf::from(p),
                None => return Err(usage(format!("archive verify needs a directory; {FIX}"))),
            };
            if let Some(extra) = a.it.next() {
                return Err(usage(format!("unexpected argument {extra:?}; {FIX}")));
            }
            Ok(Command::ArchiveVerify(dir))
        }
        Some((other, _)) => Err(usage(format!("unknown archive command {other:?}; {FIX}"))),
        None => Err(usage(format!("archive needs a command; {FIX}"))),
    }
}

fn parse_sizing(mut a: Args) -> Result<Command, CliError> {
    const FIX: &str = "use `ringwarden sizing simulate --trace FILE [--budget SIZE]`";
    match a.next() {
        Some(("-h" | "--help", _)) => return Ok(Command::Help),
        Some(("simulate", _)) => {}
        Some((other, _)) => return Err(usage(format!("unknown sizing command {other:?}; {FIX}"))),
        None => return Err(usage(format!("sizing needs a command; {FIX}"))),
    }
    let mut s = super::simulate::SimulateArgs {
        trace: PathBuf::new(),
        budget: None,
        policy: None,
        compare: false,
        config: None,
        stall: super::simulate::STALL,
    };
    let mut trace = None;
    while let Some((name, inline)) = a.next() {
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "--trace" => trace = Some(PathBuf::from(a.value(name, inline, "FILE")?)),
            "--budget" => {
                let v = a.value(name, inline, "SIZE")?;
                s.budget =
                    Some(units::parse_bytes(&v).map_err(|e| config(format!("--budget: {e}")))?);
            }
            "--policy" => {
                let v = a.value(name, inline, "POLICY")?;
                s.policy = Some(PolicyKind::parse(&v).ok_or_else(|| {
                    config(format!("--policy {v:?}: use dynamic, predictive or hybrid"))
                })?);
            }
            "--compare" => s.compare = true,
            "--swap-stall" => {
                let v = a.value(name, inline, "DURATION")?;
                s.stall = units::parse_duration(&v)
                    .ok()
                    .filter(|d| *d <= Duration::from_secs(1))
                    .ok_or_else(|| {
                        config(format!(
                            "--swap-stall {v:?}: a duration up to 1s, e.g. 12ms"
                        ))
                    })?;
            }
            "-c" | "--config" => s.config = Some(PathBuf::from(a.value(name, inline, "PATH")?)),
            other => {
                return Err(usage(format!(
                    "unknown option {other:?} for sizing simulate; {FIX}"
                )));
            }
        }
    }
    s.trace = trace.ok_or_else(|| usage(format!("sizing simulate needs --trace FILE; {FIX}")))?;
    Ok(Command::Simulate(s))
}

fn parse_config(mut a: Args) -> Result<Command, CliError> {
    let cmd = match a.next() {
        Some(("-h" | "--help", _)) => return Ok(Command::Help),
        Some(("default", _)) => Command::ConfigDefault,
        Some(("check", _)) => match a.it.next() {
            Some(p) if p == "-h" || p == "--help" => return Ok(Command::Help),
            Some(p) => Command::ConfigCheck(PathBuf::from(p)),
            None => {
                return Err(usage(
                    "config check needs a file: ringwarden config check PATH".into(),
                ));
            }
        },
        Some((other, _)) => {
            return Err(usage(format!(
                "unknown config command {other:?}; use `config default` or `config check PATH`"
            )));
        }
        None => {
            return Err(usage(
                "config needs a command: `config default` or `config check PATH`".into(),
            ));
        }
    };
    if let Some((extra, _)) = a.next() {
        return Err(usage(format!(
            "unexpected argument {extra:?}; use `config default` or `config check PATH`"
        )));
    }
    Ok(cmd)
}

fn parse_status(mut a: Args, default_path: &Path) -> Result<Command, CliError> {
    let (mut json, mut socket, mut cfg) = (false, None, None);
    while let Some((name, inline)) = a.next() {
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => json = true,
            "--control-socket" => {
                socket = Some(PathBuf::from(a.value(name, inline, "PATH")?));
            }
            "-c" | "--config" => cfg = Some(PathBuf::from(a.value(name, inline, "PATH")?)),
            other => {
                return Err(usage(format!(
                    "unknown option {other:?} for status; use --json, --control-socket PATH or --config PATH"
                )));
            }
        }
    }
    // Without --control-socket: the socket the configuration names. A default file that
    // does not load is no reason not to try the default socket.
    let from_config = match (&socket, &cfg) {
        (Some(_), _) => None,
        (None, Some(p)) => Some(config::Settings::load(p)?.control.socket),
        (None, None) => config::Settings::load(default_path)
            .ok()
            .map(|s| s.control.socket),
    };
    let shown = cfg.as_deref().unwrap_or(default_path).display().to_string();
    let socket = config::resolve_socket(socket, from_config).ok_or(SocketOff(shown));
    Ok(Command::Status(StatusArgs { json, socket }))
}

fn parse_size(mut a: Args) -> Result<Command, CliError> {
    let (mut event_size, mut rate) = (None, None);
    let defaults = config::SizingSettings::default();
    let (mut buffer_time, mut safety) = (defaults.buffer_time, defaults.safety_factor);
    while let Some((name, inline)) = a.next() {
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "--event-size" => {
                let v = a.value(name, inline, "BYTES|FAMILY")?;
                let b = match Family::parse(v.trim()) {
                    Some(f) => sizing::record_size(f),
                    None => units::parse_bytes(&v).map_err(|e| {
                        config(format!("--event-size: {e}, or a family name like file"))
                    })?,
                };
                if b == 0 {
                    return Err(config(
                        "--event-size 0: an event takes at least one byte; e.g. --event-size 104"
                            .into(),
                    ));
                }
                event_size = Some(b);
            }
            "--rate" => {
                let v = a.value(name, inline, "EVENTS_PER_SEC")?;
                rate = Some(positive(name, &v, "10000")?);
            }
            "--buffer-time" => {
                let v = a.value(name, inline, "SECS")?;
                buffer_time = match units::parse_duration(&v) {
                    Ok(d) if !d.is_zero() => d,
                    Ok(_) => {
                        return Err(config(format!(
                            "--buffer-time {v:?}: must be more than zero; e.g. 2s"
                        )));
                    }
                    Err(e) => return Err(config(format!("--buffer-time: {e}"))),
                };
            }
            "--safety" => {
                let v = a.value(name, inline, "FACTOR")?;
                safety = positive(name, &v, "3")?;
            }
            other => {
                return Err(usage(format!(
                    "unknown option {other:?} for size; see ringwarden --help"
                )));
            }
        }
    }
    let example = "e.g. ringwarden size --event-size 104 --rate 10000";
    let event_size = event_size
        .ok_or_else(|| usage(format!("size needs --event-size BYTES|FAMILY; {example}")))?;
    let rate = rate.ok_or_else(|| usage(format!("size needs --rate EVENTS_PER_SEC; {example}")))?;
    Ok(Command::Size(SizeArgs {
        event_size,
        rate,
        buffer_time,
        safety,
    }))
}

/// A finite number above zero.
fn positive(name: &str, v: &str, example: &str) -> Result<f64, CliError> {
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(config(format!(
            "{name} {v:?}: expected a number above zero, e.g. {name} {example}"
        ))),
    }
}

fn parse_run(mut a: Args, default_path: &Path) -> Result<Command, CliError> {
    let mut ov = Overrides {
        default_path: default_path.to_path_buf(),
        ..Overrides::default()
    };
    while let Some((name, inline)) = a.next() {
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-c" | "--config" => {
                ov.config = Some(PathBuf::from(a.value(name, inline, "PATH")?));
            }
            "-o" | "--output" => {
                let v = a.value(name, inline, "PATH")?;
                ov.output = Some(if v == "-" {
                    None
                } else {
                    Some(PathBuf::from(v))
                });
            }
            "--only" => {
                let v = a.value(name, inline, "process,file,...")?;
                let mut fams = Vec::new();
                for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let f = Family::parse(part).ok_or_else(|| {
                        config(format!(
                            "--only: unknown family {part:?}; choose from process,file,network,syscall,cgroup,anomaly"
                        ))
                    })?;
                    if !fams.contains(&f) {
                        fams.push(f);
                    }
                }
                if fams.is_empty() {
                    return Err(config(
                        "--only: no family given; e.g. --only process,file".into(),
                    ));
                }
                fams.sort();
                ov.families = Some(fams);
            }
            "--ring-size" => {
                let v = a.value(name, inline, "FAMILY=SIZE")?;
                let (f, s) = v.split_once('=').ok_or_else(|| {
                    config(format!(
                        "--ring-size {v:?}: expected FAMILY=SIZE, e.g. file=8MiB"
                    ))
                })?;
                let fam = Family::parse(f).ok_or_else(|| {
                    config(format!(
                        "--ring-size: unknown family {f:?}; choose from process,file,network,syscall,cgroup,anomaly"
                    ))
                })?;
                let size =
                    parse_ring_size(s).map_err(|e| config(format!("--ring-size {v:?}: {e}")))?;
                ov.ring_sizes.push((fam, size));
            }
            "--exclude-comm" => {
                let v = a.value(name, inline, "NAME,...")?;
                ov.filter.exclude_comm = Some(cli_list(name, &v, filter::comm).map_err(config)?);
            }
            "--include-uid" => {
                let v = a.value(name, inline, "UID,...")?;
                ov.filter.include_uid = Some(cli_list(name, &v, filter::uid).map_err(config)?);
            }
            "--include-cgroup" => {
                let v = a.value(name, inline, "PATH,...")?;
                ov.filter.include_cgroup =
                    Some(cli_list(name, &v, filter::cgroup).map_err(config)?);
            }
            "--include-path" => {
                let v = a.value(name, inline, "PREFIX,...")?;
                ov.filter.include_path =
                    Some(cli_list(name, &v, filter::path_prefix).map_err(config)?);
            }
            "--exclude-path" => {
                let v = a.value(name, inline, "PREFIX,...")?;
                ov.filter.exclude_path =
                    Some(cli_list(name, &v, filter::path_prefix).map_err(config)?);
            }
            "--syscalls" => {
                let v = a.value(name, inline, "NAME,...")?;
                let mut nrs = Vec::new();
                for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let nr = syscalls::lookup(part).ok_or_else(|| {
                        config(format!(
                            "--syscalls: unknown syscall {part:?} on this architecture; use a name like openat or a number"
                        ))
                    })?;
                    if !nrs.contains(&nr) {
                        nrs.push(nr);
                    }
                }
                if nrs.is_empty() {
                    return Err(config(
                        "--syscalls: empty list; name at least one syscall or leave the syscall family out with --only".into(),
                    ));
                }
                ov.syscalls = Some(nrs);
            }
            "--stats-interval" => {
                let v = a.value(name, inline, "SECS")?;
                // Seconds, or a duration in whole seconds as in the file ("10s", "1m").
                let secs = v.trim().parse::<u64>().ok().or_else(|| {
                    units::parse_duration(&v)
                        .ok()
                        .filter(|d| d.subsec_nanos() == 0)
                        .map(|d| d.as_secs())
                });
                ov.stats_interval_s = match secs {
                    Some(n) if (1..=86_400).contains(&n) => Some(n),
                    _ => {
                        return Err(config(format!(
                            "--stats-interval {v:?}: expected whole seconds from 1 to 86400"
                        )));
                    }
                };
            }
            "--adaptive" => {
                let v = a.value(name, inline, "off|dynamic|predictive|hybrid")?;
                ov.adaptive = Some(match v.trim() {
                    "off" => None,
                    p => Some(PolicyKind::parse(p).ok_or_else(|| {
                        config(format!(
                            "--adaptive {v:?}: use off, dynamic, predictive or hybrid"
                        ))
                    })?),
                });
            }
            "--wakeup" => {
                let v = a.value(name, inline, "auto|batch|every")?;
                ov.wakeup =
                    Some(WakeupMode::parse(v.trim()).ok_or_else(|| {
                        config(format!("--wakeup {v:?}: use auto, batch or every"))
                    })?);
            }
            "--stats-json" => ov.stats_json = Some(PathBuf::from(a.value(name, inline, "PATH")?)),
            "--record-rates" => {
                ov.record_rates = Some(PathBuf::from(a.value(name, inline, "PATH")?));
            }
            "--metrics-listen" => {
                let v = a.value(name, inline, "IP:PORT|off")?;
                ov.metrics_listen = Some(
                    config::parse_listen(&v)
                        .map_err(|e| config(format!("--metrics-listen: {e}")))?,
                );
            }
            "--metrics-allow-remote" => {
                if inline.is_some() {
                    return Err(usage(
                        "--metrics-allow-remote takes no value; give it or leave it out".into(),
                    ));
                }
                ov.metrics_allow_remote = true;
            }
            "--program-stats" => {
                if inline.is_some() {
                    return Err(usage(
                        "--program-stats takes no value; give it or leave it out".into(),
                    ));
                }
                ov.program_stats = true;
            }
            "--no-context" => {
                if inline.is_some() {
                    return Err(usage(
                        "--no-context takes no value; give it or leave it out".into(),
                    ));
                }
                ov.no_context = true;
            }
            "--rotate-size" | "--max-total" | "--memory-budget" => {
                let v = a.value(name, inline, "SIZE")?;
                let b = units::parse_bytes(&v).map_err(|e| config(format!("{name}: {e}")))?;
                match name {
                    "--rotate-size" => ov.archive.rotate_size = Some(b),
                    "--max-total" => ov.archive.max_total = Some(b),
                    _ => ov.memory_budget = Some(b),
                }
            }
            "--rotate-interval" | "--keep-age" => {
                use crate::config::archive::{MAX_AGE, MIN_INTERVAL};
                let v = a.value(name, inline, "DURATION")?;
                let d = units::parse_duration(&v)
                    .ok()
                    .filter(|d| (MIN_INTERVAL..=MAX_AGE).contains(d))
                    .ok_or_else(|| {
                        config(format!(
                            "{name} {v:?}: expected a duration from 1s to 10 years, e.g. 1h or 7d"
                        ))
                    })?;
                if name == "--rotate-interval" {
                    ov.archive.rotate_interval = Some(d);
                } else {
                    ov.archive.keep_age = Some(d);
                }
            }
            "--keep-files" => {
                let max = crate::config::archive::MAX_KEEP_FILES;
                let v = a.value(name, inline, "N")?;
                ov.archive.keep_files = Some(
                    v.trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=max).contains(n))
                        .ok_or_else(|| {
                            config(format!("--keep-files {v:?}: expected 1 to {max} files"))
                        })?,
                );
            }
            "--compress" => {
                if inline.is_some() {
                    return Err(usage(
                        "--compress takes no value; give it or leave it out".into(),
                    ));
                }
                ov.archive.compress = Some(true);
            }
            "--control-socket" => {
                let v = a.value(name, inline, "PATH|off")?;
                if v.is_empty() {
                    return Err(config(
                        "--control-socket: empty path; give a path or off".into(),
                    ));
                }
                ov.control_socket = Some(config::parse_socket(&v));
            }
            other => {
                return Err(usage(format!(
                    "unknown option {other:?}; see ringwarden --help"
                )));
            }
        }
    }
    Ok(Command::Run(Box::new(resolve(ov)?)))
}

/// Parses `64KiB`, `8MiB`, `4096`, `1G`: a power of two, at least one page.
pub fn parse_ring_size(s: &str) -> Result<u64, RingSizeArgError> {
    let bytes = units::parse_bytes(s)?;
    sizing::check_ring_size(bytes, page_size())
        .map_err(|e| RingSizeArgError::Size(s.to_string(), e))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::human;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// Parses as if /etc/ringwarden/ringwarden.toml did not exist.
    fn parse(a: &[String]) -> Result<Command, CliError> {
        parse_in(a, Path::new("/nonexistent/ringwarden.toml"))
    }

    fn run(s: &str) -> RunOptions {
        match parse(&args(s)) {
            Ok(Command::Run(o)) => *o,
            other => panic!("{s}: {other:?}"),
        }
    }

    /// A file in the temp dir, removed on drop.
    struct Temp(PathBuf);
    impl Temp {
        fn new(name: &str, text: &str) -> Temp {
            let p = std::env::temp_dir().join(format!("rw-cli-{}-{name}", std::process::id()));
            std::fs::write(&p, text).expect("write temp config");
            Temp(p)
        }
        fn set(&self, text: &str) {
            std::fs::write(&self.0, text).expect("rewrite temp config");
        }
        fn arg(&self) -> String {
            self.0.display().to_string()
        }
    }
    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_ring_size("64KiB"), Ok(65536));
        assert_eq!(parse_ring_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_ring_size("4096"), Ok(4096));
        assert_eq!(parse_ring_size("1G"), Ok(1 << 30));
        assert!(
            parse_ring_size("100000")
                .unwrap_err()
                .to_string()
                .contains("power of two")
        );
        assert!(
            parse_ring_size("1KiB")
                .unwrap_err()
                .to_string()
                .contains("smaller than a page")
        );
        assert!(
            parse_ring_size("8XB")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
        assert!(
            parse_ring_size("big")
                .unwrap_err()
                .to_string()
                .contains("not a size")
        );
        assert!(
            parse_ring_size("4GiB")
                .unwrap_err()
                .to_string()
                .contains("2GiB")
        );
        assert_eq!(human(64 << 10), "64KiB");
        assert_eq!(human(3), "3B");
    }

    #[test]
    fn run_options() {
        let o = run(
            "run --output /tmp/x --only file,process --ring-size file=8MiB --stats-interval 2 --syscalls getppid,59",
        );
        assert_eq!(o.output, Some(PathBuf::from("/tmp/x")));
        assert_eq!(o.families, vec![Family::Process, Family::File]);
        assert_eq!(o.ring_size(Family::File), 8 << 20);
        assert_eq!(
            o.ring_size(Family::Process),
            Family::Process.default_ring_size()
        );
        assert_eq!(o.stats_interval_s, 2);
        assert_eq!(o.syscalls.len(), 2);
        // The plain fields and the settings agree.
        assert_eq!(o.settings.output, o.output);
        assert_eq!(o.settings.families, o.families);
        assert_eq!(o.settings.stats_interval, Duration::from_secs(2));
        assert_eq!(o.config_path, None);
        assert_eq!(run("--stats-interval 1m").stats_interval_s, 60);
        assert!(matches!(parse(&args("--output=-")), Ok(Command::Run(o)) if o.output.is_none()));
        assert!(matches!(parse(&[]), Ok(Command::Run(_))));
        assert!(matches!(parse(&args("check")), Ok(Command::Check)));
        assert!(matches!(parse(&args("--version")), Ok(Command::Version)));
    }

    #[test]
    fn errors_name_the_problem_and_exit_code() {
        assert_eq!(parse(&args("--bogus")).unwrap_err().exit_code(), 64);
        assert_eq!(parse(&args("frobnicate")).unwrap_err().exit_code(), 64);
        assert_eq!(parse(&args("--output")).unwrap_err().exit_code(), 64);
        let e = parse(&args("--output --only process")).unwrap_err();
        assert_eq!(e.exit_code(), 64);
        assert!(e.to_string().contains("--output needs a value"), "{e}");
        let nl = vec!["--ring-size".to_string(), "file=x\ny".to_string()];
        assert!(!parse(&nl).unwrap_err().to_string().contains('\n'));
        let e = parse(&args("--only disk")).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains("disk"));
        assert_eq!(
            parse(&args("--ring-size file")).unwrap_err().exit_code(),
            78
        );
        assert_eq!(
            parse(&args("--ring-size file=3KiB"))
                .unwrap_err()
                .exit_code(),
            78
        );
        assert_eq!(
            parse(&args("--stats-interval 0")).unwrap_err().exit_code(),
            78
        );
        assert_eq!(
            parse(&args("--stats-interval 1500ms"))
                .unwrap_err()
                .exit_code(),
            78
        );
        assert_eq!(
            parse(&args("--syscalls nosuchcall"))
                .unwrap_err()
                .exit_code(),
            78
        );
        for e in [parse(&args("--only disk")), parse(&args("--ring-size x=1"))] {
            assert!(!e.unwrap_err().to_string().contains('\n'));
        }
    }

    #[test]
    fn config_file_then_command_line() {
        let f = Temp::new(
            "layered.toml",
            "output = \"/var/log/rw.json\"\nfamilies = [\"file\", \"network\"]\nstats_interval = \"30s\"\n[rings.file]\nsize = \"4MiB\"\nmin = \"2MiB\"\nmax = \"16MiB\"\n[adaptive]\npolicy = \"hybrid\"\n",
        );
        let o = run(&format!("--config {}", f.arg()));
        assert_eq!(o.config_path, Some(f.0.clone()));
        assert_eq!(o.output, Some(PathBuf::from("/var/log/rw.json")));
        assert_eq!(o.families, vec![Family::File, Family::Network]);
        assert_eq!(o.stats_interval_s, 30);
        assert_eq!(o.ring_size(Family::File), 4 << 20);
        assert_eq!(
            o.settings.adaptive.policy,
            crate::sizing::policy::PolicyKind::Hybrid
        );
        // The command line wins over the file.
        let o = run(&format!(
            "run -c {} --output - --only process --ring-size file=8MiB --stats-interval 5",
            f.arg()
        ));
        assert_eq!(o.output, None);
        assert_eq!(o.families, vec![Family::Process]);
        assert_eq!(o.ring_size(Family::File), 8 << 20);
        assert_eq!(o.stats_interval_s, 5);
        assert_eq!(o.ring_sizes, vec![(Family::File, 8 << 20)]);
        // --ring-size outside the file's bounds names both.
        let e = parse(&args(&format!(
            "--config {} --ring-size file=1MiB",
            f.arg()
        )))
        .unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(
            e.to_string().contains("--ring-size file=1MiB") && e.to_string().contains("min 2MiB"),
            "{e}"
        );
        assert!(e.to_string().contains(&f.arg()), "{e}");
        // A built-in bound moves instead: one-page rings for tests, big rings on big hosts.
        let o = run("--ring-size anomaly=64MiB --ring-size syscall=4KiB");
        let (a, sc) = (
            o.settings.ring(Family::Anomaly),
            o.settings.ring(Family::Syscall),
        );
        assert_eq!((a.size, a.max), (64 << 20, 64 << 20));
        assert_eq!((sc.size, sc.min), (4096, 4096));
        let o = run(&format!("--config {} --ring-size network=4KiB", f.arg()));
        assert_eq!(
            o.ring_size(Family::Network),
            4096,
            "the file sets no network bound"
        );
    }

    #[test]
    fn adaptive_override() {
        let f = Temp::new("adaptive.toml", "[adaptive]\npolicy = \"hybrid\"\n");
        let o = run(&format!("--config {} --adaptive off", f.arg()));
        assert!(!o.settings.adaptive.enabled);
        assert_eq!(
            o.settings.adaptive.policy,
            crate::sizing::policy::PolicyKind::Hybrid
        );
        let o = run("--adaptive predictive");
        assert!(o.settings.adaptive.enabled);
        assert_eq!(
            o.settings.adaptive.policy,
            crate::sizing::policy::PolicyKind::Predictive
        );
        let e = parse(&args("--adaptive smart")).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains("smart"), "{e}");
    }

    #[test]
    fn config_file_errors() {
        let e = parse(&args("--config /nonexistent/x.toml")).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(
            e.to_string()
                .starts_with("/nonexistent/x.toml: cannot read"),
            "{e}"
        );
        let f = Temp::new("bad.toml", "[rings.file]\nsize = \"3MiB\"\n");
        let e = parse(&args(&format!("--config={}", f.arg()))).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains("line 2: rings.file.size"), "{e}");
        assert_eq!(parse(&args("--config")).unwrap_err().exit_code(), 64);
    }

    #[test]
    fn the_default_path_is_used_when_it_exists() {
        let f = Temp::new("default.toml", "[rings.process]\nsize = \"1MiB\"\n");
        let Ok(Command::Run(o)) = parse_in(&[], &f.0) else {
            panic!("should parse")
        };
        assert_eq!(o.config_path, Some(f.0.clone()));
        assert_eq!(o.ring_size(Family::Process), 1 << 20);
        f.set("[rings.process]\nsize = 3\n");
        assert_eq!(parse_in(&[], &f.0).unwrap_err().exit_code(), 78);
    }

    #[test]
    fn reload_rereads_the_file_and_keeps_the_command_line() {
        let f = Temp::new("reload.toml", "[rings.file]\nsize = \"2MiB\"\n");
        let o = run(&format!(
            "--config {} --ring-size network=1MiB --only file,network",
            f.arg()
        ));
        assert_eq!(o.ring_size(Family::File), 2 << 20);
        f.set("[rings.file]\nsize = \"4MiB\"\n[rings.network]\nsize = \"8MiB\"\n");
        let n = o.reload().expect("reload");
        assert_eq!(n.ring_size(Family::File), 4 << 20);
        assert_eq!(
            n.ring_size(Family::Network),
            1 << 20,
            "--ring-size still wins"
        );
        assert_eq!(n.families, vec![Family::File, Family::Network]);
        f.set("[rings.file]\nsise = 1\n");
        let e = n.reload().unwrap_err().to_string();
        assert!(e.contains("rings.file.sise") && !e.contains('\n'), "{e}");
        // Without a file the reload gives the built-in default again.
        let o = run("--only process");
        assert_eq!(o.reload().map(|n| n.families), Ok(vec![Family::Process]));
    }

    #[test]
    fn metrics_and_control_options() {
        let o = run("--metrics-listen 127.0.0.1:0 --control-socket /tmp/x.sock");
        assert_eq!(
            o.settings.metrics.listen,
            Some("127.0.0.1:0".parse().expect("addr"))
        );
        assert_eq!(
            o.settings.control.socket,
            Some(PathBuf::from("/tmp/x.sock"))
        );
        let o = run("--metrics-listen off --control-socket off");
        assert_eq!(
            (o.settings.metrics.listen, o.settings.control.socket),
            (None, None)
        );
        let d = run("");
        assert_eq!(d.settings.metrics.listen, None);
        assert_eq!(
            d.settings.control.socket,
            Some(PathBuf::from("/run/ringwarden/control.sock"))
        );
        let e = parse(&args("--metrics-listen 0.0.0.0:9731")).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(
            e.to_string().contains("not loopback")
                && e.to_string().contains("--metrics-allow-remote"),
            "{e}"
        );
        let o = run("--metrics-listen 0.0.0.0:9731 --metrics-allow-remote");
        assert!(o.settings.metrics.allow_remote);
        assert_eq!(
            parse(&args("--metrics-listen nowhere"))
                .unwrap_err()
                .exit_code(),
            78
        );
        assert_eq!(
            parse(&args("--metrics-listen")).unwrap_err().exit_code(),
            64
        );
        assert_eq!(
            parse(&args("--metrics-allow-remote=yes"))
                .unwrap_err()
                .exit_code(),
            64
        );
        // The file's remote address is rescued by the command line, and vice versa.
        let f = Temp::new("remote.toml", "[metrics]\nlisten = \"0.0.0.0:9731\"\n");
        assert_eq!(
            parse(&args(&format!("-c {}", f.arg())))
                .unwrap_err()
                .exit_code(),
            78
        );
        let o = run(&format!("-c {} --metrics-allow-remote", f.arg()));
        assert!(o.settings.metrics.allow_remote);
        let o = run(&format!("-c {} --metrics-listen 127.0.0.1:9731", f.arg()));
        assert!(!o.settings.metrics.allow_remote);
        f.set("[metrics]\nlisten = \"0.0.0.0:9731\"\nallow_remote = true\n");
        assert!(
            run(&format!("-c {}", f.arg()))
                .settings
                .metrics
                .allow_remote
        );
    }

    #[test]
    fn no_context() {
        assert!(run("").settings.context.enabled, "on by default");
        let o = run("--no-context");
        assert_eq!(
            o.settings.context,
            crate::context::ContextSettings {
                enabled: false,
                ..crate::context::ContextSettings::default()
            }
        );
        // Over the file: the file's other [context] keys stay.
        let f = Temp::new(
            "context.toml",
            "[context]\nenabled = true\nancestors = 8\nmax_processes = 1024\n",
        );
        let o = run(&format!("-c {}", f.arg()));
        assert!(o.settings.context.enabled);
        let o = run(&format!("run -c {} --no-context", f.arg()));
        let c = o.settings.context;
        assert_eq!((c.enabled, c.ancestors, c.max_processes), (false, 8, 1024));
        // A reload re-reads the file and applies --no-context again.
        f.set("[context]\nancestors = 2\n");
        let n = o.reload().expect("reload");
        assert_eq!(
            (n.settings.context.enabled, n.settings.context.ancestors),
            (false, 2)
        );
        let e = parse(&args("--no-context=yes")).unwrap_err();
        assert_eq!(e.exit_code(), 64);
        assert!(e.to_string().contains("takes no value"), "{e}");
        // A bad [context] value in the file is exit 78 even with --no-context.
        f.set("[context]\nmax_cgroups = 1\n");
        let e = parse(&args(&format!("-c {} --no-context", f.arg()))).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains("line 2: context.max_cgroups"), "{e}");
        assert!(help().contains("--no-context"));
    }

    #[test]
    fn status_command() {
        let st = |s: &str| match parse(&args(s)) {
            Ok(Command::Status(a)) => a,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(
            st("status"),
            StatusArgs {
                json: false,
                socket: Ok(PathBuf::from("/run/ringwarden/control.sock"))
            }
        );
        assert_eq!(
            st("status --json --control-socket /tmp/a.sock"),
            StatusArgs {
                json: true,
                socket: Ok(PathBuf::from("/tmp/a.sock"))
            }
        );
        let f = Temp::new("status.toml", "[control]\nsocket = \"/tmp/b.sock\"\n");
        assert_eq!(
            st(&format!("status -c {}", f.arg())).socket,
            Ok(PathBuf::from("/tmp/b.sock"))
        );
        assert_eq!(
            st(&format!(
                "status -c {} --control-socket /tmp/c.sock",
                f.arg()
            ))
            .socket,
            Ok(PathBuf::from("/tmp/c.sock"))
        );
        f.set("[control]\nsocket = \"off\"\n");
        let e = st(&format!("status -c {}", f.arg()))
            .socket
            .unwrap_err()
            .to_string();
        assert!(e.contains("off") && e.contains("--control-socket"), "{e}");
        // The default file is read when it exists.
        let Ok(Command::Status(a)) = parse_in(&args("status"), &f.0) else {
            panic!("status")
        };
        assert!(a.socket.is_err());
        f.set("[control]\nsocket = 5\n");
        assert_eq!(
            parse(&args(&format!("status -c {}", f.arg())))
                .unwrap_err()
                .exit_code(),
            78
        );
        assert_eq!(parse(&args("status --bogus")).unwrap_err().exit_code(), 64);
        assert_eq!(
            parse(&args("status --control-socket"))
                .unwrap_err()
                .exit_code(),
            64
        );
        assert!(matches!(parse(&args("status --help")), Ok(Command::Help)));
    }

    #[test]
    fn config_and_size_commands() {
        assert!(matches!(
            parse(&args("config default")),
            Ok(Command::ConfigDefault)
        ));
        assert!(
            matches!(parse(&args("config check /x.toml")), Ok(Command::ConfigCheck(p)) if p == Path::new("/x.toml"))
        );
        assert!(matches!(parse(&args("config --help")), Ok(Command::Help)));
        for bad in [
            "config",
            "config check",
            "config frob",
            "config default extra",
        ] {
            assert_eq!(parse(&args(bad)).unwrap_err().exit_code(), 64, "{bad}");
        }
        let Ok(Command::Size(s)) = parse(&args(
            "size --event-size 104 --rate 10000 --buffer-time 2s --safety 3",
        )) else {
            panic!("should parse")
        };
        assert_eq!(
            s,
            SizeArgs {
                event_size: 104,
                rate: 10_000.0,
                buffer_time: Duration::from_secs(2),
                safety: 3.0
            }
        );
        let Ok(Command::Size(s)) =
            parse(&args("size --event-size=1KiB --rate=5 --buffer-time=0.5"))
        else {
            panic!("should parse")
        };
        assert_eq!(
            (s.event_size, s.buffer_time, s.safety),
            (1024, Duration::from_millis(500), 3.0)
        );
        let Ok(Command::Size(s)) = parse(&args("size --event-size file --rate 1")) else {
            panic!("should parse")
        };
        assert_eq!(s.event_size, sizing::record_size(Family::File));
        for (bad, code) in [
            ("size --rate 1", 64),
            ("size --event-size 104", 64),
            ("size --event-size 104 --rate 1 --bogus", 64),
            ("size --event-size 104 --rate", 64),
            ("size --event-size 0 --rate 1", 78),
            ("size --event-size big --rate 1", 78),
            ("size --event-size 104 --rate 0", 78),
            ("size --event-size 104 --rate fast", 78),
            ("size --event-size 104 --rate 1 --buffer-time soon", 78),
            ("size --event-size 104 --rate 1 --buffer-time 0s", 78),
            ("size --event-size 104 --rate 1 --safety=-2", 78),
        ] {
            let e = parse(&args(bad)).unwrap_err();
            assert_eq!(e.exit_code(), code, "{bad}: {e}");
            assert!(!e.to_string().contains('\n'));
        }
    }
}
