//! systemd's notify protocol against a real datagram socket bound by the test as
//! $NOTIFY_SOCKET: READY=1 after the `ready` log line, STATUS= per tick, WATCHDOG=1 at
//! half of $WATCHDOG_USEC, RELOADING=1/READY=1 around SIGHUP, STOPPING=1 at SIGTERM.
mod common;

use std::fs;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Daemon;

/// One datagram: when it came, its text, and whether the daemon's log held the `ready`
/// line at that moment.
struct Msg {
    at: Instant,
    text: String,
    ready_logged: bool,
}

fn monotonic_usec() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1000
}

fn listen(
    sock: UnixDatagram,
    stderr: &Path,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<Msg>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let stderr = stderr.to_path_buf();
    let h = std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        loop {
            match sock.recv(&mut b) {
                Ok(n) => {
                    let at = Instant::now();
                    let ready_logged = fs::read_to_string(&stderr)
                        .unwrap_or_default()
                        .contains("ready: ");
                    got.push(Msg {
                        at,
                        text: String::from_utf8_lossy(&b[..n]).into_owned(),
                        ready_logged,
                    });
                }
                Err(_) if s.load(Ordering::SeqCst) => break,
                Err(_) => {}
            }
        }
        got
    });
    (stop, h)
}

/// The daemon with $NOTIFY_SOCKET = `notify` (and `env`), its files in `dir`, no
/// --stats-json and its own stats interval: only what systemd would give it.
fn spawn(dir: &Path, notify: &str, env: &[(&str, &str)]) -> Daemon {
    Daemon::builder("notify")
        .in_dir(dir)
        .args(&[
            "--only",
            "syscall",
            "--syscalls",
            "getegid",
            "--output",
            "none",
            // One ring, as the STATUS lines below say (context would add the process's).
            "--no-context",
        ])
        .env("NOTIFY_SOCKET", notify)
        .envs(env)
        .no_stats_json()
        .stats_interval(None)
        .start()
}

fn signal(c: &Daemon, sig: i32) {
    c.signal(sig);
}

/// The exit (within 5 s of the signal that asked for it) must be clean.
fn wait_exit(c: Daemon) {
    let s = c.finish().status;
    assert!(s.success(), "exit {s:?}");
}

/// `STATUS=1 ring, N ev/s, D dropped, P programs` for this test's one-ring daemon.
fn assert_status(line: &str, programs: usize) {
    let s = line
        .strip_prefix("STATUS=")
        .unwrap_or_else(|| panic!("{line:?}"));
    let rest = s
        .strip_prefix("1 ring, ")
        .unwrap_or_else(|| panic!("{s:?}"));
    let (rate, rest) = rest
        .split_once(" ev/s, ")
        .unwrap_or_else(|| panic!("{s:?}"));
    assert!(
        rate.trim_end_matches(['k', 'M']).parse::<f64>().is_ok(),
        "{s:?}"
    );
    assert_eq!(rest, format!("0 dropped, {programs} programs"), "{s:?}");
}

fn gaps(times: &[Instant]) -> Vec<f64> {
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

#[test]
fn ready_status_watchdog_reload_and_stopping() {
    let dir = common::temp_dir("notify");
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind");
    let (stop, rx) = listen(sock, &dir.join("stderr.log"));
    let child = spawn(
        &dir,
        path.to_str().expect("path"),
        &[("WATCHDOG_USEC", "2000000")],
    );
    let log = fs::read_to_string(dir.join("stderr.log")).expect("log");
    let programs: usize = log
        .split("ready: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("programs in the ready line");
    std::thread::sleep(Duration::from_millis(3300));
    let before_hup = monotonic_usec();
    signal(&child, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(1500));
    let after_hup = monotonic_usec();
    signal(&child, libc::SIGTERM);
    wait_exit(child);
    stop.store(true, Ordering::SeqCst);
    let msgs = rx.join().expect("listener");
    let texts: Vec<&str> = msgs.iter().map(|m| m.text.as_str()).collect();

    // READY=1 first, with a status, and only once the `ready` line is in the log.
    assert_eq!(
        texts[0],
        format!("READY=1\nSTATUS=1 ring, 0 ev/s, 0 dropped, {programs} programs")
    );
    assert!(
        msgs[0].ready_logged,
        "READY=1 came before the ready log line"
    );
    assert_eq!(texts[1], "WATCHDOG=1", "{texts:?}");

    // SIGHUP: RELOADING=1 with the monotonic time of the reload, then READY=1 at once.
    let hup: Vec<usize> = (0..texts.len())
        .filter(|&i| texts[i].starts_with("RELOADING=1\n"))
        .collect();
    assert_eq!(hup.len(), 1, "{texts:?}");
    let lines: Vec<&str> = texts[hup[0]].split('\n').collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let usec: u64 = lines[1]
        .strip_prefix("MONOTONIC_USEC=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        (before_hup..=after_hup).contains(&usec),
        "{usec} outside the SIGHUP"
    );
    assert_eq!(lines[2], "STATUS=reloading the configuration");
    assert!(texts[hup[0] + 1].starts_with("READY=1\nSTATUS="));
    assert_status(&texts[hup[0] + 1]["READY=1\n".len()..], programs);
    assert_eq!(texts.iter().filter(|t| t.starts_with("READY=1")).count(), 2);

    // SIGTERM: STOPPING=1, the last word.
    assert_eq!(
        *texts.last().expect("messages"),
        "STOPPING=1\nSTATUS=stopping: draining the rings"
    );
    assert_eq!(
        texts.iter().filter(|t| t.starts_with("STOPPING=1")).count(),
        1
    );

    // STATUS= once per tick (1 s) in between.
    let status: Vec<&Msg> = msgs
        .iter()
        .filter(|m| m.text.starts_with("STATUS="))
        .collect();
    for m in &status {
        assert_status(&m.text, programs);
    }
    // ~4.8 s from READY to SIGTERM: 4 or 5 ticks.
    assert!((4..=5).contains(&status.len()), "{texts:?}");
    for g in gaps(&status.iter().map(|m| m.at).collect::<Vec<_>>()) {
        assert!((0.6..1.4).contains(&g), "tick gap {g} s: {texts:?}");
    }

    // WATCHDOG=1 every second (half of 2 s) after the first one at READY.
    let dog: Vec<Instant> = msgs
        .iter()
        .filter(|m| m.text == "WATCHDOG=1")
        .map(|m| m.at)
        .collect();
    assert!((5..=6).contains(&dog.len()), "{texts:?}");
    for g in gaps(&dog[1..]) {
        assert!((0.7..1.3).contains(&g), "watchdog gap {g} s: {texts:?}");
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn abstract_socket_and_a_watchdog_meant_for_another_pid() {
    let dir = common::temp_dir("notify-abstract");
    let name = format!("ringwarden-test-notify-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
    let sock = UnixDatagram::bind_addr(&addr).expect("bind");
    let (stop, rx) = listen(sock, &dir.join("stderr.log"));
    // WATCHDOG_PID names another process (a wrapper's): the pings are not ours to send.
    let child = spawn(
        &dir,
        &format!("@{name}"),
        &[("WATCHDOG_USEC", "400000"), ("WATCHDOG_PID", "1")],
    );
    std::thread::sleep(Duration::from_millis(2500));
    signal(&child, libc::SIGTERM);
    wait_exit(child);
    stop.store(true, Ordering::SeqCst);
    let msgs = rx.join().expect("listener");
    let texts: Vec<&str> = msgs.iter().map(|m| m.text.as_str()).collect();
    assert!(
        texts[0].starts_with("READY=1\nSTATUS=1 ring, "),
        "{texts:?}"
    );
    assert!(msgs[0].ready_logged);
    assert_eq!(texts.iter().filter(|t| t.contains("WATCHDOG")).count(), 0);
    assert_eq!(
        *texts.last().expect("messages"),
        "STOPPING=1\nSTATUS=stopping: draining the rings"
    );
    let _ = fs::remove_dir_all(&dir);
}
