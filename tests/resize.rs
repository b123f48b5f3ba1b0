//! Rings that size themselves, against the real kernel: grow under load with nothing lost
//! or duplicated, recover from a stalled receiver, shrink when idle, SIGHUP.
mod common;

use std::collections::HashSet;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, u};
use serde_json::Value;

const LOAD: &str = env!("CARGO_BIN_EXE_ringwarden-load");

/// Runs the load generator; returns its report (generated count and per-thread tids).
fn load(args: &[&str]) -> Value {
    let out = Command::new(LOAD).args(args).output().expect("run ringwarden-load");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON report")
}

fn tids(report: &Value) -> HashSet<u64> {
    report["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .map(|t| u(&t["tid"]))
        .collect()
}

fn config(dir: &std::path::Path, body: &str) -> String {
    let p = dir.join("ringwarden.toml");
    fs::write(&p, body).expect("write config");
    p.to_string_lossy().into_owned()
}

/// Resize lines from the log: (from, to) sizes in bytes.
fn resizes(log: &str, ring: &str) -> Vec<(u64, u64)> {
    let prefix = format!("ring {ring}: ");
    log.lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, r)| r))
        .filter_map(|r| {
            let (from, rest) = r.split_once(" -> ")?;
            let to = rest.split_whitespace().next()?;
            Some((parse(from)?, parse(to)?))
        })
        .collect()
}

fn parse(s: &str) -> Option<u64> {
    let (n, m) = if let Some(n) = s.strip_suffix("KiB") {
        (n, 1 << 10)
    } else if let Some(n) = s.strip_suffix("MiB") {
        (n, 1 << 20)
    } else if let Some(n) = s.strip_suffix("GiB") {
        (n, 1 << 30)
    } else {
        (s.strip_suffix('B')?, 1)
    };
    n.parse::<u64>().ok().map(|n| n * m)
}

#[test]
fn grows_under_sustained_load_with_nothing_lost_or_duplicated() {
    let dir = common::temp_dir("resize-grow");
    let cfg = config(
        &dir,
        r#"
[rings.syscall]
size = "64KiB"
min = "64KiB"
max = "32MiB"
[adaptive]
enabled = true
policy = "dynamic"
cooldown = "1s"
"#,
    );
    let d = Daemon::start("resize-grow", &["--config", &cfg, "--only", "syscall", "--syscalls", "getpgid"]);
    // >= 100k events/s for 6 s from two threads.
    let report = load(&[
        "--family", "syscall", "--syscall", "getpgid", "--rate", "120000", "--duration", "6",
        "--threads", "2",
    ]);
    let generated = u(&report["generated"]);
    let mine = tids(&report);
    let f = d.stop();
    f.assert_exact();
    let grows = resizes(&f.stderr, "syscall");
    assert!(grows.len() >= 3, "expected at least 3 grows, log:\n{}", f.stderr);
    assert!(grows.iter().all(|(a, b)| b > a), "only grows under load: {grows:?}");

    let r = f.ring("syscall");
    let (produced, dropped) = (u(&r["produced"]), u(&r["dropped"]));
    let seqs: Vec<u64> = f.of_type("syscall").map(|e| u(&e["seq"])).collect();
    let set: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(set.len(), seqs.len(), "a sequence number was delivered twice");
    assert_eq!(produced - set.len() as u64, dropped, "gaps != dropped");
    let got = f
        .of_type("syscall")
        .filter(|e| mine.contains(&u(&e["tid"])))
        .count() as u64;
    if dropped == 0 {
        assert_eq!(got, generated, "every generated event received");
    } else {
        // The ring was too small before the first grow: the drops are all counted.
        assert!(got + dropped >= generated && got <= generated, "got {got} dropped {dropped}");
    }
    let _ = fs::remove_dir_all(&dir);
}
