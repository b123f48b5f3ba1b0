//! The control socket and `ringwarden status` against the real daemon: the JSON, the
//! table and the metrics agree with the books; clients that misbehave cannot stall the
//! loop; a second daemon on the same socket and a stale socket file.
mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::obs::{
    closed_unanswered_after_idle, events_of_tid, final_books, flood, load, metrics_port, num,
    scrape, silent_and_open, status, wait_until,
};
use common::{Daemon, gettid, run_cli, temp_dir, u};
use ringwarden::units::{fmt_ns, human};
use serde_json::Value;
use std::os::fd::AsRawFd;

fn path_arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn status_json_table_and_metrics_agree_with_the_books() {
    let dir = temp_dir("status-exact");
    // The socket's directory does not exist yet: the daemon creates it.
    let sock = dir.join("run").join("control.sock");
    let d = Daemon::start(
        "status-exact",
        &[
            // The two rings the table below lists (context would add the process's).
            "--no-context",
            "--only",
            "syscall,cgroup",
            "--syscalls",
            "sched_get_priority_min",
            "--ring-size",
            "syscall=8MiB",
            "--adaptive",
            "off",
            "--metrics-listen",
            "127.0.0.1:0",
            "--control-socket",
            path_arg(&sock),
        ],
    );
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(mode(sock.parent().expect("dir")), 0o755);
    let port = metrics_port(&d);
    let r = load(&[
        "--family",
        "syscall",
        "--syscall",
        "sched_get_priority_min",
        "--events",
        "10000",
    ]);
    assert_eq!(u(&r["generated"]), 10_000);
    // All received, and a quiet tick since (the high-water mark is the last tick's).
    wait_until("received and settled", Duration::from_secs(20), || {
        let s = status(&sock);
        let ring = &s["rings"]["syscall"];
        u(&ring["received"]) == 10_000 && u(&ring["high_water"]) == 0
    });

    let (code, out, err) = run_cli(&["status", "--json", "--control-socket", path_arg(&sock)]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("the client prints the JSON as is");
    let ring = &v["rings"]["syscall"];
    for (k, want) in [
        ("produced", 10_000),
        ("received", 10_000),
        ("dropped", 0),
        ("untracked", 0),
        ("decode_errors", 0),
        ("size", 8 << 20),
        ("high_water", 0),
        ("resizes_up", 0),
        ("resizes_down", 0),
    ] {
        assert_eq!(u(&ring[k]), want, "{k}: {ring}");
    }
    assert_eq!(ring["loss_rate"].as_f64(), Some(0.0));
    // (serde_json sorts keys; the document's order is the family order, as in the table.)
    let names: Vec<&String> = v["rings"].as_object().expect("rings").keys().collect();
    assert_eq!(names, ["cgroup", "syscall"]);
    assert_eq!(u(&v["pid"]), u64::from(d.pid()));
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(u(&v["sink_errors"]), 0);
    let programs = v["programs"].as_object().expect("programs");
    let attached = programs.values().filter(|p| p["attached"] == true).count() as u64;
    let counts = &v["program_counts"];
    assert_eq!(u(&counts["attached"]), attached);
    assert_eq!(
        u(&counts["attached"]) + u(&counts["failed"]) + u(&counts["not_applicable"]),
        programs.len() as u64
    );

    // The table says the same.
    let (code, table, err) = run_cli(&["status", "--control-socket", path_arg(&sock)]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "RING",
            "SIZE",
            "MIN",
            "MAX",
            "HIGH-WATER",
            "FILL",
            "PRODUCED",
            "RECEIVED",
            "DROPPED",
            "LOSS",
            "RESIZES",
            "P50",
            "P99"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    let want = [
        "syscall".to_string(),
        "8MiB".to_string(),
        human(u(&ring["min"])),
        human(u(&ring["max"])),
        "0B".to_string(),
        "0.0%".to_string(),
        "10000".to_string(),
        "10000".to_string(),
        "0".to_string(),
        "0.000%".to_string(),
        "+0/-0".to_string(),
        fmt_ns(u(&ring["latency_p50_ns"])),
        fmt_ns(u(&ring["latency_p99_ns"])),
    ];
    assert_eq!(row, want, "\n{table}");
    let cg: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        cg[..2],
        ["cgroup", human(u(&v["rings"]["cgroup"]["size"])).as_str()]
    );
    // The syscall family runs: what it counts for the others (host-wide, may move).
    assert!(
        lines[3].starts_with("unseen by the other families: compat syscalls "),
        "\n{table}"
    );
    assert_eq!(
        lines[4],
        format!(
            "programs: {} attached, {} failed, {} not applicable",
            counts["attached"], counts["failed"], counts["not_applicable"]
        )
    );
    let last = lines.last().expect("a last line");
    assert!(
        last.starts_with("uptime ")
            && last.contains(&format!(
                ", pid {}, version {}, written ",
                d.pid(),
                env!("CARGO_PKG_VERSION")
            ))
            && last.contains(", sink errors 0, expired 0, memory "),
        "{last}"
    );

    // And the metrics.
    let s = scrape(port);
    assert_eq!(
        num(&s, "ebpf_events_produced_total{ring=\"syscall\"}"),
        10_000
    );
    assert_eq!(
        num(&s, "ebpf_events_received_total{ring=\"syscall\"}"),
        10_000
    );
    assert_eq!(num(&s, "ebpf_events_dropped_total{ring=\"syscall\"}"), 0);
    assert_eq!(
        num(&s, "ebpf_ring_buffer_size_bytes{ring=\"syscall\"}"),
        8 << 20
    );
    assert_eq!(
        num(&s, "ebpf_read_latency_seconds_count{ring=\"syscall\"}"),
        10_000
    );

    let f = d.stop();
    f.assert_exact();
    let books = final_books(&f.stderr, "syscall");
    assert_eq!(
        (books["produced"], books["received"], books["dropped"]),
        (10_000, 10_000, 0)
    );
    assert!(!sock.exists(), "the daemon removes its socket at exit");
    // Nobody there now: exit 1, one line naming the socket and the fix.
    let (code, out, err) = run_cli(&["status", "--control-socket", path_arg(&sock)]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "ringwarden status: cannot connect to {}: ",
            sock.display()
        )) && err.contains("systemctl status ringwarden")
            && err.contains("--control-socket"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `bytes` and reads the answer to the end.
fn ask(sock: &Path, bytes: &[u8]) -> String {
    let mut c = UnixStream::connect(sock).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    c.write_all(bytes).expect("send");
    let mut out = String::new();
    c.read_to_string(&mut out).expect("read");
    out
}

fn error_of(answer: &str) -> String {
    assert!(answer.ends_with("}\n"), "{answer:?}");
    let v: Value = serde_json::from_str(answer).expect("json");
    v["error"].as_str().expect("an error").to_string()
}

#[test]
fn misbehaving_control_clients_cannot_stall_the_loop() {
    let dir = temp_dir("status-abuse");
    let sock = dir.join("control.sock");
    let d = Daemon::start(
        "status-abuse",
        &[
            "--only",
            "syscall",
            "--syscalls",
            "sched_getscheduler",
            "--ring-size",
            "syscall=4MiB",
            "--adaptive",
            "off",
            "--control-socket",
            path_arg(&sock),
        ],
    );
    let tid = gettid();
    let mut made = 0;
    let mut flow = |n: usize| {
        common::syscall_n(libc::SYS_sched_getscheduler, n);
        made += n;
        let want = made;
        wait_until("events still flow", Duration::from_secs(10), || {
            events_of_tid(&d, tid) == want
        });
        want
    };
    flow(1000);

    assert_eq!(
        error_of(&ask(&sock, b"hello\n")),
        "unknown request \"hello\"; the protocol is one line: status"
    );
    assert_eq!(
        error_of(&ask(&sock, b"\x00\x01garbage\xff\n")),
        "unknown request \"\\u0000\\u0001garbage\u{fffd}\"; the protocol is one line: status"
    );
    assert_eq!(
        error_of(&ask(&sock, &[b'a'; 300])),
        "request line longer than 256 bytes; send status"
    );
    let mut half = UnixStream::connect(&sock).expect("connect");
    half.write_all(b"sta").expect("send");
    let half_sent = Instant::now();
    let mut deaf = UnixStream::connect(&sock).expect("connect");
    deaf.write_all(b"status\n").expect("send");
    flow(2000);
    assert_eq!(u(&status(&sock)["pid"]), u64::from(d.pid()));
    assert!(silent_and_open(half.as_raw_fd()), "the half line waits");
    let mut text = String::new();
    deaf.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    deaf.read_to_string(&mut text).expect("read");
    let v: Value = serde_json::from_str(&text).expect("the deaf client's answer is whole");
    assert_eq!(u(&v["pid"]), u64::from(d.pid()));
    closed_unanswered_after_idle(&mut half, half_sent, "no answer to half a line");
    flow(2000);

    flood(
        || UnixStream::connect(&sock).expect("connect"),
        |c| {
            let mut s = String::new();
            c.read_to_string(&mut s).expect("read");
            if s.is_empty() {
                return false;
            }
            assert_eq!(s, "{\"error\":\"too many clients; try again\"}\n");
            true
        },
        || {
            flow(2000);
        },
    );
    assert_eq!(u(&status(&sock)["pid"]), u64::from(d.pid()));
    let made = flow(1000);

    let f = d.stop();
    f.assert_exact();
    let mine = f
        .of_type("syscall")
        .filter(|e| u(&e["tid"]) == u64::from(tid))
        .count();
    assert_eq!(mine, made);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_daemon_leaves_the_socket_alone_and_a_stale_one_is_replaced() {
    let dir = temp_dir("status-owner");
    let sock = dir.join("control.sock");
    let args = |p: &Path| {
        vec![
            "--only".to_string(),
            "cgroup".to_string(),
            "--control-socket".to_string(),
            path_arg(p).to_string(),
        ]
    };
    let a_args = args(&sock);
    let a_refs: Vec<&str> = a_args.iter().map(String::as_str).collect();
    let a = Daemon::start("status-owner-a", &a_refs);
    let b = Daemon::start("status-owner-b", &a_refs);
    let warning = format!(
        "control socket {}: another running process (a second ringwarden?) serves it; running without it",
        sock.display()
    );
    assert!(b.log().contains(&warning), "{}", b.log());
    assert_eq!(u(&status(&sock)["pid"]), u64::from(a.pid()));
    b.stop().assert_exact();
    assert_eq!(
        u(&status(&sock)["pid"]),
        u64::from(a.pid()),
        "the second daemon left the first one's socket alone"
    );
    a.stop().assert_exact();
    assert!(!sock.exists());

    // A socket file nobody listens on (a daemon that was killed) is replaced.
    let stale = dir.join("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let c_args = args(&stale);
    let c_refs: Vec<&str> = c_args.iter().map(String::as_str).collect();
    let c = Daemon::start("status-owner-c", &c_refs);
    assert!(
        c.log().contains(&format!(
            "control socket {}: replaced a stale socket file",
            stale.display()
        )),
        "{}",
        c.log()
    );
    assert_eq!(u(&status(&stale)["pid"]), u64::from(c.pid()));
    c.stop().assert_exact();

    // Anything else in the way is left as it is; the daemon runs without the socket.
    let file = dir.join("notes.txt");
    std::fs::write(&file, "keep me").expect("write");
    let d_args = args(&file);
    let d_refs: Vec<&str> = d_args.iter().map(String::as_str).collect();
    let d = Daemon::start("status-owner-d", &d_refs);
    assert!(
        d.log()
            .contains("a file that is not a socket is in the way")
    );
    d.stop().assert_exact();
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "keep me");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A process that listens on the control socket's path but never accepts, with its
/// backlog full: a blocking connect would hang the daemon's start (and its loop, at
/// SIGHUP) and `ringwarden status` forever. Both must carry on at once.
#[test]
fn a_listener_that_never_accepts_stalls_neither_the_daemon_nor_the_client() {
    let dir = temp_dir("status-stuck");
    let sock = dir.join("stuck.sock");
    let l = UnixListener::bind(&sock).expect("bind");
    // SAFETY: listen(2) on our own socket: a backlog of 0 holds one pending connection.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    // The one pending connection it holds: from now on a blocking connect would wait.
    let pending = UnixStream::connect(&sock).expect("first connect");
    let t = Instant::now();
    let (code, _, err) = run_cli(&["status", "--control-socket", path_arg(&sock)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not accepting connections"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let d = Daemon::start(
        "status-stuck",
        &["--only", "cgroup", "--control-socket", path_arg(&sock)],
    );
    assert!(
        d.log().contains("serves it; running without it"),
        "{}",
        d.log()
    );
    d.stop().assert_exact();
    drop(pending);
    drop(l);
    let _ = std::fs::remove_dir_all(&dir);
}
