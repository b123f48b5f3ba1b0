//! Network family against the real kernel: TCP connections over 127.0.0.1 and [::1]
//! -> exactly one connect, one accept and two close events each, with the right ports,
//! owners and byte counts.
mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::{Daemon, gettid, i, u};
use serde_json::Value;

const CONNS: usize = 50;

/// One connection the test made, as the test itself saw it.
struct Conn {
    client_port: u16,
    client_fd: i32,
    server_fd: i32,
    /// Payload bytes client -> server and server -> client.
    c2s: u64,
    s2c: u64,
    /// Whether the client sent the first FIN (else the server did).
    client_first: bool,
}

fn payload(n: u64, seed: u8) -> Vec<u8> {
    (0..n).map(|k| seed.wrapping_add(k as u8)).collect()
}

/// The first closer's FIN is read to EOF by the peer, which then closes too; the first
/// closer reads the peer's FIN before dropping. Both sockets go through TCP_CLOSE by the
/// time the peer's drop returns (loopback), the first one on its way to TIME_WAIT.
fn orderly_close(mut first: TcpStream, mut second: TcpStream) {
    first.shutdown(Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    assert_eq!(second.read_to_end(&mut rest).expect("read to EOF"), 0);
    drop(second);
    assert_eq!(first.read_to_end(&mut rest).expect("read to EOF"), 0);
}

/// Makes CONNS connections to a fresh listener on `host`, moves bytes on some, closes
/// all in an orderly way (FIN both ways). Returns the listener port and the connections.
fn exercise(host: &str) -> (u16, Vec<Conn>) {
    let listener = TcpListener::bind(format!("{host}:0")).expect("bind listener");
    let addr: SocketAddr = listener.local_addr().expect("listener addr");
    let mut conns = Vec::new();
    for n in 0..CONNS {
        let mut client = TcpStream::connect(addr).expect("connect");
        let (mut server, peer) = listener.accept().expect("accept");
        let client_port = client.local_addr().expect("client addr").port();
        assert_eq!(peer.port(), client_port);
        // Some connections carry nothing, some one way, some both ways; one spans many
        // segments.
        let c2s: u64 = match n {
            7 => 60_000,
            _ if n % 2 == 0 => 1000 + 37 * n as u64,
            _ => 0,
        };
        let s2c: u64 = if n % 3 == 0 { 500 + n as u64 } else { 0 };
        let sent = payload(c2s, n as u8);
        client.write_all(&sent).expect("client write");
        let mut got = vec![0u8; c2s as usize];
        server.read_exact(&mut got).expect("server read");
        assert_eq!(got, sent);
        let sent = payload(s2c, 100 + n as u8);
        server.write_all(&sent).expect("server write");
        let mut got = vec![0u8; s2c as usize];
        client.read_exact(&mut got).expect("client read");
        assert_eq!(got, sent);

        let conn = Conn {
            client_port,
            client_fd: client.as_raw_fd(),
            server_fd: server.as_raw_fd(),
            c2s,
            s2c,
            client_first: n % 2 == 0,
        };
        if conn.client_first {
            orderly_close(client, server);
        } else {
            orderly_close(server, client);
        }
        conns.push(conn);
    }
    let ports: HashSet<u16> = conns.iter().map(|c| c.client_port).collect();
    assert_eq!(ports.len(), CONNS, "client ports are unique in one run");
    (addr.port(), conns)
}

fn is_close_of(e: &Value, family: &str, lport: u16, ports: &HashSet<u16>) -> bool {
    if e["type"] != "close" || e["family"] != family {
        return false;
    }
    let (s, d) = (u(&e["sport"]) as u16, u(&e["dport"]) as u16);
    (s == lport && ports.contains(&d)) || (d == lport && ports.contains(&s))
}

crate::variant_twins! {
    tcp_connect_accept_close_over_ipv4_and_ipv6,
    /// The same counts from the 5.10 variant: per-thread state in a tid-keyed hash, the
    /// owners of connected sockets in a hash keyed by the socket (bpf/network.bpf.c).
    the_510_variant_gives_exact_connect_accept_close => connect_accept_close
}

fn connect_accept_close(v510: bool) {
    let d = Daemon::builder(if v510 { "network-510" } else { "network" })
        .args(&["--only", "network"])
        .variant_510(v510)
        .start();
    let me = std::process::id() as u64;
    let tid = u64::from(gettid());
    let runs = [
        ("ipv4", "127.0.0.1", exercise("127.0.0.1")),
        ("ipv6", "::1", exercise("[::1]")),
    ];

    // The last closes happen in softirq context right after the drops; wait for them
    // (all 4 per connection: 2 * CONNS per family) before stopping the daemon.
    let expected_closes = runs.len() * 2 * CONNS;
    let closes_now = |events: &[Value]| {
        events
            .iter()
            .filter(|e| {
                runs.iter().any(|(fam, _, (lp, conns))| {
                    let ports = conns.iter().map(|c| c.client_port).collect();
                    is_close_of(e, fam, *lp, &ports)
                })
            })
            .count()
    };
    let t = Instant::now();
    while closes_now(&d.events_now()) < expected_closes && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Anything extra would have come by now.
    std::thread::sleep(Duration::from_millis(200));
    let f = d.stop();
    f.assert_exact().assert_variant("network", v510);

    for (fam, ip, (lport, conns)) in &runs {
        let lport = u64::from(*lport);
        let by_port: HashMap<u64, &Conn> = conns
            .iter()
            .map(|c| (u64::from(c.client_port), c))
            .collect();
        let ports: HashSet<u16> = conns.iter().map(|c| c.client_port).collect();

        let connects: Vec<&Value> = f
            .of_type("connect")
            .filter(|e| u(&e["pid"]) == me && u(&e["dport"]) == lport && e["family"] == *fam)
            .collect();
        assert_eq!(connects.len(), CONNS, "{fam} connect events");
        let mut seen = HashSet::new();
        for e in &connects {
            let c = by_port
                .get(&u(&e["sport"]))
                .unwrap_or_else(|| panic!("connect from a port the test did not use: {e}"));
            assert!(
                seen.insert(c.client_port),
                "one connect per connection: {e}"
            );
            assert_eq!(i(&e["ret"]), 0, "{e}");
            assert_eq!(i(&e["fd"]), i64::from(c.client_fd), "{e}");
            assert_eq!(e["protocol"], "tcp");
            assert_eq!(e["saddr"], *ip);
            assert_eq!(e["daddr"], *ip);
            assert_eq!(u(&e["tid"]), tid);
            assert_eq!(e["daddr_from_args"], false);
        }

        let accepts: Vec<&Value> = f
            .of_type("accept")
            .filter(|e| u(&e["pid"]) == me && u(&e["sport"]) == lport && e["family"] == *fam)
            .collect();
        assert_eq!(accepts.len(), CONNS, "{fam} accept events");
        let mut seen = HashSet::new();
        for e in &accepts {
            let c = by_port
                .get(&u(&e["dport"]))
                .unwrap_or_else(|| panic!("accept of a port the test did not use: {e}"));
            assert!(seen.insert(c.client_port), "one accept per connection: {e}");
            assert_eq!(i(&e["fd"]), i64::from(c.server_fd), "{e}");
            assert_eq!(e["protocol"], "tcp");
            assert_eq!(e["saddr"], *ip);
            assert_eq!(e["daddr"], *ip);
            assert_eq!(u(&e["tid"]), tid);
        }

        let closes: Vec<&Value> = f
            .events
            .iter()
            .filter(|e| is_close_of(e, fam, lport as u16, &ports))
            .collect();
        assert_eq!(closes.len(), 2 * CONNS, "{fam} close events");
        let mut seen = HashSet::new();
        for e in &closes {
            let client_side = u(&e["dport"]) == lport;
            let port = if client_side {
                u(&e["sport"])
            } else {
                u(&e["dport"])
            };
            let c = by_port[&port];
            assert!(
                seen.insert((port, client_side)),
                "one close per socket: {e}"
            );
            let (sent, received) = if client_side {
                (c.c2s, c.s2c)
            } else {
                (c.s2c, c.c2s)
            };
            assert_eq!(u(&e["bytes_sent"]), sent, "bytes_sent: {e}");
            assert_eq!(u(&e["bytes_received"]), received, "bytes_received: {e}");
            // Loopback loses nothing; acked counts sequence space (SYN for the
            // connecting side, and the FIN).
            assert_eq!(u(&e["bytes_retrans"]), 0, "{e}");
            let syn = u64::from(client_side);
            assert_eq!(u(&e["bytes_acked"]), sent + syn + 1, "bytes_acked: {e}");
            assert_eq!(e["peer_fin"], true, "{e}");
            let active = client_side == c.client_first;
            let old = if active { "FIN_WAIT2" } else { "LAST_ACK" };
            assert_eq!(e["oldstate"], old, "{e}");
            // The header names the owner, wherever the close ran.
            assert_eq!(e["owner_known"], true, "{e}");
            assert_eq!(u(&e["pid"]), me, "{e}");
            assert_eq!(u(&e["tid"]), tid, "{e}");
            assert_eq!(e["saddr"], *ip);
            assert_eq!(e["daddr"], *ip);
            assert_eq!(e["protocol"], "tcp");
            assert!(e.get("ret").is_none());
        }
    }
}

crate::variant_twins! {
    refused_connect_reports_errno_and_peer_but_no_close,
    /// The variant deletes a socket's owner at its TCP_CLOSE, a refused connect's included.
    the_510_variant_reports_a_refused_connect => refused_connect
}

fn refused_connect(v510: bool) {
    // A port bound but not listening answers SYN with RST: ECONNREFUSED, and nobody
    // else can be listening on it meanwhile.
    // SAFETY: plain socket calls on a fd this test owns.
    let (fd, port) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        assert_eq!(libc::bind(fd, (&raw const sa).cast(), len), 0);
        let mut len = len;
        assert_eq!(libc::getsockname(fd, (&raw mut sa).cast(), &mut len), 0);
        (fd, u16::from_be(sa.sin_port))
    };
    let d = Daemon::builder(if v510 {
        "network-refused-510"
    } else {
        "network-refused"
    })
    .args(&["--only", "network"])
    .variant_510(v510)
    .start();
    let me = std::process::id() as u64;
    const TRIES: usize = 5;
    for _ in 0..TRIES {
        let err = TcpStream::connect(("127.0.0.1", port)).expect_err("nothing listens");
        assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    }
    std::thread::sleep(Duration::from_millis(200));
    let f = d.stop();
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    f.assert_exact().assert_variant("network", v510);
    let port = u64::from(port);
    let connects: Vec<&Value> = f
        .of_type("connect")
        .filter(|e| u(&e["pid"]) == me && u(&e["dport"]) == port)
        .collect();
    assert_eq!(connects.len(), TRIES);
    for e in connects {
        assert_eq!(i(&e["ret"]), -i64::from(libc::ECONNREFUSED));
        assert_eq!(e["daddr"], "127.0.0.1");
        assert_eq!(e["family"], "ipv4");
        assert_eq!(u(&e["tid"]), u64::from(gettid()));
        // The kernel forgets the peer of a failed connect: it came from the call.
        assert_eq!(e["daddr_from_args"], true);
    }
    let closes = f
        .of_type("close")
        .filter(|e| e["daddr"] == "127.0.0.1" && u(&e["dport"]) == port)
        .count();
    assert_eq!(
        closes, 0,
        "a connect that never connected is no closed connection"
    );
}

/// A non-blocking connect (EINPROGRESS) followed, once the socket is writable, by more
/// connect calls (0 when the kernel hands over the completed connection, then EISCONN)
/// is one connection attempt: exactly one connect event, the first call's.
#[test]
fn repeated_nonblocking_connect_is_one_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind listener");
    let lport = listener.local_addr().expect("listener addr").port();
    let d = Daemon::start("network-nonblock", &["--only", "network"]);
    let me = std::process::id() as u64;
    // SAFETY: plain socket calls on a fd this test owns; sockaddr and pollfd are local.
    let (fd, rets, sport) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        assert!(fd >= 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_port = lport.to_be();
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        let connect = || {
            if libc::connect(fd, (&raw const sa).cast(), len) == 0 {
                0
            } else {
                -std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
            }
        };
        let mut rets = vec![connect()];
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        assert_eq!(libc::poll(&mut p, 1, 5000), 1, "connected within 5 s");
        rets.push(connect());
        rets.push(connect());
        let mut me: libc::sockaddr_in = std::mem::zeroed();
        let mut len = len;
        assert_eq!(libc::getsockname(fd, (&raw mut me).cast(), &mut len), 0);
        (fd, rets, u16::from_be(me.sin_port))
    };
    assert_eq!(rets[0], -libc::EINPROGRESS, "calls returned {rets:?}");
    assert!(
        rets[1..].iter().all(|r| *r == 0 || *r == -libc::EISCONN),
        "calls returned {rets:?}"
    );
    let (server, _) = listener.accept().expect("accept");
    drop(server);
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    let f = d.stop();
    f.assert_exact();
    let connects: Vec<&Value> = f
        .of_type("connect")
        .filter(|e| {
            u(&e["pid"]) == me
                && u(&e["dport"]) == u64::from(lport)
                && u(&e["sport"]) == u64::from(sport)
        })
        .collect();
    assert_eq!(connects.len(), 1, "{connects:?}");
    assert_eq!(i(&connects[0]["ret"]), -i64::from(libc::EINPROGRESS));
    assert_eq!(i(&connects[0]["fd"]), i64::from(fd));
    assert_eq!(u(&connects[0]["tid"]), u64::from(gettid()));
}
