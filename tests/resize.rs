//! Rings that size themselves, against the real kernel: grow under load with nothing lost
//! or duplicated, recover from a stalled receiver, shrink when idle, SIGHUP. Each test
//! traces its own syscall (getpgid, getsid, geteuid, getegid): the daemons run in
//! parallel and each sees the whole machine.
mod common;

use std::collections::HashSet;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, u};
use serde_json::Value;

/// The tests that load the machine run one at a time: on 2 cores, two of them at once
/// starve each other's daemon, and each checks "no drops once grown".
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the load generator; returns its report (generated count and per-thread tids).
fn load(args: &[&str]) -> Value {
    let out = Command::new(common::load_bin())
        .args(args)
        .output()
        .expect("run ringwarden-load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON report")
}

use common::load_tids as tids;

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
            let to = rest.split(" (").next()?;
            Some((parse(from)?, parse(to)?))
        })
        .collect()
}

/// "64 KiB" -> 65536.
fn parse(s: &str) -> Option<u64> {
    let s = s.replace(' ', "");
    let s = s.as_str();
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
    let _one_at_a_time = heavy();
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
    let d = Daemon::start(
        "resize-grow",
        &[
            "--config",
            &cfg,
            "--only",
            "syscall",
            "--syscalls",
            "getpgid",
        ],
    );
    // Three phases at 120k events/s, 2 s each (6 s in all), in bursts that each phase
    // makes 4x larger: a burst lands in the ring faster than it is drained, so the
    // in-kernel high-water mark passes grow_above and the ring grows, phase after phase.
    let mut generated = 0;
    let mut mine = HashSet::new();
    for burst in ["4000", "16000", "64000"] {
        let report = load(&[
            "--family",
            "syscall",
            "--syscall",
            "getpgid",
            "--rate",
            "120000",
            "--duration",
            "2",
            "--burst",
            burst,
        ]);
        generated += u(&report["generated"]);
        mine.extend(tids(&report));
    }
    assert!(
        generated >= 600_000,
        "the load ran at >= 100k/s for 6 s: {generated}"
    );
    let f = d.stop();
    f.assert_exact();
    let grows = resizes(&f.stderr, "syscall");
    assert!(
        grows.len() >= 3,
        "expected at least 3 grows, log:\n{}",
        f.stderr
    );
    assert!(
        grows.iter().all(|(a, b)| b > a),
        "only grows under load: {grows:?}"
    );

    let r = f.ring("syscall");
    let (produced, dropped) = (u(&r["produced"]), u(&r["dropped"]));
    let seqs: Vec<u64> = f.of_type("syscall").map(|e| u(&e["seq"])).collect();
    let set: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(
        set.len(),
        seqs.len(),
        "a sequence number was delivered twice"
    );
    assert_eq!(produced - set.len() as u64, dropped, "gaps != dropped");
    let got = f
        .of_type("syscall")
        .filter(|e| mine.contains(&u(&e["tid"])))
        .count() as u64;
    if dropped == 0 {
        assert_eq!(got, generated, "every generated event received");
    } else {
        // The ring was too small before the first grow: the drops are all counted.
        assert!(
            got + dropped >= generated && got <= generated,
            "got {got} dropped {dropped}"
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Reads the daemon's stats file (rewritten every second by the harness's settings).
fn stats(d: &Daemon) -> Value {
    serde_json::from_str(&fs::read_to_string(&d.stats).unwrap_or_default()).unwrap_or(Value::Null)
}

/// A ring's number from a stats snapshot (None before the first write).
fn num(s: &Value, ring: &str, key: &str) -> Option<u64> {
    s["rings"][ring][key].as_u64()
}

fn wait_stats(d: &Daemon, timeout: Duration, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let s = stats(d);
        if ok(&s) {
            return s;
        }
        assert!(
            t.elapsed() < timeout,
            "{what}: not within {timeout:?}; stats {s}; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn stalled_receiver_drops_are_counted_then_the_ring_grows_and_keeps_up() {
    let _one_at_a_time = heavy();
    let dir = common::temp_dir("resize-stall");
    // 2 MiB holds 0.7 s of the load: the 3 s stall overflows it. The one step it then
    // grows by (4 MiB, 1.4 s) must absorb the pauses this VM gives a reader nobody
    // stopped: a ring that held 90 ms lost 3,525 and then 205 events after growing in
    // two CI runs (in one, another test binary took 310 s instead of 35).
    let cfg = config(
        &dir,
        r#"
[rings.syscall]
size = "2MiB"
min = "2MiB"
max = "32MiB"
[adaptive]
cooldown = "30s"
"#,
    );
    let d = Daemon::start(
        "resize-stall",
        &[
            "--config",
            &cfg,
            "--only",
            "syscall",
            "--syscalls",
            "getsid",
        ],
    );
    let generator = Command::new(common::load_bin())
        .args([
            "--family",
            "syscall",
            "--syscall",
            "getsid",
            "--rate",
            "20000",
            "--duration",
            "11",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("load generator");
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(d.pid() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: as above.
    unsafe { libc::kill(d.pid() as i32, libc::SIGCONT) };
    // The stall overflowed the ring; once running again the daemon grows it...
    let s = wait_stats(&d, Duration::from_secs(5), "grow after the stall", |s| {
        num(s, "syscall", "dropped") > Some(0) && num(s, "syscall", "size") > Some(2 << 20)
    });
    // Once it has settled, a SIGHUP with the file unchanged keeps the size it grew to.
    std::thread::sleep(Duration::from_secs(2));
    let grown = num(&stats(&d), "syscall", "size");
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    d.wait_for_log("SIGHUP: reloading", Duration::from_secs(5));
    // ...and from then on loses nothing at the same rate.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        num(&stats(&d), "syscall", "size"),
        grown,
        "SIGHUP undid the growth"
    );
    let before = u(&stats(&d)["rings"]["syscall"]["dropped"]);
    let out = generator.wait_with_output().expect("load generator ends");
    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
    std::thread::sleep(Duration::from_millis(1500));
    let after = u(&stats(&d)["rings"]["syscall"]["dropped"]);
    assert_eq!(
        before,
        after,
        "drops after the ring grew; first grow stats: {s}; log:\n{}",
        d.log()
    );
    let f = d.stop();
    f.assert_exact();
    let r = f.ring("syscall");
    let seqs: HashSet<u64> = f.of_type("syscall").map(|e| u(&e["seq"])).collect();
    assert_eq!(
        u(&r["produced"]) - seqs.len() as u64,
        u(&r["dropped"]),
        "gaps != dropped"
    );
    let mine = tids(&report);
    let got = f
        .of_type("syscall")
        .filter(|e| mine.contains(&u(&e["tid"])))
        .count() as u64;
    assert!(
        got < u(&report["generated"]),
        "the stall must have cost events"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn idle_ring_shrinks_back_to_min() {
    let dir = common::temp_dir("resize-shrink");
    let cfg = config(
        &dir,
        r#"
[rings.cgroup]
size = "1MiB"
min = "64KiB"
max = "16MiB"
[adaptive]
cooldown = "1s"
"#,
    );
    let d = Daemon::start("resize-shrink", &["--config", &cfg, "--only", "cgroup"]);
    wait_stats(&d, Duration::from_secs(20), "shrink to min", |s| {
        num(s, "cgroup", "size") == Some(64 << 10)
    });
    let f = d.stop();
    f.assert_exact();
    let steps = resizes(&f.stderr, "cgroup");
    assert!(
        !steps.is_empty() && steps.iter().all(|(a, b)| b < a),
        "{steps:?}"
    );
    assert_eq!(steps.first().map(|s| s.0), Some(1 << 20));
    assert_eq!(steps.last().map(|s| s.1), Some(64 << 10));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn sighup_keeps_the_running_config_on_error_and_applies_a_new_size() {
    let dir = common::temp_dir("resize-hup");
    let body = |size: &str| {
        format!(
            "[rings.syscall]\nsize = \"{size}\"\nmin = \"64KiB\"\nmax = \"8MiB\"\n[adaptive]\nenabled = false\n"
        )
    };
    let cfg = config(&dir, &body("256KiB"));
    let d = Daemon::start(
        "resize-hup",
        &[
            "--config",
            &cfg,
            "--only",
            "syscall",
            "--syscalls",
            "geteuid",
        ],
    );
    let hup = || {
        // SAFETY: signalling the daemon we started.
        unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    };
    // A broken file: reported, the running config stays.
    fs::write(&cfg, body("3KiB")).expect("write");
    hup();
    d.wait_for_log("keeping the running configuration", Duration::from_secs(5));
    let s = wait_stats(&d, Duration::from_secs(3), "stats", |s| {
        num(s, "syscall", "size").is_some()
    });
    assert_eq!(num(&s, "syscall", "size"), Some(256 << 10));
    // A good one with a new size: applied through the swap.
    fs::write(&cfg, body("1MiB")).expect("write");
    hup();
    wait_stats(&d, Duration::from_secs(5), "new size", |s| {
        u(&s["rings"]["syscall"]["size"]) == 1 << 20
    });
    let report = load(&[
        "--family",
        "syscall",
        "--syscall",
        "geteuid",
        "--events",
        "5000",
    ]);
    let f = d.stop();
    f.assert_exact();
    let mine = tids(&report);
    let got = f
        .of_type("syscall")
        .filter(|e| mine.contains(&u(&e["tid"])))
        .count() as u64;
    assert_eq!(got, u(&report["generated"]));
    assert_eq!(resizes(&f.stderr, "syscall"), vec![(256 << 10, 1 << 20)]);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn sighup_switches_families_off_and_on_and_their_books_continue() {
    let dir = common::temp_dir("resize-families");
    // After the first reload the syscall ring is 2 MiB (one resize up), which the
    // daemon's half of the books must remember across the switch off and on.
    let body = |fams: &str| {
        let size = if fams == "\"syscall\"" {
            "1MiB"
        } else {
            "2MiB"
        };
        format!(
            "families = [{fams}]\nsyscalls = [\"getegid\"]\n[adaptive]\nenabled = false\n\
             [rings.syscall]\nsize = \"{size}\"\n"
        )
    };
    let cfg = config(&dir, &body("\"syscall\""));
    let d = Daemon::start("resize-families", &["--config", &cfg]);
    let hup = |fams: &str, word: &str| {
        fs::write(&cfg, body(fams)).expect("write");
        // SAFETY: signalling the daemon we started.
        unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
        d.wait_for_log(word, Duration::from_secs(10));
    };
    let generate = |n: &str| {
        let r = load(&["--family", "syscall", "--syscall", "getegid", "--events", n]);
        (u(&r["generated"]), tids(&r))
    };
    let (n1, t1) = generate("3000");
    std::thread::sleep(Duration::from_millis(300));
    hup("\"syscall\", \"file\"", "family file switched on");
    hup("\"file\"", "retired ring syscall");
    let (_, t2) = generate("2000"); // not traced: the syscall family is off
    hup("\"syscall\", \"file\"", "family syscall switched on");
    let (n3, t3) = generate("4000");
    let f = d.stop();
    f.assert_exact();
    let count = |t: &HashSet<u64>| {
        f.of_type("syscall")
            .filter(|e| t.contains(&u(&e["tid"])))
            .count() as u64
    };
    assert_eq!(count(&t1), n1);
    assert_eq!(count(&t2), 0);
    assert_eq!(count(&t3), n3);
    // One sequence across both loads of the family: the counters were handed over.
    let seqs: Vec<u64> = f.of_type("syscall").map(|e| u(&e["seq"])).collect();
    let set: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(
        set.len(),
        seqs.len(),
        "a sequence number was reused after the rebuild"
    );
    assert!(f.stderr.contains("retired ring syscall") && f.stderr.contains("exact=yes"));
    // Counters exported to Prometheus never go backwards: the resize before the switch
    // is still counted after it.
    assert_eq!(resizes(&f.stderr, "syscall"), vec![(1 << 20, 2 << 20)]);
    assert_eq!(
        u(&f.stats["rings"]["syscall"]["resizes_up"]),
        1,
        "{}",
        f.stats
    );
    assert_eq!(u(&f.stats["rings"]["syscall"]["size"]), 2 << 20);
    let _ = fs::remove_dir_all(&dir);
}
