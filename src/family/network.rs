//! Network family records (bpf/network.h): TCP connect, accept, close; TCP and UDP bind,
//! TCP listen.
//! JSON: `family` (ipv4/ipv6), `protocol` (tcp, udp), `saddr`/`sport` (local end),
//! `daddr`/`dport` (peer; not for bind and listen); connect adds `ret`, `fd`,
//! `daddr_from_args`, `via` (`connect`, or `fastopen` for a send with MSG_FASTOPEN); accept
//! adds `fd`; bind adds `ret`, `fd`, `saddr_from_args`; listen adds `ret`, `fd`, `backlog`;
//! udp_flow (a socket's first datagram with a peer) and udp_close (the flow's totals, when
//! the socket is released or the flow evicted) add `first` (sent/received), `bytes_sent`,
//! `bytes_received`, `packets_sent`, `packets_received` (UDP payload), `owner_known`, and
//! for udp_close `evicted`;
//! close adds `bytes_sent` (payload, retransmissions included), `bytes_received` (payload),
//! `bytes_acked` (sequence space: SYN and FIN count one), `bytes_retrans`, `oldstate`,
//! `peer_fin` and `owner_known` (the header names who connected or accepted the socket).
use std::io::Write as _;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr};

use plain::Plain;

use super::record::{DecodeError, Fields, Header, cstr, view};
use super::summary::{PRIO_INFO, failed, quoted};
use super::{KIB, MIB, Spec};


/// `enum rw_network_type` (bpf/network.h): the header's `type`.
pub mod kind {
    pub const CONNECT: u32 = 5;
    pub const ACCEPT: u32 = 6;
    pub const CLOSE: u32 = 7;
    pub const BIND: u32 = 23;
    pub const LISTEN: u32 = 24;
    pub const UDP_FLOW: u32 = 25;
    pub const UDP_CLOSE: u32 = 26;
}

pub const SPEC: Spec = Spec {
    name: "network",
    object: include_bytes!(concat!(env!("OUT_DIR"), "/network.bpf.o.z")),
    ring_size: 512 * KIB,
    ring_min: 256 * KIB,
    ring_max: 256 * MIB,
    record_size: size_of::<NetEvent>(),
    kinds: &[
        (kind::CONNECT, "connect"),
        (kind::ACCEPT, "accept"),
        (kind::CLOSE, "close"),
        (kind::BIND, "bind"),
        (kind::LISTEN, "listen"),
        (kind::UDP_FLOW, "udp_flow"),
        (kind::UDP_CLOSE, "udp_close"),
    ],
    observe: None,
    own_context: &[],
};

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;
pub const NET_OWNER_KNOWN: u8 = 1;
pub const NET_DADDR_FROM_ARGS: u8 = 2;
pub const NET_PEER_FIN: u8 = 4;
pub const NET_SADDR_FROM_ARGS: u8 = 8;
pub const NET_FLOW_EVICTED: u8 = 16;
pub const NET_FLOW_INBOUND: u8 = 32;
/// `enum rw_net_via`: how a connect was made.
pub const NET_VIA_CONNECT: u8 = 0;
pub const NET_VIA_FASTOPEN: u8 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NetEvent {
    pub hdr: Header,
    pub ret: i64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub bytes_acked: u64,
    pub bytes_retrans: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub family: u16,
    pub protocol: u16,
    pub fd: i32,
    pub oldstate: u8,
    pub flags: u8,
    pub via: u8,
    pub pad: u8,
    pub backlog: u32,
    pub pad2: u32,
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for NetEvent {}

/// An address of `family` as the kernel stored it (network byte order).
enum Addr {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::V4(a) => a.fmt(f),
            Addr::V6(a) => a.fmt(f),
        }
    }
}

fn addr(family: u16, b: &[u8; 16]) -> Addr {
    if family == AF_INET {
        Addr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        Addr::V6(Ipv6Addr::from(*b))
    }
}

/// Linux TCP state names (include/net/tcp_states.h).
pub fn tcp_state_name(s: u8) -> Option<&'static str> {
    Some(match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        13 => "BOUND_INACTIVE",
        _ => return None,
    })
}

pub fn render(k: u32, data: &[u8], line: &mut impl Fields) -> Result<(), DecodeError> {
    let e: &NetEvent = view(data, k)?;
    line.str(
        "family",
        match e.family {
            AF_INET => "ipv4",
            AF_INET6 => "ipv6",
            _ => "unknown",
        },
    );
    line.str(
        "protocol",
        match e.protocol {
            IPPROTO_TCP => "tcp",
            IPPROTO_UDP => "udp",
            _ => "unknown",
        },
    );
    line.display("saddr", addr(e.family, &e.saddr));
    line.u64("sport", e.sport.into());
    if k != kind::BIND && k != kind::LISTEN {
        line.display("daddr", addr(e.family, &e.daddr));
        line.u64("dport", e.dport.into());
    }
    match k {
        kind::CONNECT => {
            line.i64("ret", e.ret);
            line.i64("fd", e.fd.into());
            line.bool("daddr_from_args", e.flags & NET_DADDR_FROM_ARGS != 0);
            match e.via {
                NET_VIA_CONNECT => line.str("via", "connect"),
                NET_VIA_FASTOPEN => line.str("via", "fastopen"),
                v => line.u64("via", v.into()),
            }
        }
        kind::ACCEPT => line.i64("fd", e.fd.into()),
        kind::UDP_FLOW | kind::UDP_CLOSE => {
            line.str(
                "first",
                if e.flags & NET_FLOW_INBOUND != 0 {
                    "received"
                } else {
                    "sent"
                },
            );
            line.u64("bytes_sent", e.bytes_sent);
            line.u64("bytes_received", e.bytes_received);
            line.u64("packets_sent", e.packets_sent);
            line.u64("packets_received", e.packets_received);
            if k == kind::UDP_CLOSE {
                line.bool("evicted", e.flags & NET_FLOW_EVICTED != 0);
            }
            line.bool("owner_known", e.flags & NET_OWNER_KNOWN != 0);
        }
        kind::BIND | kind::LISTEN => {
            line.i64("ret", e.ret);
            line.i64("fd", e.fd.into());
            if k == kind::BIND {
                line.bool("saddr_from_args", e.flags & NET_SADDR_FROM_ARGS != 0);
            } else {
                line.u64("backlog", e.backlog.into());
            }
        }
        _ => {
            line.u64("bytes_sent", e.bytes_sent);
            line.u64("bytes_received", e.bytes_received);
            line.u64("bytes_acked", e.bytes_acked);
            line.u64("bytes_retrans", e.bytes_retrans);
            match tcp_state_name(e.oldstate) {
                Some(n) => line.str("oldstate", n),
                None => line.u64("oldstate", e.oldstate.into()),
            }
            line.bool("peer_fin", e.flags & NET_PEER_FIN != 0);
            line.bool("owner_known", e.flags & NET_OWNER_KNOWN != 0);
        }
    }
    Ok(())
}

/// The journal's one-line summary (see `super::summary`).
pub fn summary(h: &Header, data: &[u8], b: &mut Vec<u8>) -> Result<u8, DecodeError> {
    let k = h.kind;
    let comm = cstr(&h.comm);
            let e: &NetEvent = view(data, k)?;
            quoted(b, comm);
            let _ = write!(b, " pid={} uid={} ", h.pid, h.uid);
            if k == kind::BIND || k == kind::LISTEN {
                b.extend_from_slice(if e.protocol == IPPROTO_UDP { b"udp " } else { b"tcp " });
                endpoint(b, e.family, &e.saddr, e.sport);
                if k == kind::LISTEN {
                    let _ = write!(b, " backlog={}", e.backlog);
                }
                if e.ret < 0 {
                    failed(b, e.ret);
                }
                return Ok(PRIO_INFO);
            }
            endpoint(b, e.family, &e.saddr, e.sport);
            b.extend_from_slice(if k == kind::ACCEPT { b" <- " } else { b" -> " });
            endpoint(b, e.family, &e.daddr, e.dport);
            if k == kind::CONNECT {
                if e.via == NET_VIA_FASTOPEN {
                    b.extend_from_slice(b" (fastopen)");
                }
                if e.ret == -i64::from(libc::EINPROGRESS) {
                    b.extend_from_slice(b" (in progress)");
                } else if e.ret < 0 {
                    failed(b, e.ret);
                }
            } else if k == kind::UDP_FLOW || k == kind::UDP_CLOSE {
                b.extend_from_slice(b" udp");
                if k == kind::UDP_CLOSE {
                    let _ = write!(
                        b,
                        " sent={}/{} received={}/{}",
                        e.bytes_sent, e.packets_sent, e.bytes_received, e.packets_received
                    );
                }
            } else if k == kind::CLOSE {
                let _ = write!(b, " sent={} received={}", e.bytes_sent, e.bytes_received);
                if e.bytes_retrans > 0 {
                    let _ = write!(b, " retrans={}", e.bytes_retrans);
                }
            }
    Ok(PRIO_INFO)
}

/// `1.2.3.4:80` or `[::1]:80`.
fn endpoint(b: &mut Vec<u8>, family: u16, addr: &[u8; 16], port: u16) {
    let _ = if family == AF_INET {
        write!(
            b,
            "{}:{port}",
            Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])
        )
    } else {
        write!(b, "[{}]:{port}", Ipv6Addr::from(*addr))
    };
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::json::Line;

    fn rendered(k: u32, e: &NetEvent) -> serde_json::Value {
        // SAFETY: NetEvent is repr(C) plain data; its bytes are read as a ring record.
        let data = unsafe {
            std::slice::from_raw_parts((e as *const NetEvent).cast::<u8>(), size_of::<NetEvent>())
        };
        let mut buf = Vec::new();
        let mut line = Line::begin(&mut buf);
        render(k, data, &mut line).expect("renders");
        line.end();
        serde_json::from_slice(&buf).expect("valid JSON")
    }

    #[test]
    fn addresses_and_ports() {
        let mut e = NetEvent {
            family: AF_INET,
            protocol: IPPROTO_TCP,
            sport: 40000,
            dport: 443,
            ret: -115,
            fd: 3,
            ..Default::default()
        };
        e.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        e.daddr[..4].copy_from_slice(&[10, 1, 2, 3]);
        let v = rendered(kind::CONNECT, &e);
        assert_eq!(v["family"], "ipv4");
        assert_eq!(v["protocol"], "tcp");
        assert_eq!(v["saddr"], "127.0.0.1");
        assert_eq!(v["daddr"], "10.1.2.3");
        assert_eq!(v["sport"], 40000);
        assert_eq!(v["dport"], 443);
        assert_eq!(v["ret"], -115);
        assert_eq!(v["via"], "connect");
        e.via = NET_VIA_FASTOPEN;
        assert_eq!(rendered(kind::CONNECT, &e)["via"], "fastopen");

        e.family = AF_INET6;
        e.saddr = Ipv6Addr::LOCALHOST.octets();
        e.daddr = Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped().octets();
        e.oldstate = 9;
        e.bytes_sent = 5;
        e.flags = NET_OWNER_KNOWN;
        let v = rendered(kind::CLOSE, &e);
        assert_eq!(v["family"], "ipv6");
        assert_eq!(v["saddr"], "::1");
        assert_eq!(v["daddr"], "::ffff:192.0.2.1");
        assert_eq!(v["oldstate"], "LAST_ACK");
        assert_eq!(v["bytes_sent"], 5);
        assert_eq!(v["owner_known"], true);
        assert!(v.get("ret").is_none());
    }
}

#[cfg(test)]
mod layout {
    use super::*;
    use crate::assert_layout;
    use crate::family::Family;

    #[test]
    fn mirrors_match_c() {
        assert_layout!(
            Family::Network,
            "net_event",
            NetEvent,
            [
                hdr,
                ret,
                bytes_sent,
                bytes_received,
                bytes_acked,
                bytes_retrans,
                packets_sent,
                packets_received,
                saddr,
                daddr,
                sport,
                dport,
                family,
                protocol,
                fd,
                oldstate,
                flags,
                via,
                pad,
                backlog,
                pad2
            ]
        );
    }

    #[test]
    fn constants_match_c() {
        use crate::assert_enum;
        let f = Family::Network;
        assert_enum!(
            f,
            "rw_network_type",
            [
                RW_CONNECT = kind::CONNECT,
                RW_ACCEPT = kind::ACCEPT,
                RW_CLOSE = kind::CLOSE,
                RW_BIND = kind::BIND,
                RW_LISTEN = kind::LISTEN,
                RW_UDP_FLOW = kind::UDP_FLOW,
                RW_UDP_CLOSE = kind::UDP_CLOSE,
            ]
        );
        assert_enum!(
            f,
            "rw_net_family",
            [RW_AF_INET = AF_INET, RW_AF_INET6 = AF_INET6]
        );
        assert_enum!(
            f,
            "rw_net_flags",
            [
                RW_NET_OWNER_KNOWN = NET_OWNER_KNOWN,
                RW_NET_DADDR_FROM_ARGS = NET_DADDR_FROM_ARGS,
                RW_NET_PEER_FIN = NET_PEER_FIN,
                RW_NET_SADDR_FROM_ARGS = NET_SADDR_FROM_ARGS,
                RW_NET_FLOW_EVICTED = NET_FLOW_EVICTED,
                RW_NET_FLOW_INBOUND = NET_FLOW_INBOUND,
            ]
        );
        assert_enum!(
            f,
            "rw_net_via",
            [
                RW_NET_VIA_CONNECT = NET_VIA_CONNECT,
                RW_NET_VIA_FASTOPEN = NET_VIA_FASTOPEN,
            ]
        );
    }
}
