//! Anomaly family records (bpf/anomaly.h): one record type, one rule per event. The
//! kernel sends numbers; rule, severity, syscall and location names are given here.
use std::io::Write as _;
use std::mem::size_of;

use libbpf_rs::{MapCore, MapFlags, MapHandle};
use plain::Plain;

use super::record::{DecodeError, Fields, Header, cstr, prefix, view};
use super::summary::{self, quoted, severity_priority, text};
use super::{KIB, MIB, Spec};


/// `enum rw_anomaly_type` (bpf/anomaly.h): the header's `type`.
pub mod kind {
    pub const ANOMALY: u32 = 13;
}

pub const SPEC: Spec = Spec {
    name: "anomaly",
    needs: &[],
    ring_size: 256 * KIB,
    ring_min: 64 * KIB,
    ring_max: 32 * MIB,
    // Under a memory budget: a lost anomaly is a lost alert: the costliest.
    priority: 6,
    record_size: size_of::<AnomalyEvent>(),
    kinds: &[(kind::ANOMALY, "anomaly")],
    observe: None,
    own_context: &[],
};

pub const DETAIL_LEN: usize = 256;
pub const NAME_LEN: usize = 64;
pub const ARGS: usize = 6;
pub const DETAIL_TRUNCATED: u32 = 1;
pub const NAME_TRUNCATED: u32 = 2;
/// ptrace_attach / bpf_prog_load record with no attempt of its own: only the count of
/// suppressed failures, flushed when the process that made the latest of them exited.
pub const SUMMARY: u32 = 4;
/// `suppressed` is the shared count of every uid that found the kernel's rate table full
/// (more than 4,096 (uid, rule) pairs), not this uid's alone.
pub const RATE_SHARED: u32 = 8;

/// The kernel's rate limit of failures: `struct rate_key` -> `struct rate_val`, and the
/// entries (indexed by rule) shared by the uids that found it full.
pub const RATE_MAP: &str = "anomaly_rate";
pub const RATE_OVER_MAP: &str = "anomaly_rate_over";

/// `struct rate_key` (bpf/anomaly.bpf.c).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RateKey {
    pub uid: u32,
    pub rule: u32,
}

/// `struct rate_val` (bpf/anomaly.bpf.c).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RateVal {
    pub last_ns: u64,
    pub suppressed: u64,
    pub last_tgid: u32,
    pub pad: u32,
}

/// Failures counted in the kernel and not (yet) carried by any record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// `None`: the shared entry of the uids that found the table full.
    pub uid: Option<u32>,
    pub rule: u32,
    pub n: u64,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The count, signed: the 5.10 variant's can be below zero for a moment (bpf/anomaly.bpf.c
/// take_all), which holds nothing.
fn suppressed_of(v: &[u8]) -> Option<u64> {
    let at = std::mem::offset_of!(RateVal, suppressed);
    let n = i64::from_ne_bytes(v.get(at..at + 8)?.try_into().ok()?);
    Some(n.max(0) as u64)
}

/// What the rate maps still hold (read once the programs are stopped, so final): every
/// failure is then in a record's `suppressed`, a summary, or one of these.
pub fn held(rate: Option<&MapHandle>, over: Option<&MapHandle>) -> Vec<Held> {
    let mut out = Vec::new();
    if let Some(m) = rate {
        for k in m.keys() {
            let Some(n) = m
                .lookup(&k, MapFlags::ANY)
                .ok()
                .flatten()
                .and_then(|v| suppressed_of(&v))
            else {
                continue;
            };
            if let (Some(uid), Some(rule), true) = (u32_at(&k, 0), u32_at(&k, 4), n > 0) {
                out.push(Held {
                    uid: Some(uid),
                    rule,
                    n,
                });
            }
        }
    }
    if let Some(m) = over {
        for rule in 0..m.max_entries() {
            let n = m
                .lookup(&rule.to_ne_bytes(), MapFlags::ANY)
                .ok()
                .flatten()
                .and_then(|v| suppressed_of(&v))
                .unwrap_or(0);
            if n > 0 {
                out.push(Held { uid: None, rule, n });
            }
        }
    }
    out.sort_by_key(|h| (h.uid.is_none(), h.uid, h.rule));
    out
}

/// `anomaly suppressed: uid=65534 rule=ptrace_attach n=12` (`uid=shared` for the
/// overflow entry).
pub fn held_line(h: &Held) -> String {
    let uid = h.uid.map_or_else(|| "shared".to_string(), |u| u.to_string());
    let rule = rule_name(h.rule).map_or_else(|| format!("unknown({})", h.rule), str::to_string);
    format!("anomaly suppressed: uid={uid} rule={rule} n={}", h.n)
}

/// `enum rw_anomaly_rule`.
pub mod rule {
    pub const SETUID_ROOT: u32 = 1;
    pub const EXEC_FROM_TMP: u32 = 2;
    pub const EXEC_FROM_MEMFD: u32 = 3;
    pub const PTRACE_ATTACH: u32 = 4;
    pub const BPF_PROG_LOAD: u32 = 5;
    pub const MODULE_LOAD: u32 = 6;
}

/// Raised by the daemon itself when someone changes its maps behind its back (not a
/// BPF rule: it has no number in `enum rw_anomaly_rule`, and no ring).
pub const TAMPER_RULE: &str = "tamper";
pub const TAMPER_SEVERITY: u32 = severity::CRITICAL;

/// `enum rw_anomaly_severity`.
pub mod severity {
    pub const LOW: u32 = 1;
    pub const MEDIUM: u32 = 2;
    pub const HIGH: u32 = 3;
    pub const CRITICAL: u32 = 4;
}

/// `enum rw_anomaly_location`: the directory an exec_from_tmp file is under.
pub mod location {
    pub const TMP: u64 = 1;
    pub const VAR_TMP: u64 = 2;
    pub const DEV_SHM: u64 = 3;
    /// Deeper than the kernel's walk goes: reported rather than missed.
    pub const UNKNOWN: u64 = 4;
}

/// `enum rw_anomaly_syscall`.
pub mod code {
    pub const SETUID: u32 = 1;
    pub const SETREUID: u32 = 2;
    pub const SETRESUID: u32 = 3;
    pub const SETFSUID: u32 = 4;
    pub const INIT_MODULE: u32 = 5;
    pub const FINIT_MODULE: u32 = 6;
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AnomalyEvent {
    pub hdr: Header,
    pub rule: u32,
    pub severity: u32,
    pub code: u32,
    pub flags: u32,
    pub args: [u64; ARGS],
    pub detail_len: u32,
    pub name_len: u32,
    pub detail: [u8; DETAIL_LEN],
    pub name: [u8; NAME_LEN],
    /// setuid_root only (ptrace_attach and bpf_prog_load keep theirs in `args`).
    pub suppressed: u64,
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for AnomalyEvent {}

pub fn rule_name(r: u32) -> Option<&'static str> {
    Some(match r {
        rule::SETUID_ROOT => "setuid_root",
        rule::EXEC_FROM_TMP => "exec_from_tmp",
        rule::EXEC_FROM_MEMFD => "exec_from_memfd",
        rule::PTRACE_ATTACH => "ptrace_attach",
        rule::BPF_PROG_LOAD => "bpf_prog_load",
        rule::MODULE_LOAD => "module_load",
        _ => return None,
    })
}

pub fn severity_name(s: u32) -> Option<&'static str> {
    Some(match s {
        severity::LOW => "low",
        severity::MEDIUM => "medium",
        severity::HIGH => "high",
        severity::CRITICAL => "critical",
        _ => return None,
    })
}

pub fn syscall_name(c: u32) -> Option<&'static str> {
    Some(match c {
        code::SETUID => "setuid",
        code::SETREUID => "setreuid",
        code::SETRESUID => "setresuid",
        code::SETFSUID => "setfsuid",
        code::INIT_MODULE => "init_module",
        code::FINIT_MODULE => "finit_module",
        _ => return None,
    })
}

/// `enum rw_anomaly_location`: the directory an exec_from_tmp file is under.
pub fn location_name(l: u64) -> Option<&'static str> {
    Some(match l {
        location::TMP => "/tmp",
        location::VAR_TMP => "/var/tmp",
        location::DEV_SHM => "/dev/shm",
        location::UNKNOWN => "unknown",
        _ => return None,
    })
}

pub fn ptrace_request_name(r: u64) -> Option<&'static str> {
    Some(match r {
        16 => "PTRACE_ATTACH",
        0x4206 => "PTRACE_SEIZE",
        _ => return None,
    })
}

/// A known name, or `unknown(N)` so a newer kernel side never breaks a line.
fn named(line: &mut impl Fields, k: &str, name: Option<&str>, n: u64) {
    match name {
        Some(s) => line.str(k, s),
        None => line.display(k, format_args!("unknown({n})")),
    }
}

/// Only on the rare records whose `suppressed` is the overflow entry's.
fn shared(line: &mut impl Fields, flags: u32) {
    if flags & RATE_SHARED != 0 {
        line.bool("suppressed_shared", true);
    }
}

pub fn render(_kind: u32, data: &[u8], line: &mut impl Fields) -> Result<(), DecodeError> {
    let e: &AnomalyEvent = view(data, kind::ANOMALY)?;
    let a = &e.args;
    named(line, "rule", rule_name(e.rule), e.rule.into());
    named(
        line,
        "severity",
        severity_name(e.severity),
        e.severity.into(),
    );
    match e.rule {
        rule::SETUID_ROOT => {
            named(line, "syscall", syscall_name(e.code), e.code.into());
            line.u64("old_uid", a[0]);
            line.u64("old_euid", a[1]);
            line.u64("old_fsuid", a[2]);
            line.u64("new_uid", a[3]);
            line.u64("new_euid", a[4]);
            line.u64("new_fsuid", a[5]);
            line.u64("suppressed", e.suppressed);
            shared(line, e.flags);
        }
        rule::EXEC_FROM_TMP | rule::EXEC_FROM_MEMFD => {
            if e.rule == rule::EXEC_FROM_TMP {
                named(line, "location", location_name(a[0]), a[0]);
            }
            line.bytes("filename", prefix(&e.detail, e.detail_len));
            line.bool("filename_truncated", e.flags & DETAIL_TRUNCATED != 0);
            line.bytes("file", prefix(&e.name, e.name_len));
            line.bool("file_truncated", e.flags & NAME_TRUNCATED != 0);
        }
        rule::PTRACE_ATTACH | rule::BPF_PROG_LOAD if e.flags & SUMMARY != 0 => {
            line.bool("summary", true);
            let n = if e.rule == rule::PTRACE_ATTACH { a[3] } else { a[4] };
            line.u64("suppressed", n);
            shared(line, e.flags);
        }
        rule::PTRACE_ATTACH => {
            line.bool("summary", false);
            line.u64("target_pid", a[0]);
            line.u64("request", a[1]);
            named(line, "request_name", ptrace_request_name(a[1]), a[1]);
            line.i64("ret", a[2] as i64);
            line.u64("suppressed", a[3]);
            shared(line, e.flags);
        }
        rule::BPF_PROG_LOAD => {
            line.bool("summary", false);
            line.u64("prog_type", a[0]);
            line.u64("insn_cnt", a[1]);
            line.u64("attr_size", a[2]);
            line.bytes("prog_name", prefix(&e.name, e.name_len));
            line.i64("ret", a[3] as i64);
            line.u64("suppressed", a[4]);
            shared(line, e.flags);
        }
        rule::MODULE_LOAD => {
            named(line, "syscall", syscall_name(e.code), e.code.into());
            if e.code == code::FINIT_MODULE {
                line.i64("fd", a[0] as i64);
                line.u64("flags", a[1]);
            } else {
                line.u64("len", a[0]);
            }
            line.bytes("params", prefix(&e.detail, e.detail_len));
            line.bool("params_truncated", e.flags & DETAIL_TRUNCATED != 0);
        }
        _ => {}
    }
    Ok(())
}

/// How a reported attempt ended, and how many of the uid's failures went unreported
/// since its last record (ptrace_attach, bpf_prog_load).
fn outcome(b: &mut Vec<u8>, ret: i64, suppressed: u64) {
    if ret < 0 {
        let _ = write!(b, " failed (ret {ret})");
    }
    if suppressed > 0 {
        let _ = write!(b, "; {suppressed} more failures not reported");
    }
}

/// Marks a count that is the shared overflow entry's, not the uid's own.
fn shared_note(b: &mut Vec<u8>, flags: u32) {
    if flags & RATE_SHARED != 0 {
        b.extend_from_slice(b" (counted with other uids: rate table full)");
    }
}

/// The journal's one-line summary (see `super::summary`).
pub fn summary(h: &Header, data: &[u8], b: &mut Vec<u8>) -> Result<u8, DecodeError> {
    let e: &AnomalyEvent = view(data, kind::ANOMALY)?;
    let a = &e.args;
    summary::named(b, severity_name(e.severity), e.severity.into());
    b.push(b' ');
    summary::named(b, rule_name(e.rule), e.rule.into());
    b.extend_from_slice(b": ");
    quoted(b, cstr(&h.comm));
    let _ = write!(b, " pid={} uid={}", h.pid, h.uid);
    match e.rule {
        rule::SETUID_ROOT => {
            b.extend_from_slice(b" became root via ");
            summary::named(b, syscall_name(e.code), e.code.into());
            let _ = write!(
                b,
                " (uid {}->{}, euid {}->{}, fsuid {}->{})",
                a[0], a[3], a[1], a[4], a[2], a[5]
            );
            if e.suppressed > 0 {
                let _ = write!(b, "; {} more not reported", e.suppressed);
            }
            shared_note(b, e.flags);
        }
        rule::EXEC_FROM_TMP => {
            b.extend_from_slice(b" ran ");
            quoted(b, prefix(&e.detail, e.detail_len));
            b.extend_from_slice(b" from ");
            summary::named(b, location_name(a[0]), a[0]);
        }
        rule::EXEC_FROM_MEMFD => {
            b.extend_from_slice(b" ran ");
            quoted(b, prefix(&e.name, e.name_len));
            b.extend_from_slice(b" (");
            quoted(b, prefix(&e.detail, e.detail_len));
            b.push(b')');
        }
        rule::PTRACE_ATTACH | rule::BPF_PROG_LOAD if e.flags & SUMMARY != 0 => {
            let n = if e.rule == rule::PTRACE_ATTACH { a[3] } else { a[4] };
            let _ = write!(b, " ended; {n} more failures not reported");
            shared_note(b, e.flags);
        }
        rule::PTRACE_ATTACH => {
            b.push(b' ');
            match ptrace_request_name(a[1]) {
                Some(n) => b.extend_from_slice(n.as_bytes()),
                None => {
                    let _ = write!(b, "ptrace request {}", a[1]);
                }
            }
            let _ = write!(b, " of pid {}", a[0]);
            outcome(b, a[2] as i64, a[3]);
            shared_note(b, e.flags);
        }
        rule::BPF_PROG_LOAD => {
            b.extend_from_slice(b" loaded BPF program \"");
            text(b, prefix(&e.name, e.name_len), true);
            let _ = write!(b, "\" (type {}, {} instructions)", a[0], a[1]);
            outcome(b, a[3] as i64, a[4]);
            shared_note(b, e.flags);
        }
        rule::MODULE_LOAD => {
            b.push(b' ');
            summary::named(b, syscall_name(e.code), e.code.into());
            if e.code == code::FINIT_MODULE {
                let _ = write!(b, " fd={}", a[0] as i64);
            } else {
                let _ = write!(b, " len={}", a[0]);
            }
            let params = prefix(&e.detail, e.detail_len);
            if !params.is_empty() {
                b.extend_from_slice(b" params=\"");
                text(b, params, true);
                b.push(b'"');
            }
        }
        _ => {}
    }
    Ok(severity_priority(e.severity))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::clock::WallClock;

    fn record(rule: u32, severity: u32, f: impl FnOnce(&mut AnomalyEvent)) -> Vec<u8> {
        let mut e = AnomalyEvent {
            hdr: Header {
                kind: kind::ANOMALY,
                ..Header::default()
            },
            rule,
            severity,
            code: 0,
            flags: 0,
            args: [0; ARGS],
            detail_len: 0,
            name_len: 0,
            detail: [0; DETAIL_LEN],
            name: [0; NAME_LEN],
            suppressed: 0,
        };
        f(&mut e);
        // SAFETY: AnomalyEvent is repr(C) plain data; the slice covers exactly it.
        unsafe {
            std::slice::from_raw_parts(
                (&e as *const AnomalyEvent).cast::<u8>(),
                std::mem::size_of::<AnomalyEvent>(),
            )
        }
        .to_vec()
    }

    fn json(rec: &[u8]) -> serde_json::Value {
        let mut buf = Vec::new();
        crate::output::json::render("anomaly", &WallClock::default(), rec, &mut buf).expect("renders");
        serde_json::from_slice(&buf).expect("valid JSON")
    }

    #[test]
    fn setuid_root_names_rule_severity_and_syscall() {
        let v = json(&record(rule::SETUID_ROOT, 4, |e| {
            e.code = code::SETRESUID;
            e.args = [65534, 65534, 65534, 0, 0, 0];
        }));
        assert_eq!(v["type"], "anomaly");
        assert_eq!(v["rule"], "setuid_root");
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["syscall"], "setresuid");
        assert_eq!(v["old_euid"], 65534);
        assert_eq!(v["new_euid"], 0);
    }

    #[test]
    fn exec_from_tmp_has_location_and_exact_bytes() {
        let v = json(&record(rule::EXEC_FROM_TMP, 2, |e| {
            e.args[0] = 3;
            e.detail[..11].copy_from_slice(b"/dev/shm/\xffx");
            e.detail_len = 11;
            e.name[..3].copy_from_slice(b"\xffxy");
            e.name_len = 2;
            e.flags = DETAIL_TRUNCATED;
        }));
        assert_eq!(v["location"], "/dev/shm");
        assert_eq!(v["filename_hex"], "2f6465762f73686d2fff78");
        assert_eq!(v["file_hex"], "ff78");
        assert_eq!(v["filename_truncated"], true);
        assert_eq!(v["file_truncated"], false);
    }

    #[test]
    fn refused_attempts_carry_their_outcome_and_suppressed_count() {
        let v = json(&record(rule::PTRACE_ATTACH, 2, |e| {
            e.args = [1, 16, -1i64 as u64, 19_999, 0, 0];
        }));
        assert_eq!(v["summary"], false);
        assert_eq!(v["ret"], -1);
        assert_eq!(v["suppressed"], 19_999);
        let v = json(&record(rule::BPF_PROG_LOAD, 2, |e| {
            e.flags = SUMMARY;
            e.args[4] = 7;
        }));
        assert_eq!(v["summary"], true);
        assert_eq!(v["suppressed"], 7);
        assert!(v.get("prog_type").is_none(), "no attempt of its own: {v}");
        let v = json(&record(rule::EXEC_FROM_TMP, 2, |e| e.args[0] = 4));
        assert_eq!(v["location"], "unknown");
    }

    #[test]
    fn unknown_numbers_do_not_break_the_line() {
        let v = json(&record(99, 77, |e| e.detail_len = 10_000));
        assert_eq!(v["rule"], "unknown(99)");
        assert_eq!(v["severity"], "unknown(77)");
        let v = json(&record(rule::MODULE_LOAD, 3, |e| {
            e.code = code::FINIT_MODULE;
            e.args[0] = -1i64 as u64;
            e.detail_len = 10_000;
        }));
        assert_eq!(v["fd"], -1);
        assert_eq!(v["syscall"], "finit_module");
        assert_eq!(v["params"].as_str().map(str::len), Some(DETAIL_LEN));
    }
}

#[cfg(test)]
mod layout {
    use super::*;
    use crate::assert_layout;
    use crate::family::Family;

    #[test]
    fn mirrors_match_c() {
        assert_layout!(
            Family::Anomaly,
            "rw_header",
            Header,
            [seq, ts_ns, cgroup_id, kind, pid, tid, ppid, uid, gid, comm]
        );
        assert_layout!(
            Family::Anomaly,
            "anomaly_event",
            AnomalyEvent,
            [
                hdr, rule, severity, code, flags, args, detail_len, name_len, detail, name,
                suppressed
            ]
        );
    }

    #[test]
    fn rate_maps_match_c() {
        assert_layout!(Family::Anomaly, "rate_key", RateKey, [uid, rule]);
        assert_layout!(
            Family::Anomaly,
            "rate_val",
            RateVal,
            [last_ns, suppressed, last_tgid, pad]
        );
    }

    #[test]
    fn constants_match_c() {
        use crate::assert_enum;
        let f = Family::Anomaly;
        assert_enum!(f, "rw_anomaly_type", [RW_ANOMALY = kind::ANOMALY]);
        assert_enum!(
            f,
            "rw_anomaly_rule",
            [
                RW_RULE_SETUID_ROOT = rule::SETUID_ROOT,
                RW_RULE_EXEC_FROM_TMP = rule::EXEC_FROM_TMP,
                RW_RULE_EXEC_FROM_MEMFD = rule::EXEC_FROM_MEMFD,
                RW_RULE_PTRACE_ATTACH = rule::PTRACE_ATTACH,
                RW_RULE_BPF_PROG_LOAD = rule::BPF_PROG_LOAD,
                RW_RULE_MODULE_LOAD = rule::MODULE_LOAD,
            ]
        );
        assert_enum!(
            f,
            "rw_anomaly_severity",
            [
                RW_SEV_LOW = severity::LOW,
                RW_SEV_MEDIUM = severity::MEDIUM,
                RW_SEV_HIGH = severity::HIGH,
                RW_SEV_CRITICAL = severity::CRITICAL,
            ]
        );
        assert_enum!(
            f,
            "rw_anomaly_syscall",
            [
                RW_SC_SETUID = code::SETUID,
                RW_SC_SETREUID = code::SETREUID,
                RW_SC_SETRESUID = code::SETRESUID,
                RW_SC_SETFSUID = code::SETFSUID,
                RW_SC_INIT_MODULE = code::INIT_MODULE,
                RW_SC_FINIT_MODULE = code::FINIT_MODULE,
            ]
        );
        assert_enum!(
            f,
            "rw_anomaly_location",
            [
                RW_LOC_TMP = location::TMP as i64,
                RW_LOC_VAR_TMP = location::VAR_TMP as i64,
                RW_LOC_DEV_SHM = location::DEV_SHM as i64,
                RW_LOC_UNKNOWN = location::UNKNOWN as i64,
            ]
        );
        assert_enum!(
            f,
            "rw_anomaly_flags",
            [
                RW_ANOMALY_DETAIL_TRUNCATED = DETAIL_TRUNCATED,
                RW_ANOMALY_NAME_TRUNCATED = NAME_TRUNCATED,
                RW_ANOMALY_SUMMARY = SUMMARY,
                RW_ANOMALY_RATE_SHARED = RATE_SHARED,
            ]
        );
    }
}
