//! Helpers for the metrics and status tests: real TCP and Unix connections to the daemon.
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Daemon;

/// The port the daemon logged ("metrics: serving http://127.0.0.1:PORT/metrics").
pub fn metrics_port(d: &Daemon) -> u16 {
    d.wait_for_log("metrics: serving http://", Duration::from_secs(5));
    let log = d.log();
    let rest = log
        .split("metrics: serving http://")
        .nth(1)
        .expect("serving line");
    let addr = rest.split("/metrics").next().expect("address");
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr:?}"))
}

/// Sends `request` as is and reads the whole answer (the daemon closes after it).
pub fn exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    c.write_all(request).expect("send");
    let mut out = Vec::new();
    c.read_to_end(&mut out).expect("read the answer");
    out
}

/// An HTTP answer split into status line, headers and body.
pub struct Answer {
    pub status: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn split_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8(raw.to_vec()).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.split("\r\n");
    let status = lines.next().expect("status line").to_string();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(": ").expect("header");
            (n.to_string(), v.to_string())
        })
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

pub fn get(port: u16, path: &str) -> Answer {
    split_answer(&exchange(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
    ))
}

/// A scrape's samples: `name{labels}` -> value text.
pub fn samples(body: &str) -> HashMap<String, String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample");
            (k.to_string(), v.to_string())
        })
        .collect()
}

pub fn num(s: &HashMap<String, String>, key: &str) -> u64 {
    s.get(key)
        .unwrap_or_else(|| panic!("no sample {key}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

pub fn scrape(port: u16) -> HashMap<String, String> {
    let a = get(port, "/metrics");
    assert_eq!(a.status, "HTTP/1.1 200 OK", "{}", a.body);
    samples(&a.body)
}

/// The status document straight from the socket.
pub fn status(sock: &Path) -> Value {
    let mut c = UnixStream::connect(sock).expect("connect to the control socket");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    c.write_all(b"status\n").expect("send");
    let mut text = String::new();
    c.read_to_string(&mut text).expect("read");
    assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Runs ringwarden-load to completion and returns its JSON line.
pub fn load(args: &[&str]) -> Value {
    let o = Command::new(super::load_bin())
        .args(args)
        .arg("--quiet")
        .output()
        .expect("run ringwarden-load");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "ringwarden-load {args:?}: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad JSON {stdout:?}: {e}"))
}

/// The numbers of the daemon's `final ring NAME ...` line.
pub fn final_books(log: &str, ring: &str) -> HashMap<String, u64> {
    let prefix = format!("final ring {ring} ");
    let line = log
        .lines()
        .find_map(|l| l.split_once(&prefix).map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no final line for {ring}:\n{log}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// Polls `f` until it holds, for at most `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Events in the daemon's output made by thread `tid`.
pub fn events_of_tid(d: &Daemon, tid: u32) -> usize {
    let needle = format!("\"tid\":{tid},");
    d.count_lines_with(&needle)
}

/// Whether the peer of `fd` has neither sent anything nor closed (a peek: nothing is
/// consumed).
pub fn silent_and_open(fd: std::os::fd::RawFd) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: a one-byte buffer we own; MSG_PEEK | MSG_DONTWAIT never blocks or consumes.
    let n = unsafe {
        libc::recv(
            fd,
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

/// A client connection of either server (TCP metrics, Unix control socket).
pub trait Conn: Read + std::os::fd::AsRawFd {
    fn set_timeout(&self, d: Duration);
}
impl Conn for TcpStream {
    fn set_timeout(&self, d: Duration) {
        self.set_read_timeout(Some(d)).expect("timeout");
    }
}
impl Conn for UnixStream {
    fn set_timeout(&self, d: Duration) {
        self.set_read_timeout(Some(d)).expect("timeout");
    }
}

/// A half request sent at `sent` is closed without an answer once idle for 5 s.
pub fn closed_unanswered_after_idle(c: &mut impl Conn, sent: Instant, what: &str) {
    c.set_timeout(Duration::from_secs(15));
    let mut b = Vec::new();
    c.read_to_end(&mut b).expect("closed");
    assert_eq!(b, b"", "{what}");
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(4900) && waited < Duration::from_secs(12),
        "closed after {waited:?}"
    );
}

/// 40 connections at once against a server that holds 16: exactly 24 are told to come
/// back (`told_busy` reads one that spoke, checks its answer, and says whether there was
/// one) and the 16 held are closed when idle; `meanwhile` runs while every slot is taken.
pub fn flood<C: Conn>(
    connect: impl Fn() -> C,
    mut told_busy: impl FnMut(&mut C) -> bool,
    meanwhile: impl FnOnce(),
) {
    let mut conns: Vec<C> = (0..40).map(|_| connect()).collect();
    let mut busy = 0;
    let mut told = vec![false; conns.len()];
    wait_until("24 busy answers", Duration::from_secs(5), || {
        for (i, c) in conns.iter_mut().enumerate() {
            if !told[i] && !silent_and_open(c.as_raw_fd()) {
                told[i] = true;
                if told_busy(c) {
                    busy += 1;
                }
            }
        }
        busy == 24
    });
    meanwhile();
    let mut held = 0;
    for (i, c) in conns.iter_mut().enumerate() {
        if told[i] {
            continue;
        }
        c.set_timeout(Duration::from_secs(15));
        let mut b = Vec::new();
        c.read_to_end(&mut b).expect("closed when idle");
        assert_eq!(b, b"");
        held += 1;
    }
    assert_eq!((busy, held), (24, 16));
}
