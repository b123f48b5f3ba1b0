//! Prometheus text exposition (format 0.0.4) of a [`Snapshot`]: pure rendering, served
//! by `GET /metrics` (src/serve.rs) and written as a node_exporter textfile.
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::daemon::snapshot::{ProgramState, RingStats, ShardStats, Snapshot};

/// The same bounds in seconds as written in `le` (fixed text: a float printed by
/// formatting could change its spelling, and `le` is part of the series' identity).
const LE_TEXT: [&str; 19] = [
    "0.00001", "0.000025", "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
    "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
];

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

enum Val {
    Int(u64),
    Float(f64),
}

/// `# HELP` (escaped) and `# TYPE` of one metric family.
fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP {name} ");
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    let _ = writeln!(out, "\n# TYPE {name} {kind}");
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
pub fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], v: Val) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, val)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape_label(out, val);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    match v {
        Val::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Val::Float(f) => push_float(out, f),
    }
    out.push('\n');
}

/// Go's ParseFloat spellings: Rust's `{}` for f64 never uses an exponent and prints
/// integral values without a fraction, which is valid; only the specials differ.
fn push_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{f}");
    }
}

/// Each program's runs and time, with `[metrics] program_stats` (nothing without).
fn program_costs(o: &mut String, s: &Snapshot) {
    if s.programs.iter().all(|p| p.runs.is_none()) {
        return;
    }
    for (name, kind, help) in [
        (
            "ebpf_program_runs_total",
            "counter",
            "Runs of each BPF program of ringwarden's while the kernel's run statistics are on ([metrics] program_stats).",
        ),
        (
            "ebpf_program_run_seconds_total",
            "counter",
            "Time spent in each BPF program of ringwarden's while the kernel's run statistics are on ([metrics] program_stats).",
        ),
    ] {
        head(o, name, kind, help);
        for p in &s.programs {
            if let Some(r) = p.runs {
                let v = if name == "ebpf_program_runs_total" {
                    Val::Int(r.runs)
                } else {
                    Val::Float(r.ns as f64 / 1e9)
                };
                sample(o, name, &[("family", p.family), ("program", &p.name)], v);
            }
        }
    }
}

/// One per-ring metric family.
fn per_ring(
    out: &mut String,
    rings: &[RingStats],
    name: &str,
    kind: &str,
    help: &str,
    v: impl Fn(&RingStats) -> Val,
) {
    head(out, name, kind, help);
    for r in rings {
        sample(out, name, &[("ring", r.name)], v(r));
    }
}

/// The shards of sharded rings (`[rings.FAMILY] shards`), labelled `ring` and `shard`:
/// the per-ring series above are their sums. No samples when no ring is sharded.
fn shards(o: &mut String, rings: &[RingStats]) {
    type Get = fn(&ShardStats) -> Val;
    let series: [(&str, &str, &str, Get); 5] = [
        (
            "ebpf_ring_shard_produced_total",
            "counter",
            "Events produced into one shard of a sharded ring (the shard's sequence numbers).",
            |s| Val::Int(s.produced),
        ),
        (
            "ebpf_ring_shard_received_total",
            "counter",
            "Events ringwarden consumed from one shard of a sharded ring.",
            |s| Val::Int(s.received),
        ),
        (
            "ebpf_ring_shard_dropped_total",
            "counter",
            "Events lost because one shard of a sharded ring was full.",
            |s| Val::Int(s.dropped),
        ),
        (
            "ebpf_ring_shard_size_bytes",
            "gauge",
            "Current size of one shard of a sharded ring.",
            |s| Val::Int(s.size),
        ),
        (
            "ebpf_ring_shard_utilization_percent",
            "gauge",
            "Highest fill of one shard during the last tick, in percent of its size (0-100).",
            |s| Val::Float(s.utilization * 100.0),
        ),
    ];
    if rings.iter().all(|r| r.shards.is_empty()) {
        return;
    }
    for (name, kind, help, get) in series {
        head(o, name, kind, help);
        for r in rings {
            for (i, s) in r.shards.iter().enumerate() {
                let shard = i.to_string();
                sample(o, name, &[("ring", r.name), ("shard", &shard)], get(s));
            }
        }
    }
}

/// The whole exposition. Every metric family has its `# HELP` then its `# TYPE` line
/// before its samples; families appear once each. `renders`: this one included.
pub fn render(s: &Snapshot, renders: u64) -> String {
    let mut out = String::with_capacity(4096 + s.rings.len() * 3072);
    let rings = &s.rings;
    let o = &mut out;
    per_ring(
        o,
        rings,
        "ebpf_events_produced_total",
        "counter",
        "Events the ring's BPF programs tried to submit (each got a sequence number); produced = received + dropped.",
        |r| Val::Int(r.produced),
    );
    per_ring(
        o,
        rings,
        "ebpf_events_received_total",
        "counter",
        "Events ringwarden consumed from the ring.",
        |r| Val::Int(r.received),
    );
    per_ring(
        o,
        rings,
        "ebpf_events_dropped_total",
        "counter",
        "Events lost because the ring was full, counted in the kernel.",
        |r| Val::Int(r.dropped),
    );
    per_ring(
        o,
        rings,
        "ebpf_events_filtered_total",
        "counter",
        "Events the in-kernel filters rejected before the ring (no sequence number, no ring space; not part of produced).",
        |r| Val::Int(r.filtered),
    );
    per_ring(
        o,
        rings,
        "ebpf_events_rate_limited_total",
        "counter",
        "Events a rate limit refused before the ring (no sequence number, no ring space; not part of produced).",
        |r| Val::Int(r.rate_limited),
    );
    per_ring(
        o,
        rings,
        "ebpf_events_untracked_total",
        "counter",
        "Events a program saw but could not follow (in-flight table full, exit without its enter, 32-bit compat syscall).",
        |r| Val::Int(r.untracked),
    );
    per_ring(
        o,
        rings,
        "ebpf_ring_buffer_size_bytes",
        "gauge",
        "Current size of the ring buffer.",
        |r| Val::Int(r.size),
    );
    head(
        o,
        "ebpf_ring_memory_bytes",
        "gauge",
        "Bytes in every ring (each shard) together: what [sizing] memory_budget bounds.",
    );
    sample(o, "ebpf_ring_memory_bytes", &[], Val::Int(s.ring_memory()));
    if let Some(b) = s.memory_budget {
        head(
            o,
            "ebpf_ring_memory_budget_bytes",
            "gauge",
            "[sizing] memory_budget: the most the rings may hold at once, swaps included.",
        );
        sample(o, "ebpf_ring_memory_budget_bytes", &[], Val::Int(b));
    }
    per_ring(
        o,
        rings,
        "ebpf_ring_buffer_utilization_percent",
        "gauge",
        "Highest fill of the ring during the last tick, measured in the kernel after each commit, in percent of its size (0-100).",
        |r| Val::Float(r.utilization * 100.0),
    );
    per_ring(
        o,
        rings,
        "ebpf_loss_rate",
        "gauge",
        "Dropped events divided by produced events since start (0-1).",
        |r| Val::Float(r.loss_rate()),
    );
    head(
        o,
        "ebpf_ring_buffer_resizes_total",
        "counter",
        "Ring buffer resizes since start, by direction.",
    );
    for r in rings {
        for (dir, n) in [("up", r.resizes_up), ("down", r.resizes_down)] {
            sample(
                o,
                "ebpf_ring_buffer_resizes_total",
                &[("ring", r.name), ("direction", dir)],
                Val::Int(n),
            );
        }
    }
    histogram(o, rings);
    shards(o, rings);
    per_ring(
        o,
        rings,
        "ringwarden_decode_errors_total",
        "counter",
        "Records that could not be decoded and rendered.",
        |r| Val::Int(r.decode_errors),
    );
    per_ring(
        o,
        rings,
        "ringwarden_context_only_total",
        "counter",
        "Records received only to keep the process context, not written out: execs the filters rejected, and the process family's records when it runs for the context alone.",
        |r| Val::Int(r.context_only),
    );
    if let Some(c) = &s.context {
        head(
            o,
            "ebpf_context_evictions_total",
            "counter",
            "Entries the context tables evicted to stay within [context] max_processes and max_cgroups: their next events read them again (or say context unknown).",
        );
        for (table, n) in [
            ("processes", c.process_evictions),
            ("cgroups", c.cgroup_evictions),
        ] {
            sample(
                o,
                "ebpf_context_evictions_total",
                &[("table", table)],
                Val::Int(n),
            );
        }
        head(
            o,
            "ebpf_context_entries",
            "gauge",
            "Entries in the context tables.",
        );
        for (table, n) in [("processes", c.processes), ("cgroups", c.cgroups)] {
            sample(o, "ebpf_context_entries", &[("table", table)], Val::Int(n));
        }
        head(
            o,
            "ringwarden_context_unknown_total",
            "counter",
            "Events whose process was not known (context \"unknown\"): gone before it could be read, or past the per-tick budget of /proc reads.",
        );
        sample(
            o,
            "ringwarden_context_unknown_total",
            &[],
            Val::Int(c.unknown),
        );
    }
    head(
        o,
        "ringwarden_sink_errors_total",
        "counter",
        "Records that could not be written to the output (full disk, stalled reader): received events and the daemon's own tamper records.",
    );
    sample(
        o,
        "ringwarden_sink_errors_total",
        &[],
        Val::Int(s.sink_errors),
    );
    head(
        o,
        "ringwarden_written_total",
        "counter",
        "Records the output took (lines written, journal entries accepted).",
    );
    sample(o, "ringwarden_written_total", &[], Val::Int(s.written));
    if let Some(e) = s.expired_events {
        head(
            o,
            "ringwarden_expired_events_total",
            "counter",
            "Lines (events and the daemon's own records) of rotated archive files that retention deleted.",
        );
        sample(o, "ringwarden_expired_events_total", &[], Val::Int(e));
    }
    head(
        o,
        "ringwarden_resident_memory_bytes",
        "gauge",
        "Resident memory of the daemon (ring buffers count about twice their size).",
    );
    sample(
        o,
        "ringwarden_resident_memory_bytes",
        &[],
        Val::Int(s.rss_bytes),
    );
    head(
        o,
        "ringwarden_tamper_total",
        "counter",
        "Changes to ringwarden's BPF maps made behind its back (config, ring slot, syscall filter), each restored and raised as a tamper anomaly.",
    );
    sample(o, "ringwarden_tamper_total", &[], Val::Int(s.tamper));
    head(
        o,
        "ringwarden_programs",
        "gauge",
        "BPF programs by state: attached, failed (see the log or `ringwarden status`), or not applicable on this kernel.",
    );
    for st in ProgramState::ALL {
        sample(
            o,
            "ringwarden_programs",
            &[("state", st.name())],
            Val::Int(s.programs_in(st) as u64),
        );
    }
    program_costs(o, s);
    losses(o, &s.losses);
    if let Some(u) = &s.unseen {
        unseen(o, u);
    }
    head(
        o,
        "ringwarden_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    sample(
        o,
        "ringwarden_uptime_seconds",
        &[],
        Val::Float(s.uptime.as_millis() as f64 / 1000.0),
    );
    head(
        o,
        "ringwarden_metrics_renders_total",
        "counter",
        "Times this exposition was rendered: at most once per tick (1 s), however many scrapes.",
    );
    sample(
        o,
        "ringwarden_metrics_renders_total",
        &[],
        Val::Int(renders),
    );
    out
}

/// Uids named in `ringwarden_uid_lost_events_total`: the largest losses, a bounded label
/// set (the rest are in `ringwarden status --json`).
pub const LOSS_UIDS: usize = 10;

/// Who lost events: filtered, dropped and rate-limited events of the uids with the largest
/// losses (only once some uid lost any).
fn losses(o: &mut String, all: &[crate::family::filter::Loss]) {
    const NAME: &str = "ringwarden_uid_lost_events_total";
    if all.is_empty() {
        return;
    }
    head(
        o,
        NAME,
        "counter",
        "Events not reported, by ring, uid and reason (filtered, dropped, rate_limited), for the uids with the most; uid=\"other\" is every uid the kernel had no room to count alone.",
    );
    for l in all.iter().take(LOSS_UIDS) {
        let uid = if l.uid == crate::family::filter::LOSS_OTHER {
            "other".to_string()
        } else {
            l.uid.to_string()
        };
        for (reason, n) in [
            ("filtered", l.filtered),
            ("dropped", l.dropped),
            ("rate_limited", l.rate_limited),
        ] {
            sample(
                o,
                NAME,
                &[("ring", l.family.name()), ("uid", &uid), ("reason", reason)],
                Val::Int(n),
            );
        }
    }
}

/// What the syscall family counts but no family reports (only when it runs).
fn unseen(o: &mut String, u: &crate::family::syscall::Unseen) {
    use crate::family::syscall::ia32_name;
    const TOTAL: &str = "ringwarden_unseen_total";
    head(
        o,
        TOTAL,
        "counter",
        "Operations no family reports, counted by the syscall family: path=\"compat\" 32-bit compat syscalls (int 0x80, 32-bit binaries), path=\"io_uring\" io_uring submissions.",
    );
    sample(o, TOTAL, &[("path", "compat")], Val::Int(u.compat_total()));
    sample(
        o,
        TOTAL,
        &[("path", "io_uring")],
        Val::Int(u.io_uring_total()),
    );
    // The breakdowns appear with their first sample: a host without compat syscalls
    // or io_uring shows only the totals.
    const COMPAT: &str = "ringwarden_compat_syscalls_total";
    if u.compat.is_empty() {
        return uring(o, u);
    }
    head(
        o,
        COMPAT,
        "counter",
        "32-bit compat syscalls by ia32 syscall (name, or nr_N), since start.",
    );
    for &(nr, n) in &u.compat {
        sample(o, COMPAT, &[("syscall", &ia32_name(nr))], Val::Int(n));
    }
    uring(o, u);
}

fn uring(o: &mut String, u: &crate::family::syscall::Unseen) {
    use crate::family::syscall::io_uring_op_name;
    const URING: &str = "ringwarden_io_uring_submissions_total";
    if u.io_uring.is_empty() {
        return;
    }
    head(
        o,
        URING,
        "counter",
        "io_uring submissions by opcode (name, or op_N), since start.",
    );
    for &(op, n) in &u.io_uring {
        sample(o, URING, &[("opcode", &io_uring_op_name(op))], Val::Int(n));
    }
}

/// `ebpf_read_latency_seconds`, one histogram per ring, from the daemon's log-linear
/// latency histogram (src/latency.rs). The `le` counts are cumulative counts of whole
/// log-linear buckets (a bucket straddling a bound counts from the next bound on: each
/// figure is at most one 25 % bucket short); `_sum` is the exact sum of every recorded
/// latency (tracked per event, not estimated from buckets); `_count` is exact and equals
/// the `+Inf` bucket.
fn histogram(o: &mut String, rings: &[RingStats]) {
    const NAME: &str = "ebpf_read_latency_seconds";
    head(
        o,
        NAME,
        "histogram",
        "Time from the BPF program's timestamp to the event's consumption by ringwarden.",
    );
    for r in rings {
        let bucket = format!("{NAME}_bucket");
        for (le, n) in LE_TEXT.iter().zip(r.latency_le) {
            sample(o, &bucket, &[("ring", r.name), ("le", le)], Val::Int(n));
        }
        sample(
            o,
            &bucket,
            &[("ring", r.name), ("le", "+Inf")],
            Val::Int(r.latency_count),
        );
        sample(
            o,
            &format!("{NAME}_sum"),
            &[("ring", r.name)],
            Val::Float(r.latency_sum_ns as f64 / 1e9),
        );
        sample(
            o,
            &format!("{NAME}_count"),
            &[("ring", r.name)],
            Val::Int(r.latency_count),
        );
    }
}

/// node_exporter's textfile collector: written to a temporary name beside `path` (one
/// the collector ignores: not `*.prom`) and renamed, so a scrape never reads half a
/// file. No fsync: the file is rewritten every second and lost data is regenerated.
pub fn write_textfile(path: &Path, text: &str) -> io::Result<()> {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    crate::sys::replace_file(path, &tmp, text.as_bytes(), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::snapshot::LE_NS;
    use crate::daemon::snapshot::tests::sample as snapshot;

    #[test]
    fn bounds_and_their_text_agree() {
        for (ns, text) in LE_NS.iter().zip(LE_TEXT) {
            let secs: f64 = text.parse().expect("le parses");
            assert_eq!((secs * 1e9).round() as u64, *ns, "{text}");
        }
        assert!(LE_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn exact_text_of_counters_and_gauges() {
        let text = render(&snapshot(), 1);
        let start = "\
# HELP ebpf_events_produced_total Events the ring's BPF programs tried to submit (each got a sequence number); produced = received + dropped.
# TYPE ebpf_events_produced_total counter
ebpf_events_produced_total{ring=\"file\"} 1000
ebpf_events_produced_total{ring=\"syscall\"} 0
# HELP ebpf_events_received_total Events ringwarden consumed from the ring.
# TYPE ebpf_events_received_total counter
ebpf_events_received_total{ring=\"file\"} 990
ebpf_events_received_total{ring=\"syscall\"} 0
# HELP ebpf_events_dropped_total Events lost because the ring was full, counted in the kernel.
# TYPE ebpf_events_dropped_total counter
ebpf_events_dropped_total{ring=\"file\"} 10
ebpf_events_dropped_total{ring=\"syscall\"} 0
";
        assert!(text.starts_with(start), "{text}");
        for block in [
            "# TYPE ebpf_ring_buffer_size_bytes gauge\nebpf_ring_buffer_size_bytes{ring=\"file\"} 1048576\nebpf_ring_buffer_size_bytes{ring=\"syscall\"} 4096\n",
            "# TYPE ebpf_ring_buffer_utilization_percent gauge\nebpf_ring_buffer_utilization_percent{ring=\"file\"} 75\nebpf_ring_buffer_utilization_percent{ring=\"syscall\"} 0\n",
            "# TYPE ebpf_loss_rate gauge\nebpf_loss_rate{ring=\"file\"} 0.01\nebpf_loss_rate{ring=\"syscall\"} 0\n",
            "# TYPE ebpf_events_untracked_total counter\nebpf_events_untracked_total{ring=\"file\"} 3\n",
            "# TYPE ebpf_ring_buffer_resizes_total counter\nebpf_ring_buffer_resizes_total{ring=\"file\",direction=\"up\"} 2\nebpf_ring_buffer_resizes_total{ring=\"file\",direction=\"down\"} 1\nebpf_ring_buffer_resizes_total{ring=\"syscall\",direction=\"up\"} 0\n",
            "# TYPE ringwarden_decode_errors_total counter\nringwarden_decode_errors_total{ring=\"file\"} 1\n",
            "# TYPE ringwarden_sink_errors_total counter\nringwarden_sink_errors_total 4\n",
            "# TYPE ringwarden_resident_memory_bytes gauge\nringwarden_resident_memory_bytes 12582912\n",
            "# TYPE ringwarden_tamper_total counter\nringwarden_tamper_total 2\n",
            "# TYPE ringwarden_programs gauge\nringwarden_programs{state=\"attached\"} 1\nringwarden_programs{state=\"failed\"} 1\nringwarden_programs{state=\"not_applicable\"} 1\n",
            "# HELP ringwarden_uptime_seconds Seconds since the daemon started.\n# TYPE ringwarden_uptime_seconds gauge\nringwarden_uptime_seconds 3723.456\n",
        ] {
            assert!(text.contains(block), "missing:\n{block}\nin:\n{text}");
        }
        assert!(text.ends_with(
            "# TYPE ringwarden_metrics_renders_total counter\nringwarden_metrics_renders_total 1\n"
        ));
    }

    #[test]
    fn sharded_rings_have_a_series_per_shard_and_others_none() {
        assert!(!render(&snapshot(), 1).contains("ebpf_ring_shard_"));
        let mut s = snapshot();
        let shard = |produced, dropped| ShardStats {
            size: 4096,
            utilization: 0.25,
            produced,
            received: produced - dropped,
            dropped,
            ..ShardStats::default()
        };
        s.rings[1].shards = vec![shard(10, 0), shard(30, 3)];
        let text = render(&s, 1);
        for block in [
            "# TYPE ebpf_ring_shard_produced_total counter\nebpf_ring_shard_produced_total{ring=\"syscall\",shard=\"0\"} 10\nebpf_ring_shard_produced_total{ring=\"syscall\",shard=\"1\"} 30\n",
            "# TYPE ebpf_ring_shard_received_total counter\nebpf_ring_shard_received_total{ring=\"syscall\",shard=\"0\"} 10\nebpf_ring_shard_received_total{ring=\"syscall\",shard=\"1\"} 27\n",
            "# TYPE ebpf_ring_shard_dropped_total counter\nebpf_ring_shard_dropped_total{ring=\"syscall\",shard=\"0\"} 0\nebpf_ring_shard_dropped_total{ring=\"syscall\",shard=\"1\"} 3\n",
            "ebpf_ring_shard_size_bytes{ring=\"syscall\",shard=\"1\"} 4096\n",
            "ebpf_ring_shard_utilization_percent{ring=\"syscall\",shard=\"0\"} 25\n",
        ] {
            assert!(text.contains(block), "missing:\n{block}\nin:\n{text}");
        }
    }

    #[test]
    fn help_comes_before_type_and_each_family_once_before_its_samples() {
        let text = render(&snapshot(), 1);
        let mut seen: Vec<String> = Vec::new();
        let mut current: Option<String> = None;
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if let Some(rest) = l.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().expect("name").to_string();
                assert!(!seen.contains(&name), "{name} twice");
                let ty = lines[i + 1];
                assert!(ty.starts_with(&format!("# TYPE {name} ")), "{ty}");
                seen.push(name.clone());
                current = Some(name);
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().expect("sample name");
                let fam = current.as_deref().expect("a sample before any HELP");
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| *b == fam))
                    .unwrap_or(name);
                assert_eq!(base, fam, "sample {l:?} outside its family");
            }
        }
        let want = [
            "ebpf_events_produced_total",
            "ebpf_events_received_total",
            "ebpf_events_dropped_total",
            "ebpf_events_filtered_total",
            "ebpf_events_rate_limited_total",
            "ebpf_events_untracked_total",
            "ebpf_ring_buffer_size_bytes",
            "ebpf_ring_memory_bytes",
            "ebpf_ring_memory_budget_bytes",
            "ebpf_ring_buffer_utilization_percent",
            "ebpf_loss_rate",
            "ebpf_ring_buffer_resizes_total",
            "ebpf_read_latency_seconds",
            "ringwarden_decode_errors_total",
            "ringwarden_context_only_total",
            "ebpf_context_evictions_total",
            "ebpf_context_entries",
            "ringwarden_context_unknown_total",
            "ringwarden_sink_errors_total",
            "ringwarden_written_total",
            "ringwarden_resident_memory_bytes",
            "ringwarden_tamper_total",
            "ringwarden_programs",
            "ebpf_program_runs_total",
            "ebpf_program_run_seconds_total",
            "ringwarden_uid_lost_events_total",
            "ringwarden_uptime_seconds",
            "ringwarden_metrics_renders_total",
        ];
        assert_eq!(seen, want);
        let text = render(&snapshot(), 1);
        assert!(
            text.contains(
                "ebpf_program_runs_total{family=\"file\",program=\"handle_openat\"} 1000\n"
            ),
            "{text}"
        );
        assert!(text.contains("ebpf_program_run_seconds_total{family=\"file\",program=\"handle_openat\"} 0.00025\n"), "{text}");
    }

    #[test]
    fn unseen_counts_when_the_syscall_family_runs() {
        let mut s = snapshot();
        assert!(!render(&s, 1).contains("ringwarden_unseen_total"));
        s.unseen = Some(crate::family::syscall::Unseen::default());
        let text = render(&s, 1);
        assert!(text.contains("ringwarden_unseen_total{path=\"compat\"} 0\nringwarden_unseen_total{path=\"io_uring\"} 0\n# HELP ringwarden_uptime_seconds"), "{text}");
        s.unseen = Some(crate::family::syscall::Unseen {
            compat: vec![(5, 3), (999, 1)],
            io_uring: vec![(18, 7)],
        });
        let text = render(&s, 1);
        for block in [
            "# TYPE ringwarden_unseen_total counter\nringwarden_unseen_total{path=\"compat\"} 4\nringwarden_unseen_total{path=\"io_uring\"} 7\n",
            "# TYPE ringwarden_compat_syscalls_total counter\nringwarden_compat_syscalls_total{syscall=\"open\"} 3\nringwarden_compat_syscalls_total{syscall=\"nr_999\"} 1\n",
            "# TYPE ringwarden_io_uring_submissions_total counter\nringwarden_io_uring_submissions_total{opcode=\"openat\"} 7\n# HELP ringwarden_uptime_seconds",
        ] {
            assert!(text.contains(block), "missing:\n{block}\nin:\n{text}");
        }
    }

    #[test]
    fn latency_histogram_is_cumulative_and_complete() {
        let text = render(&snapshot(), 1);
        let buckets: Vec<(String, u64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("ebpf_read_latency_seconds_bucket{ring=\"file\",le=\""))
            .map(|l| {
                let (le, n) = l.split_once("\"} ").expect("le");
                (le.to_string(), n.parse().expect("count"))
            })
            .collect();
        assert_eq!(buckets.len(), 20);
        assert_eq!(buckets[0], ("0.00001".to_string(), 0));
        assert_eq!(buckets[1], ("0.000025".to_string(), 10));
        assert_eq!(buckets[18], ("10".to_string(), 100));
        assert_eq!(buckets[19], ("+Inf".to_string(), 100));
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "monotonic");
        assert!(text.contains(
            "ebpf_read_latency_seconds_bucket{ring=\"file\",le=\"10\"} 100\nebpf_read_latency_seconds_bucket{ring=\"file\",le=\"+Inf\"} 100\nebpf_read_latency_seconds_sum{ring=\"file\"} 0.025\nebpf_read_latency_seconds_count{ring=\"file\"} 100\nebpf_read_latency_seconds_bucket{ring=\"syscall\",le=\"0.00001\"} 0\n"
        ), "{text}");
        assert!(text.contains(
            "ebpf_read_latency_seconds_sum{ring=\"syscall\"} 0\nebpf_read_latency_seconds_count{ring=\"syscall\"} 0\n# HELP ringwarden_decode_errors_total"
        ), "{text}");
    }

    #[test]
    fn histogram_from_a_real_latency_histogram() {
        let mut h = crate::sizing::latency::Histogram::default();
        for v in [
            5_000u64,
            20_000,
            20_000,
            400_000,
            3_000_000_000,
            20_000_000_000,
        ] {
            h.record(v);
        }
        let mut r = RingStats {
            name: "file",
            latency_count: h.count(),
            latency_sum_ns: h.sum(),
            ..RingStats::default()
        };
        h.cumulative(&LE_NS, &mut r.latency_le);
        let s = Snapshot {
            rings: vec![r],
            ..Snapshot::default()
        };
        let text = render(&s, 1);
        let get = |le: &str| -> u64 {
            let key = format!("ebpf_read_latency_seconds_bucket{{ring=\"file\",le=\"{le}\"}} ");
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(&key))
                .expect("bucket");
            line.parse().expect("n")
        };
        assert_eq!(get("0.00001"), 1);
        assert_eq!(get("0.000025"), 3);
        assert_eq!(get("0.0005"), 4);
        assert_eq!(get("2.5"), 4);
        assert_eq!(get("5"), 5);
        assert_eq!(get("10"), 5, "20 s is only in +Inf");
        assert_eq!(get("+Inf"), 6);
        assert!(text.contains("ebpf_read_latency_seconds_sum{ring=\"file\"} 23.000445\n"));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut out = String::new();
        escape_label(&mut out, "a\\b\"c\nd");
        assert_eq!(out, "a\\\\b\\\"c\\nd");
        let mut out = String::new();
        sample(
            &mut out,
            "m",
            &[("ring", "x\"y"), ("k", "\\")],
            Val::Float(0.5),
        );
        assert_eq!(out, "m{ring=\"x\\\"y\",k=\"\\\\\"} 0.5\n");
        let mut out = String::new();
        head(&mut out, "m", "gauge", "a \"quoted\" back\\slash\nnext");
        assert_eq!(
            out,
            "# HELP m a \"quoted\" back\\\\slash\\nnext\n# TYPE m gauge\n"
        );
        let mut out = String::new();
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-7, 2.0] {
            push_float(&mut out, f);
            out.push(' ');
        }
        assert_eq!(out, "NaN +Inf -Inf 0.0000001 2 ");
    }

    #[test]
    fn textfile_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("rw-metrics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("ringwarden.prom");
        write_textfile(&p, "a 1\n").expect("write");
        write_textfile(&p, "b 2\n").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "b 2\n");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ringwarden.prom")]);
        let missing = dir.join("nope").join("x.prom");
        assert_eq!(
            write_textfile(&missing, "c 3\n").map_err(|e| e.kind()),
            Err(io::ErrorKind::NotFound)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
