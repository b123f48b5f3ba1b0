//! The Prometheus endpoint of the real daemon over real TCP: exact counters against the
//! daemon's own final line, the exposition format, clients that misbehave (garbage, a
//! half request, a client that does not read, more connections than allowed) while
//! events keep flowing, listen errors, the textfile, SIGHUP re-binding, and the alerts
//! in the log. Each test traces a syscall of its own (nothing else on the machine calls
//! sched_get_priority_max or times, so even ring-wide counters are exact).
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::obs::{
    closed_unanswered_after_idle, events_of_tid, exchange, final_books, flood, get, load,
    metrics_port, num, samples, scrape, silent_and_open, split_answer, wait_until,
};
use common::{Daemon, gettid, u};
use std::os::fd::AsRawFd;

const PRODUCED: &str = "ebpf_events_produced_total{ring=\"syscall\"}";
const RECEIVED: &str = "ebpf_events_received_total{ring=\"syscall\"}";
const DROPPED: &str = "ebpf_events_dropped_total{ring=\"syscall\"}";

/// Every metric of the contract with its type.
const METRICS: [(&str, &str); 23] = [
    ("ebpf_events_received_total", "counter"),
    ("ebpf_events_dropped_total", "counter"),
    ("ebpf_events_produced_total", "counter"),
    ("ebpf_events_filtered_total", "counter"),
    ("ebpf_events_rate_limited_total", "counter"),
    ("ebpf_events_untracked_total", "counter"),
    ("ebpf_ring_buffer_size_bytes", "gauge"),
    ("ebpf_ring_memory_bytes", "gauge"),
    ("ebpf_ring_buffer_utilization_percent", "gauge"),
    ("ebpf_loss_rate", "gauge"),
    ("ebpf_ring_buffer_resizes_total", "counter"),
    ("ebpf_read_latency_seconds", "histogram"),
    ("ringwarden_resident_memory_bytes", "gauge"),
    ("ringwarden_sink_errors_total", "counter"),
    ("ringwarden_written_total", "counter"),
    ("ringwarden_expired_events_total", "counter"),
    ("ringwarden_decode_errors_total", "counter"),
    ("ringwarden_context_only_total", "counter"),
    ("ringwarden_programs", "gauge"),
    ("ringwarden_unseen_total", "counter"),
    ("ringwarden_uptime_seconds", "gauge"),
    ("ringwarden_metrics_renders_total", "counter"),
    ("ringwarden_tamper_total", "counter"),
];

/// Breakdowns that appear with their first sample: host-wide counts (compat syscalls,
/// io_uring submissions) that another process may start during the test.
const OPTIONAL: [&str; 3] = [
    "ringwarden_compat_syscalls_total",
    "ringwarden_io_uring_submissions_total",
    "ringwarden_uid_lost_events_total",
];

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[test]
fn scrape_counts_exactly_what_the_daemon_counted() {
    let t0 = Instant::now();
    let d = Daemon::start(
        "metrics-exact",
        &[
            // The syscall ring alone: the samples counted below are its.
            "--no-context",
            "--only",
            "syscall",
            "--syscalls",
            "sched_get_priority_max",
            "--ring-size",
            "syscall=8MiB",
            "--adaptive",
            "off",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let port = metrics_port(&d);
    assert_eq!(num(&scrape(port), PRODUCED), 0, "nothing traced yet");
    let r = load(&[
        "--family",
        "syscall",
        "--syscall",
        "sched_get_priority_max",
        "--events",
        "20000",
        "--threads",
        "2",
    ]);
    assert_eq!(u(&r["generated"]), 20_000);
    wait_until(
        "the daemon received the load",
        Duration::from_secs(20),
        || num(&scrape(port), RECEIVED) == 20_000,
    );

    let a = get(port, "/metrics");
    assert_eq!(a.status, "HTTP/1.1 200 OK");
    assert_eq!(
        a.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(a.header("Connection"), Some("close"));
    assert_eq!(
        a.header("Content-Length"),
        Some(a.body.len().to_string().as_str())
    );
    let s = samples(&a.body);
    assert_eq!(num(&s, PRODUCED), 20_000);
    assert_eq!(num(&s, RECEIVED), 20_000);
    assert_eq!(num(&s, DROPPED), 0);
    assert_eq!(num(&s, "ebpf_events_untracked_total{ring=\"syscall\"}"), 0);
    assert_eq!(
        num(&s, "ringwarden_decode_errors_total{ring=\"syscall\"}"),
        0
    );
    assert_eq!(
        num(&s, "ebpf_ring_buffer_size_bytes{ring=\"syscall\"}"),
        8 << 20
    );
    assert_eq!(s["ebpf_loss_rate{ring=\"syscall\"}"], "0");
    for dir in ["up", "down"] {
        let k = format!("ebpf_ring_buffer_resizes_total{{ring=\"syscall\",direction=\"{dir}\"}}");
        assert_eq!(num(&s, &k), 0);
    }
    assert_eq!(num(&s, "ringwarden_sink_errors_total"), 0);
    // A file output: an archive that rotates nothing, so expires nothing.
    assert_eq!(num(&s, "ringwarden_expired_events_total"), 0);
    let util: f64 = s["ebpf_ring_buffer_utilization_percent{ring=\"syscall\"}"]
        .parse()
        .expect("float");
    assert!((0.0..=100.0).contains(&util), "{util}");
    // Programs: the same as the stats file says (written every second).
    wait_until("the stats file", Duration::from_secs(5), || {
        d.stats.exists()
    });
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&d.stats).expect("stats file"))
            .expect("json");
    let programs = stats["programs"].as_object().expect("programs");
    let attached = programs.values().filter(|p| p["attached"] == true).count() as u64;
    assert_eq!(num(&s, "ringwarden_programs{state=\"attached\"}"), attached);
    assert_eq!(
        num(&s, "ringwarden_programs{state=\"failed\"}")
            + num(&s, "ringwarden_programs{state=\"not_applicable\"}")
            + attached,
        programs.len() as u64
    );
    // Memory and uptime: what /proc and the clock say (two reads: a tolerance).
    let rss = num(&s, "ringwarden_resident_memory_bytes");
    let proc_rss = rss_of(d.pid());
    assert!(rss.abs_diff(proc_rss) < proc_rss / 5, "{rss} vs {proc_rss}");
    let up: f64 = s["ringwarden_uptime_seconds"].parse().expect("float");
    assert!(up > 0.0 && up < t0.elapsed().as_secs_f64(), "{up}");
    // The daemon's own config writes (wake-ups, the filter) are no tampering.
    assert_eq!(num(&s, "ringwarden_tamper_total"), 0);

    // The latency histogram: cumulative, complete, consistent with its sum.
    let mut last = 0;
    let mut first_full = None;
    for le in [
        "0.00001", "0.000025", "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ] {
        let n = num(
            &s,
            &format!("ebpf_read_latency_seconds_bucket{{ring=\"syscall\",le=\"{le}\"}}"),
        );
        assert!(n >= last, "le {le}: {n} < {last}");
        last = n;
        if n == 20_000 && first_full.is_none() {
            first_full = Some(le);
        }
    }
    assert_eq!(last, 20_000, "+Inf holds every event");
    assert_eq!(
        num(&s, "ebpf_read_latency_seconds_count{ring=\"syscall\"}"),
        20_000
    );
    let sum: f64 = s["ebpf_read_latency_seconds_sum{ring=\"syscall\"}"]
        .parse()
        .expect("float");
    let bound: f64 = first_full.expect("a bucket holds all").parse().expect("le");
    assert!(
        sum >= 0.0 && sum / 20_000.0 <= bound,
        "mean {} > {bound}",
        sum / 20_000.0
    );

    // Every metric of the contract: HELP then TYPE, once each, samples after them.
    let lines: Vec<&str> = a.body.lines().collect();
    for (name, ty) in METRICS {
        let help = format!("# HELP {name} ");
        let at: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].starts_with(&help))
            .collect();
        assert_eq!(at.len(), 1, "{name}: one HELP line");
        assert_eq!(lines[at[0] + 1], format!("# TYPE {name} {ty}"));
        assert!(
            lines[at[0] + 2].starts_with(name),
            "{name}: samples follow: {}",
            lines[at[0] + 2]
        );
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("# TYPE ")
                && !OPTIONAL
                    .iter()
                    .any(|o| l.starts_with(&format!("# TYPE {o} "))))
            .count(),
        METRICS.len()
    );

    // HTTP/1.0 gets the same; other paths, methods and garbage get their errors.
    let old = split_answer(&exchange(port, b"GET /metrics HTTP/1.0\r\n\r\n"));
    assert_eq!(old.status, "HTTP/1.1 200 OK");
    assert_eq!(num(&samples(&old.body), PRODUCED), 20_000);
    assert_eq!(get(port, "/").status, "HTTP/1.1 404 Not Found");
    let post = split_answer(&exchange(
        port,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    ));
    assert_eq!(post.status, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(post.header("Allow"), Some("GET"));
    let bad = split_answer(&exchange(port, b"hello there\r\n\r\n"));
    assert_eq!(bad.status, "HTTP/1.1 400 Bad Request");

    let f = d.stop();
    f.assert_exact();
    let books = final_books(&f.stderr, "syscall");
    assert_eq!(books["produced"], num(&s, PRODUCED));
    assert_eq!(books["received"], num(&s, RECEIVED));
    assert_eq!(books["dropped"], num(&s, DROPPED));
    // And the events are the load's, thread by thread.
    let tids = common::load_tids(&r);
    let mine = f
        .of_type("syscall")
        .filter(|e| tids.contains(&u(&e["tid"])) && e["name"] == "sched_get_priority_max")
        .count();
    assert_eq!(mine, 20_000);
}

/// Events of this thread reach the output while the clients misbehave.
struct Flow<'a> {
    d: &'a Daemon,
    tid: u32,
    made: usize,
}

impl Flow<'_> {
    fn check(&mut self, n: usize) {
        common::syscall_n(libc::SYS_sched_getscheduler, n);
        self.made += n;
        let (d, tid, made) = (self.d, self.tid, self.made);
        wait_until("events still flow", Duration::from_secs(10), || {
            events_of_tid(d, tid) == made
        });
    }
}

#[test]
fn misbehaving_clients_cannot_stall_the_loop() {
    let d = Daemon::start(
        "metrics-abuse",
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
    let mut flow = Flow {
        d: &d,
        tid: gettid(),
        made: 0,
    };
    flow.check(1000);

    // Garbage (a TLS hello) is answered 400 at once.
    let bad = split_answer(&exchange(
        port,
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    ));
    assert_eq!(bad.status, "HTTP/1.1 400 Bad Request");
    assert_eq!(bad.body, "bad request: send GET /metrics HTTP/1.1\n");
    // A head over 8 KiB: 431.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while big.len() < 9000 {
        big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let a = split_answer(&exchange(port, &big));
    assert_eq!(a.status, "HTTP/1.1 431 Request Header Fields Too Large");
    // A half request that never ends, and a client that asks and never reads.
    let mut half = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .expect("send");
    let half_sent = Instant::now();
    let mut deaf = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    deaf.write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
        .expect("send");
    // Meanwhile: events flow and a proper scrape is answered.
    flow.check(2000);
    let ok = get(port, "/metrics");
    assert_eq!(ok.status, "HTTP/1.1 200 OK");
    assert!(silent_and_open(half.as_raw_fd()), "the half request waits");
    // The deaf client's answer was kept whole.
    let deaf_answer = {
        let mut b = Vec::new();
        deaf.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        deaf.read_to_end(&mut b).expect("read");
        split_answer(&b)
    };
    assert_eq!(deaf_answer.status, "HTTP/1.1 200 OK");
    assert_eq!(
        deaf_answer.header("Content-Length"),
        Some(deaf_answer.body.len().to_string().as_str())
    );
    // The half request is closed, without an answer, once idle for 5 s.
    closed_unanswered_after_idle(&mut half, half_sent, "no answer to half a request");
    flow.check(2000);

    // 40 connections at once: 16 are held (and closed when idle), 24 told to come back.
    flood(
        || TcpStream::connect(("127.0.0.1", port)).expect("connect"),
        |c| {
            c.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut b = Vec::new();
            c.read_to_end(&mut b).expect("read");
            if b.is_empty() {
                return false;
            }
            let a = split_answer(&b);
            assert_eq!(a.status, "HTTP/1.1 503 Service Unavailable");
            true
        },
        // Events flow while every slot is taken.
        || flow.check(2000),
    );
    // And afterwards all is as before.
    assert_eq!(get(port, "/metrics").status, "HTTP/1.1 200 OK");
    flow.check(1000);

    let (tid, made) = (flow.tid, flow.made);
    let f = d.stop();
    f.assert_exact();
    let mine = f
        .of_type("syscall")
        .filter(|e| u(&e["tid"]) == u64::from(tid))
        .count();
    assert_eq!(mine, made);
}

#[test]
fn listen_errors_are_one_line_before_anything_is_loaded() {
    let base = [
        "--only",
        "cgroup",
        "--control-socket",
        "off",
        "--output",
        "/dev/null",
    ];
    let run = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        common::run_cli(&a)
    };
    let (code, _, err) = run(&["--metrics-listen", "0.0.0.0:9731"]);
    assert_eq!(code, 78, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("0.0.0.0:9731 is not loopback") && err.contains("--metrics-allow-remote"),
        "{err}"
    );
    // A port that is taken: exit 1 (the configuration is fine), the fix named.
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = holder.local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{taken}");
    let (code, _, err) = run(&["--metrics-listen", &addr]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("cannot listen for metrics on {addr}"))
            && err.contains("another process holds the port"),
        "{err}"
    );
    assert!(!err.contains("ready: "), "nothing was loaded: {err}");
    drop(holder);
    // config check refuses a remote address too.
    let dir = common::temp_dir("metrics-config");
    let file = dir.join("remote.toml");
    std::fs::write(&file, "[metrics]\nlisten = \"[::]:9731\"\n").expect("write");
    let (code, _, err) = common::run_cli(&["config", "check", file.to_str().expect("utf-8")]);
    assert_eq!(code, 78, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("[::]:9731 is not loopback"), "{err}");
    std::fs::write(
        &file,
        "[metrics]\nlisten = \"[::]:9731\"\nallow_remote = true\n",
    )
    .expect("write");
    let (code, out, err) = common::run_cli(&["config", "check", file.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("metrics: http://[::]:9731/metrics (remote allowed); control socket: /run/ringwarden/control.sock"),
        "{out}"
    );
    // With allow_remote the daemon serves on every address.
    let d = Daemon::start(
        "metrics-remote",
        &[
            "--only",
            "cgroup",
            "--metrics-listen",
            "0.0.0.0:0",
            "--metrics-allow-remote",
        ],
    );
    assert!(d.log().contains("metrics: serving http://0.0.0.0:"));
    let port = metrics_port(&d);
    assert_eq!(get(port, "/metrics").status, "HTTP/1.1 200 OK");
    d.stop().assert_exact();
    let _ = std::fs::remove_dir_all(&dir);
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn textfile_is_retried_until_its_directory_exists_and_sighup_moves_the_endpoint() {
    let dir = common::temp_dir("metrics-textfile");
    let prom = dir.join("collector").join("ringwarden.prom");
    let cfg = dir.join("ringwarden.toml");
    let write_cfg = |listen: &str| {
        std::fs::write(
            &cfg,
            format!(
                "families = [\"cgroup\"]\n[metrics]\nlisten = \"{listen}\"\ntextfile = \"{}\"\n[control]\nsocket = \"off\"\n",
                prom.display()
            ),
        )
        .expect("write config");
    };
    write_cfg("127.0.0.1:0");
    let d = Daemon::start(
        "metrics-textfile",
        &["--config", cfg.to_str().expect("utf-8")],
    );
    let port = metrics_port(&d);
    // The directory is missing: one warning, however many ticks fail.
    d.wait_for_log("metrics textfile", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(2500));
    let warned = |log: &str| {
        log.lines()
            .filter(|l| l.contains("metrics textfile") && l.contains("retrying every second"))
            .count()
    };
    assert_eq!(warned(&d.log()), 1, "{}", d.log());
    assert!(!prom.exists());
    std::fs::create_dir(prom.parent().expect("dir")).expect("mkdir");
    d.wait_for_log("written again", Duration::from_secs(5));
    let text = std::fs::read_to_string(&prom).expect("textfile");
    let s = samples(&text);
    assert_eq!(
        s.get("ebpf_ring_buffer_size_bytes{ring=\"cgroup\"}")
            .map(String::as_str),
        Some("131072")
    );
    assert!(text.contains("# TYPE ebpf_read_latency_seconds histogram\n"));
    assert!(text.ends_with('\n'));

    // SIGHUP with a new address: served there, no longer on the old one.
    let new_port = free_port();
    write_cfg(&format!("127.0.0.1:{new_port}"));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    d.wait_for_log(
        &format!("metrics: serving http://127.0.0.1:{new_port}/metrics"),
        Duration::from_secs(5),
    );
    assert_eq!(get(new_port, "/metrics").status, "HTTP/1.1 200 OK");
    let refused = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.kind());
    assert_eq!(refused.err(), Some(ErrorKind::ConnectionRefused));

    let f = d.stop();
    f.assert_exact();
    assert_eq!(warned(&f.stderr), 1);
    assert!(!prom.exists(), "a stopped daemon's textfile is removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn alerts_start_once_and_clear_once() {
    let d = Daemon::start(
        "metrics-alerts",
        &[
            "--only",
            "syscall",
            "--syscalls",
            "times",
            "--ring-size",
            "syscall=4KiB",
            "--adaptive",
            "off",
        ],
    );
    // A burst into a one-page ring: most of it is dropped within a second or two.
    common::syscall_n(libc::SYS_times, 200_000);
    d.wait_for_log(
        "alert cleared: ring syscall drop rate",
        Duration::from_secs(20),
    );
    d.wait_for_log(
        "alert cleared: ring syscall loss rate",
        Duration::from_secs(5),
    );
    let f = d.stop();
    f.assert_exact();
    let lines = |needle: &str| {
        f.stderr
            .lines()
            .filter(|l| l.contains(needle))
            .collect::<Vec<_>>()
    };
    for kind in ["drop rate", "loss rate"] {
        let started = lines(&format!("alert: ring syscall {kind} "));
        assert_eq!(started.len(), 1, "{kind}: one start line:\n{}", f.stderr);
        assert!(
            started[0].contains(" ERROR ") && started[0].contains(": critical)"),
            "{}",
            started[0]
        );
        let cleared = lines(&format!("alert cleared: ring syscall {kind} "));
        assert_eq!(cleared.len(), 1, "{kind}: one clear line");
        assert!(cleared[0].contains(" INFO ") && cleared[0].contains("worst critical"));
    }
}
