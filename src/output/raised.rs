//! Events the daemon raises itself rather than reads from a ring: `tamper` anomalies
//! and `lost` records (the seqs of a ring that will never arrive). They come from no BPF
//! program, so they have no `seq`, and they are outside every ring's books: rendering
//! one never touches produced, received or dropped. The same field walk feeds the JSON
//! line and the journal entry.
use std::io::Write as _;

use crate::family::anomaly::{TAMPER_RULE, TAMPER_SEVERITY, severity_name};
use crate::family::summary::{self, PRIO_INFO, PRIO_WARNING, severity_priority};
use crate::family::{Fields, Tamper};
use crate::sys::clock::WallClock;

/// A daemon-raised event, stamped when it was found.
pub struct Raised<'a> {
    pub ts_ns: u64,
    /// The daemon's pid (as it sees itself: in a PID namespace, the one in there).
    pub pid: u32,
    pub what: What<'a>,
}

/// What was found.
pub enum What<'a> {
    /// A map of the daemon's changed behind its back.
    Tamper(&'a Tamper),
    /// Seqs of a ring that will never arrive (dropped in the kernel).
    Lost(Lost),
    /// A rate limit started or stopped refusing events.
    Throttle(Throttle),
    /// Events the output could not take (a full disk), written once it can again.
    SinkLost(SinkLost<'a>),
    /// A rotated archive file that retention deleted.
    Expired(&'a super::archive::Expired),
}

/// Events lost at the output since `since_ns` (boot ns): every sink error of the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkLost<'a> {
    pub count: u64,
    pub since_ns: u64,
    /// The write's error, as the log said it.
    pub error: &'a str,
}

/// A rate limit's bucket that started refusing events (`start`) or has refused none for a
/// whole tick (`!start`); `suppressed`: refused since it started (at a start: so far).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    pub ring: &'static str,
    pub start: bool,
    /// `None`: the family's bucket; else this uid's.
    pub uid: Option<u32>,
    pub suppressed: u64,
    /// When the kernel saw the first refusal (boot ns).
    pub since_ns: u64,
}

/// Events of one ring that will never arrive: a run of consecutive seqs, or, from a ring
/// whose records carry no seq (a 5.10 variant, bpf/kernel.h), the drops its counters
/// gained since the last report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lost {
    pub ring: &'static str,
    /// The ring's shard, when its family has more than one (seqs count per shard).
    pub shard: Option<u32>,
    /// `first..=last`, or `None` when the ring has no seqs.
    pub seqs: Option<(u64, u64)>,
    pub count: u64,
}

impl Lost {
    pub fn seqs(ring: &'static str, first: u64, last: u64) -> Lost {
        Lost {
            ring,
            shard: None,
            seqs: Some((first, last)),
            count: last - first + 1,
        }
    }

    pub fn counted(ring: &'static str, count: u64) -> Lost {
        Lost {
            ring,
            shard: None,
            seqs: None,
            count,
        }
    }
}

impl<'a> Raised<'a> {
    /// `what`, found now by this daemon.
    pub fn now(what: What<'a>) -> Raised<'a> {
        Raised {
            ts_ns: crate::sys::clock::boot_ns(),
            pid: std::process::id(),
            what,
        }
    }
}

impl Raised<'_> {
    /// Its fields: `type`, `origin` and what every line has (minus `seq`; `ring` only
    /// for a lost record), then what was found.
    pub fn walk(&self, clock: &WallClock, f: &mut impl Fields) {
        match &self.what {
            What::Tamper(t) => {
                f.str("type", "anomaly");
                f.str("origin", "daemon");
                self.stamp(clock, f);
                f.str("rule", TAMPER_RULE);
                f.str(
                    "severity",
                    severity_name(TAMPER_SEVERITY).unwrap_or("critical"),
                );
                f.str("family", t.family);
                f.str("map", &t.map);
                f.str("field", &t.field);
                f.u64("expected", t.expected);
                f.u64("found", t.found);
            }
            What::Lost(l) => {
                f.str("type", "lost");
                f.str("origin", "daemon");
                f.str("ring", l.ring);
                if let Some(shard) = l.shard {
                    f.u64("shard", shard.into());
                }
                self.stamp(clock, f);
                if let Some((first, last)) = l.seqs {
                    f.u64("first_seq", first);
                    f.u64("last_seq", last);
                }
                f.u64("count", l.count);
            }
            What::SinkLost(l) => {
                f.str("type", "lost");
                f.str("origin", "daemon");
                f.str("reason", "sink");
                self.stamp(clock, f);
                f.u64("count", l.count);
                f.ascii_with("since", |b| clock.write_rfc3339(b, l.since_ns));
                f.u64("since_ns", l.since_ns);
                f.str("error", l.error);
            }
            What::Expired(e) => {
                f.str("type", "expired");
                f.str("origin", "daemon");
                self.stamp(clock, f);
                f.str("file", &e.file);
                f.u64("lines", e.lines);
                f.u64("events", e.events);
                f.u64("total_events", e.total_events);
                f.str("reason", e.why);
            }
            What::Throttle(t) => {
                f.str("type", "throttle");
                f.str("origin", "daemon");
                f.str("ring", t.ring);
                self.stamp(clock, f);
                f.str("state", if t.start { "start" } else { "stop" });
                match t.uid {
                    Some(uid) => {
                        f.str("scope", "uid");
                        f.u64("uid", uid.into());
                    }
                    None => f.str("scope", "family"),
                }
                f.u64("suppressed", t.suppressed);
                f.ascii_with("since", |b| clock.write_rfc3339(b, t.since_ns));
                f.u64("since_ns", t.since_ns);
            }
        }
    }

    fn stamp(&self, clock: &WallClock, f: &mut impl Fields) {
        f.ascii_with("ts", |b| clock.write_rfc3339(b, self.ts_ns));
        f.u64("ts_ns", self.ts_ns);
        f.u64("pid", self.pid.into());
    }

    /// The journal's one-line `MESSAGE`; returns the syslog priority (crit for tamper,
    /// warning for lost events).
    pub fn summary(&self, b: &mut Vec<u8>) -> u8 {
        match &self.what {
            What::Tamper(t) => {
                let sev = severity_name(TAMPER_SEVERITY).unwrap_or("critical");
                let _ = write!(b, "anomaly {sev} {TAMPER_RULE}: {} {}.", t.family, t.map);
                summary::text(b, t.field.as_bytes(), false);
                let _ = write!(
                    b,
                    " was changed behind ringwarden's back: {} instead of {} (restored)",
                    t.found, t.expected
                );
                severity_priority(TAMPER_SEVERITY)
            }
            What::Lost(l) => {
                let ring = match l.shard {
                    Some(s) => format!("{}/{s}", l.ring),
                    None => l.ring.to_string(),
                };
                let _ = match (l.count, l.seqs) {
                    (1, Some((first, _))) => {
                        write!(b, "ring {ring} lost 1 event (seq {first})")
                    }
                    (n, Some((first, last))) => {
                        write!(b, "ring {ring} lost {n} events (seq {first}..{last})")
                    }
                    (1, None) => write!(b, "ring {ring} lost 1 event"),
                    (n, None) => write!(b, "ring {ring} lost {n} events"),
                };
                PRIO_WARNING
            }
            What::SinkLost(l) => {
                let _ = write!(
                    b,
                    "output lost {} events while it could not be written ({})",
                    l.count, l.error
                );
                PRIO_WARNING
            }
            What::Expired(e) => {
                let _ = write!(
                    b,
                    "archive file {} deleted for {}: {} events",
                    e.file, e.why, e.events
                );
                PRIO_INFO
            }
            What::Throttle(t) => {
                let who = match t.uid {
                    Some(u) => format!("uid {u}"),
                    None => "the family".to_string(),
                };
                let _ = if t.start {
                    write!(
                        b,
                        "ring {}: rate limit of {who} refusing events ({} so far)",
                        t.ring, t.suppressed
                    )
                } else {
                    write!(
                        b,
                        "ring {}: rate limit of {who} stopped refusing: {} events refused",
                        t.ring, t.suppressed
                    )
                };
                PRIO_WARNING
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{journal, json};

    fn tamper() -> Tamper {
        Tamper {
            family: "file",
            map: "rw_config".into(),
            field: "self_tgid".into(),
            expected: 4242,
            found: 77,
        }
    }

    #[test]
    fn json_line() {
        let t = tamper();
        let ev = Raised {
            ts_ns: 1_500_000_000,
            pid: 4242,
            what: What::Tamper(&t),
        };
        let mut buf = Vec::new();
        let mut line = json::Line::begin(&mut buf);
        ev.walk(&WallClock::default(), &mut line);
        line.end();
        assert_eq!(
            String::from_utf8(buf).expect("utf-8"),
            "{\"type\":\"anomaly\",\"origin\":\"daemon\",\"ts\":\"1970-01-01T00:00:01.500000000Z\",\"ts_ns\":1500000000,\"pid\":4242,\"rule\":\"tamper\",\"severity\":\"critical\",\"family\":\"file\",\"map\":\"rw_config\",\"field\":\"self_tgid\",\"expected\":4242,\"found\":77}\n"
        );
    }

    #[test]
    fn journal_entry() {
        let t = tamper();
        let ev = Raised {
            ts_ns: 1_500_000_000,
            pid: 4242,
            what: What::Tamper(&t),
        };
        let mut buf = Vec::new();
        journal::encode_raised(&WallClock::default(), &ev, &mut buf);
        assert_eq!(
            String::from_utf8(buf).expect("utf-8"),
            "MESSAGE=anomaly critical tamper: file rw_config.self_tgid was changed behind ringwarden's back: 77 instead of 4242 (restored)\n\
             PRIORITY=2\nSYSLOG_IDENTIFIER=ringwarden\n\
             RINGWARDEN_TYPE=anomaly\nRINGWARDEN_ORIGIN=daemon\n\
             RINGWARDEN_TS=1970-01-01T00:00:01.500000000Z\nRINGWARDEN_TS_NS=1500000000\n\
             RINGWARDEN_PID=4242\nRINGWARDEN_RULE=tamper\nRINGWARDEN_SEVERITY=critical\n\
             RINGWARDEN_FAMILY=file\nRINGWARDEN_MAP=rw_config\nRINGWARDEN_FIELD=self_tgid\n\
             RINGWARDEN_EXPECTED=4242\nRINGWARDEN_FOUND=77\n"
        );
    }

    fn lost(first_seq: u64, last_seq: u64) -> Raised<'static> {
        Raised {
            ts_ns: 1_500_000_000,
            pid: 4242,
            what: What::Lost(Lost::seqs("file", first_seq, last_seq)),
        }
    }

    #[test]
    fn lost_json_line() {
        let mut buf = Vec::new();
        let mut line = json::Line::begin(&mut buf);
        lost(100, 1515).walk(&WallClock::default(), &mut line);
        line.end();
        assert_eq!(
            String::from_utf8(buf).expect("utf-8"),
            "{\"type\":\"lost\",\"origin\":\"daemon\",\"ring\":\"file\",\"ts\":\"1970-01-01T00:00:01.500000000Z\",\"ts_ns\":1500000000,\"pid\":4242,\"first_seq\":100,\"last_seq\":1515,\"count\":1416}\n"
        );
    }

    #[test]
    fn lost_journal_entry() {
        let mut buf = Vec::new();
        journal::encode_raised(&WallClock::default(), &lost(100, 1515), &mut buf);
        assert_eq!(
            String::from_utf8(buf).expect("utf-8"),
            "MESSAGE=ring file lost 1416 events (seq 100..1515)\n\
             PRIORITY=4\nSYSLOG_IDENTIFIER=ringwarden\n\
             RINGWARDEN_TYPE=lost\nRINGWARDEN_ORIGIN=daemon\nRINGWARDEN_RING=file\n\
             RINGWARDEN_TS=1970-01-01T00:00:01.500000000Z\nRINGWARDEN_TS_NS=1500000000\n\
             RINGWARDEN_PID=4242\nRINGWARDEN_FIRST_SEQ=100\nRINGWARDEN_LAST_SEQ=1515\n\
             RINGWARDEN_COUNT=1416\n"
        );
    }

    #[test]
    fn one_lost_event_is_singular() {
        let mut buf = Vec::new();
        assert_eq!(lost(7, 7).summary(&mut buf), PRIO_WARNING);
        assert_eq!(buf, b"ring file lost 1 event (seq 7)");
    }

    fn throttle(start: bool, uid: Option<u32>) -> Raised<'static> {
        Raised {
            ts_ns: 3_000_000_000,
            pid: 4242,
            what: What::Throttle(Throttle {
                ring: "file",
                start,
                uid,
                suppressed: 150,
                since_ns: 2_000_000_000,
            }),
        }
    }

    #[test]
    fn throttle_json_lines() {
        let line = |ev: Raised<'_>| {
            let mut buf = Vec::new();
            let mut l = json::Line::begin(&mut buf);
            ev.walk(&WallClock::default(), &mut l);
            l.end();
            String::from_utf8(buf).expect("utf-8")
        };
        assert_eq!(
            line(throttle(true, Some(1000))),
            "{\"type\":\"throttle\",\"origin\":\"daemon\",\"ring\":\"file\",\"ts\":\"1970-01-01T00:00:03.000000000Z\",\"ts_ns\":3000000000,\"pid\":4242,\"state\":\"start\",\"scope\":\"uid\",\"uid\":1000,\"suppressed\":150,\"since\":\"1970-01-01T00:00:02.000000000Z\",\"since_ns\":2000000000}\n"
        );
        assert!(
            line(throttle(false, None))
                .contains("\"state\":\"stop\",\"scope\":\"family\",\"suppressed\":150,")
        );
    }

    #[test]
    fn throttle_journal_messages() {
        let mut buf = Vec::new();
        assert_eq!(throttle(true, Some(1000)).summary(&mut buf), PRIO_WARNING);
        assert_eq!(
            String::from_utf8(buf).expect("utf-8"),
            "ring file: rate limit of uid 1000 refusing events (150 so far)"
        );
        let mut buf = Vec::new();
        throttle(false, None).summary(&mut buf);
        assert_eq!(
            String::from_utf8(buf).expect("utf-8"),
            "ring file: rate limit of the family stopped refusing: 150 events refused"
        );
    }
}
