//! Attacks on the network family's connect events, run for real as uid 65534: a decoy
//! dup2()ed over the fd while connect() blocks, connects made by TCP Fast Open sends
//! instead of connect(), and many threads blocked in connect() at once. Each must leave
//! the books exact and every connect reported once, describing the socket the kernel
//! connected.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use common::{Daemon, as_nobody, i, u};
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";

/// Python helpers shared by the scripts: a loopback listener, and a wait until a thread
/// sleeps inside connect() (its syscall number in /proc, state S).
const PRELUDE: &str = r#"
import json, os, socket, sys, threading, time
CONNECT_NR = {"x86_64": "42", "aarch64": "203"}[os.uname().machine]
def listener(backlog, host="127.0.0.1", family=socket.AF_INET):
    l = socket.socket(family)
    l.bind((host, 0))
    l.listen(backlog)
    return l
def blocked_in_connect(tid):
    try:
        with open(f"/proc/self/task/{tid}/syscall") as f:
            nr = f.read().split()[0]
        with open(f"/proc/self/task/{tid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return nr == CONNECT_NR and state == "S"
"#;

/// Runs `script` (after PRELUDE) as uid 65534 and parses the JSON line it prints last.
fn run_python(script: &str) -> (u64, Value) {
    let child = as_nobody(PYTHON)
        .args(["-c", &format!("{PRELUDE}\n{script}")])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python as nobody");
    // setpriv execs python in the same process: its pid is the events' pid.
    let pid = u64::from(child.id());
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "python failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().expect("python printed its result");
    (
        pid,
        serde_json::from_str(last).expect("python printed JSON"),
    )
}

/// Connect events of `pid` (uid 65534) to `dport`.
fn connects_to(events: &[Value], pid: u64, dport: u64) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "connect" && u(&e["pid"]) == pid && u(&e["dport"]) == dport)
        .inspect(|e| assert_eq!(u(&e["uid"]), 65534, "{e}"))
        .collect()
}

/// Thread A connect()s a blocking socket to a listener whose accept queue is full, so
/// the SYN is dropped and connect() sleeps until a retransmission finds room; meanwhile
/// the main thread dup2()s a socket connected elsewhere (the decoy) over A's fd and only
/// then makes room. The kernel connects the socket A passed (connect() holds its own
/// reference), so the event must name that socket's ports, not the decoy's.
#[test]
fn dup2_over_a_blocked_connect_reports_the_real_peer() {
    let d = Daemon::start("connect-dup2", &["--only", "network"]);
    let (pid, r) = run_python(
        r#"
real = listener(0)          # backlog 0: the accept queue holds one connection
decoy_l = listener(8)
rport, dport = real.getsockname()[1], decoy_l.getsockname()[1]
filler = socket.create_connection(("127.0.0.1", rport))   # fills the queue
decoy = socket.create_connection(("127.0.0.1", dport))
s = socket.socket()
fd = s.fileno()
out = {}
def a():
    out["tid"] = threading.get_native_id()
    try:
        s.connect(("127.0.0.1", rport))
        out["ret"] = 0
    except OSError as e:
        out["ret"] = -e.errno
t = threading.Thread(target=a)
t.start()
deadline = time.time() + 20
while "tid" not in out or not blocked_in_connect(out["tid"]):
    assert time.time() < deadline, "connect() never blocked"
    time.sleep(0.005)
os.dup2(decoy.fileno(), fd)     # fd now names the decoy
c1, _ = real.accept()           # room for A's next SYN retransmission
t.join(30)
assert not t.is_alive(), "connect() never returned"
c2, peer = real.accept()        # A's connection: its client port
print(json.dumps({"tid": out["tid"], "ret": out["ret"], "fd": fd, "rport": rport,
    "dport": dport, "real_sport": peer[1], "filler_sport": filler.getsockname()[1],
    "decoy_sport": decoy.getsockname()[1], "main_tid": threading.get_native_id()}))
"#,
    );
    std::thread::sleep(Duration::from_millis(200));
    let f = d.stop();
    f.assert_exact();
    assert_eq!(i(&r["ret"]), 0, "A's connect succeeded: {r}");
    let (tid, main_tid) = (u(&r["tid"]), u(&r["main_tid"]));

    // Exactly three connects: the filler's, the decoy's (main thread) and A's.
    let decoys = connects_to(&f.events, pid, u(&r["dport"]));
    assert_eq!(decoys.len(), 1, "{decoys:?}");
    assert_eq!(
        u(&decoys[0]["tid"]),
        main_tid,
        "only the decoy's own connect"
    );
    assert_eq!(decoys[0]["sport"], r["decoy_sport"]);

    let mut real = connects_to(&f.events, pid, u(&r["rport"]));
    assert_eq!(real.len(), 2, "filler and A: {real:?}");
    real.sort_by_key(|e| u(&e["seq"]));
    let (filler, a) = (real[0], real[1]);
    assert_eq!(u(&filler["tid"]), main_tid);
    assert_eq!(filler["sport"], r["filler_sport"]);
    assert_eq!(u(&a["tid"]), tid, "{a}");
    assert_eq!(a["sport"], r["real_sport"], "the socket A connected: {a}");
    assert_eq!(a["daddr"], "127.0.0.1");
    assert_eq!(i(&a["ret"]), 0);
    assert_eq!(a["fd"], r["fd"]);
    assert_eq!(a["via"], "connect");
    assert_eq!(a["daddr_from_args"], false, "the peer is the socket's own");
}

crate::variant_twins! {
    /// sendto/sendmsg with MSG_FASTOPEN connect an unconnected TCP socket without connect();
    /// TCP_FASTOPEN_CONNECT + connect() is a connect. Exactly one connect event each, with
    /// the right ports and `via`; a MSG_FASTOPEN send on the connected socket is none.
    tcp_fast_open_sends_are_connects,
    /// The same from the 5.10 variant, which has no bpf_task_pt_regs: the send's number and
    /// fd are kept at its enter.
    the_510_variant_reports_tcp_fast_open_sends => fast_open
}

fn fast_open(v510: bool) {
    let d = Daemon::builder(if v510 {
        "connect-tfo-510"
    } else {
        "connect-tfo"
    })
    .args(&["--only", "network"])
    .variant_510(v510)
    .start();
    let (pid, r) = run_python(
        r#"
l4 = listener(8)
l4.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 5)
l6 = listener(8, "::1", socket.AF_INET6)
l6.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 5)
p4, p6 = l4.getsockname()[1], l6.getsockname()[1]
res = {"p4": p4, "p6": p6, "tid": threading.get_native_id()}

a = socket.socket()
res["sendto_ret"] = a.sendto(b"hello", socket.MSG_FASTOPEN, ("127.0.0.1", p4))
res["sendto_fd"] = a.fileno()
res["sendto_sport"] = a.getsockname()[1]
try:
    a.sendto(b"x", socket.MSG_FASTOPEN, ("127.0.0.1", p4))
    res["again"] = "sent"
except OSError as e:
    res["again"] = -e.errno

b = socket.socket(socket.AF_INET6)
res["sendmsg_ret"] = b.sendmsg([b"hi"], [], socket.MSG_FASTOPEN, ("::1", p6))
res["sendmsg_fd"] = b.fileno()
res["sendmsg_sport"] = b.getsockname()[1]

c = socket.socket()
c.setsockopt(socket.IPPROTO_TCP, 30, 1)  # TCP_FASTOPEN_CONNECT (linux/tcp.h)
c.connect(("127.0.0.1", p4))
c.send(b"abc")
res["connect_fd"] = c.fileno()
res["connect_sport"] = c.getsockname()[1]

got = []
for l in (l4, l6, l4):
    s, _ = l.accept()
    s.settimeout(10)
    got.append(s.recv(16).decode())
res["got"] = got
print(json.dumps(res))
"#,
    );
    std::thread::sleep(Duration::from_millis(200));
    let f = d.stop();
    f.assert_exact().assert_variant("network", v510);
    assert_eq!(r["got"], serde_json::json!(["hello", "hi", "abc"]), "{r}");
    assert_eq!(i(&r["again"]), -i64::from(libc::EISCONN), "{r}");
    let tid = u(&r["tid"]);

    let mut v4 = connects_to(&f.events, pid, u(&r["p4"]));
    assert_eq!(v4.len(), 2, "the sendto and the connect: {v4:?}");
    // The sendto's first (the variant's records have no seq).
    v4.sort_by_key(|e| e["via"] != "fastopen");
    let v6 = connects_to(&f.events, pid, u(&r["p6"]));
    assert_eq!(v6.len(), 1, "the sendmsg: {v6:?}");
    let want = [
        (v4[0], "fastopen", "sendto", "ipv4", "127.0.0.1"),
        (v6[0], "fastopen", "sendmsg", "ipv6", "::1"),
        (v4[1], "connect", "connect", "ipv4", "127.0.0.1"),
    ];
    for (e, via, what, fam, ip) in want {
        assert_eq!(e["via"], via, "{what}: {e}");
        assert_eq!(e["family"], fam, "{what}: {e}");
        assert_eq!(e["daddr"], ip, "{what}: {e}");
        assert_eq!(e["saddr"], ip, "{what}: {e}");
        assert_eq!(e["sport"], r[format!("{what}_sport")], "{what}: {e}");
        assert_eq!(e["fd"], r[format!("{what}_fd")], "{what}: {e}");
        assert_eq!(u(&e["tid"]), tid, "{what}: {e}");
        assert_eq!(e["daddr_from_args"], false, "{what}: {e}");
        let ret = if what == "connect" {
            0
        } else {
            i(&r[format!("{what}_ret")])
        };
        assert_eq!(i(&e["ret"]), ret, "{what}: {e}");
    }
}

/// THREADS threads of uid 65534 sit in connect() at once (a listener with a full accept
/// queue drops their SYNs) while the test connects as root: the victim's connects are
/// reported exactly, nothing is `untracked`, and once the listener goes away every one
/// of the attacker's connects is reported too (ECONNREFUSED at its next retransmission).
/// The in-flight state is per thread, so no number of threads fills a table; this many
/// shows the bookkeeping is exact under load without exhausting the machine's pids.
#[test]
fn many_threads_blocked_in_connect_blind_nothing() {
    const THREADS: usize = 1500;
    const VICTIM: usize = 5;
    let d = Daemon::start(
        "connect-many",
        &["--only", "network", "--ring-size", "network=4MiB"],
    );
    let mut child = as_nobody(PYTHON)
        .args([
            "-c",
            &format!(
                "{PRELUDE}\nTHREADS = {THREADS}\n{}",
                r#"
threading.stack_size(128 * 1024)
real = listener(0)
port = real.getsockname()[1]
filler = socket.create_connection(("127.0.0.1", port))
rets = []
lock = threading.Lock()
def a():
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
        r = 0
    except OSError as e:
        r = -e.errno
    with lock:
        rets.append(r)
ts = [threading.Thread(target=a) for _ in range(THREADS)]
for t in ts:
    t.start()
deadline = time.time() + 120
while True:
    n = sum(blocked_in_connect(t.native_id) for t in ts)
    if n == THREADS:
        break
    assert time.time() < deadline, f"only {n} threads blocked"
    time.sleep(0.2)
print(json.dumps({"port": port}), flush=True)
sys.stdin.readline()
real.close()        # the next SYN retransmission of each gets a reset
for t in ts:
    t.join(60)
print(json.dumps({"port": port, "rets": sorted(set(rets)), "n": len(rets)}), flush=True)
"#
            ),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python as nobody");
    let pid = u64::from(child.id());
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready line");
    let ready: Value = serde_json::from_str(&line).expect("ready JSON");

    // The victim, while all those threads are blocked.
    let victim = TcpListener::bind("127.0.0.1:0").expect("bind");
    let vport = victim.local_addr().expect("addr").port();
    let mut ports = Vec::new();
    for _ in 0..VICTIM {
        let c = TcpStream::connect(("127.0.0.1", vport)).expect("victim connect");
        ports.push(c.local_addr().expect("addr").port());
        drop(victim.accept().expect("accept"));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin).expect("release");
    line.clear();
    out.read_line(&mut line).expect("result line");
    let r: Value = serde_json::from_str(&line).expect("result JSON");
    assert!(child.wait().expect("wait").success());
    std::thread::sleep(Duration::from_millis(200));
    let f = d.stop();
    f.assert_exact();
    assert_eq!(u(&r["n"]), THREADS as u64, "{r}");
    assert_eq!(
        r["rets"],
        serde_json::json!([-libc::ECONNREFUSED]),
        "every blocked connect refused: {r}"
    );

    let me = u64::from(std::process::id());
    let mine: Vec<u64> = f
        .of_type("connect")
        .filter(|e| u(&e["pid"]) == me && u(&e["dport"]) == u64::from(vport))
        .map(|e| u(&e["sport"]))
        .collect();
    let mut want: Vec<u64> = ports.iter().map(|p| u64::from(*p)).collect();
    let mut got = mine.clone();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "each victim connect once");

    let theirs = connects_to(&f.events, pid, u(&ready["port"]));
    // The filler plus every blocked thread.
    assert_eq!(theirs.len(), THREADS + 1);
    let refused = theirs
        .iter()
        .filter(|e| i(&e["ret"]) == -i64::from(libc::ECONNREFUSED))
        .count();
    assert_eq!(refused, THREADS);
    assert_eq!(f.ring("network")["untracked"], 0);
}

/// An unprivileged user holding more open connections than the owner table of accepted
/// sockets has room for (16,384) cannot make the close of another user's outgoing
/// connection anonymous: a connected socket's owner lives in the socket's own storage.
/// Two processes of uid 65534 each hold CONNS loopback connections (both ends theirs)
/// while the victim's connection, made before them, closes.
#[test]
fn a_full_owner_table_keeps_connect_owners() {
    const CONNS: usize = 8300;
    let victim_l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let vport = victim_l.local_addr().expect("addr").port();
    // Room for the whole flood (2 * 2 * CONNS records), so that none of it is dropped
    // even when the machine is too busy for the daemon to keep up.
    let d = Daemon::start(
        "connect-owners",
        &["--only", "network", "--ring-size", "network=16MiB"],
    );
    let client = TcpStream::connect(("127.0.0.1", vport)).expect("victim connect");
    let (server, _) = victim_l.accept().expect("accept");
    let cport = client.local_addr().expect("addr").port();

    let mut flooders = Vec::new();
    for _ in 0..2 {
        let mut child = as_nobody(PYTHON)
            .args([
                "-c",
                &format!(
                    "{PRELUDE}\nCONNS = {CONNS}\n{}",
                    r#"
l = listener(4096)
addr = l.getsockname()
held = []
for _ in range(CONNS):
    held.append(socket.create_connection(addr))
    held.append(l.accept()[0])
print(json.dumps({"held": len(held)}), flush=True)
sys.stdin.readline()
"#
                ),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn python as nobody");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("held line");
        let r: Value = serde_json::from_str(&line).expect("held JSON");
        assert_eq!(u(&r["held"]), 2 * CONNS as u64);
        flooders.push(child);
    }

    // An orderly close of the victim's connection, now that the table has overflowed.
    drop(client);
    drop(server);
    let me = u64::from(std::process::id());
    let is_victim_close = |e: &Value| {
        e["type"] == "close"
            && ((u(&e["sport"]) == u64::from(cport) && u(&e["dport"]) == u64::from(vport))
                || (u(&e["dport"]) == u64::from(cport) && u(&e["sport"]) == u64::from(vport)))
    };
    let t = std::time::Instant::now();
    while d.events_now().iter().filter(|e| is_victim_close(e)).count() < 2
        && t.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let f = d.stop();
    for mut child in flooders {
        drop(child.stdin.take());
        assert!(child.wait().expect("wait").success());
    }
    f.assert_exact();
    let closes: Vec<&Value> = f.events.iter().filter(|e| is_victim_close(e)).collect();
    assert_eq!(closes.len(), 2, "{closes:?}; {}", f.ring("network"));
    let client_side: Vec<&&Value> = closes
        .iter()
        .filter(|e| u(&e["sport"]) == u64::from(cport))
        .collect();
    assert_eq!(client_side.len(), 1);
    let e = client_side[0];
    assert_eq!(e["owner_known"], true, "{e}");
    assert_eq!(u(&e["pid"]), me, "{e}");
    assert_eq!(u(&e["tid"]), u64::from(common::gettid()), "{e}");
    assert_eq!(u(&e["uid"]), 0, "{e}");
}

/// Reads the daemon's map `name` (the kernel keeps 15 bytes of the name): its entries.
fn entries(d: &Daemon, name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    use libbpf_rs::{MapCore as _, MapFlags};
    let m = common::maps::map(&common::maps::daemon_maps(d.pid()), name);
    m.keys()
        .filter_map(|k| {
            let v = m.lookup(&k, MapFlags::ANY).ok().flatten()?;
            Some((k, v))
        })
        .collect()
}

/// The 5.10 variant's tables hold what is in flight and nothing after: a thread's entry
/// from its call's enter to its exit, a connecting socket's owner from SYN_SENT to
/// TCP_CLOSE (task and socket storage, which the full object uses, go with their task and
/// socket by themselves). A process of uid 65534 makes 20 connections, 5 Fast Open
/// connections and 5 refused connects, all closed; then, holding one connection open and
/// one thread blocked in connect(), it waits while the test reads the tables: exactly
/// those 2 sockets' owners and that thread's entry. Once it has exited, nothing of it.
#[test]
fn the_510_variant_keeps_only_what_is_in_flight() {
    let d = Daemon::builder("connect-inflight-510")
        .args(&["--only", "network"])
        .variant_510(true)
        .start();
    let mut child = as_nobody(PYTHON)
        .args([
            "-c",
            &format!(
                "{PRELUDE}\n{}",
                r#"
def orderly(first, second):
    first.shutdown(socket.SHUT_WR)
    while second.recv(4096):
        pass
    second.close()
    while first.recv(4096):
        pass
    first.close()
l = listener(64)
l.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 5)
port = l.getsockname()[1]
for _ in range(20):
    c = socket.create_connection(("127.0.0.1", port))
    orderly(c, l.accept()[0])
for _ in range(5):
    c = socket.socket()
    c.sendto(b"x", socket.MSG_FASTOPEN, ("127.0.0.1", port))
    orderly(c, l.accept()[0])
b = socket.socket()
b.bind(("127.0.0.1", 0))
rport = b.getsockname()[1]
for _ in range(5):
    try:
        socket.create_connection(("127.0.0.1", rport))
    except ConnectionRefusedError:
        pass
real = listener(0)
hport = real.getsockname()[1]
held = socket.create_connection(("127.0.0.1", hport))   # fills the accept queue
s = socket.socket()
out = {}
def a():
    out["tid"] = threading.get_native_id()
    try:
        s.connect(("127.0.0.1", hport))
    except OSError:
        pass
threading.Thread(target=a, daemon=True).start()
deadline = time.time() + 20
while "tid" not in out or not blocked_in_connect(out["tid"]):
    assert time.time() < deadline, "connect() never blocked"
    time.sleep(0.005)
print(json.dumps({"port": port, "rport": rport, "hport": hport, "blocked": out["tid"]}),
      flush=True)
sys.stdin.readline()
os._exit(0)
"#
            ),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python as nobody");
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready line");
    let r: Value = serde_json::from_str(&line).expect("ready JSON");
    let blocked = u(&r["blocked"]) as u32;
    let tids = [pid, blocked];
    // net_owner: the cgroup id, then the pid.
    let owned_by_it = |d: &Daemon| {
        entries(d, "network_sk_owne")
            .iter()
            .filter(|(_, v)| v.get(8..12) == Some(&pid.to_ne_bytes()[..]))
            .count()
    };
    let its_threads = |d: &Daemon| -> Vec<u32> {
        // A variant thread entry's value ends with its thread's tid, 8 bytes (RW_THREAD_MAP).
        entries(d, "network_infligh")
            .iter()
            .filter_map(|(_, v)| {
                let at = v.len().checked_sub(8)?;
                Some(u32::from_ne_bytes(v.get(at..at + 4)?.try_into().ok()?))
            })
            .filter(|t| tids.contains(t))
            .collect()
    };
    assert_eq!(
        owned_by_it(&d),
        2,
        "the held and the blocked sockets' owners"
    );
    assert_eq!(
        its_threads(&d),
        [blocked],
        "the blocked thread's entry only"
    );

    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin).expect("release");
    assert!(child.wait().expect("wait").success());
    // The sockets' last transitions may run a moment after the exit (softirq).
    let t = std::time::Instant::now();
    while (owned_by_it(&d), its_threads(&d).len()) != (0, 0)
        && t.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(owned_by_it(&d), 0, "owners of its sockets left behind");
    assert_eq!(
        its_threads(&d),
        Vec::<u32>::new(),
        "entries of its threads left behind"
    );
    let f = d.stop();
    f.assert_exact().assert_variant("network", true);
    let pid = u64::from(pid);
    let to = |port: &str| connects_to(&f.events, pid, u(&r[port]));
    let (mut via_connect, mut via_fastopen) = (0, 0);
    for e in to("port") {
        // A Fast Open connect's ret is its send's: the one byte.
        let fastopen = e["via"] == "fastopen";
        assert_eq!(i(&e["ret"]), i64::from(fastopen), "{e}");
        if fastopen {
            via_fastopen += 1;
        } else {
            via_connect += 1;
        }
    }
    assert_eq!((via_connect, via_fastopen), (20, 5));
    let refused = to("rport");
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|e| i(&e["ret"]) == -i64::from(libc::ECONNREFUSED)),
        "{refused:?}"
    );
    // The held connection and the blocked one (its connect interrupted by the exit).
    assert_eq!(to("hport").len(), 2);
}
