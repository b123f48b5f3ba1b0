//! The metrics port under abuse by an unprivileged local user (issue 10, attack 9), run
//! for real as uid 65534 against the real daemon: one client holding every connection
//! slot (and re-opening each one the daemon closes) must not turn others' scrapes into
//! 503s, and a scrape flood from several clients must not keep the loop from draining
//! the rings or make it render more than once per tick.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Stdio};
use std::time::Duration;

use common::obs::{events_of_tid, get, metrics_port, num, samples, split_answer, wait_until};
use common::{Daemon, gettid, u};

/// Holds argv[2] connections to port argv[1] that never send a byte, re-opening each one
/// the daemon answers or closes, until stdin closes; then prints "BUSY EOF": how many
/// were told 503 and how many were closed without a word.
const HOLDER: &str = "import socket, sys, select
port, n = int(sys.argv[1]), int(sys.argv[2])
conn = lambda: socket.create_connection(('127.0.0.1', port))
socks = [conn() for _ in range(n)]
print('holding', flush=True)
busy = eof = 0
while True:
    r, _, _ = select.select(socks + [sys.stdin], [], [], 1.0)
    if sys.stdin in r:
        break
    for s in r:
        try:
            b = s.recv(4096)
        except OSError:
            b = b''
        if b.startswith(b'HTTP/1.1 503 '):
            busy += 1
        else:
            eof += 1
        s.close()
        socks[socks.index(s)] = conn()
print(busy, eof, flush=True)
";

/// Scrapes port argv[1] as fast as it can, one connection at a time, until stdin
/// closes; then prints "OK BAD": answers that were a whole 200 (Content-Length equal to
/// the body) and anything else.
const SCRAPER: &str = "import socket, sys, select
port = int(sys.argv[1])
req = ('GET /metrics HTTP/1.1\\r\\nHost: 127.0.0.1:%d\\r\\n\\r\\n' % port).encode()
ok = bad = 0
print('scraping', flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(req)
    out = b''
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    head, _, body = out.partition(b'\\r\\n\\r\\n')
    cl = [l for l in head.split(b'\\r\\n') if l.lower().startswith(b'content-length:')]
    whole = cl and int(cl[0].split(b':')[1]) == len(body) and body.endswith(b'\\n')
    if head.startswith(b'HTTP/1.1 200 ') and whole:
        ok += 1
    else:
        bad += 1
print(ok, bad, flush=True)
";

/// A python client run as uid 65534, once it has said its first line.
struct Client {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Client {
    fn start(script: &str, args: &[String]) -> Client {
        let mut child = common::as_nobody("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the client");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("first line");
        assert!(!line.is_empty(), "the client died before it started");
        Client { child, out }
    }

    /// Closes its stdin (the signal to stop) and returns the two numbers it printed.
    fn finish(mut self) -> (u64, u64) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let mut line = String::new();
        self.out.read_line(&mut line).expect("last line");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "client: {status}");
        let mut n = line
            .split_whitespace()
            .map(|v| v.parse().unwrap_or_else(|e| panic!("{line:?}: {e}")));
        (n.next().expect("first"), n.next().expect("second"))
    }
}

/// Renders so far and the render's uptime, from one scrape.
fn renders_and_uptime(port: u16) -> (u64, f64) {
    let a = get(port, "/metrics");
    assert_eq!(a.status, "HTTP/1.1 200 OK", "{}", a.body);
    let s = samples(&a.body);
    let up = s["ringwarden_uptime_seconds"].parse().expect("uptime");
    (num(&s, "ringwarden_metrics_renders_total"), up)
}

#[test]
fn one_client_holding_every_slot_does_not_turn_scrapes_into_503s() {
    let d = Daemon::start(
        "metrics-holder",
        &[
            "--only",
            "syscall",
            "--syscalls",
            "sched_getscheduler",
            "--adaptive",
            "off",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let port = metrics_port(&d);
    // Twice the slots: the daemon is full whenever a scrape comes, and every connection
    // it takes from the holder is replaced at once.
    let holder = Client::start(HOLDER, &[port.to_string(), "32".to_string()]);
    let mut answers = Vec::new();
    for _ in 0..25 {
        // A slow client: the holder re-opens connections many times before this one
        // has sent its request.
        let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        std::thread::sleep(Duration::from_millis(50));
        c.write_all(format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
            .expect("send");
        let mut raw = Vec::new();
        c.read_to_end(&mut raw).expect("read");
        let a = split_answer(&raw);
        let whole = a.header("Content-Length") == Some(a.body.len().to_string().as_str())
            && a.body
                .contains("\nebpf_events_received_total{ring=\"syscall\"} ")
            && a.body.ends_with('\n');
        answers.push((a.status, whole));
        std::thread::sleep(Duration::from_millis(100));
    }
    // The holder's connect churn (a connect flood) does not keep the loop from draining.
    let tid = gettid();
    common::syscall_n(libc::SYS_sched_getscheduler, 5000);
    wait_until(
        "events flow during the connect churn",
        Duration::from_secs(10),
        || events_of_tid(&d, tid) == 5000,
    );
    let (busy, closed) = holder.finish();
    let good = answers
        .iter()
        .filter(|(s, whole)| s == "HTTP/1.1 200 OK" && *whole)
        .count();
    eprintln!("holder: told busy {busy}, closed silently {closed}");
    assert_eq!(good, 25, "{answers:?}");
    let f = d.stop();
    f.assert_exact();
    let mine = f
        .of_type("syscall")
        .filter(|e| u(&e["tid"]) == u64::from(tid))
        .count();
    assert_eq!(mine, 5000);
}

#[test]
fn a_scrape_flood_neither_stalls_the_drain_nor_renders_more_than_once_a_tick() {
    let d = Daemon::start(
        "metrics-flood",
        &[
            "--only",
            "syscall",
            "--syscalls",
            "sched_getscheduler",
            "--ring-size",
            "syscall=4MiB",
            "--adaptive",
            "off",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let port = metrics_port(&d);
    let (renders0, up0) = renders_and_uptime(port);
    let scrapers: Vec<Client> = (0..4)
        .map(|_| Client::start(SCRAPER, &[port.to_string()]))
        .collect();
    // Events of this thread, made while the flood runs, all reach the output.
    let tid = gettid();
    let mut made = 0;
    for _ in 0..3 {
        common::syscall_n(libc::SYS_sched_getscheduler, 5000);
        made += 5000;
        wait_until(
            "events flow during the flood",
            Duration::from_secs(10),
            || events_of_tid(&d, tid) == made,
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (mut ok, mut bad) = (0, 0);
    for c in scrapers {
        let (o, b) = c.finish();
        ok += o;
        bad += b;
    }
    let (renders1, up1) = renders_and_uptime(port);
    eprintln!(
        "flood: {ok} whole answers, {bad} others, {} renders in {:.1} s",
        renders1 - renders0,
        up1 - up0
    );
    assert_eq!(bad, 0, "every flood request got a whole 200");
    // Ticks come once a second from the start: by a render at uptime U there have been
    // at most floor(U) ticks, and one render before the first.
    assert!(
        renders1 <= up1.floor() as u64 + 1,
        "{renders1} renders in {up1} s"
    );
    let f = d.stop();
    f.assert_exact();
    let mine = f
        .of_type("syscall")
        .filter(|e| u(&e["tid"]) == u64::from(tid))
        .count();
    assert_eq!(mine, made);
}
