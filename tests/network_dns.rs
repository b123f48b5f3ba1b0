//! DNS over UDP against the real kernel: a resolver on 127.53.0.1:53 (this test, root)
//! answers a client that runs as uid 65534 -> every query and every response is one
//! `dns` event on each socket (the client's and the server's), with the name, type, id,
//! rcode and the A/AAAA addresses read from the datagram; datagrams to port 53 that are
//! no DNS message (short, a label over 63 bytes, a pointer in the question, two
//! questions, a name past the datagram, an answer past it) are `dns_malformed` with the
//! reason, and nothing else breaks.
mod common;

use std::net::UdpSocket;
use std::process::Stdio;
use std::time::Duration;

use common::{Daemon, as_nobody, u};
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

/// Answers what the client asks: a.test A (two), six.test AAAA, anything else NXDOMAIN;
/// "cut.test" gets a response whose second answer runs past the datagram. Queries that
/// are no DNS message get no answer. Stops at a datagram "stop".
fn serve(sock: UdpSocket) {
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            return;
        };
        let q = &buf[..n];
        if q == b"stop" {
            return;
        }
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
        let mut r = q[..end].to_vec();
        r[2] = 0x81; // QR, RD
        r[3] = 0x80; // RA, NOERROR
        let ptr = [0xc0, 0x0c];
        let mut answers: Vec<Vec<u8>> = Vec::new();
        let rr = |ty: u8, data: &[u8]| {
            let mut a = ptr.to_vec();
            a.extend_from_slice(&[0, ty, 0, 1, 0, 0, 0, 60, 0, data.len() as u8]);
            a.extend_from_slice(data);
            a
        };
        if name == b"\x01a\x04test\x00" {
            answers.push(rr(1, &[192, 0, 2, 1]));
            answers.push(rr(1, &[192, 0, 2, 2]));
        } else if name == b"\x03six\x04test\x00" {
            let six: std::net::Ipv6Addr = "2001:db8::6".parse().expect("v6");
            answers.push(rr(28, &six.octets()));
        } else if name == b"\x02hi\x04test\x00" {
            // Class 0x8001 (mDNS's cache-flush bit): no IN address, and no sign trouble.
            let mut a = rr(1, &[192, 0, 2, 9]);
            a[4] = 0x80;
            answers.push(a);
        } else if name == b"\x03cut\x04test\x00" {
            answers.push(rr(1, &[192, 0, 2, 3]));
            let mut cut = rr(1, &[192, 0, 2, 4]);
            cut.truncate(cut.len() - 2);
            answers.push(cut);
        } else {
            r[3] = 0x83; // NXDOMAIN
        }
        r[7] = answers.len() as u8;
        for a in answers {
            r.extend_from_slice(&a);
        }
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
                          (0x1007, name(b"hi", b"test"), 1)):
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

#[test]
fn queries_responses_and_malformed_datagrams_on_port_53() {
    let d = Daemon::start("dns", &["--only", "network"]);
    let sock = UdpSocket::bind((SERVER, 53)).expect("bind 127.53.0.1:53");
    let server = std::thread::spawn(move || serve(sock));
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
    f.assert_exact();
    let me = u64::from(std::process::id());

    let dns = dns_of(&f.events, "dns", client);
    // 7 queries and 6 whole responses, each seen by both sockets.
    assert_eq!(dns.len(), 2 * (7 + 6), "{dns:#?}");
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
