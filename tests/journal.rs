//! journald: the daemon's own log under a journal stream, and the `journal` event sink
//! against a real datagram socket bound by the test (standing in for journald's), a
//! missing one, one nobody reads, and a real systemd-journald run in a namespace of its
//! own. Counts are exact: every event received is a datagram or a counted sink error.
mod common;

use std::collections::HashSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, u};
use serde_json::Value;

/// A daemon of these tests: files in `dir` (the test's), their own `--output` and
/// environment, the daemon's default stats interval.
fn start_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
    Daemon::builder("journal")
        .in_dir(dir)
        .args(args)
        .envs(env)
        .stats_interval(None)
        .start()
}

/// SIGTERM; the exit must come within 5 s and be clean. Returns (log, stats).
fn stop_daemon(d: Daemon, dir: &Path) -> (String, Value) {
    let f = d.stop();
    let log = f.stderr;
    assert!(f.status.success(), "exit {:?}; log:\n{log}", f.status);
    assert!(!f.stats.is_null(), "stats: no stats file, or not JSON");
    let _ = fs::remove_dir_all(dir);
    (log, f.stats)
}

/// Received, summed over the rings, and the sink errors, from the stats file; the books
/// of every ring must balance.
/// Events received to be written (not those kept for the process context alone), and
/// sink errors.
fn books(stats: &Value) -> (u64, u64) {
    let mut received = 0;
    for (name, r) in stats["rings"].as_object().expect("rings") {
        assert_eq!(
            u(&r["produced"]),
            u(&r["received"]) + u(&r["dropped"]),
            "{name}: {r}"
        );
        received += u(&r["received"]) - u(&r["context_only"]);
    }
    (received, u(&stats["sink_errors"]))
}

/// Runs the load generator to completion; returns its producer tids and the total.
fn load(args: &[&str]) -> (HashSet<u64>, u64) {
    let v = common::obs::load(args);
    (common::load_tids(&v), u(&v["generated"]))
}

/// A native journal entry, read independently of the daemon's encoder.
fn fields(mut e: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !e.is_empty() {
        let nl = e
            .iter()
            .position(|&b| b == b'\n')
            .expect("a field ends with a newline");
        let line = &e[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            out.push((
                String::from_utf8(line[..eq].to_vec()).expect("name"),
                line[eq + 1..].to_vec(),
            ));
            e = &e[nl + 1..];
        } else {
            let rest = &e[nl + 1..];
            let n = u64::from_le_bytes(rest[..8].try_into().expect("length")) as usize;
            out.push((
                String::from_utf8(line.to_vec()).expect("name"),
                rest[8..8 + n].to_vec(),
            ));
            assert_eq!(rest[8 + n], b'\n');
            e = &rest[9 + n..];
        }
    }
    out
}

fn get<'a>(f: &'a [(String, Vec<u8>)], k: &str) -> &'a str {
    let v = &f
        .iter()
        .find(|(n, _)| n == k)
        .unwrap_or_else(|| panic!("{k} missing"))
        .1;
    std::str::from_utf8(v).expect("text")
}

/// Receives datagrams on `sock` in a thread until told to stop (then drains the rest).
fn reader(sock: UnixDatagram) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let mut got = Vec::new();
        let mut b = vec![0u8; 1 << 16];
        loop {
            match sock.recv(&mut b) {
                Ok(n) => got.push(b[..n].to_vec()),
                Err(_) if s.load(Ordering::SeqCst) => break,
                Err(_) => {}
            }
        }
        got
    });
    (stop, h)
}

/// "journal: WHY: N events counted as sink_errors (...)": the N of every such line.
fn logged_losses(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("journal: ")?;
            let head = rest.split(" events counted as sink_errors").next()?;
            if head.len() == rest.len() {
                return None;
            }
            head.rsplit(' ').next()?.parse().ok()
        })
        .collect()
}

#[test]
fn log_lines_carry_syslog_priorities_under_a_journal_stream() {
    let dir = common::temp_dir("jstream");
    let stderr = dir.join("stderr.log");
    fs::File::create(&stderr).expect("stderr file");
    let m = fs::metadata(&stderr).expect("stat");
    let stream = format!("{}:{}", m.dev(), m.ino());
    let args = [
        "--only",
        "syscall",
        "--syscalls",
        "getegid",
        "--output",
        "none",
    ];
    let r = start_in(&dir, &args, &[("JOURNAL_STREAM", &stream)]);
    let (log, _) = stop_daemon(r, &dir);
    let lines: Vec<&str> = log.lines().collect();
    for l in &lines {
        let p = l.as_bytes();
        assert!(
            p.len() > 3 && p[0] == b'<' && (b'0'..=b'7').contains(&p[1]) && p[2] == b'>',
            "no priority prefix: {l:?}"
        );
        assert!(!l.contains("ringwarden::"), "module path in {l:?}");
    }
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("<6>ready: ")).count(),
        1,
        "{log}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("<6>final ring syscall size="))
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("<6>SIGTERM received: stopping and draining"))
            .count(),
        1,
        "{log}"
    );

    // The same variable naming another file (stderr redirected away from the journal):
    // plain readable lines, as without systemd.
    let dir = common::temp_dir("jstream-other");
    let r = start_in(
        &dir,
        &args,
        &[("JOURNAL_STREAM", &format!("{}:1", m.dev()))],
    );
    let (log, _) = stop_daemon(r, &dir);
    assert!(!log.contains("<6>"), "{log}");
    let ready: Vec<&str> = log.lines().filter(|l| l.contains("] ready: ")).collect();
    assert_eq!(ready.len(), 1, "{log}");
    assert!(
        ready[0].starts_with('[') && ready[0].contains("INFO"),
        "{log}"
    );
}

#[test]
fn every_event_is_one_datagram_with_its_fields() {
    let dir = common::temp_dir("jsink");
    let path = dir.join("journal.sock");
    let sock = UnixDatagram::bind(&path).expect("bind");
    let (stop, rx) = reader(sock);
    let r = start_in(
        &dir,
        &[
            "--only",
            "syscall",
            "--syscalls",
            "geteuid",
            "--output",
            "journal",
        ],
        &[("RINGWARDEN_JOURNAL_SOCKET", path.to_str().expect("path"))],
    );
    let n = 3000;
    let (tids, generated) = load(&[
        "--family",
        "syscall",
        "--syscall",
        "geteuid",
        "--events",
        &n.to_string(),
        "--rate",
        "20000",
        "--threads",
        "2",
    ]);
    assert_eq!(generated, n);
    let (log, stats) = stop_daemon(r, &dir);
    stop.store(true, Ordering::SeqCst);
    let got = rx.join().expect("reader");
    let (received, sink_errors) = books(&stats);
    assert_eq!(sink_errors, 0, "{log}");
    assert_eq!(
        got.len() as u64,
        received,
        "one datagram per event received"
    );
    let mut seqs = HashSet::new();
    let mut ours = 0;
    for d in &got {
        let f = fields(d);
        assert_eq!(f[0].0, "MESSAGE");
        assert_eq!(get(&f, "PRIORITY"), "6");
        assert_eq!(get(&f, "SYSLOG_IDENTIFIER"), "ringwarden");
        assert_eq!(get(&f, "RINGWARDEN_TYPE"), "syscall");
        assert_eq!(get(&f, "RINGWARDEN_RING"), "syscall");
        assert!(
            seqs.insert(get(&f, "RINGWARDEN_SEQ").parse::<u64>().expect("seq")),
            "seq twice"
        );
        if tids.contains(&get(&f, "RINGWARDEN_TID").parse::<u64>().expect("tid")) {
            ours += 1;
            assert_eq!(get(&f, "RINGWARDEN_NAME"), "geteuid");
            // The six argument registers as a JSON list (geteuid takes none: whatever
            // the registers held).
            let args: Vec<u64> = serde_json::from_str(get(&f, "RINGWARDEN_ARGS")).expect("list");
            assert_eq!(args.len(), 6);
            let m = get(&f, "MESSAGE");
            let pid = get(&f, "RINGWARDEN_PID");
            assert!(
                m.starts_with("syscall geteuid(")
                    && m.contains(") = 0 by ")
                    && m.ends_with(&format!(" pid={pid} uid=0")),
                "{m}"
            );
        }
    }
    assert_eq!(ours, n, "every generated event is one datagram");
}

/// The `lost` records reach the journal too: entries of their own (warning), whose
/// counts sum to the ring's drops exactly, beside one entry per event received.
#[test]
fn lost_records_are_journal_entries_that_count_every_drop() {
    let dir = common::temp_dir("jlost");
    let path = dir.join("journal.sock");
    let sock = UnixDatagram::bind(&path).expect("bind");
    let (stop, rx) = reader(sock);
    let r = start_in(
        &dir,
        &[
            "--adaptive",
            "off",
            "--only",
            "syscall",
            "--syscalls",
            "getpgrp",
            "--ring-size",
            "syscall=4KiB",
            "--output",
            "journal",
        ],
        &[("RINGWARDEN_JOURNAL_SOCKET", path.to_str().expect("path"))],
    );
    common::syscall_n(libc::SYS_getpgrp, 50_000);
    std::thread::sleep(Duration::from_millis(300));
    let (log, stats) = stop_daemon(r, &dir);
    stop.store(true, Ordering::SeqCst);
    let got = rx.join().expect("reader");
    let (received, sink_errors) = books(&stats);
    assert_eq!(sink_errors, 0, "{log}");
    let ring = &stats["rings"]["syscall"];
    let dropped = u(&ring["dropped"]);
    assert!(dropped > 0, "a one-page ring must overflow: {ring}");
    let (mut events, mut lost, mut entries) = (0u64, 0u64, 0u64);
    for d in &got {
        let f = fields(d);
        if get(&f, "RINGWARDEN_TYPE") != "lost" {
            events += 1;
            continue;
        }
        entries += 1;
        assert_eq!(get(&f, "PRIORITY"), "4");
        assert_eq!(get(&f, "RINGWARDEN_ORIGIN"), "daemon");
        assert_eq!(get(&f, "RINGWARDEN_RING"), "syscall");
        let n: u64 = get(&f, "RINGWARDEN_COUNT").parse().expect("count");
        let first = get(&f, "RINGWARDEN_FIRST_SEQ");
        let last = get(&f, "RINGWARDEN_LAST_SEQ");
        let want = if n == 1 {
            format!("ring syscall lost 1 event (seq {first})")
        } else {
            format!("ring syscall lost {n} events (seq {first}..{last})")
        };
        assert_eq!(get(&f, "MESSAGE"), want);
        lost += n;
    }
    assert_eq!(events, received, "one entry per event received");
    assert_eq!(lost, dropped, "the lost entries count every drop: {ring}");
    assert_eq!(entries, u(&ring["lost_records"]), "{ring}");
}

#[test]
fn a_missing_journal_socket_counts_every_event() {
    let dir = common::temp_dir("jmissing");
    let path = dir.join("no-journal.sock");
    let r = start_in(
        &dir,
        &[
            "--only",
            "syscall",
            "--syscalls",
            "getegid",
            "--output",
            "journal",
        ],
        &[("RINGWARDEN_JOURNAL_SOCKET", path.to_str().expect("path"))],
    );
    let (_, generated) = load(&[
        "--family",
        "syscall",
        "--syscall",
        "getegid",
        "--events",
        "2000",
    ]);
    assert_eq!(generated, 2000);
    std::thread::sleep(Duration::from_millis(1500)); // a reconnect attempt or two
    let (log, stats) = stop_daemon(r, &dir);
    let (received, sink_errors) = books(&stats);
    assert!(received >= 2000, "{received}");
    assert_eq!(sink_errors, received, "{log}");
    // One line when the socket is missing (the retries fail the same way: not logged
    // again), one for what is counted at exit.
    let missing: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("journal socket /"))
        .collect();
    assert_eq!(missing.len(), 1, "{log}");
    assert!(
        missing[0].contains("No such file or directory"),
        "{}",
        missing[0]
    );
    assert_eq!(logged_losses(&log), vec![received], "{log}");
    assert!(
        log.contains("journal: the journal socket is still unreachable at exit"),
        "{log}"
    );
    assert!(log.contains(&format!("sink_errors={received}")), "{log}");
}

#[test]
fn a_journal_that_does_not_read_fills_then_events_are_counted() {
    let dir = common::temp_dir("jstall");
    let path = dir.join("journal.sock");
    let sock = UnixDatagram::bind(&path).expect("bind");
    let r = start_in(
        &dir,
        &[
            "--only",
            "syscall",
            "--syscalls",
            "getpid",
            "--output",
            "journal",
        ],
        &[("RINGWARDEN_JOURNAL_SOCKET", path.to_str().expect("path"))],
    );
    // About 700 bytes per entry: 30 000 events are far more than the socket queue and
    // the daemon's 8 MiB hold. Paced, so that the ring itself does not overflow.
    let (_, generated) = load(&[
        "--family",
        "syscall",
        "--syscall",
        "getpid",
        "--events",
        "30000",
        "--rate",
        "20000",
    ]);
    assert_eq!(generated, 30000);
    let (log, stats) = stop_daemon(r, &dir); // within 5 s although nothing is read
    let (received, sink_errors) = books(&stats);
    sock.set_nonblocking(true).expect("nonblocking");
    let mut queued = 0u64;
    let mut b = vec![0u8; 1 << 16];
    while let Ok(n) = sock.recv(&mut b) {
        assert_eq!(get(&fields(&b[..n]), "RINGWARDEN_TYPE"), "syscall");
        queued += 1;
    }
    // How many datagrams the kernel queues depends on net.unix.max_dgram_qlen and on the
    // sender's buffer (queued datagrams are charged to it), which differ between hosts:
    // the queue is not predicted, only that it filled and every other event is counted.
    assert!(
        queued > 0 && sink_errors > 0,
        "queued {queued}, sink_errors {sink_errors}"
    );
    assert_eq!(queued + sink_errors, received, "{log}");
    // Every counted event is in a log line, and there are few lines, not one per event.
    let lines = logged_losses(&log);
    assert_eq!(lines.iter().sum::<u64>(), sink_errors, "{log}");
    assert!(lines.len() <= 3, "rate-limited: {lines:?}");
    assert!(log.contains("journal: journald is not keeping up"), "{log}");
    assert!(
        log.contains("journal: journald did not take them within 1 s of shutdown"),
        "{log}"
    );
}

/// systemd-journald itself, started by hand as a namespace instance
/// (`systemd-journald NAMESPACE`): its own sockets in /run/systemd/journal.NAMESPACE and
/// its own files, read back with `journalctl --namespace`.
struct Journald {
    child: Child,
    ns: String,
}

const JOURNALD: &str = "/lib/systemd/systemd-journald";

impl Journald {
    fn start() -> Journald {
        assert!(
            Path::new(JOURNALD).exists(),
            "{JOURNALD} missing: install systemd (apt-get install systemd)"
        );
        let ns = format!("rwtest{}", std::process::id());
        let child = Command::new(JOURNALD)
            .arg(&ns)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn journald");
        let j = Journald { child, ns };
        let t = Instant::now();
        while !j.socket().exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "journald did not create {:?}",
                j.socket()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        j
    }

    fn socket(&self) -> PathBuf {
        PathBuf::from(format!("/run/systemd/journal.{}/socket", self.ns))
    }

    fn query(&self, matches: &[&str]) -> Vec<Value> {
        let o = Command::new("journalctl")
            .arg(format!("--namespace={}", self.ns))
            .args(["-o", "json", "--no-pager"])
            .args(matches)
            .output()
            .expect("journalctl");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("journalctl JSON"))
            .collect()
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(format!("/run/systemd/journal.{}", self.ns));
        if let Ok(id) = fs::read_to_string("/etc/machine-id") {
            for base in ["/var/log/journal", "/run/log/journal"] {
                let _ = fs::remove_dir_all(format!("{base}/{}.{}", id.trim(), self.ns));
            }
        }
    }
}

/// journalctl's JSON: a text value is a string, a binary one a list of byte values.
fn journal_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Array(a) => a.iter().map(|b| u(b) as u8).collect(),
        other => panic!("not a journal value: {other}"),
    }
}

#[test]
fn exec_events_reach_a_real_journald() {
    let j = Journald::start();
    let dir = common::temp_dir("jreal");
    // A program whose path holds a newline and a byte that is not UTF-8.
    let mut raw = dir.as_os_str().as_bytes().to_vec();
    raw.extend_from_slice(b"/rw true\n\xffx");
    let exe = PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
    fs::copy("/bin/true", &exe).expect("copy /bin/true");
    let r = start_in(
        &dir,
        &["--only", "process", "--output", "journal"],
        &[(
            "RINGWARDEN_JOURNAL_SOCKET",
            j.socket().to_str().expect("path"),
        )],
    );
    for arg in ["one", "two words"] {
        let c = Command::new(&exe).arg(arg).status().expect("run the copy");
        assert!(c.success());
    }
    let mut echo = Command::new("/bin/echo")
        .arg("x")
        .stdout(Stdio::null())
        .spawn()
        .expect("echo");
    let echo_pid = echo.id();
    echo.wait().expect("wait");
    std::thread::sleep(Duration::from_millis(200));
    let (log, stats) = stop_daemon(r, &dir);
    let (received, sink_errors) = books(&stats);
    assert_eq!(sink_errors, 0, "{log}");
    // Everything the daemon received is in the journal (one entry each), found by field.
    let t = Instant::now();
    let all = loop {
        let all = j.query(&["SYSLOG_IDENTIFIER=ringwarden"]);
        if all.len() as u64 >= received || t.elapsed() > Duration::from_secs(10) {
            break all;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(all.len() as u64, received);
    let echo = j.query(&[
        "RINGWARDEN_TYPE=exec",
        &format!("RINGWARDEN_PID={echo_pid}"),
    ]);
    assert_eq!(echo.len(), 1, "{echo:?}");
    let e = &echo[0];
    assert_eq!(e["PRIORITY"], "6");
    assert_eq!(e["RINGWARDEN_FILENAME"], "/bin/echo");
    assert_eq!(e["RINGWARDEN_ARGV"], "[\"/bin/echo\",\"x\"]");
    assert_eq!(e["RINGWARDEN_RING"], "process");
    // What the kernel executed: /usr/bin/echo where /bin is a link to usr/bin.
    let exe = std::fs::canonicalize("/bin/echo").expect("/bin/echo");
    let exe = exe.to_str().expect("utf-8");
    assert_eq!(e["RINGWARDEN_EXE"], exe);
    let named = if exe == "/bin/echo" {
        String::new()
    } else {
        format!(" exe=\"{exe}\"")
    };
    assert_eq!(
        e["MESSAGE"],
        format!(
            "exec \"/bin/echo\" pid={} ppid={} uid=0 argv=\"/bin/echo x\"{named}",
            echo_pid,
            std::process::id()
        )
    );
    // The odd path: exact bytes through journald (a list of bytes in journalctl's JSON).
    let want = raw.clone();
    let odd: Vec<&Value> = all
        .iter()
        .filter(|e| {
            e["RINGWARDEN_TYPE"] == "exec" && journal_bytes(&e["RINGWARDEN_FILENAME"]) == want
        })
        .collect();
    assert_eq!(odd.len(), 2, "both runs of the copy");
    let argvs: HashSet<String> = odd
        .iter()
        .map(|e| e["RINGWARDEN_ARGV"].as_str().expect("text").to_string())
        .collect();
    assert_eq!(argvs.len(), 2);
    assert!(
        argvs
            .iter()
            .all(|a| a.ends_with("\",\"one\"]") || a.ends_with("\",\"two words\"]"))
    );
    let _ = fs::remove_dir_all(&dir);
}
