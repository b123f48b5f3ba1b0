//! The daemon never reports its own activity, also when it runs in a PID namespace
//! (a container), where the pid it knows is not the one the kernel's programs see.
mod common;

use std::fs;
use std::time::Duration;

use common::{Daemon, gettid, parse_lines, u};

#[test]
fn daemon_in_a_pid_namespace_does_not_trace_itself() {
    // Pid 1 of a new PID namespace (unshare --pid --fork); d.pid() is its pid on the host.
    let d = Daemon::builder("pidns")
        .args(&["--only", "file"])
        .pid_namespace()
        .start();
    let daemon = u64::from(d.pid());

    // Our own opens are reported; the daemon's stats writes (an open every second,
    // of stats.json.tmp) must not be.
    let probe = d.dir.join("probe");
    for _ in 0..10 {
        fs::write(&probe, b"x").expect("write probe");
    }
    std::thread::sleep(Duration::from_millis(2500));
    // SIGTERM to the daemon; the exit of unshare (which exits as its child did).
    let f = d.stop();
    let status = f.status;
    assert!(status.success(), "{}", f.stderr);

    let events = parse_lines(&f.raw);
    let tid = gettid() as u64;
    let mine = events
        .iter()
        .filter(|e| u(&e["tid"]) == tid && e["path"] == probe.to_str().expect("utf-8 path"))
        .count();
    assert_eq!(mine, 10, "the probe opens are reported");
    let own: Vec<_> = events.iter().filter(|e| u(&e["pid"]) == daemon).collect();
    assert_eq!(own.len(), 0, "the daemon traced itself: {own:?}");
    assert!(!f.stats.is_null(), "stats: no stats file, or not JSON");
    let s = &f.stats;
    let r = &s["rings"]["file"];
    assert_eq!(u(&r["produced"]), u(&r["received"]) + u(&r["dropped"]));
}
