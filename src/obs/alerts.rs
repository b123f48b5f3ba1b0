//! Threshold alerts in the log (pure logic; the daemon feeds every tick's observation of
//! every ring and logs the lines it gets back). Levels from the sizing spec:
//!
//! | kind        | warn (log warn) | critical (log error) |
//! |-------------|-----------------|----------------------|
//! | utilization | > 70 %          | > 90 %               |
//! | loss rate   | > 0.1 %         | > 1 %                |
//! | drop rate   | > 10 /s         | > 100 /s             |
//!
//! Utilization is the tick's in-kernel high-water mark ÷ the ring's size; loss rate is
//! dropped ÷ produced over the tick; drop rate is dropped ÷ the tick's length.
//! Rate-limited per ring and kind: one line when an alert starts (and one if it becomes
//! critical), at most one reminder per [`REMIND_EVERY`] while it lasts, and one info line
//! when it clears. It clears only after [`CLEAR_AFTER`] below the warn level, so a value
//! hovering around a threshold does not log a start and a clear every second.
use std::time::Duration;

use log::Level;

use crate::sizing::policy::Observation;
use crate::units::fmt_hms;

pub const REMIND_EVERY: Duration = Duration::from_secs(60);
pub const CLEAR_AFTER: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warn,
    Critical,
}

impl Severity {
    fn name(self) -> &'static str {
        match self {
            Severity::Warn => "warning",
            Severity::Critical => "critical",
        }
    }

    fn level(self) -> Level {
        match self {
            Severity::Warn => Level::Warn,
            Severity::Critical => Level::Error,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Utilization,
    LossRate,
    DropRate,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Utilization, Kind::LossRate, Kind::DropRate];

    fn name(self) -> &'static str {
        match self {
            Kind::Utilization => "utilization",
            Kind::LossRate => "loss rate",
            Kind::DropRate => "drop rate",
        }
    }

    /// (warn, critical): the alert is on when the value is strictly above.
    fn thresholds(self) -> (f64, f64) {
        match self {
            Kind::Utilization => (0.70, 0.90),
            Kind::LossRate => (0.001, 0.01),
            Kind::DropRate => (10.0, 100.0),
        }
    }

    /// The tick's value; `None` when it says nothing (no event produced, no time passed).
    fn value(self, o: &Observation) -> Option<f64> {
        match self {
            Kind::Utilization => (o.size > 0).then(|| o.high_water as f64 / o.size as f64),
            Kind::LossRate => (o.produced > 0).then(|| o.dropped as f64 / o.produced as f64),
            Kind::DropRate => {
                let s = o.elapsed.as_secs_f64();
                (s > 0.0).then(|| o.dropped as f64 / s)
            }
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Kind::Utilization | Kind::LossRate => format!("{}%", sig(v * 100.0)),
            Kind::DropRate => format!("{}/s", sig(v)),
        }
    }

    fn severity(self, v: f64) -> Option<Severity> {
        let (warn, crit) = self.thresholds();
        if v > crit {
            Some(Severity::Critical)
        } else if v > warn {
            Some(Severity::Warn)
        } else {
            None
        }
    }
}

/// About three significant digits, without trailing zeros: 93.558 -> "93.6",
/// 38281.6 -> "38282", 0.1234 -> "0.123", 95.0 -> "95".
fn sig(x: f64) -> String {
    let decimals = match x.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        a if a >= 1.0 => 2,
        _ => 3,
    };
    trim(x, decimals)
}

/// `x` with at most `decimals` decimals, without trailing zeros: 95.0 -> "95".
fn trim(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One log line to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub level: Level,
    pub text: String,
}

struct Active {
    ring: &'static str,
    kind: Kind,
    /// The worst level logged in this episode (a start or an escalation).
    worst: Severity,
    current: Severity,
    since: Duration,
    last_line: Duration,
    peak: f64,
    /// Start of the run of quiet ticks that will clear it.
    quiet_since: Option<Duration>,
}

#[derive(Default)]
pub struct Alerts {
    active: Vec<Active>,
}

impl Alerts {
    /// One tick of one ring: the lines to log, in order.
    pub fn observe(&mut self, ring: &'static str, o: &Observation) -> Vec<Line> {
        let mut out = Vec::new();
        for kind in Kind::ALL {
            let v = kind.value(o);
            let sev = v.and_then(|v| kind.severity(v));
            let i = self
                .active
                .iter()
                .position(|a| a.ring == ring && a.kind == kind);
            match (i, sev, v) {
                (None, Some(s), Some(v)) => {
                    out.push(start(ring, kind, s, v));
                    self.active.push(Active {
                        ring,
                        kind,
                        worst: s,
                        current: s,
                        since: o.now.saturating_sub(o.elapsed),
                        last_line: o.now,
                        peak: v,
                        quiet_since: None,
                    });
                }
                (Some(i), Some(s), Some(v)) => {
                    let a = &mut self.active[i];
                    a.quiet_since = None;
                    a.current = s;
                    a.peak = a.peak.max(v);
                    if s > a.worst {
                        a.worst = s;
                        a.last_line = o.now;
                        out.push(start(ring, kind, s, v));
                    } else if o.now.saturating_sub(a.last_line) >= REMIND_EVERY {
                        a.last_line = o.now;
                        out.push(Line {
                            level: s.level(),
                            text: format!(
                                "alert: ring {ring} {} still {} ({}, for {}, peak {})",
                                kind.name(),
                                kind.show(v),
                                s.name(),
                                fmt_hms(o.now.saturating_sub(a.since)),
                                kind.show(a.peak)
                            ),
                        });
                    }
                }
                (Some(i), _, _) => {
                    let a = &mut self.active[i];
                    let quiet = *a.quiet_since.get_or_insert(o.now.saturating_sub(o.elapsed));
                    if o.now.saturating_sub(quiet) >= CLEAR_AFTER {
                        let a = self.active.swap_remove(i);
                        let now = v.map_or(String::new(), |v| format!(", now {}", kind.show(v)));
                        out.push(Line {
                            level: Level::Info,
                            text: format!(
                                "alert cleared: ring {ring} {} at or below {} for {}{now} (lasted {}, peak {}, worst {})",
                                kind.name(),
                                kind.show(kind.thresholds().0),
                                fmt_hms(o.now.saturating_sub(quiet)),
                                fmt_hms(quiet.saturating_sub(a.since)),
                                kind.show(a.peak),
                                a.worst.name()
                            ),
                        });
                    }
                }
                (None, _, _) => {}
            }
        }
        out
    }

    /// Whether an alert of `kind` is on for `ring`, and at which level (for the tests).
    #[cfg(test)]
    pub fn level(&self, ring: &str, kind: Kind) -> Option<Severity> {
        self.active
            .iter()
            .find(|a| a.ring == ring && a.kind == kind)
            .map(|a| a.current)
    }

    /// A ring that stopped (its family switched off): its alerts end without a line.
    pub fn forget(&mut self, ring: &str) {
        self.active.retain(|a| a.ring != ring);
    }
}

fn start(ring: &str, kind: Kind, s: Severity, v: f64) -> Line {
    let (warn, crit) = kind.thresholds();
    let bound = match s {
        Severity::Warn => warn,
        Severity::Critical => crit,
    };
    Line {
        level: s.level(),
        text: format!(
            "alert: ring {ring} {} {} (above {}: {})",
            kind.name(),
            kind.show(v),
            kind.show(bound),
            s.name()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// A one-second tick ending at `t` s: high-water `hw` of a 1000-byte ring,
    /// `produced` and `dropped` events.
    fn tick(t: u64, hw: u64, produced: u64, dropped: u64) -> Observation {
        Observation {
            now: S * t as u32,
            size: 1000,
            high_water: hw,
            produced,
            dropped,
            elapsed: S,
            record: 0,
        }
    }

    fn texts(lines: &[Line]) -> Vec<(Level, &str)> {
        lines.iter().map(|l| (l.level, l.text.as_str())).collect()
    }

    #[test]
    fn quiet_ticks_log_nothing() {
        let mut a = Alerts::default();
        for t in 1..100 {
            assert!(a.observe("file", &tick(t, 700, 10_000, 10)).is_empty());
        }
        // Exactly at the thresholds is not above them.
        assert!(a.observe("file", &tick(100, 700, 1000, 1)).is_empty());
        assert!(a.observe("file", &tick(101, 0, 0, 0)).is_empty());
    }

    #[test]
    fn start_reminders_escalation_and_clear() {
        let mut a = Alerts::default();
        let l = a.observe("file", &tick(10, 750, 1000, 0));
        assert_eq!(
            texts(&l),
            [(
                Level::Warn,
                "alert: ring file utilization 75% (above 70%: warning)"
            )]
        );
        assert_eq!(a.level("file", Kind::Utilization), Some(Severity::Warn));
        // No repeat while it lasts, until a minute has passed.
        for t in 11..70 {
            assert!(a.observe("file", &tick(t, 800, 1000, 0)).is_empty(), "{t}");
        }
        let l = a.observe("file", &tick(70, 720, 1000, 0));
        assert_eq!(
            texts(&l),
            [(
                Level::Warn,
                "alert: ring file utilization still 72% (warning, for 1m 1s, peak 80%)"
            )]
        );
        // Becoming critical is logged at once, as an error.
        let l = a.observe("file", &tick(71, 950, 1000, 0));
        assert_eq!(
            texts(&l),
            [(
                Level::Error,
                "alert: ring file utilization 95% (above 90%: critical)"
            )]
        );
        // Back to warning and up again: no new line within the minute.
        assert!(a.observe("file", &tick(72, 800, 1000, 0)).is_empty());
        assert_eq!(a.level("file", Kind::Utilization), Some(Severity::Warn));
        assert!(a.observe("file", &tick(73, 990, 1000, 0)).is_empty());
        // Quiet for less than CLEAR_AFTER, then loud again: still the same alert.
        for t in 74..78 {
            assert!(a.observe("file", &tick(t, 100, 1000, 0)).is_empty(), "{t}");
        }
        assert!(a.observe("file", &tick(78, 960, 1000, 0)).is_empty());
        // Five quiet seconds clear it, with one info line.
        for t in 79..83 {
            assert!(a.observe("file", &tick(t, 100, 1000, 0)).is_empty(), "{t}");
        }
        let l = a.observe("file", &tick(83, 123, 1000, 0));
        assert_eq!(
            texts(&l),
            [(
                Level::Info,
                "alert cleared: ring file utilization at or below 70% for 5s, now 12.3% (lasted 1m 9s, peak 99%, worst critical)"
            )]
        );
        assert_eq!(a.level("file", Kind::Utilization), None);
        // A new episode starts with a new line.
        let l = a.observe("file", &tick(84, 710, 1000, 0));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn loss_and_drop_rates() {
        let mut a = Alerts::default();
        // 5 of 1000 dropped in one second: loss 0.5 % (warn), 5/s (under 10/s).
        let l = a.observe("syscall", &tick(1, 0, 1000, 5));
        assert_eq!(
            texts(&l),
            [(
                Level::Warn,
                "alert: ring syscall loss rate 0.5% (above 0.1%: warning)"
            )]
        );
        // 150 of 1000: loss 15 % critical, 150/s critical; both at once.
        let l = a.observe("syscall", &tick(2, 0, 1000, 150));
        assert_eq!(
            texts(&l),
            [
                (
                    Level::Error,
                    "alert: ring syscall loss rate 15% (above 1%: critical)"
                ),
                (
                    Level::Error,
                    "alert: ring syscall drop rate 150/s (above 100/s: critical)"
                ),
            ]
        );
        // A tick of 0.5 s with 20 drops is 40/s.
        let half = Observation {
            now: Duration::from_millis(2500),
            size: 1000,
            high_water: 0,
            produced: 100_000,
            dropped: 20,
            elapsed: Duration::from_millis(500),
            record: 0,
        };
        assert!(a.observe("syscall", &half).is_empty());
        assert_eq!(a.level("syscall", Kind::DropRate), Some(Severity::Warn));
        assert_eq!(
            a.level("syscall", Kind::LossRate),
            Some(Severity::Critical),
            "quiet (0.02 %), but not yet for CLEAR_AFTER"
        );
        // Rings are independent.
        assert!(a.observe("file", &tick(3, 0, 1000, 0)).is_empty());
        assert_eq!(a.level("file", Kind::DropRate), None);
        // Nothing produced says nothing about loss: it counts as quiet and clears.
        let mut lines = Vec::new();
        for t in 3..9 {
            lines.extend(a.observe("syscall", &tick(t, 0, 0, 0)));
        }
        assert_eq!(
            texts(&lines),
            [
                (
                    Level::Info,
                    "alert cleared: ring syscall loss rate at or below 0.1% for 5s (lasted 2s, peak 15%, worst critical)"
                ),
                (
                    Level::Info,
                    "alert cleared: ring syscall drop rate at or below 10/s for 5s, now 0/s (lasted 1s, peak 150/s, worst critical)"
                ),
            ]
        );
        a.observe("anomaly", &tick(10, 999, 0, 0));
        a.forget("anomaly");
        assert_eq!(a.level("anomaly", Kind::Utilization), None);
    }

    #[test]
    fn formatting() {
        assert_eq!(trim(95.0, 1), "95");
        assert_eq!(trim(0.125, 3), "0.125");
        assert_eq!(trim(10.04, 1), "10");
        assert_eq!(sig(93.558), "93.6");
        assert_eq!(sig(38281.6), "38282");
        assert_eq!(sig(1.0), "1");
        assert_eq!(sig(2.345), "2.35");
        assert_eq!(sig(0.1234), "0.123");
        assert_eq!(sig(0.0), "0");
        assert_eq!(fmt_hms(Duration::from_secs(3725)), "1h 2m 5s");
        assert_eq!(fmt_hms(Duration::from_secs(59)), "59s");
    }
}
