//! DNS over UDP against the real kernel: a resolver on 127.53.0.1:53 (this test, root)
//! answers a client that runs as uid 65534 -> every query and every response is one
//! `dns` event on each socket (the client's and the server's), with the name, type, id,
//! rcode and the A/AAAA addresses read from the datagram; datagrams to port 53 that are
//! no DNS message (short, a label over 63 bytes, a pointer in the question, two
//! questions, a name past the datagram, an answer past it) are `dns_malformed` with the
//! reason, and nothing else breaks. And glibc's own stub resolver as the client
//! (`getent`, uid 65534, its resolv.conf naming 127.53.0.2): every query it sends and
//! every response it gets is one `dns` event on each side, equal to what the server saw
//! and sent, and getent prints the addresses the events report.
mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Daemon, as_nobody, temp_dir, u};
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";
const SERVER: &str = "127.53.0.1";

/// The question's end in a query (after QTYPE and QCLASS); None when malformed.
fn question_end(q: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let l = usize::from(*q.get(i)?);
        if l == 0 {
            return Some(i + 5).filter(|&e| e <= q.len());
        }
        if l > 63 {
            return None;
        }
        i += 1 + l;
    }
}

/// A DNS message the server received (a query) or sent (a response), as its `dns`
/// events must report it: `rcode` is the header's, `answers` the A and AAAA addresses
/// given (hi.test's and cut.test's, which only the first test asks for, are left out).
#[derive(Debug)]
struct Message {
    peer: SocketAddr,
    response: bool,
    id: u16,
    /// Dotted, ending in `.` (the names asked are plain letters).
    qname: String,
    qtype: u16,
    rcode: &'static str,
    answers: Vec<IpAddr>,
}

/// What the server saw: every datagram that reached it ("stop" aside), and the queries it
/// could read and the responses it sent, in order. Both are logged before the response
/// goes out, so once a client has its answer, the log holds the exchange.
#[derive(Default)]
struct Log {
    datagrams: usize,
    messages: Vec<Message>,
}

/// A question's name in wire format, dotted and ending in `.`.
fn dotted(mut wire: &[u8]) -> String {
    let mut out = String::new();
    while let [n, rest @ ..] = wire
        && *n != 0
    {
        let (label, next) = rest.split_at(usize::from(*n).min(rest.len()));
        out.push_str(&String::from_utf8_lossy(label));
        out.push('.');
        wire = next;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

const A_TEST: &[u8] = b"\x01a\x04test\x00";
const SIX_TEST: &[u8] = b"\x03six\x04test\x00";
/// Ten addresses: more than a record holds (RW_DNS_ADDRS, 8).
const MANY_TEST: &[u8] = b"\x04many\x04test\x00";

/// Answers what the client asks, by name and type: a.test A (two) and AAAA (one),
/// six.test AAAA (one) and no answer to its other types, hi.test one A of class 0x8001,
/// anything else NXDOMAIN; "cut.test" gets a response whose second answer runs past the
/// datagram. Queries that are no DNS message get no answer. Stops at a datagram "stop".
fn serve(sock: UdpSocket, log: &Mutex<Log>) {
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            return;
        };
        let q = &buf[..n];
        if q == b"stop" {
            return;
        }
        let mut log = log.lock().expect("the server's log");
        log.datagrams += 1;
        if n < 12 || q[4..6] != [0, 1] {
            continue;
        }
        let Some(end) = question_end(q) else {
            continue;
        };
        let name = &q[12..end - 4];
        if name.len() > 255 {
            continue; // no DNS name: no answer
        }
        let qtype = u16::from_be_bytes([q[end - 4], q[end - 3]]);
        let mut r = q[..end].to_vec();
        r[2] = 0x81; // QR, RD
        r[3] = 0x80; // RA, NOERROR
        let rr = |ty: u8, data: &[u8]| {
            let mut a = vec![0xc0, 0x0c]; // a pointer to the question's name
            a.extend_from_slice(&[0, ty, 0, 1, 0, 0, 0, 60, 0, data.len() as u8]);
            a.extend_from_slice(data);
            a
        };
        let v4 = |d| IpAddr::V4(Ipv4Addr::new(192, 0, 2, d));
        let v6 = |s: &str| IpAddr::V6(s.parse().expect("v6"));
        let addrs = match (name, qtype) {
            (A_TEST, 28) => vec![v6("2001:db8::a")],
            (A_TEST, _) => vec![v4(1), v4(2)],
            (SIX_TEST, 28) => vec![v6("2001:db8::6")],
            (MANY_TEST, _) => (10..20).map(v4).collect(),
            _ => Vec::new(),
        };
        let mut answers: Vec<Vec<u8>> = addrs
            .iter()
            .map(|a| match a {
                IpAddr::V4(a) => rr(1, &a.octets()),
                IpAddr::V6(a) => rr(28, &a.octets()),
            })
            .collect();
        match name {
            A_TEST | SIX_TEST | MANY_TEST => {}
            b"\x02hi\x04test\x00" => {
                // Class 0x8001 (mDNS's cache-flush bit): no IN address, and no sign trouble.
                let mut a = rr(1, &[192, 0, 2, 9]);
                a[4] = 0x80;
                answers.push(a);
            }
            b"\x03cut\x04test\x00" => {
                answers.push(rr(1, &[192, 0, 2, 3]));
                let mut cut = rr(1, &[192, 0, 2, 4]);
                cut.truncate(cut.len() - 2);
                answers.push(cut);
            }
            _ => r[3] = 0x83, // NXDOMAIN
        }
        r[7] = answers.len() as u8;
        for a in answers {
            r.extend_from_slice(&a);
        }
        let id = u16::from_be_bytes([q[0], q[1]]);
        let qname = dotted(name);
        log.messages.push(Message {
            peer: from,
            response: false,
            id,
            qname: qname.clone(),
            qtype,
            // A query's rcode field as sent (glibc's and Python's: 0).
            rcode: if q[3] & 15 == 0 { "NOERROR" } else { "other" },
            answers: Vec::new(),
        });
        log.messages.push(Message {
            peer: from,
            response: true,
            id,
            qname,
            qtype,
            rcode: if r[3] == 0x83 { "NXDOMAIN" } else { "NOERROR" },
            answers: addrs,
        });
        drop(log);
        let _ = sock.send_to(&r, from);
    }
}

/// The client: each query waits for its answer; the malformed ones get none.
const CLIENT: &str = r#"
import json, socket, struct, sys
server = (sys.argv[1], 53)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
def name(*labels):
    return b"".join(bytes([len(l)]) + l for l in labels) + b"\0"
def query(qid, qname, qtype, qd=1):
    return struct.pack(">HHHHHH", qid, 0x0100, qd, 0, 0, 0) + qname + struct.pack(">HH", qtype, 1)
for qid, qname, qtype in ((0x1001, name(b"a", b"test"), 1), (0x1002, name(b"six", b"test"), 28),
                          (0x1003, name(b"nope", b"test"), 1), (0x1004, name(b"c.d", b"test"), 1),
                          (0x1005, name(b"cut", b"test"), 1),
                          (0x1006, name(b"x" * 63, b"y" * 63, b"z" * 63, b"w" * 61), 1),
                          (0x1007, name(b"hi", b"test"), 1), (0x1008, name(b"many", b"test"), 1)):
    s.sendto(query(qid, qname, qtype), server)
    s.recv(512)
bad = [
    b"\x12\x34\x01",                                                   # short
    struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x40" + b"x" * 64 + b"\0\0\1\0\1",  # bad_label
    struct.pack(">HHHHHH", 8, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\0\1\0\1",  # bad_label (pointer)
    query(9, name(b"two", b"test"), 1, qd=2),                          # qdcount
    struct.pack(">HHHHHH", 10, 0x0100, 1, 0, 0, 0) + b"\x05ab",         # truncated_name
    struct.pack(">HHHHHH", 11, 0x0100, 1, 0, 0, 0) + name(b"q") + b"\0", # truncated_question
    query(12, name(b"x" * 63, b"y" * 63, b"z" * 63, b"w" * 62), 1),      # name_too_long: 256
]
for b in bad:
    s.sendto(b, server)
print(json.dumps({"port": s.getsockname()[1]}))
"#;

fn dns_of<'a>(events: &'a [Value], ty: &str, client: u16) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["type"] == ty
                && ((e["saddr"] == SERVER && u(&e["dport"]) == u64::from(client))
                    || (e["daddr"] == SERVER && u(&e["sport"]) == u64::from(client)))
        })
        .collect()
}

/// One test at a time on SERVER's port 53.
static PORT_53: Mutex<()> = Mutex::new(());

crate::variant_twins! {
    queries_responses_and_malformed_datagrams_on_port_53,
    /// The same from the 5.10 variant (its parser's functions are static ones).
    the_510_variant_reads_queries_responses_and_malformed_datagrams => queries_responses_and_malformed
}

fn queries_responses_and_malformed(v510: bool) {
    let _one = PORT_53.lock().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::builder(if v510 { "dns-510" } else { "dns" })
        .args(&["--only", "network"])
        .variant_510(v510)
        .start();
    let sock = UdpSocket::bind((SERVER, 53)).expect("bind 127.53.0.1:53");
    let server = std::thread::spawn(move || serve(sock, &Mutex::default()));
    let child = as_nobody(PYTHON)
        .args(["-c", CLIENT, SERVER])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python as nobody");
    let nobody = u64::from(child.id());
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "python failed: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("python printed JSON");
    let client = u(&v["port"]) as u16;
    std::thread::sleep(Duration::from_millis(300));
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.send_to(b"stop", (SERVER, 53)))
        .expect("stop the server");
    server.join().expect("server thread");
    let f = d.stop();
    f.assert_exact().assert_variant("network", v510);
    let me = u64::from(std::process::id());

    let dns = dns_of(&f.events, "dns", client);
    // 8 queries and 7 whole responses, each seen by both sockets.
    assert_eq!(dns.len(), 2 * (8 + 7), "{dns:#?}");
    for e in &dns {
        let sent = e["direction"] == "sent";
        let client_side = e["daddr"] == SERVER;
        let (pid, uid) = if client_side {
            (nobody, 65534)
        } else {
            (me, 0)
        };
        assert_eq!((u(&e["pid"]), u(&e["uid"])), (pid, uid), "{e}");
        assert_eq!(e["owner_known"], true, "{e}");
        // A query goes client -> server, a response back.
        assert_eq!(sent == client_side, e["qr"] == "query", "{e}");
    }
    // The longest name: 255 octets with the root's zero.
    let longest = format!(
        "{}.{}.{}.{}.",
        "x".repeat(63),
        "y".repeat(63),
        "z".repeat(63),
        "w".repeat(61)
    );
    let one = |id: u64, qr: &str| -> Vec<&&Value> {
        dns.iter()
            .filter(|e| u(&e["id"]) == id && e["qr"] == qr)
            .collect()
    };
    for (id, qname, qtype, rcode, answers) in [
        (
            0x1001,
            "a.test.",
            "A",
            "NOERROR",
            vec!["192.0.2.1", "192.0.2.2"],
        ),
        (0x1002, "six.test.", "AAAA", "NOERROR", vec!["2001:db8::6"]),
        (0x1003, "nope.test.", "A", "NXDOMAIN", vec![]),
        (0x1004, "c\\.d.test.", "A", "NXDOMAIN", vec![]),
        (0x1006, longest.as_str(), "A", "NXDOMAIN", vec![]),
        (0x1007, "hi.test.", "A", "NOERROR", vec![]),
    ] {
        let q = one(id, "query");
        let r = one(id, "response");
        assert_eq!((q.len(), r.len()), (2, 2), "id {id}: {q:#?} {r:#?}");
        for e in q.iter().chain(&r) {
            assert_eq!(e["qname"], qname, "{e}");
            assert_eq!(e["qtype"], qtype, "{e}");
            assert_eq!(u(&e["qclass"]), 1, "{e}");
        }
        for e in &r {
            assert_eq!(e["rcode"], rcode, "{e}");
            let got: Vec<&str> = e["answers"]
                .as_array()
                .expect("answers")
                .iter()
                .map(|a| a.as_str().expect("text"))
                .collect();
            assert_eq!(got, answers, "{e}");
            assert_eq!(e["answers_partial"], false, "{e}");
        }
    }
    assert_eq!(one(0x1005, "query").len(), 2);
    // Ten addresses: the first eight, and the record says there were more.
    let many = one(0x1008, "response");
    assert_eq!(many.len(), 2, "{many:#?}");
    let first8: Vec<String> = (10..18).map(|d| format!("192.0.2.{d}")).collect();
    for e in many {
        assert_eq!(e["qname"], "many.test.", "{e}");
        assert_eq!(e["answers"], serde_json::json!(first8), "{e}");
        assert_eq!(e["answers_partial"], true, "{e}");
    }

    let bad = dns_of(&f.events, "dns_malformed", client);
    let mut reasons: Vec<(u64, &str)> = bad
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().unwrap_or(0),
                e["reason"].as_str().expect("reason"),
            )
        })
        .collect();
    reasons.sort();
    let mut want = vec![
        (0, "short"),
        (7, "bad_label"),
        (8, "bad_label"),
        (9, "qdcount"),
        (10, "truncated_name"),
        (11, "truncated_question"),
        (12, "name_too_long"),
        (0x1005, "truncated_answer"),
    ];
    want.extend(want.clone());
    want.sort();
    assert_eq!(reasons, want, "{bad:#?}");
    // The cut response: its first address was read before the answer that runs past.
    for e in bad.iter().filter(|e| e["id"].as_u64() == Some(0x1005)) {
        assert_eq!(e["qr"], "response", "{e}");
        assert_eq!(e["answers"][0], "192.0.2.3", "{e}");
    }
}

const GLIBC_SERVER: &str = "127.53.0.2";

/// Whether getaddrinfo's AI_ADDRCONFIG (which `getent ahosts` sets) sees IPv4 and IPv6 on
/// this host, decided as glibc does (sysdeps/unix/sysv/linux/check_pf.c): an IPv4
/// address other than 127.0.0.1, an IPv6 address other than ::1. With only one of the
/// two, glibc asks only for that family's records.
fn addrconfig() -> (bool, bool) {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocates into head; freed below.
    assert_eq!(unsafe { libc::getifaddrs(&mut head) }, 0, "getifaddrs");
    let (mut v4, mut v6) = (false, false);
    let mut p = head;
    while !p.is_null() {
        // SAFETY: p is a node of that list; its ifa_addr, when set, is a sockaddr of the
        // size its sa_family says.
        unsafe {
            let a = (*p).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let s = &*a.cast::<libc::sockaddr_in>();
                        v4 |= u32::from_be(s.sin_addr.s_addr) != 0x7f00_0001;
                    }
                    libc::AF_INET6 => {
                        let s = &*a.cast::<libc::sockaddr_in6>();
                        v6 |= Ipv6Addr::from(s.sin6_addr.s6_addr) != Ipv6Addr::LOCALHOST;
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(head) };
    (v4, v6)
}

/// One `dns` event's fields that the test checks, comparable with what the server logged.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    pid: u64,
    uid: u64,
    comm: String,
    local: String,
    peer: String,
    direction: String,
    qr: String,
    id: u64,
    qname: String,
    qtype: String,
    qclass: u64,
    rcode: String,
    /// A response's `answers` and `answers_partial`.
    answers: Option<(Vec<String>, bool)>,
    owner_known: bool,
}

impl Seen {
    fn of(e: &Value) -> Seen {
        let text = |k: &str| {
            e[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {e}"))
                .to_string()
        };
        let answers = e.get("answers").map(|a| {
            let a = a.as_array().unwrap_or_else(|| panic!("answers in {e}"));
            let a = a
                .iter()
                .map(|x| x.as_str().expect("an address").to_string());
            (a.collect(), e["answers_partial"] == true)
        });
        Seen {
            pid: u(&e["pid"]),
            uid: u(&e["uid"]),
            comm: text("comm"),
            local: format!("{}:{}", text("saddr"), u(&e["sport"])),
            peer: format!("{}:{}", text("daddr"), u(&e["dport"])),
            direction: text("direction"),
            qr: text("qr"),
            id: u(&e["id"]),
            qname: text("qname"),
            qtype: text("qtype"),
            qclass: u(&e["qclass"]),
            rcode: text("rcode"),
            answers,
            owner_known: e["owner_known"] == true,
        }
    }

    /// The event message `m` must give on the client's side or on the server's, made by
    /// `who` (pid, uid, comm of the socket's creator).
    fn expected(m: &Message, client: bool, who: &(u64, u64, String)) -> Seen {
        let server = format!("{GLIBC_SERVER}:53");
        let (local, peer) = if client {
            (m.peer.to_string(), server)
        } else {
            (server, m.peer.to_string())
        };
        // A query goes client -> server, a response back.
        let sent = client != m.response;
        Seen {
            pid: who.0,
            uid: who.1,
            comm: who.2.clone(),
            local,
            peer,
            direction: if sent { "sent" } else { "received" }.to_string(),
            qr: if m.response { "response" } else { "query" }.to_string(),
            id: u64::from(m.id),
            qname: m.qname.clone(),
            qtype: match m.qtype {
                1 => "A".to_string(),
                28 => "AAAA".to_string(),
                t => format!("TYPE{t}"),
            },
            qclass: 1,
            rcode: m.rcode.to_string(),
            answers: m
                .response
                .then(|| (m.answers.iter().map(IpAddr::to_string).collect(), false)),
            owner_known: true,
        }
    }
}

/// `getent DB NAME` with glibc's stub resolver as the client, as uid 65534, in a mount
/// namespace of its own where /etc/resolv.conf and /etc/nsswitch.conf are the test's
/// (`hosts: files dns`: no nss-resolve or mDNS module answers instead) and no nscd socket
/// is reachable (nscd would ask and cache in its own process). unshare without --fork,
/// sh's exec and setpriv all run in the spawned process: its pid is getent's.
fn getent(dir: &std::path::Path, db: &str, name: &str) -> std::process::Child {
    const SCRIPT: &str = r#"set -e
mount --bind "$1/resolv.conf" /etc/resolv.conf
mount --bind "$1/nsswitch.conf" /etc/nsswitch.conf
if [ -d /run/nscd ]; then mount -t tmpfs none /run/nscd; fi
exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all getent "$2" "$3""#;
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            SCRIPT,
            "sh",
        ])
        .arg(dir)
        .args([db, name])
        // The resolver takes these over resolv.conf (search list, options, aliases).
        .env_remove("LOCALDOMAIN")
        .env_remove("RES_OPTIONS")
        .env_remove("HOSTALIASES")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux)")
}

#[test]
fn glibc_stub_resolver_as_the_client() {
    let d = Daemon::start("dns-glibc", &["--only", "network"]);
    let dir = temp_dir("dns-glibc");
    // attempts:1: a lost datagram is a failure, not a retry the counts would hide.
    std::fs::write(
        dir.join("resolv.conf"),
        format!("nameserver {GLIBC_SERVER}\noptions attempts:1 timeout:2\n"),
    )
    .expect("resolv.conf");
    std::fs::write(dir.join("nsswitch.conf"), "hosts: files dns\n").expect("nsswitch.conf");
    let sock = UdpSocket::bind((GLIBC_SERVER, 53)).expect("bind 127.53.0.2:53");
    // The socket's owner: this process, as this thread (its comm is the test's name).
    let comm = std::fs::read_to_string("/proc/thread-self/comm").expect("comm");
    let me = (
        u64::from(std::process::id()),
        0,
        comm.trim_end().to_string(),
    );
    let log = Arc::new(Mutex::new(Log::default()));
    let server = std::thread::spawn({
        let log = Arc::clone(&log);
        move || serve(sock, &log)
    });

    // getaddrinfo asks for A and AAAA at once (one sendmmsg on one socket) unless
    // AI_ADDRCONFIG narrows it to the one family the host has.
    let (v4, v6) = addrconfig();
    let ahosts: Vec<u16> = match (v4, v6) {
        (true, false) => vec![1],
        (false, true) => vec![28],
        _ => vec![1, 28],
    };
    let aaaa = ahosts.contains(&28);
    // (database, name, the types glibc asks for in order, from how many sockets, exit
    // status). A name ending in a dot is tried as it is only: no search domain (the host
    // name's) is tried after an NXDOMAIN or an empty answer. gethostbyname2 (`getent
    // hosts`) asks AAAA, then A, each with a send on a socket of its own.
    let runs: [(&str, &str, &[u16], usize, i32); 3] = [
        ("ahosts", "a.test", &ahosts, 1, 0),
        ("ahosts", "six.test.", &ahosts, 1, if aaaa { 0 } else { 2 }),
        ("hosts", "nope.test.", &[28, 1], 2, 2),
    ];
    let mut want = Vec::new();
    let mut printed = Vec::new();
    let mut pids = Vec::new();
    let mut sent = 0;
    for (db, name, queries, sockets, status) in &runs {
        let (datagrams, first) = {
            let l = log.lock().expect("log");
            (l.datagrams, l.messages.len())
        };
        let child = getent(&dir, db, name);
        let pid = u64::from(child.id());
        let out = child.wait_with_output().expect("getent's output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(*status),
            "getent {db} {name}: {out:?}"
        );
        let l = log.lock().expect("log");
        let mine = &l.messages[first..];
        let asked: Vec<(&str, u16)> = mine
            .iter()
            .filter(|m| !m.response)
            .map(|m| (m.qname.as_str(), m.qtype))
            .collect();
        let qname = format!("{}.", name.trim_end_matches('.'));
        let queries: Vec<(&str, u16)> = queries.iter().map(|&t| (qname.as_str(), t)).collect();
        assert_eq!(asked, queries, "getent {db} {name}: {mine:#?}");
        // Every datagram glibc sent was a query the server read and answered.
        assert_eq!(l.datagrams - datagrams, queries.len(), "{mine:#?}");
        assert_eq!(mine.len(), 2 * queries.len(), "{mine:#?}");
        // Each response goes back to the socket its query came from; a socket of its own
        // per query may still get the port the one before had (closed by then).
        for r in mine.iter().filter(|m| m.response) {
            let q = mine
                .iter()
                .find(|q| !q.response && q.id == r.id && q.qtype == r.qtype);
            assert_eq!(q.map(|q| q.peer), Some(r.peer), "{r:?} in {mine:#?}");
        }
        let ports: BTreeSet<SocketAddr> = mine.iter().map(|m| m.peer).collect();
        assert!(
            !ports.is_empty() && ports.len() <= *sockets,
            "getent {db} {name}: {mine:#?}"
        );
        sent += queries.len();
        // What getent printed: its addresses (ahosts: each three times, per socket type).
        let got: BTreeSet<IpAddr> = stdout
            .lines()
            .map(|l| {
                let a = l.split_whitespace().next().unwrap_or_default();
                a.parse()
                    .unwrap_or_else(|e| panic!("getent printed {l:?}: {e}"))
            })
            .collect();
        let answered: BTreeSet<IpAddr> = mine.iter().flat_map(|m| m.answers.clone()).collect();
        assert_eq!(got, answered, "getent {db} {name} printed:\n{stdout}");
        printed.push((pid, got));
        for m in mine {
            want.push(Seen::expected(m, true, &(pid, 65534, "getent".to_string())));
            want.push(Seen::expected(m, false, &me));
        }
        pids.push(pid);
    }
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.send_to(b"stop", (GLIBC_SERVER, 53)))
        .expect("stop the server");
    server.join().expect("server thread");
    let f = d.stop();
    f.assert_exact();

    // Every `dns` event to or from 127.53.0.2:53 (only this test uses it).
    let ours = |e: &&Value| {
        e["type"] == "dns"
            && ((e["saddr"] == GLIBC_SERVER && u(&e["sport"]) == 53)
                || (e["daddr"] == GLIBC_SERVER && u(&e["dport"]) == 53))
    };
    let mut got: Vec<Seen> = f.events.iter().filter(ours).map(Seen::of).collect();
    let count = |v: &[Seen], client: bool, qr: &str| {
        v.iter()
            .filter(|s| pids.contains(&s.pid) == client && s.qr == qr)
            .count()
    };
    // The queries glibc sent: as many events on each side, and as many responses.
    for (client, qr) in [
        (true, "query"),
        (false, "query"),
        (true, "response"),
        (false, "response"),
    ] {
        assert_eq!(
            count(&got, client, qr),
            sent,
            "client {client} {qr}: {got:#?}"
        );
    }
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // The addresses getent printed are those its response events carry.
    for (pid, printed) in printed {
        let reported: BTreeSet<IpAddr> = got
            .iter()
            .filter(|s| s.pid == pid && s.qr == "response")
            .flat_map(|s| s.answers.iter().flat_map(|a| &a.0))
            .map(|a| a.parse().expect("an address"))
            .collect();
        assert_eq!(printed, reported, "getent pid {pid}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
