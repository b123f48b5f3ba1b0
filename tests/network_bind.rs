//! Network family bind and listen against the real kernel: TCP and UDP over 127.0.0.1 and
//! [::1], as root and as uid 65534 -> exactly one event per call, in order, whose local
//! end is the socket's as the kernel bound it (a port 0 bind and a listen that binds on
//! its own say the port the kernel chose), and failed calls with their errno and, for a
//! bind, the address asked for. And the attacks as uid 65534 (tests/attacks/fd_race.c):
//! binds, listens and connects raced by another thread's dup2() name the socket the kernel
//! worked on, connects refused before their SYN included; and failed binds and connects
//! whose sockaddr another thread rewrites during the call report the address the kernel
//! copied, not the one the caller's memory held a moment before.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::{Daemon, as_nobody, u};
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";

/// One test of this file at a time: each daemon sees every test's calls, and a race
/// spins a CPU and makes ~40,000 events in a second or two; in parallel, on two CPUs, the
/// daemons of the others fell behind and dropped (counted, but then not every call is an
/// event).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Makes the calls and prints, as its last line, the events they must give: per socket
/// family and type, ROUNDS rounds of a port 0 bind, a listen (EOPNOTSUPP for UDP) and a
/// bind of a second socket to the same port (EADDRINUSE); then a listen on an unbound TCP
/// socket, and for a user without CAP_NET_BIND_SERVICE a bind to port 80 (EACCES).
const SCRIPT: &str = r#"
import errno, json, os, socket
ROUNDS = 3
out, keep = [], []
def call(f):
    try:
        f()
        return 0
    except OSError as e:
        return -e.errno
for fam, host, name in ((socket.AF_INET, "127.0.0.1", "ipv4"), (socket.AF_INET6, "::1", "ipv6")):
    for typ, proto in ((socket.SOCK_STREAM, "tcp"), (socket.SOCK_DGRAM, "udp")):
        for k in range(ROUNDS):
            s = socket.socket(fam, typ)
            keep.append(s)
            s.bind((host, 0))
            port = s.getsockname()[1]
            base = {"family": name, "protocol": proto, "saddr": host, "sport": port}
            out.append(dict(base, type="bind", fd=s.fileno(), ret=0, saddr_from_args=False))
            ret = call(lambda: s.listen(5 + k))
            out.append(dict(base, type="listen", fd=s.fileno(), ret=ret,
                            backlog=5 + k if ret == 0 else 0))
            t = socket.socket(fam, typ)
            keep.append(t)
            ret = call(lambda: t.bind((host, port)))
            assert ret == -errno.EADDRINUSE, ret
            out.append(dict(base, type="bind", fd=t.fileno(), ret=ret, saddr_from_args=True))
s = socket.socket()
keep.append(s)
s.listen(2)
out.append({"type": "listen", "family": "ipv4", "protocol": "tcp", "saddr": "0.0.0.0",
            "sport": s.getsockname()[1], "fd": s.fileno(), "ret": 0, "backlog": 2})
if os.getuid() != 0:
    s = socket.socket()
    keep.append(s)
    ret = call(lambda: s.bind(("127.0.0.1", 80)))
    assert ret == -errno.EACCES, ret
    out.append({"type": "bind", "family": "ipv4", "protocol": "tcp", "saddr": "127.0.0.1",
                "sport": 80, "fd": s.fileno(), "ret": ret, "saddr_from_args": True})
print(json.dumps(out))
"#;

/// Runs SCRIPT through `cmd`; returns its pid (setpriv execs python in the same process)
/// and the events it expects.
fn run(mut cmd: Command) -> (u64, Vec<Value>) {
    let child = cmd
        .args(["-c", SCRIPT])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let pid = u64::from(child.id());
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "python failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().expect("python printed its result");
    let want: Vec<Value> = serde_json::from_str(last).expect("python printed JSON");
    (pid, want)
}

/// The fields `want` names, taken from `e`.
fn picked(e: &Value, want: &Value) -> Value {
    let keys = want.as_object().expect("an object");
    Value::Object(keys.keys().map(|k| (k.clone(), e[k].clone())).collect())
}

crate::variant_twins! {
    every_bind_and_listen_is_one_event_with_the_kernels_local_end,
    /// The same from the 5.10 variant, whose per-thread entries are deleted at each exit.
    the_510_variant_gives_every_bind_and_listen => binds_and_listens
}

fn binds_and_listens(v510: bool) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::builder(if v510 {
        "network-bind-510"
    } else {
        "network-bind"
    })
    .args(&["--only", "network"])
    .variant_510(v510)
    .start();
    let root = run(Command::new(PYTHON));
    let nobody = run(as_nobody(PYTHON));
    std::thread::sleep(Duration::from_millis(200));
    let f = d.stop();
    f.assert_exact().assert_variant("network", v510);
    for (who, (pid, want)) in [("root", root), ("nobody", nobody)] {
        let got: Vec<&Value> = f
            .events
            .iter()
            .filter(|e| u(&e["pid"]) == pid && (e["type"] == "bind" || e["type"] == "listen"))
            .collect();
        // 2 families x 2 types x 3 rounds x 3 calls, the unbound listen, and for nobody
        // the privileged port.
        let n = 2 * 2 * 3 * 3 + 1 + usize::from(who == "nobody");
        assert_eq!(want.len(), n, "{who}: the script's own count");
        assert_eq!(got.len(), n, "{who}: events {got:#?}");
        for (e, w) in got.iter().zip(&want) {
            assert_eq!(picked(e, w), *w, "{who}: event {e}");
            assert!(e.get("daddr").is_none(), "{who}: no peer on {e}");
            let uid = if who == "root" { 0 } else { 65534 };
            assert_eq!(u(&e["uid"]), uid, "{who}: {e}");
        }
    }
}

/// tests/attacks/fd_race.c, compiled once for every race of this file.
fn fd_race() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = common::temp_dir("fd-race").join("fd_race");
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/attacks/fd_race.c");
        let built = Command::new("clang")
            .args(["-O2", "-pthread", "-o"])
            .arg(&bin)
            .arg(src)
            .status()
            .expect("run clang (scripts/prereqs.sh installs it)");
        assert!(built.success(), "clang {src}");
        bin
    })
}

const ROUNDS: usize = 10_000;

/// What one run of fd_race gave: the numbers of its first line, a line of numbers a
/// round, and the events of type `ty` of its racing thread on the raced fd (the first
/// line says the thread first and the fd last), in order.
struct Race {
    head: Vec<i64>,
    rounds: Vec<Vec<i64>>,
    events: Vec<Value>,
}

impl Race {
    /// Asserts that every round gave one event.
    fn one_a_round(&self, call: &str) {
        assert_eq!(self.events.len(), ROUNDS, "one {call} event a round");
    }
}

/// Runs fd_race `call` as uid 65534 under a network-only daemon, ROUNDS rounds.
fn run_race(call: &str, ty: &str) -> Race {
    // A ring that holds the whole race (a connect round is four events: connect, accept
    // and two closes) even if the daemon gets no CPU meanwhile.
    let d = Daemon::start(
        &format!("network-{call}-race"),
        &[
            "--only",
            "network",
            "--ring-size",
            "network=32MiB",
            "--adaptive",
            "off",
        ],
    );
    let child = as_nobody(fd_race().to_str().expect("utf-8 path"))
        .args([&ROUNDS.to_string(), call])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the race as nobody");
    let pid = u64::from(child.id());
    let out = child.wait_with_output().expect("race output");
    assert!(out.status.success(), "the race failed: {out:?}");
    std::thread::sleep(Duration::from_millis(200));
    let f = d.stop();
    f.assert_exact();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().map(|l| {
        l.split(' ')
            .map(|w| w.parse::<i64>().expect("a number"))
            .collect::<Vec<_>>()
    });
    let head = lines.next().expect("the first line");
    let (tid, fd) = (head[0] as u64, head[head.len() - 1]);
    let rounds: Vec<Vec<i64>> = lines.collect();
    assert_eq!(rounds.len(), ROUNDS, "one line a round");
    let mut events: Vec<Value> = f
        .events
        .into_iter()
        .filter(|e| {
            e["type"] == ty
                && u(&e["pid"]) == pid
                && u(&e["tid"]) == tid
                && e["fd"].as_i64() == Some(fd)
        })
        .collect();
    events.sort_by_key(|e| u(&e["seq"]));
    Race {
        head,
        rounds,
        events,
    }
}

/// The dup2() race for `call`: checks every event of the racing thread against the
/// socket the kernel bound (or connected) that round: the event must name that socket's
/// port, never the other's (unbound: 0).
fn race(call: &str, protocol: &str) {
    // bind_noport: a bind with IP_BIND_ADDRESS_NO_PORT, no port until the socket is used.
    let (ty, noport) = match call {
        "bind_noport" => ("bind", true),
        c => (c, false),
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = run_race(call, ty);
    r.one_a_round(call);
    let fd = r.head[1];
    let mut decoy = 0;
    for (e, round) in r.events.iter().zip(&r.rounds) {
        let (ret, t, dport) = (round[0], round[1], round[2]);
        assert_eq!(ret, 0, "every round's {call} succeeds: {round:?}");
        // Exactly one of the two has a port: the one the kernel bound.
        assert!((t == 0) != (dport == 0), "one socket bound: {round:?}");
        decoy += usize::from(dport != 0);
        if noport {
            // The socket bound to 127.0.0.1 (the other has no address): still no port.
            assert_eq!(
                (e["saddr"].as_str(), e["sport"].as_i64()),
                (Some("127.0.0.1"), Some(0)),
                "the kernel's socket: {e} {round:?}"
            );
        } else {
            assert_eq!(
                e["sport"].as_i64(),
                Some(t.max(dport)),
                "the kernel's socket: {e} {round:?}"
            );
        }
        assert_eq!(e["fd"].as_i64(), Some(fd), "{e}");
        assert_eq!(e["protocol"], protocol, "{e}");
    }
    // How often the decoy was the kernel's socket (named at the entry, or swapped in just
    // after it): shown, not asserted; it depends on the machine.
    eprintln!("{call}: the decoy was the kernel's socket in {decoy} of {ROUNDS} rounds");
}
#[test]
fn a_bind_raced_by_dup2_names_the_socket_the_kernel_bound() {
    race("bind", "udp");
}

#[test]
fn a_bind_without_a_port_raced_by_dup2_names_the_socket_the_kernel_bound() {
    race("bind_noport", "udp");
}

#[test]
fn a_listen_raced_by_dup2_names_the_socket_the_kernel_listens_on() {
    race("listen", "tcp");
}

#[test]
fn a_connect_raced_by_dup2_names_the_socket_the_kernel_connected() {
    race("connect", "tcp");
}

/// A connect that fails before any SYN (ENETUNREACH: an IPV6_V6ONLY socket asked for an
/// IPv4-mapped peer) names the kernel's socket too: only the pre-connect hook sees it.
#[test]
fn a_connect_refused_before_its_syn_raced_by_dup2_names_the_kernels_socket() {
    const ENETUNREACH: i64 = 101;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = run_race("connect_v6only", "connect");
    r.one_a_round("connect_v6only");
    let fd = r.head[1];
    let mut decoy = 0;
    for (e, round) in r.events.iter().zip(&r.rounds) {
        let (ret, t, d) = (round[0], round[1], round[2]);
        // T (IPV6_V6ONLY) refuses the mapped address; D connects.
        let kernels = match ret {
            0 => d,
            r if r == -ENETUNREACH => t,
            _ => panic!("a connect that neither refused nor connected: {round:?}"),
        };
        decoy += usize::from(ret == 0);
        assert_eq!(e["ret"].as_i64(), Some(ret), "{e} {round:?}");
        assert_eq!(
            e["sport"].as_i64(),
            Some(kernels),
            "the kernel's socket: {e} {round:?}"
        );
        assert_eq!(
            (e["family"].as_str(), e["fd"].as_i64()),
            (Some("ipv6"), Some(fd)),
            "{e}"
        );
        if ret != 0 {
            assert_eq!(e["daddr"], "::ffff:127.0.0.1", "{e}");
            assert_eq!(e["daddr_from_args"], true, "{e}");
        }
    }
    eprintln!("connect_v6only: the decoy was the kernel's socket in {decoy} of {ROUNDS} rounds");
}

/// A failed bind reports the address the kernel was asked for, not what the caller's
/// memory said a moment before: another thread flips the sockaddr between port 0
/// (bound) and a port another socket holds (EADDRINUSE) while the bind runs.
#[test]
fn a_bind_whose_sockaddr_is_rewritten_reports_the_address_the_kernel_used() {
    const EADDRINUSE: i64 = 98;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = run_race("bind_addr", "bind");
    r.one_a_round("bind_addr");
    let held = r.head[1];
    let mut failed = 0;
    for (e, round) in r.events.iter().zip(&r.rounds) {
        let (ret, port) = (round[0], round[1]);
        assert_eq!(e["ret"].as_i64(), Some(ret), "{e} {round:?}");
        assert_eq!(e["saddr"], "127.0.0.1", "{e}");
        if ret == 0 {
            assert!(port > 0, "bound: {round:?}");
            assert_eq!(e["sport"].as_i64(), Some(port), "{e} {round:?}");
            assert_eq!(e["saddr_from_args"], false, "{e}");
        } else {
            assert_eq!(ret, -EADDRINUSE, "{round:?}");
            failed += 1;
            assert_eq!(
                (e["sport"].as_i64(), &e["saddr_from_args"]),
                (Some(held), &Value::Bool(true)),
                "the port the kernel was asked for: {e} {round:?}"
            );
        }
    }
    eprintln!("bind_addr: {failed} of {ROUNDS} binds asked for the held port");
}

/// A failed connect reports the peer the kernel was asked for: another thread flips the
/// sockaddr between a listener (connects), a closed port (ECONNREFUSED, after the SYN)
/// and a multicast address (ENETUNREACH, before any SYN) while the connect runs.
#[test]
fn a_connect_whose_sockaddr_is_rewritten_reports_the_peer_the_kernel_used() {
    const ECONNREFUSED: i64 = 111;
    const ENETUNREACH: i64 = 101;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = run_race("connect_addr", "connect");
    r.one_a_round("connect_addr");
    let (listening, closed) = (r.head[1], r.head[2]);
    let mut outcomes = [0usize; 3];
    for (e, round) in r.events.iter().zip(&r.rounds) {
        let ret = round[0];
        assert_eq!(e["ret"].as_i64(), Some(ret), "{e} {round:?}");
        let (daddr, dport) = (e["daddr"].as_str(), e["dport"].as_i64());
        match ret {
            0 => {
                outcomes[0] += 1;
                assert_eq!((daddr, dport), (Some("127.0.0.1"), Some(listening)), "{e}");
            }
            r if r == -ECONNREFUSED => {
                outcomes[1] += 1;
                assert_eq!(
                    (daddr, dport, &e["daddr_from_args"]),
                    (Some("127.0.0.1"), Some(closed), &Value::Bool(true)),
                    "the peer the kernel was asked for: {e} {round:?}"
                );
            }
            r if r == -ENETUNREACH => {
                outcomes[2] += 1;
                // The port may be either: the kernel copies the sockaddr in pieces of
                // its own choosing, so a copy may mix two of the writer's values.
                assert_eq!(
                    (daddr, &e["daddr_from_args"]),
                    (Some("224.0.0.1"), &Value::Bool(true)),
                    "the peer the kernel was asked for: {e} {round:?}"
                );
            }
            _ => panic!("an outcome none of the addresses gives: {round:?}"),
        }
    }
    eprintln!("connect_addr: connected, refused, unreachable: {outcomes:?} of {ROUNDS}");
}

/// connect(AF_UNSPEC) is no connection, and a real connect is one, whatever the caller's
/// memory said when the entry read it: another thread flips the sockaddr's family
/// between AF_INET (the listener) and AF_UNSPEC while the connect runs. Exactly the
/// rounds whose socket got a peer are connect events.
#[test]
fn a_connect_whose_family_is_rewritten_is_reported_as_the_kernel_took_it() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = run_race("connect_unspec", "connect");
    let listening = r.head[1];
    let connected = r.rounds.iter().filter(|round| round[1] == 1).count();
    for round in &r.rounds {
        assert_eq!(
            round[0], 0,
            "a connect to the listener or a disconnect: {round:?}"
        );
    }
    assert_eq!(
        r.events.len(),
        connected,
        "one event a connection, none a disconnect"
    );
    for e in &r.events {
        assert_eq!(
            (e["ret"].as_i64(), e["daddr"].as_str(), e["dport"].as_i64()),
            (Some(0), Some("127.0.0.1"), Some(listening)),
            "{e}"
        );
    }
    eprintln!("connect_unspec: {connected} of {ROUNDS} rounds connected");
}

/// A hook that no bind or connect exit follows leaves its thread's note (here a TCP Fast
/// Open send, which connects from inside sendto); the thread's exit takes it. 300 threads
/// as uid 65534 each make such a send and exit: none of their tids is left in the table,
/// while the note of the thread that made one and lives on is still there.
#[test]
fn the_notes_of_threads_that_are_gone_are_gone() {
    const THREADS: usize = 300;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start("network-notes", &["--only", "network"]);
    let mut child = as_nobody(PYTHON)
        .args([
            "-c",
            r#"
import json, socket, sys, threading
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(1024)
tids = []
def send():
    tids.append(threading.get_native_id())
    s = socket.socket()
    s.sendto(b"x", socket.MSG_FASTOPEN, l.getsockname())
    s.close()
for _ in range(int(sys.argv[1])):
    t = threading.Thread(target=send)
    t.start()
    t.join()
send()  # this thread lives on
print(json.dumps({"gone": tids[:-1], "alive": tids[-1]}), flush=True)
sys.stdin.readline()
"#,
            &THREADS.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python as nobody");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().expect("stdout")),
        &mut line,
    )
    .expect("the tids");
    let r: Value = serde_json::from_str(&line).expect("JSON");
    let notes = common::maps::map(&common::maps::daemon_maps(d.pid()), "network_notes");
    let keys: Vec<u64> = libbpf_rs::MapCore::keys(&notes)
        .map(|k| u64::from(u32::from_ne_bytes(k[..4].try_into().expect("a u32 key"))))
        .collect();
    drop(child.stdin.take());
    assert!(child.wait().expect("python").success());
    let gone: Vec<u64> = r["gone"].as_array().expect("tids").iter().map(u).collect();
    assert_eq!(gone.len(), THREADS);
    let left = gone.iter().filter(|t| keys.contains(t)).count();
    assert_eq!(left, 0, "notes of threads that exited");
    assert!(keys.contains(&u(&r["alive"])), "the live thread's note");
    d.stop().assert_exact();
}
