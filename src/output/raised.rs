//! Events the daemon raises itself rather than reads from a ring (today: `tamper`
//! anomalies). They come from no BPF program, so they have no `seq` and no `ring`, and
//! they are outside every ring's books: rendering one never touches produced, received
//! or dropped. The same field walk feeds the JSON line and the journal entry.
use std::io::Write as _;

use crate::family::anomaly::{TAMPER_RULE, TAMPER_SEVERITY, severity_name};
use crate::family::summary::{self, severity_priority};
use crate::family::{Fields, Tamper};
use crate::sys::clock::WallClock;

/// A daemon-raised event, stamped when it was found.
pub struct Raised<'a> {
    pub ts_ns: u64,
    /// The daemon's pid (as it sees itself: in a PID namespace, the one in there).
    pub pid: u32,
    pub tamper: &'a Tamper,
}

impl Raised<'_> {
    /// Its fields: what every line has (minus `ring` and `seq`, plus `origin`), then the
    /// rule and what was changed.
    pub fn walk(&self, clock: &WallClock, f: &mut impl Fields) {
        let t = self.tamper;
        f.str("type", "anomaly");
        f.str("origin", "daemon");
        f.ascii_with("ts", |b| clock.write_rfc3339(b, self.ts_ns));
        f.u64("ts_ns", self.ts_ns);
        f.u64("pid", self.pid.into());
        f.str("rule", TAMPER_RULE);
        f.str(
            "severity",
            severity_name(TAMPER_SEVERITY).unwrap_or("critical"),
        );
        f.str("family", t.family.name());
        f.str("map", &t.map);
        f.str("field", &t.field);
        f.u64("expected", t.expected);
        f.u64("found", t.found);
    }

    /// The journal's one-line `MESSAGE`; returns the syslog priority (crit).
    pub fn summary(&self, b: &mut Vec<u8>) -> u8 {
        let t = self.tamper;
        let sev = severity_name(TAMPER_SEVERITY).unwrap_or("critical");
        let _ = write!(
            b,
            "anomaly {sev} {TAMPER_RULE}: {} {}.",
            t.family.name(),
            t.map
        );
        summary::text(b, t.field.as_bytes(), false);
        let _ = write!(
            b,
            " was changed behind ringwarden's back: {} instead of {} (restored)",
            t.found, t.expected
        );
        severity_priority(TAMPER_SEVERITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Family;
    use crate::output::{journal, json};

    fn tamper() -> Tamper {
        Tamper {
            family: Family::File,
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
            tamper: &t,
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
            tamper: &t,
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
}
