//! Shutdown under load: exact books, exit within 5 s. Its own test binary so the load
//! it makes does not compete with the timing-sensitive tests in accounting.rs.
mod common;

use std::time::Duration;

use common::{Daemon, u};

#[test]
fn shutdown_under_load_is_exact_and_within_five_seconds() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // All families, default sizes, two threads hammering a syscall the whole time: the
    // harness's stop() asserts the exit within 5 s of SIGTERM, assert_exact the books.
    let d = Daemon::start("acct-shutdown", &["--syscalls", "getuid"]);
    let run = Arc::new(AtomicBool::new(true));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let run = run.clone();
            std::thread::spawn(move || {
                while run.load(Ordering::Relaxed) {
                    common::syscall_n(libc::SYS_getuid, 1000);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let f = d.stop(); // panics unless the daemon exits within 5 s of SIGTERM
    run.store(false, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    f.assert_exact();
    assert!(
        u(&f.ring("syscall")["received"]) > 0,
        "the load reached the ring"
    );
}

#[test]
fn stalled_stdout_reader_cannot_hold_the_daemon() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::time::Instant;
    // stdout is a pipe nobody reads until the daemon has exited: the 64 KiB pipe fills,
    // the daemon must still obey SIGTERM within 5 s and count what it could not write.
    common::ensure_tracefs();
    let dir = common::temp_dir("stalled-stdout");
    let stats = dir.join("stats.json");
    let stderr = dir.join("stderr.log");
    let mut child = Command::new(common::BIN)
        .args(common::isolation(&[]))
        .args(["--only", "syscall", "--syscalls", "getgid", "--stats-json"])
        .arg(&stats)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("spawn");
    common::wait_for_file(&stderr, "ready", Duration::from_secs(30));
    common::syscall_n(libc::SYS_getgid, 20_000); // ~5 MB of JSON: far more than the pipe holds
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "daemon hung on a full stdout"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success());
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("pipe")
        .read_to_string(&mut out)
        .expect("read");
    let written = out.lines().count() as u64;
    for l in out.lines() {
        serde_json::from_str::<serde_json::Value>(l).expect("every written line is whole JSON");
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats")).expect("json");
    let r = &s["rings"]["syscall"];
    assert_eq!(u(&r["produced"]), u(&r["received"]) + u(&r["dropped"]));
    // Every received event was either written or counted as a sink error.
    assert_eq!(u(&r["received"]), written + u(&s["sink_errors"]), "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn counting_sink_counts_every_event_and_writes_none() {
    use std::process::{Command, Stdio};
    common::ensure_tracefs();
    let dir = common::temp_dir("count-sink");
    let (stats, log) = (dir.join("stats.json"), dir.join("stderr.log"));
    let child = Command::new(common::BIN)
        .args(common::isolation(&[]))
        .args([
            "--only",
            "syscall",
            "--syscalls",
            "geteuid",
            "--output",
            "none",
        ])
        .args([
            "--adaptive",
            "off",
            "--ring-size",
            "syscall=8MiB",
            "--stats-json",
        ])
        .arg(&stats)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn");
    common::wait_for_file(&log, "ready", Duration::from_secs(30));
    common::syscall_n(libc::SYS_geteuid, 30_000);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "none writes nothing");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats")).expect("json");
    let r = &s["rings"]["syscall"];
    assert_eq!(u(&r["dropped"]), 0);
    assert_eq!(u(&r["produced"]), u(&r["received"]));
    // geteuid is this test's own; the 30000 calls above are all there (and maybe a few
    // from other processes).
    assert!(u(&r["received"]) >= 30_000, "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}
