//! One snapshot of the daemon's books, taken by the loop, that every view renders: the
//! stats file (`--stats-json`), the control socket's `status` answer (the same JSON),
//! the Prometheus metrics and the textfile. So the views cannot disagree.
use crate::family::filter::Loss;
use std::io::Write as _;
use std::time::Duration;

use crate::family::syscall::{Unseen, ia32_name, io_uring_op_name};
use crate::output::json::Line;

/// One ring's numbers at one moment.
/// `le` bounds of `ebpf_read_latency_seconds`, ns: 10 µs to 10 s in 1-2.5-5 steps
/// (the loop's latency is ~0.3 ms when batching, ~25 µs with per-event wake-ups).
pub const LE_NS: [u64; 19] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RingStats {
    pub name: &'static str,
    pub size: u64,
    pub min: u64,
    pub max: u64,
    /// Last tick's in-kernel high-water mark, bytes, and as a share of the size.
    pub high_water: u64,
    pub utilization: f64,
    /// Events produced per second over the last tick.
    pub rate: f64,
    pub resizes_up: u64,
    pub resizes_down: u64,
    /// Kernel timestamp → consume, since start (upper bounds, ±12 %).
    pub latency_p50_ns: u64,
    pub latency_p99_ns: u64,
    pub latency_max_ns: u64,
    /// The same latencies as cumulative counts per `metrics::LE_NS` bound, their exact
    /// sum (ns) and count.
    pub latency_le: [u64; LE_NS.len()],
    pub latency_sum_ns: u128,
    pub latency_count: u64,
    pub produced: u64,
    pub received: u64,
    pub dropped: u64,
    /// Events the in-kernel filters rejected (no seq, no ring space: outside the books).
    pub filtered: u64,
    /// Events a rate limit refused (likewise outside the books).
    pub rate_limited: u64,
    pub untracked: u64,
    pub decode_errors: u64,
    /// Received for the process context alone, not written out (a filtered exec, or
    /// the process family run only for the context).
    pub context_only: u64,
    /// Seqs declared lost in `lost` records (equals `dropped` once the books are final),
    /// and how many such records were raised.
    pub lost: u64,
    pub lost_records: u64,
    /// `Some("5.10")` when the family's 5.10 variant runs (bpf/kernel.h): its records
    /// carry no seq and its `lost` records only a count.
    pub variant: Option<&'static str>,
    /// Each shard's part when the family has more than one ring (`[rings.FAMILY]
    /// shards`); empty otherwise. The fields above are then the shards' sums (size,
    /// counts, high_water) and the fullest shard's utilization.
    pub shards: Vec<ShardStats>,
}

/// One shard of a family's ring: its size, fill and books.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShardStats {
    pub size: u64,
    pub high_water: u64,
    pub utilization: f64,
    pub rate: f64,
    pub resizes_up: u64,
    pub resizes_down: u64,
    pub produced: u64,
    pub received: u64,
    pub dropped: u64,
    pub lost: u64,
}

impl RingStats {
    pub fn exact(&self) -> bool {
        self.produced == self.received + self.dropped
    }

    /// Dropped ÷ produced since start (0 before the first event).
    pub fn loss_rate(&self) -> f64 {
        if self.produced == 0 {
            0.0
        } else {
            self.dropped as f64 / self.produced as f64
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramState {
    Attached,
    Failed,
    /// Left out by design on this kernel (e.g. module syscalls without module support).
    NotApplicable,
}

impl ProgramState {
    pub const ALL: [ProgramState; 3] = [
        ProgramState::Attached,
        ProgramState::Failed,
        ProgramState::NotApplicable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProgramState::Attached => "attached",
            ProgramState::Failed => "failed",
            ProgramState::NotApplicable => "not_applicable",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub family: &'static str,
    pub name: String,
    /// e.g. `tp_btf/sched_process_exec`
    pub section: String,
    pub state: ProgramState,
    /// Why it failed or is not applicable.
    pub reason: Option<String>,
    /// The kernel's run statistics, with `[metrics] program_stats` (`None` without).
    pub runs: Option<RunStats>,
}

/// How often a program ran and how long, as the kernel counts them while its run-time
/// statistics are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub runs: u64,
    pub ns: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub rings: Vec<RingStats>,
    pub programs: Vec<Program>,
    pub sink_errors: u64,
    /// Lines (or journal entries) the output took; `received` events minus those kept
    /// for the context alone, plus the daemon's own records, = written + sink_errors.
    pub written: u64,
    /// An archive's events deleted by retention (`None`: the output is no archive).
    pub expired_events: Option<u64>,
    /// `[sizing] memory_budget` (`None`: no budget).
    pub memory_budget: Option<u64>,
    pub uptime: Duration,
    pub pid: u32,
    /// Resident memory (0 when /proc could not tell).
    pub rss_bytes: u64,
    /// What no family reports but the syscall family counts (`None` when it does not run).
    pub unseen: Option<Unseen>,
    /// Changes to the daemon's maps made behind its back (`tamper` anomalies raised).
    pub tamper: u64,
    /// Who lost events: per family and uid, filtered and dropped, the largest first
    /// (at most [`LOSSES_SHOWN`]).
    pub losses: Vec<Loss>,
    /// The process context's tables (`None`: `--no-context`).
    pub context: Option<ContextStats>,
    /// How long the kernel's run-time statistics have been on (`None`: off).
    pub program_stats_for: Option<Duration>,
}

impl Snapshot {
    /// Bytes in every ring (each shard) now: what a memory budget bounds.
    pub fn ring_memory(&self) -> u64 {
        self.rings.iter().map(|r| r.size).sum()
    }
}

/// The context tables' numbers at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContextStats {
    pub processes: u64,
    pub cgroups: u64,
    pub process_evictions: u64,
    pub cgroup_evictions: u64,
    /// Events whose process was not known (`context: "unknown"`).
    pub unknown: u64,
    /// /proc reads on a miss.
    pub proc_reads: u64,
    /// Events rendered before the process ring could be caught up.
    pub late: u64,
    /// Times the process table was emptied after the process ring lost records.
    pub forgotten: u64,
}

/// Uids listed in `losses` (the stats document; `status` shows the first 10).
pub const LOSSES_SHOWN: usize = 50;

/// The largest losses first (dropped + rate limited, then filtered), at most `n`.
pub fn top_losses(mut all: Vec<Loss>, n: usize) -> Vec<Loss> {
    // Who is losing events first (dropped, rate limited); filtered is mostly wanted
    // noise, so it only orders the rest.
    all.sort_by_key(|l| {
        (
            std::cmp::Reverse(l.dropped + l.rate_limited),
            std::cmp::Reverse(l.filtered),
            l.family,
            l.uid,
        )
    });
    all.truncate(n);
    all
}

impl Snapshot {
    /// How many programs are in `state`.
    pub fn programs_in(&self, state: ProgramState) -> usize {
        self.programs.iter().filter(|p| p.state == state).count()
    }

    /// The stats document: one JSON object and a newline (the stats file and the
    /// control socket's answer).
    pub fn json(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut l = Line::begin(&mut buf);
        l.object("rings", |o| {
            for s in &self.rings {
                o.object(s.name, |r| {
                    r.u64("size", s.size);
                    r.u64("min", s.min);
                    r.u64("max", s.max);
                    r.u64("high_water", s.high_water);
                    r.raw_with("high_water_percent", |b| {
                        b.extend_from_slice(format!("{:.1}", s.utilization * 100.0).as_bytes())
                    });
                    r.raw_with("utilization", |b| {
                        b.extend_from_slice(format!("{:.4}", s.utilization).as_bytes())
                    });
                    r.raw_with("rate", |b| {
                        b.extend_from_slice(format!("{:.1}", s.rate).as_bytes())
                    });
                    r.u64("resizes_up", s.resizes_up);
                    r.u64("resizes_down", s.resizes_down);
                    r.u64("latency_p50_ns", s.latency_p50_ns);
                    r.u64("latency_p99_ns", s.latency_p99_ns);
                    r.u64("latency_max_ns", s.latency_max_ns);
                    r.u64("produced", s.produced);
                    r.u64("received", s.received);
                    r.u64("dropped", s.dropped);
                    r.u64("filtered", s.filtered);
                    r.u64("rate_limited", s.rate_limited);
                    r.u64("untracked", s.untracked);
                    r.u64("decode_errors", s.decode_errors);
                    r.u64("context_only", s.context_only);
                    r.u64("lost", s.lost);
                    r.u64("lost_records", s.lost_records);
                    if let Some(v) = s.variant {
                        r.str("variant", v);
                    }
                    // Exponent-free: JSON has exponents, but some readers choke on them.
                    r.raw_with("loss_rate", |b| {
                        b.extend_from_slice(format!("{:.6}", s.loss_rate()).as_bytes())
                    });
                    if !s.shards.is_empty() {
                        r.array_of("shards", &s.shards, |so, sh| {
                            so.u64("size", sh.size);
                            so.u64("high_water", sh.high_water);
                            so.raw_with("utilization", |b| {
                                b.extend_from_slice(format!("{:.4}", sh.utilization).as_bytes())
                            });
                            so.raw_with("rate", |b| {
                                b.extend_from_slice(format!("{:.1}", sh.rate).as_bytes())
                            });
                            so.u64("resizes_up", sh.resizes_up);
                            so.u64("resizes_down", sh.resizes_down);
                            so.u64("produced", sh.produced);
                            so.u64("received", sh.received);
                            so.u64("dropped", sh.dropped);
                            so.u64("lost", sh.lost);
                        });
                    }
                });
            }
        });
        l.object("programs", |o| {
            for p in &self.programs {
                o.object(&p.name, |po| {
                    po.str("family", p.family);
                    po.str("attach", &p.section);
                    po.bool("attached", p.state == ProgramState::Attached);
                    if let Some(r) = p.runs {
                        po.u64("runs", r.runs);
                        po.u64("run_ns", r.ns);
                    }
                    match (p.state, &p.reason) {
                        (ProgramState::Failed, Some(e)) => po.str("error", e),
                        (ProgramState::NotApplicable, Some(why)) => po.str("not_applicable", why),
                        _ => {}
                    }
                });
            }
        });
        if let Some(d) = self.program_stats_for {
            l.u64("program_stats_ms", d.as_millis() as u64);
        }
        l.object("program_counts", |o| {
            for st in ProgramState::ALL {
                o.u64(st.name(), self.programs_in(st) as u64);
            }
        });
        if let Some(u) = &self.unseen {
            l.object("unseen", |o| {
                o.object("compat", |c| {
                    c.u64("total", u.compat_total());
                    c.object("syscalls", |by| {
                        for &(nr, n) in &u.compat {
                            by.u64(&ia32_name(nr), n);
                        }
                    });
                });
                o.object("io_uring", |c| {
                    c.u64("total", u.io_uring_total());
                    c.object("opcodes", |by| {
                        for &(op, n) in &u.io_uring {
                            by.u64(&io_uring_op_name(op), n);
                        }
                    });
                });
            });
        }
        if let Some(c) = &self.context {
            l.object("context", |o| {
                o.u64("processes", c.processes);
                o.u64("cgroups", c.cgroups);
                o.object("evictions", |e| {
                    e.u64("processes", c.process_evictions);
                    e.u64("cgroups", c.cgroup_evictions);
                });
                o.u64("unknown", c.unknown);
                o.u64("proc_reads", c.proc_reads);
                o.u64("late", c.late);
                o.u64("forgotten", c.forgotten);
            });
        }
        l.u64("sink_errors", self.sink_errors);
        l.u64("written", self.written);
        if let Some(e) = self.expired_events {
            l.u64("expired_events", e);
        }
        l.u64("ring_memory", self.ring_memory());
        if let Some(b) = self.memory_budget {
            l.u64("memory_budget", b);
        }
        l.u64("uptime_ms", self.uptime.as_millis() as u64);
        l.u64("pid", self.pid.into());
        l.str("version", env!("CARGO_PKG_VERSION"));
        l.u64("rss_bytes", self.rss_bytes);
        l.u64("tamper", self.tamper);
        // uid 4294967295 ((uid_t)-1): every uid that found no room of its own.
        l.raw_with("losses", |b| {
            b.push(b'[');
            for (i, x) in self.losses.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                // Family names are plain ASCII: nothing to escape.
                let _ = write!(
                    b,
                    "{sep}{{\"ring\":\"{}\",\"uid\":{},\"filtered\":{},\"dropped\":{},\"rate_limited\":{}}}",
                    x.family.name(),
                    x.uid,
                    x.filtered,
                    x.dropped,
                    x.rate_limited
                );
            }
            b.push(b']');
        });
        l.end();
        buf
    }
}

/// Resident memory from /proc/self/statm (pages × page size); 0 if unreadable.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * crate::sys::page_size())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A snapshot with two rings and three programs, for the renderers' tests.
    pub(crate) fn sample() -> Snapshot {
        let mut le = [0u64; LE_NS.len()];
        for (i, x) in le.iter_mut().enumerate() {
            *x = (i as u64).min(10) * 10;
        }
        Snapshot {
            rings: vec![
                RingStats {
                    name: "file",
                    size: 1 << 20,
                    min: 1 << 20,
                    max: 256 << 20,
                    high_water: 786_432,
                    utilization: 0.75,
                    rate: 1500.0,
                    resizes_up: 2,
                    resizes_down: 1,
                    latency_p50_ns: 300_000,
                    latency_p99_ns: 500_000,
                    latency_max_ns: 900_000,
                    latency_le: le,
                    latency_sum_ns: 25_000_000,
                    latency_count: 100,
                    produced: 1000,
                    received: 990,
                    dropped: 10,
                    filtered: 7,
                    rate_limited: 4,
                    untracked: 3,
                    decode_errors: 1,
                    context_only: 0,
                    lost: 8,
                    lost_records: 2,
                    variant: None,
                    shards: Vec::new(),
                },
                RingStats {
                    name: "syscall",
                    size: 4096,
                    min: 4096,
                    max: 64 << 20,
                    ..RingStats::default()
                },
            ],
            programs: vec![
                Program {
                    family: "file",
                    name: "handle_openat".into(),
                    section: "tracepoint/syscalls/sys_enter_openat".into(),
                    state: ProgramState::Attached,
                    reason: None,
                    runs: Some(RunStats {
                        runs: 1000,
                        ns: 250_000,
                    }),
                },
                Program {
                    family: "anomaly",
                    name: "handle_init_module".into(),
                    section: "tracepoint/syscalls/sys_enter_init_module".into(),
                    state: ProgramState::NotApplicable,
                    reason: Some("no module support".into()),
                    runs: None,
                },
                Program {
                    family: "network",
                    name: "handle_connect".into(),
                    section: "tracepoint/syscalls/sys_exit_connect".into(),
                    state: ProgramState::Failed,
                    reason: Some("attach: \"EPERM\"".into()),
                    runs: None,
                },
            ],
            sink_errors: 4,
            written: 0,
            expired_events: None,
            memory_budget: Some(4 << 20),
            uptime: Duration::from_millis(3_723_456),
            pid: 42,
            rss_bytes: 12 << 20,
            unseen: None,
            tamper: 2,
            losses: top_losses(
                vec![
                    Loss {
                        family: crate::family::Family::File,
                        uid: crate::family::filter::LOSS_OTHER,
                        filtered: 2,
                        dropped: 0,
                        rate_limited: 0,
                    },
                    Loss {
                        family: crate::family::Family::File,
                        uid: 1000,
                        filtered: 5,
                        dropped: 1,
                        rate_limited: 0,
                    },
                ],
                LOSSES_SHOWN,
            ),
            context: Some(ContextStats {
                processes: 120,
                cgroups: 30,
                process_evictions: 7,
                cgroup_evictions: 1,
                unknown: 2,
                proc_reads: 9,
                forgotten: 0,
                late: 0,
            }),
            program_stats_for: Some(Duration::from_secs(10)),
        }
    }

    #[test]
    fn json_document() {
        let s = sample();
        let text = String::from_utf8(s.json()).expect("utf8");
        assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
        assert!(text.contains("\"context\":{\"processes\":120,\"cgroups\":30,\"evictions\":{\"processes\":7,\"cgroups\":1},\"unknown\":2,\"proc_reads\":9,\"late\":0,\"forgotten\":0}"), "{text}");
        assert!(text.starts_with(
            "{\"rings\":{\"file\":{\"size\":1048576,\"min\":1048576,\"max\":268435456,\"high_water\":786432,\"high_water_percent\":75.0,\"utilization\":0.7500,\"rate\":1500.0,\"resizes_up\":2,\"resizes_down\":1,\"latency_p50_ns\":300000,\"latency_p99_ns\":500000,\"latency_max_ns\":900000,\"produced\":1000,\"received\":990,\"dropped\":10,\"filtered\":7,\"rate_limited\":4,\"untracked\":3,\"decode_errors\":1,\"context_only\":0,\"lost\":8,\"lost_records\":2,\"loss_rate\":0.010000},\"syscall\":{"
        ), "{text}");
        assert!(text.contains("\"handle_connect\":{\"family\":\"network\",\"attach\":\"tracepoint/syscalls/sys_exit_connect\",\"attached\":false,\"error\":\"attach: \\\"EPERM\\\"\"}"), "{text}");
        assert!(text.contains("\"handle_init_module\":{\"family\":\"anomaly\",\"attach\":\"tracepoint/syscalls/sys_enter_init_module\",\"attached\":false,\"not_applicable\":\"no module support\"}"), "{text}");
        assert!(text.ends_with(&format!(
            "\"program_counts\":{{\"attached\":1,\"failed\":1,\"not_applicable\":1}},\"context\":{{\"processes\":120,\"cgroups\":30,\"evictions\":{{\"processes\":7,\"cgroups\":1}},\"unknown\":2,\"proc_reads\":9,\"late\":0,\"forgotten\":0}},\"sink_errors\":4,\"written\":0,\"ring_memory\":1052672,\"memory_budget\":4194304,\"uptime_ms\":3723456,\"pid\":42,\"version\":\"{}\",\"rss_bytes\":12582912,\"tamper\":2,\"losses\":[{{\"ring\":\"file\",\"uid\":1000,\"filtered\":5,\"dropped\":1,\"rate_limited\":0}},{{\"ring\":\"file\",\"uid\":4294967295,\"filtered\":2,\"dropped\":0,\"rate_limited\":0}}]}}\n",
            env!("CARGO_PKG_VERSION")
        )), "{text}");
    }

    #[test]
    fn json_has_unseen_only_when_counted() {
        let mut s = sample();
        assert!(
            !String::from_utf8(s.json())
                .expect("utf8")
                .contains("unseen")
        );
        s.unseen = Some(Unseen {
            compat: vec![(5, 3), (102, 1)],
            io_uring: vec![(18, 7)],
        });
        let text = String::from_utf8(s.json()).expect("utf8");
        assert!(text.contains(
            "\"not_applicable\":1},\"unseen\":{\"compat\":{\"total\":4,\"syscalls\":{\"open\":3,\"socketcall\":1}},\"io_uring\":{\"total\":7,\"opcodes\":{\"openat\":7}}},\"context\":{\"processes\":120,\"cgroups\":30,\"evictions\":{\"processes\":7,\"cgroups\":1},\"unknown\":2,\"proc_reads\":9,\"late\":0,\"forgotten\":0},\"sink_errors\":4,\"written\":0,"
        ), "{text}");
    }

    #[test]
    fn loss_rate_and_books() {
        let s = sample();
        assert_eq!(s.rings[0].loss_rate(), 0.01);
        assert_eq!(s.rings[1].loss_rate(), 0.0, "nothing produced: no loss");
        assert!(s.rings[0].exact() && s.rings[1].exact());
    }

    #[test]
    fn rss_agrees_with_proc_status() {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS");
        let r = rss_bytes();
        // Two reads of one counter: they may differ by what other test threads
        // allocated in between, not by more.
        assert!(
            r.abs_diff(kib * 1024) < 8 << 20,
            "statm {r}, status {kib} kB"
        );
        assert_eq!(r % crate::sys::page_size(), 0);
    }
}
