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
use super::summary::{PRIO_INFO, PRIO_NOTICE, failed, quoted};
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
    pub const DNS: u32 = 27;
    pub const DNS_MALFORMED: u32 = 28;
}

pub const SPEC: Spec = Spec {
    name: "network",
    needs: &[],
    ring_size: 512 * KIB,
    ring_min: 256 * KIB,
    ring_max: 256 * MIB,
    // The largest record: a DNS message's.
    // Under a memory budget: connections are what an intruder leaves by.
    priority: 4,
    record_size: size_of::<DnsEvent>(),
    kinds: &[
        (kind::CONNECT, "connect"),
        (kind::ACCEPT, "accept"),
        (kind::CLOSE, "close"),
        (kind::BIND, "bind"),
        (kind::LISTEN, "listen"),
        (kind::UDP_FLOW, "udp_flow"),
        (kind::UDP_CLOSE, "udp_close"),
        (kind::DNS, "dns"),
        (kind::DNS_MALFORMED, "dns_malformed"),
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

/// `enum rw_dns_flags`: `DnsEvent::flags`.
pub const DNS_OWNER_KNOWN: u16 = 1;
pub const DNS_OUTBOUND: u16 = 2;
pub const DNS_ANSWERS_PARTIAL: u16 = 4;
pub const DNS_NAME_MAX: usize = 255;
pub const DNS_ADDRS: usize = 8;

/// `enum rw_dns_malformed`, in order from 1.
pub const DNS_MALFORMED: [&str; 8] = [
    "short",
    "qdcount",
    "bad_label",
    "name_too_long",
    "truncated_name",
    "truncated_question",
    "truncated_answer",
    "bad_answer_name",
];

/// `struct dns_event` (bpf/network.h).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsEvent {
    pub hdr: Header,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub family: u16,
    pub id: u16,
    pub dns_flags: u16,
    pub qtype: u16,
    pub qclass: u16,
    pub ancount: u16,
    pub qname_len: u16,
    pub naddrs: u16,
    pub reason: u16,
    pub flags: u16,
    pub length: u32,
    pub pad: u32,
    pub addr_family: [u8; DNS_ADDRS],
    pub addrs: [[u8; 16]; DNS_ADDRS],
    pub qname: [u8; DNS_NAME_MAX + 1 + 64],
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for DnsEvent {}

/// A name in wire format (length-prefixed labels, no root label) as text: labels joined
/// by dots, `.` and `\` in a label escaped with `\`, other bytes outside printable ASCII
/// as `\DDD` (as dig writes them); the root is `.`. A length past the bytes ends it.
pub fn dns_name(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < wire.len() {
        let n = usize::from(wire[i]);
        let label = wire.get(i + 1..i + 1 + n).unwrap_or(&wire[i + 1..]);
        for &b in label {
            match b {
                b'.' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                0x21..=0x7e => out.push(char::from(b)),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
        out.push('.');
        i += 1 + n;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// A query type's mnemonic (RFC 1035 and later), or None.
fn dns_type_name(t: u16) -> Option<&'static str> {
    Some(match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        43 => "DS",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        257 => "CAA",
        _ => return None,
    })
}

/// A response code's name (RFC 1035, 2136), or None.
fn dns_rcode_name(r: u16) -> Option<&'static str> {
    Some(match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return None,
    })
}

fn render_dns(k: u32, data: &[u8], line: &mut impl Fields) -> Result<(), DecodeError> {
    let e: &DnsEvent = view(data, k)?;
    line.str(
        "family",
        match e.family {
            AF_INET => "ipv4",
            AF_INET6 => "ipv6",
            _ => "unknown",
        },
    );
    line.str("protocol", "udp");
    line.display("saddr", addr(e.family, &e.saddr));
    line.u64("sport", e.sport.into());
    line.display("daddr", addr(e.family, &e.daddr));
    line.u64("dport", e.dport.into());
    line.str(
        "direction",
        if e.flags & DNS_OUTBOUND != 0 {
            "sent"
        } else {
            "received"
        },
    );
    line.u64("length", e.length.into());
    if k == kind::DNS_MALFORMED {
        let r = usize::from(e.reason);
        match r.checked_sub(1).and_then(|i| DNS_MALFORMED.get(i)) {
            Some(n) => line.str("reason", n),
            None => line.display("reason", format_args!("unknown({r})")),
        }
    }
    // What a malformed message's reason says was read: the header unless it was short,
    // the question's type and class once the whole question was read.
    const SHORT: u16 = 1;
    const TRUNCATED_ANSWER: u16 = 7;
    let malformed = k == kind::DNS_MALFORMED;
    if malformed && e.reason == SHORT {
        line.bool("owner_known", e.flags & DNS_OWNER_KNOWN != 0);
        return Ok(());
    }
    line.u64("id", e.id.into());
    line.str(
        "qr",
        if e.dns_flags & 0x8000 != 0 {
            "response"
        } else {
            "query"
        },
    );
    line.u64("opcode", ((e.dns_flags >> 11) & 15).into());
    let rcode = e.dns_flags & 15;
    match dns_rcode_name(rcode) {
        Some(n) => line.str("rcode", n),
        None => line.display("rcode", format_args!("unknown({rcode})")),
    }
    let bits: Vec<&str> = [(0x400, "AA"), (0x200, "TC"), (0x100, "RD"), (0x80, "RA")]
        .iter()
        .filter(|(b, _)| e.dns_flags & b != 0)
        .map(|(_, n)| *n)
        .collect();
    line.str("flags_text", &bits.join("|"));
    let n = usize::from(e.qname_len).min(DNS_NAME_MAX);
    if !malformed || e.reason >= TRUNCATED_ANSWER {
        line.str("qname", &dns_name(&e.qname[..n]));
        match dns_type_name(e.qtype) {
            Some(t) => line.str("qtype", t),
            None => line.display("qtype", format_args!("TYPE{}", e.qtype)),
        }
        line.u64("qclass", e.qclass.into());
    }
    line.u64("ancount", e.ancount.into());
    if e.dns_flags & 0x8000 != 0 {
        let answers: Vec<String> = (0..usize::from(e.naddrs).min(DNS_ADDRS))
            .map(|i| addr(u16::from(e.addr_family[i]), &e.addrs[i]).to_string())
            .collect();
        line.bytes_list("answers", answers.iter().map(|a| a.as_bytes()));
        line.bool("answers_partial", e.flags & DNS_ANSWERS_PARTIAL != 0);
    }
    line.bool("owner_known", e.flags & DNS_OWNER_KNOWN != 0);
    Ok(())
}

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
    if k == kind::DNS || k == kind::DNS_MALFORMED {
        return render_dns(k, data, line);
    }
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
    if k == kind::DNS || k == kind::DNS_MALFORMED {
        let e: &DnsEvent = view(data, k)?;
        quoted(b, comm);
        let _ = write!(b, " pid={} uid={} ", h.pid, h.uid);
        if k == kind::DNS_MALFORMED {
            let r = usize::from(e.reason);
            let why = r.checked_sub(1).and_then(|i| DNS_MALFORMED.get(i));
            let _ = write!(b, "malformed ({}) ", why.unwrap_or(&"unknown"));
        }
        let qr = e.dns_flags & 0x8000 != 0;
        // A short message's header was not read: no word on what it is.
        if k == kind::DNS || e.reason != 1 {
            b.extend_from_slice(if qr { b"response " } else { b"query " });
        }
        if k == kind::DNS {
            let n = usize::from(e.qname_len).min(DNS_NAME_MAX);
            match dns_type_name(e.qtype) {
                Some(t) => b.extend_from_slice(t.as_bytes()),
                None => {
                    let _ = write!(b, "TYPE{}", e.qtype);
                }
            }
            let _ = write!(b, " {}", dns_name(&e.qname[..n]));
            if qr {
                match dns_rcode_name(e.dns_flags & 15) {
                    Some(r) => {
                        let _ = write!(b, " {r}");
                    }
                    None => {
                        let _ = write!(b, " rcode={}", e.dns_flags & 15);
                    }
                }
                let _ = write!(b, " answers={}", e.naddrs);
            }
            b.push(b' ');
        }
        let out = e.flags & DNS_OUTBOUND != 0;
        b.extend_from_slice(if out { b"to " } else { b"from " });
        endpoint(b, e.family, &e.daddr, e.dport);
        return Ok(if k == kind::DNS_MALFORMED {
            PRIO_NOTICE
        } else {
            PRIO_INFO
        });
    }
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
    fn dns_names_are_dotted_and_escaped() {
        assert_eq!(dns_name(b""), ".");
        assert_eq!(dns_name(b"\x07example\x03com"), "example.com.");
        assert_eq!(dns_name(b"\x03a.b\x02\\\x00"), "a\\.b.\\\\\\000.");
        // A length past the bytes: what is there, no panic.
        assert_eq!(dns_name(b"\x05ab"), "ab.");
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
    fn dns_mirror_matches_c() {
        assert_layout!(
            Family::Network,
            "dns_event",
            DnsEvent,
            [
                hdr,
                saddr,
                daddr,
                sport,
                dport,
                family,
                id,
                dns_flags,
                qtype,
                qclass,
                ancount,
                qname_len,
                naddrs,
                reason,
                flags,
                length,
                pad,
                addr_family,
                addrs,
                qname
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
                RW_DNS = kind::DNS,
                RW_DNS_MALFORMED = kind::DNS_MALFORMED,
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
            "rw_dns_flags",
            [
                RW_DNS_OWNER_KNOWN = DNS_OWNER_KNOWN,
                RW_DNS_OUTBOUND = DNS_OUTBOUND,
                RW_DNS_ANSWERS_PARTIAL = DNS_ANSWERS_PARTIAL,
            ]
        );
        assert_enum!(
            f,
            "rw_dns_malformed",
            [
                RW_DNS_SHORT = 1,
                RW_DNS_QDCOUNT = 2,
                RW_DNS_BAD_LABEL = 3,
                RW_DNS_NAME_TOO_LONG = 4,
                RW_DNS_TRUNCATED_NAME = 5,
                RW_DNS_TRUNCATED_QUESTION = 6,
                RW_DNS_TRUNCATED_ANSWER = 7,
                RW_DNS_BAD_ANSWER_NAME = 8,
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
