//! The daemon never reports its own activity, also when it runs in a PID namespace
//! (a container), where the pid it knows is not the one the kernel's programs see.
mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{gettid, parse_lines, u};

#[test]
fn daemon_in_a_pid_namespace_does_not_trace_itself() {
    common::ensure_tracefs();
    let dir = common::temp_dir("pidns");
    let (out, stats, log) = (
        dir.join("events.jsonl"),
        dir.join("stats.json"),
        dir.join("stderr.log"),
    );
    // unshare forks: its child is pid 1 in a new PID namespace and execs the daemon.
    let mut unshare = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            common::BIN,
            "--only",
            "file",
            "--stats-interval",
            "1",
        ])
        .arg("--output")
        .arg(&out)
        .arg("--stats-json")
        .arg(&stats)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).expect("log"))
        .spawn()
        .expect("unshare (util-linux) runs");
    common::wait_for_file(&log, "ready", Duration::from_secs(30));
    let children = format!("/proc/{0}/task/{0}/children", unshare.id());
    let daemon: u64 = fs::read_to_string(&children)
        .expect("children")
        .trim()
        .parse()
        .expect("one child: the daemon");

    // Our own opens are reported; the daemon's stats writes (an open every second,
    // of stats.json.tmp) must not be.
    let probe = dir.join("probe");
    for _ in 0..10 {
        fs::write(&probe, b"x").expect("write probe");
    }
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(daemon as i32, libc::SIGTERM) };
    let status = unshare.wait().expect("wait");
    assert!(
        status.success(),
        "{}",
        fs::read_to_string(&log).unwrap_or_default()
    );

    let events = parse_lines(&fs::read_to_string(&out).expect("events"));
    let tid = gettid() as u64;
    let mine = events
        .iter()
        .filter(|e| u(&e["tid"]) == tid && e["path"] == probe.to_str().expect("utf-8 path"))
        .count();
    assert_eq!(mine, 10, "the probe opens are reported");
    let own: Vec<_> = events.iter().filter(|e| u(&e["pid"]) == daemon).collect();
    assert_eq!(own.len(), 0, "the daemon traced itself: {own:?}");
    let s: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&stats).expect("stats")).expect("json");
    let r = &s["rings"]["file"];
    assert_eq!(u(&r["produced"]), u(&r["received"]) + u(&r["dropped"]));
    let _ = fs::remove_dir_all(&dir);
}
