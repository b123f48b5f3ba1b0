//! UDP flows against the real kernel, over 127.0.0.1 and [::1]: a client and a server
//! exchanging datagrams -> exactly one `udp_flow` and one `udp_close` on each side, the
//! close with the exact payload bytes and datagrams each way, owned by the process that
//! created the socket (also when it is uid 65534); a socket talking to more peers than its
//! table holds evicts the oldest flows, each still closed exactly once; sendmmsg's
//! datagrams are counted one by one; a socket older than the daemon says its owner is
//! not known.
mod common;

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::Duration;

use common::{Daemon, as_nobody, u};
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";

/// The flow events (`udp_flow`, `udp_close`) whose local port is `lport`.
fn flows<'a>(events: &'a [Value], ty: &str, lport: u16) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == ty && u(&e["sport"]) == u64::from(lport))
        .collect()
}

/// One flow seen from its local end: exactly one udp_flow and one udp_close, the close
/// with these totals.
#[allow(clippy::too_many_arguments)]
fn assert_flow(
    events: &[Value],
    lport: u16,
    peer: (&str, u16),
    first: &str,
    sent: (u64, u64),
    received: (u64, u64),
    pid: u64,
    uid: u64,
) {
    let opened = flows(events, "udp_flow", lport);
    let closed = flows(events, "udp_close", lport);
    assert_eq!(opened.len(), 1, "udp_flow of port {lport}: {opened:#?}");
    assert_eq!(closed.len(), 1, "udp_close of port {lport}: {closed:#?}");
    for e in [opened[0], closed[0]] {
        assert_eq!(e["protocol"], "udp", "{e}");
        assert_eq!(e["daddr"], peer.0, "{e}");
        assert_eq!(u(&e["dport"]), u64::from(peer.1), "{e}");
        assert_eq!(e["first"], first, "{e}");
        assert_eq!(e["owner_known"], true, "{e}");
        assert_eq!(u(&e["pid"]), pid, "{e}");
        assert_eq!(u(&e["uid"]), uid, "{e}");
    }
    let c = closed[0];
    assert_eq!(
        (u(&c["bytes_sent"]), u(&c["packets_sent"])),
        sent,
        "sent by port {lport}: {c}"
    );
    assert_eq!(
        (u(&c["bytes_received"]), u(&c["packets_received"])),
        received,
        "received by port {lport}: {c}"
    );
    assert_eq!(c["evicted"], false, "{c}");
}

/// K datagrams client -> server, each answered: sizes 1..=K and 2..=K+1 bytes.
const K: u64 = 9;
const C2S: u64 = K * (K + 1) / 2;
const S2C: u64 = C2S + K;

/// The exchange as the test process, over `host`; returns (client port, server port).
fn exchange(host: &str) -> (u16, u16) {
    let server = UdpSocket::bind((host, 0)).expect("server");
    let client = UdpSocket::bind((host, 0)).expect("client");
    let to = server.local_addr().expect("server addr");
    let mut buf = [0u8; 64];
    for n in 1..=K as usize {
        client.send_to(&vec![7u8; n], to).expect("send");
        let (got, from) = server.recv_from(&mut buf).expect("server recv");
        assert_eq!(got, n);
        server.send_to(&vec![8u8; n + 1], from).expect("answer");
        assert_eq!(client.recv(&mut buf).expect("client recv"), n + 1);
    }
    let ports = (client.local_addr().expect("client addr").port(), to.port());
    drop(client);
    drop(server);
    ports
}

crate::variant_twins! {
    an_exchange_is_one_flow_each_side_with_exact_counts,
    /// The same from the 5.10 variant, whose flow and DNS functions are static (5.10 takes no
    /// pointer argument in a global function).
    the_510_variant_gives_one_flow_each_side_with_exact_counts => exchanges
}

fn exchanges(v510: bool) {
    let d = Daemon::builder(if v510 {
        "udp-exchange-510"
    } else {
        "udp-exchange"
    })
    .args(&["--only", "network"])
    .variant_510(v510)
    .start();
    let me = u64::from(std::process::id());
    let (c4, s4) = exchange("127.0.0.1");
    let (c6, s6) = exchange("::1");
    // The same as uid 65534, from Python.
    let script = format!(
        r#"
import json, socket
out = {{}}
for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((host, 0))
    c = socket.socket(fam, socket.SOCK_DGRAM); c.bind((host, 0))
    for n in range(1, {K} + 1):
        c.sendto(b"a" * n, s.getsockname()[:2])
        data, peer = s.recvfrom(64)
        s.sendto(b"b" * (n + 1), peer)
        c.recv(64)
    out[host] = [c.getsockname()[1], s.getsockname()[1]]
    c.close(); s.close()
print(json.dumps(out))
"#
    );
    let child = as_nobody(PYTHON)
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python as nobody");
    let nobody = u64::from(child.id());
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "python failed: {out:?}");
    let ports: Value = serde_json::from_slice(&out.stdout).expect("python printed JSON");
    let port = |host: &str, i: usize| u(&ports[host][i]) as u16;
    std::thread::sleep(Duration::from_millis(200));
    let f = d.stop();
    f.assert_exact().assert_variant("network", v510);
    let ev = &f.events;
    let cases = [
        ("127.0.0.1", c4, s4, me, 0),
        ("::1", c6, s6, me, 0),
        (
            "127.0.0.1",
            port("127.0.0.1", 0),
            port("127.0.0.1", 1),
            nobody,
            65534,
        ),
        ("::1", port("::1", 0), port("::1", 1), nobody, 65534),
    ];
    for (host, c, s, pid, uid) in cases {
        assert_flow(ev, c, (host, s), "sent", (C2S, K), (S2C, K), pid, uid);
        assert_flow(ev, s, (host, c), "received", (S2C, K), (C2S, K), pid, uid);
    }
}

/// One socket sending to more peers than its table's 8 slots: every peer is one
/// udp_flow and one udp_close; the 3 oldest are closed early, evicted, and a datagram to
/// the first peer after that is a new flow.
#[test]
fn more_peers_than_slots_evict_the_oldest_and_every_flow_closes_once() {
    const PEERS: usize = 11;
    let d = Daemon::start("udp-evict", &["--only", "network"]);
    let peers: Vec<UdpSocket> = (0..PEERS)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("peer"))
        .collect();
    let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let sport = sender.local_addr().expect("addr").port();
    for (i, p) in peers.iter().enumerate() {
        sender
            .send_to(&vec![1u8; 10 + i], p.local_addr().expect("addr"))
            .expect("send");
    }
    // The first peer again: evicted by then, so a new flow.
    sender
        .send_to(&[2u8; 5], peers[0].local_addr().expect("addr"))
        .expect("send again");
    drop(sender);
    drop(peers);
    std::thread::sleep(Duration::from_millis(200));
    let f = d.stop();
    f.assert_exact();
    let opened = flows(&f.events, "udp_flow", sport);
    let closed = flows(&f.events, "udp_close", sport);
    assert_eq!(opened.len(), PEERS + 1, "{opened:#?}");
    assert_eq!(closed.len(), PEERS + 1, "{closed:#?}");
    // The 3 beyond the 8 slots, and the first peer's return, each evict the oldest flow.
    let evicted: Vec<&&Value> = closed.iter().filter(|e| e["evicted"] == true).collect();
    assert_eq!(evicted.len(), 4, "{evicted:#?}");
    let total: u64 = closed.iter().map(|e| u(&e["bytes_sent"])).sum();
    let want: u64 = (0..PEERS as u64).map(|i| 10 + i).sum::<u64>() + 5;
    assert_eq!(total, want);
    assert!(closed.iter().all(|e| u(&e["packets_sent"]) == 1));
}

/// sendmmsg of N datagrams in one call is N datagrams of the flow; a socket made before
/// the daemon started has no known owner, and its flow says so.
#[test]
fn sendmmsg_counts_each_datagram_and_an_older_socket_has_no_owner() {
    const N: usize = 6;
    let old = UdpSocket::bind("127.0.0.1:0").expect("older socket");
    let d = Daemon::start("udp-mmsg", &["--only", "network"]);
    let server = UdpSocket::bind("127.0.0.1:0").expect("server");
    let to = server.local_addr().expect("addr");
    old.connect(to).expect("connect");
    let payload = [3u8; 100];
    let mut iov: Vec<libc::iovec> = (0..N)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        })
        .collect();
    // SAFETY: zeroed mmsghdr is valid; each points at one iovec above, alive for the call.
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // SAFETY: a connected socket, N valid message headers.
    let sent = unsafe { libc::sendmmsg(old.as_raw_fd(), msgs.as_mut_ptr(), N as u32, 0) };
    assert_eq!(sent, N as i32);
    let mut buf = [0u8; 128];
    for _ in 0..N {
        assert_eq!(server.recv(&mut buf).expect("recv"), payload.len());
    }
    let oport = old.local_addr().expect("addr").port();
    drop(old);
    drop(server);
    std::thread::sleep(Duration::from_millis(200));
    let f = d.stop();
    f.assert_exact();
    let opened = flows(&f.events, "udp_flow", oport);
    let closed = flows(&f.events, "udp_close", oport);
    assert_eq!(
        (opened.len(), closed.len()),
        (1, 1),
        "{opened:#?} {closed:#?}"
    );
    let c = closed[0];
    assert_eq!(u(&c["packets_sent"]), N as u64, "{c}");
    assert_eq!(u(&c["bytes_sent"]), (N * payload.len()) as u64, "{c}");
    assert_eq!(c["owner_known"], false, "{c}");
    assert_eq!(u(&c["pid"]), 0, "{c}");
    let s = flows(&f.events, "udp_close", to.port());
    assert_eq!(s.len(), 1, "{s:#?}");
    assert_eq!(u(&s[0]["packets_received"]), N as u64);
    assert_eq!(u(&s[0]["pid"]), u64::from(std::process::id()));
}
