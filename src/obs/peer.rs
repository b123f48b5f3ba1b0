//! Who is at the other end of a metrics connection, so that the slots are shared per
//! client rather than per connection: the uid owning the peer's socket when it is on
//! this host (every local client connects from the same loopback address, and a local
//! user can pick any 127.x source address), else the peer's IP address.
//!
//! The uid comes from the kernel's socket diagnostics (NETLINK_SOCK_DIAG, an exact
//! lookup of one TCP socket by its addresses: two system calls, answered synchronously),
//! the same table `ss -tpe` reads; it needs no privilege.
use std::cell::Cell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A client, as far as sharing the slots goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A socket on this host, owned by this uid.
    Uid(u32),
    /// A socket elsewhere (or one whose owner could not be found).
    Addr(IpAddr),
    /// A Unix socket peer (the control socket is mode 0600: root only).
    Local,
}

/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLMSG_ERROR` (linux/netlink.h).
const NLMSG_ERROR: u16 = 2;
/// nlmsghdr (16) + inet_diag_req_v2 (56).
const REQ_LEN: usize = 72;
/// Offset of `idiag_uid` in the answer: nlmsghdr (16), then in inet_diag_msg the family,
/// state, timer and retrans bytes (4), the socket id (48), expires, rqueue, wqueue (12).
const UID_AT: usize = 16 + 4 + 48 + 12;

pub struct Diag {
    fd: OwnedFd,
    seq: Cell<u32>,
}

impl Diag {
    /// A socket-diagnostics netlink socket (None: peers are told apart by address only,
    /// which is said once, with the likely cause).
    pub fn open() -> Option<Diag> {
        // SAFETY: socket(2) with constant arguments; the fd is owned at once below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            log::warn!(
                "metrics: cannot ask the kernel who local clients are (netlink sock_diag: {}); connection slots are shared per address, so one local user can crowd out a slow scraper (allow AF_NETLINK in the unit's RestrictAddressFamilies=)",
                io::Error::last_os_error()
            );
            return None;
        }
        // SAFETY: a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Some(Diag {
            fd,
            seq: Cell::new(0),
        })
    }

    /// The peer of an accepted TCP connection whose local end is `local`.
    pub fn peer(diag: Option<&Diag>, local: SocketAddr, peer: SocketAddr) -> Peer {
        let ip = peer.ip().to_canonical();
        diag.and_then(|d| d.uid(peer, local))
            .map_or(Peer::Addr(ip), Peer::Uid)
    }

    /// The uid owning the TCP socket on this host bound to `src` and connected to `dst`.
    fn uid(&self, src: SocketAddr, dst: SocketAddr) -> Option<u32> {
        // A dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d; the client's own
        // socket is IPv4.
        let (src_ip, dst_ip) = (src.ip().to_canonical(), dst.ip().to_canonical());
        let mut req = [0u8; REQ_LEN];
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        req[0..4].copy_from_slice(&(REQ_LEN as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
        req[8..12].copy_from_slice(&seq.to_ne_bytes());
        req[16] = match (src_ip, dst_ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET as u8,
            (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6 as u8,
            _ => return None,
        };
        req[17] = libc::IPPROTO_TCP as u8;
        req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes()); // any state
        req[24..26].copy_from_slice(&src.port().to_be_bytes());
        req[26..28].copy_from_slice(&dst.port().to_be_bytes());
        put_ip(&mut req[28..44], src_ip);
        put_ip(&mut req[44..60], dst_ip);
        req[64..72].fill(0xff); // INET_DIAG_NOCOOKIE
        let fd = self.fd.as_raw_fd();
        // SAFETY: sends REQ_LEN bytes of a buffer we own; an unconnected netlink socket
        // sends to the kernel.
        let sent = unsafe { libc::send(fd, req.as_ptr().cast(), REQ_LEN, 0) };
        if sent != REQ_LEN as isize {
            return None;
        }
        // The kernel answers within send(); older answers (none expected) are skipped.
        let mut buf = [0u8; 512];
        loop {
            // SAFETY: receives into a buffer we own, at most its length; non-blocking.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 16 {
                return None;
            }
            let n = n as usize;
            let kind = u16::from_ne_bytes([buf[4], buf[5]]);
            let got = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
            if got != seq {
                continue;
            }
            if kind == NLMSG_ERROR || n < UID_AT + 4 {
                return None;
            }
            return Some(u32::from_ne_bytes([
                buf[UID_AT],
                buf[UID_AT + 1],
                buf[UID_AT + 2],
                buf[UID_AT + 3],
            ]));
        }
    }
}

fn put_ip(out: &mut [u8], ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out.copy_from_slice(&a.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_local_client_is_known_by_its_uid_and_a_stranger_by_its_address() {
        let diag = Diag::open().expect("sock_diag");
        let me = std::fs::metadata("/proc/self").expect("proc").uid();
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let l = TcpListener::bind(bind).expect("bind");
            let c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
            let (s, peer) = l.accept().expect("accept");
            let local = s.local_addr().expect("local");
            assert_eq!(
                Diag::peer(Some(&diag), local, peer),
                Peer::Uid(me),
                "{bind}"
            );
            assert_eq!(peer, c.local_addr().expect("client"));
            // No such socket on this host: the address.
            let stranger = SocketAddr::new(peer.ip(), 1);
            assert_eq!(
                Diag::peer(Some(&diag), local, stranger),
                Peer::Addr(peer.ip())
            );
            assert_eq!(Diag::peer(None, local, peer), Peer::Addr(peer.ip()));
        }
    }
}
