//! Bounded, non-blocking servers on the daemon's one mio loop: the metrics endpoint
//! (TCP, HTTP) and the control socket (Unix stream, one-line protocol). One request per
//! connection, answered and closed. Nothing a client does can block or grow the loop:
//! at most [`MAX_CONNS`] connections (when all are taken, a new one takes the slot of a
//! connection that has not sent a whole request, the oldest of the client holding the
//! most slots (see `peer`), which is told "busy"; only if every slot is answering is the
//! new one told "busy"), at most [`ACCEPT_BATCH`] accepts per wake-up,
//! a request of at most the protocol's limit, [`IDLE`] without progress or [`LIFETIME`]
//! in all and the connection is closed, and answers are written as far as the socket
//! takes them, the rest when it says WRITABLE.
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::peer::{Diag, Peer};
use super::{control, http};

pub const MAX_CONNS: usize = 16;
/// Accepts per wake-up of a listener: the loop drains the rings between two batches, so
/// a connect flood delays events by at most this many accepts. The rest of the backlog
/// waits for the next turn (the listener is re-armed).
pub const ACCEPT_BATCH: usize = 16;
/// A connection that makes no progress (reads or writes nothing) this long is closed.
pub const IDLE: Duration = Duration::from_secs(5);
/// The request must be complete this long after the connect (a client trickling one
/// byte every few seconds would otherwise hold a slot for hours). As long as IDLE: a
/// trickling client holds a slot no longer than a silent one.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// No connection lives longer than this, whatever it does.
pub const LIFETIME: Duration = Duration::from_secs(30);

/// What a complete request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Metrics,
    Status,
}

/// A protocol's verdict on the bytes read so far.
#[derive(Debug)]
pub enum Parsed {
    /// Incomplete: wait for more.
    More,
    /// Nothing to answer (the client left half-way): close.
    Close,
    /// Answer this (an error) and close.
    Reply(Vec<u8>),
    /// A request to answer with the daemon's numbers.
    Request(Request),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `hosts`: `Some(names)` when only an IP literal, `localhost` or one of `names` may
    /// name the server in `Host` (see `http::parse`).
    Http {
        hosts: Option<Vec<String>>,
    },
    Control,
}

impl Kind {
    /// The most request bytes read.
    fn limit(&self) -> usize {
        match self {
            Kind::Http { .. } => http::MAX_HEAD,
            Kind::Control => control::MAX_LINE + 1,
        }
    }

    fn parse(&self, buf: &[u8], eof: bool) -> Parsed {
        match self {
            Kind::Http { hosts } => http::parse(buf, eof, hosts.as_deref()),
            Kind::Control => control::parse(buf, eof),
        }
    }

    fn frame(&self, body: Vec<u8>) -> Vec<u8> {
        match self {
            Kind::Http { .. } => http::ok(&body),
            Kind::Control => body,
        }
    }

    fn busy(&self) -> Vec<u8> {
        match self {
            Kind::Http { .. } => http::error(503),
            Kind::Control => control::error_json("too many clients; try again"),
        }
    }
}

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    fn accept(&self, diag: Option<&Diag>) -> io::Result<(Stream, Peer)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, addr)| {
                let peer = match s.local_addr() {
                    Ok(local) => Diag::peer(diag, local, addr),
                    Err(_) => Peer::Addr(addr.ip().to_canonical()),
                };
                (Stream::Tcp(s), peer)
            }),
            Listener::Unix(l) => l.accept().map(|(s, _)| (Stream::Unix(s), Peer::Local)),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }
}

impl Stream {
    fn fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(true),
            Stream::Unix(s) => s.set_nonblocking(true),
        }
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Conn {
    stream: Stream,
    peer: Peer,
    buf: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    answering: bool,
    opened: Instant,
    active: Instant,
}

impl Conn {
    /// Reads what is there, answers once the request is complete and writes as far as
    /// the socket takes it. True when the connection is finished.
    fn progress(&mut self, kind: &Kind, respond: &dyn Fn(Request) -> Vec<u8>) -> bool {
        if !self.answering {
            let limit = kind.limit();
            let mut eof = false;
            let mut chunk = [0u8; 1024];
            // Edge-triggered: read until the socket is empty (or the limit is passed,
            // which the parser answers).
            while self.buf.len() <= limit {
                let room = (limit + 1 - self.buf.len()).min(chunk.len());
                match self.stream.read(&mut chunk[..room]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        self.buf.extend_from_slice(&chunk[..n]);
                        self.active = Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return true,
                }
            }
            self.out = match kind.parse(&self.buf, eof) {
                Parsed::More => return eof,
                Parsed::Close => return true,
                Parsed::Reply(r) => r,
                Parsed::Request(r) => kind.frame(respond(r)),
            };
            self.answering = true;
            self.buf = Vec::new();
        }
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return true,
                Ok(n) => {
                    self.sent += n;
                    self.active = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        // Done. Take what the client still sent (a body nobody asked for) so that the
        // close sends a FIN, not a reset that could destroy the answer in flight.
        self.stream.shutdown_write();
        let mut sink = [0u8; 1024];
        for _ in 0..64 {
            match self.stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        true
    }
}

/// A Unix socket file this server created, removed when it stops if it is still ours.
#[derive(Debug)]
pub struct OwnedPath {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

pub struct Server {
    kind: Kind,
    listener: Listener,
    token: Token,
    /// Connection i has token `base + i`.
    base: usize,
    conns: Vec<Option<Conn>>,
    owned: Option<OwnedPath>,
    /// Finds the uid of a local TCP client (None for the control socket, or if the
    /// kernel refuses: then clients are told apart by address).
    diag: Option<Diag>,
}

impl Server {
    /// Serves `listener` (already non-blocking) with `token`; connections get the tokens
    /// `base .. base + MAX_CONNS`.
    pub fn new(
        kind: Kind,
        listener: Listener,
        token: Token,
        base: usize,
        owned: Option<OwnedPath>,
        registry: &Registry,
    ) -> io::Result<Server> {
        registry.register(&mut SourceFd(&listener.fd()), token, Interest::READABLE)?;
        let diag = match listener {
            Listener::Tcp(_) => Diag::open(),
            Listener::Unix(_) => None,
        };
        Ok(Server {
            diag,
            kind,
            listener,
            token,
            base,
            conns: (0..MAX_CONNS).map(|_| None).collect(),
            owned,
        })
    }

    /// New rules for requests (SIGHUP), from the next request parsed on.
    pub fn set_kind(&mut self, kind: Kind) {
        self.kind = kind;
    }

    pub fn owns(&self, t: Token) -> bool {
        t == self.token || (self.base..self.base + MAX_CONNS).contains(&t.0)
    }

    /// A readiness event for one of this server's tokens.
    pub fn ready(&mut self, t: Token, registry: &Registry, respond: &dyn Fn(Request) -> Vec<u8>) {
        if t == self.token {
            self.accept(registry, respond);
            return;
        }
        let i = t.0.wrapping_sub(self.base);
        let done = match self.conns.get_mut(i) {
            Some(Some(c)) => c.progress(&self.kind, respond),
            _ => return,
        };
        if done {
            self.close(i, registry);
        }
    }

    /// Takes at most [`ACCEPT_BATCH`] connections from the backlog. Each is read at once:
    /// a request already there is answered before anything can take its slot.
    fn accept(&mut self, registry: &Registry, respond: &dyn Fn(Request) -> Vec<u8>) {
        for _ in 0..ACCEPT_BATCH {
            let (mut stream, peer) = match self.listener.accept(self.diag.as_ref()) {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // One connection's failure (the client reset it while it waited, a
                // protocol error): the rest of the backlog is still there.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM)
                    ) =>
                {
                    continue;
                }
                // WouldBlock: all taken. Anything else (EMFILE, ...): the sweep retries.
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        log::debug!("accept: {e}");
                    }
                    return;
                }
            };
            if stream.set_nonblocking().is_err() {
                continue;
            }
            let Some(i) = self.free_slot(peer, registry, respond) else {
                // Every slot is answering: one attempt at saying so (non-blocking), then
                // closed.
                let _ = stream.write(&self.kind.busy());
                stream.shutdown_write();
                continue;
            };
            let fd = stream.fd();
            if registry
                .register(
                    &mut SourceFd(&fd),
                    Token(self.base + i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                continue;
            }
            let now = Instant::now();
            let mut c = Conn {
                stream,
                peer,
                buf: Vec::new(),
                out: Vec::new(),
                sent: 0,
                answering: false,
                opened: now,
                active: now,
            };
            if !c.progress(&self.kind, respond) {
                self.conns[i] = Some(c);
            } else {
                let _ = registry.deregister(&mut SourceFd(&fd));
            }
        }
        // Edge-triggered: the backlog may hold more, and no new edge will say so.
        // Re-registering makes epoll check the listener again, so the next poll reports
        // it if it is still readable (after this turn's ring drain).
        if let Err(e) = registry.reregister(
            &mut SourceFd(&self.listener.fd()),
            self.token,
            Interest::READABLE,
        ) {
            log::debug!("re-arming the listener: {e}");
        }
    }

    /// A free slot, or one taken from a connection still waiting for its request (told
    /// "busy" and closed): from the client holding the most slots (the newcomer
    /// included), its oldest. One client holding every slot with silent or trickling
    /// connections, and re-opening each one closed, then only ever takes its own slots,
    /// never another client's. The chosen one is read first: a request that arrived
    /// since is answered rather than evicted. None if every slot is answering.
    fn free_slot(
        &mut self,
        newcomer: Peer,
        registry: &Registry,
        respond: &dyn Fn(Request) -> Vec<u8>,
    ) -> Option<usize> {
        if let Some(i) = self.conns.iter().position(Option::is_none) {
            return Some(i);
        }
        let held = |p: Peer| {
            self.conns.iter().flatten().filter(|c| c.peer == p).count() + usize::from(p == newcomer)
        };
        let held: Vec<usize> = self
            .conns
            .iter()
            .map(|c| c.as_ref().map_or(0, |c| held(c.peer)))
            .collect();
        // Each turn returns or makes one more connection answering: at most MAX_CONNS.
        loop {
            let (i, _) = self
                .conns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
                .filter(|(_, c)| !c.answering)
                .min_by_key(|(i, c)| (std::cmp::Reverse(held[*i]), c.opened))?;
            let c = self.conns[i].as_mut()?;
            if !c.progress(&self.kind, respond) {
                if c.answering {
                    // Its answer did not fit the socket: it keeps its slot.
                    continue;
                }
                let _ = c.stream.write(&self.kind.busy());
                c.stream.shutdown_write();
            }
            self.close(i, registry);
            return Some(i);
        }
    }

    fn close(&mut self, i: usize, registry: &Registry) {
        if let Some(c) = self.conns.get_mut(i).and_then(Option::take) {
            let _ = registry.deregister(&mut SourceFd(&c.stream.fd()));
        }
    }

    /// Every tick: closes connections past their time, and accepts what an earlier
    /// accept error (out of fds) left waiting.
    pub fn sweep(&mut self, registry: &Registry, respond: &dyn Fn(Request) -> Vec<u8>) {
        let now = Instant::now();
        for i in 0..self.conns.len() {
            let expired = self.conns[i].as_ref().is_some_and(|c| {
                now.duration_since(c.active) > IDLE
                    || now.duration_since(c.opened) > LIFETIME
                    || (!c.answering && now.duration_since(c.opened) > HEAD_DEADLINE)
            });
            if expired {
                self.close(i, registry);
            }
        }
        self.accept(registry, respond);
    }

    /// Open connections.
    #[cfg(test)]
    pub fn connections(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }

    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.listener {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }

    /// Stops serving: deregisters everything; the socket file goes with `Drop`.
    pub fn stop(mut self, registry: &Registry) {
        for i in 0..self.conns.len() {
            self.close(i, registry);
        }
        let _ = registry.deregister(&mut SourceFd(&self.listener.fd()));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(o) = &self.owned
            && let Ok(m) = std::fs::symlink_metadata(&o.path)
            && m.dev() == o.dev
            && m.ino() == o.ino
        {
            let _ = std::fs::remove_file(&o.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};

    const LISTEN: Token = Token(1000);
    const BASE: usize = 2000;

    /// A metrics server on 127.0.0.1:0 in its own poll, answering with `body`.
    struct Rig {
        poll: Poll,
        server: Server,
        addr: std::net::SocketAddr,
        body: Vec<u8>,
    }

    impl Rig {
        fn new(body: Vec<u8>) -> Rig {
            let poll = Poll::new().expect("poll");
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            let addr = l.local_addr().expect("addr");
            let server = Server::new(
                Kind::Http { hosts: None },
                Listener::Tcp(l),
                LISTEN,
                BASE,
                None,
                poll.registry(),
            )
            .expect("server");
            Rig {
                poll,
                server,
                addr,
                body,
            }
        }

        /// Runs the loop for `d`; returns the longest a single event took to handle.
        fn run(&mut self, d: Duration) -> Duration {
            let mut events = Events::with_capacity(64);
            let end = Instant::now() + d;
            let mut worst = Duration::ZERO;
            while Instant::now() < end {
                self.poll
                    .poll(&mut events, Some(Duration::from_millis(10)))
                    .expect("poll");
                for ev in events.iter() {
                    let t = Instant::now();
                    let body = self.body.clone();
                    self.server
                        .ready(ev.token(), self.poll.registry(), &move |_| body.clone());
                    worst = worst.max(t.elapsed());
                }
            }
            worst
        }
    }

    fn get(addr: std::net::SocketAddr) -> TcpStream {
        let mut c = TcpStream::connect(addr).expect("connect");
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        c
    }

    #[test]
    fn a_client_that_does_not_read_a_large_answer_gets_it_later_in_full() {
        // 8 MiB: far more than the socket buffers take, so most of it waits in the
        // server for WRITABLE while the loop serves others.
        let body: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
        let mut rig = Rig::new(body.clone());
        let mut slow = get(rig.addr);
        let worst = rig.run(Duration::from_millis(300));
        assert!(
            worst < Duration::from_millis(100),
            "an event took {worst:?}"
        );
        let c = rig
            .server
            .conns
            .iter()
            .flatten()
            .next()
            .expect("still open");
        assert!(c.answering && c.sent < c.out.len(), "the rest is kept");
        assert_eq!(rig.server.connections(), 1);
        // Meanwhile a second client is served completely.
        let mut other = get(rig.addr);
        other
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let head = http::ok(&body);
        let mut got = Vec::new();
        let t = Instant::now();
        while got.len() < head.len() && t.elapsed() < Duration::from_secs(20) {
            rig.run(Duration::from_millis(5));
            let mut b = vec![0u8; 1 << 20];
            if let Ok(n) = other.read(&mut b) {
                got.extend_from_slice(&b[..n]);
            }
        }
        assert_eq!(got, head, "second client got everything");
        // Now the slow one reads: everything arrives, in order, then EOF.
        slow.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let mut got = Vec::new();
        let t = Instant::now();
        loop {
            rig.run(Duration::from_millis(2));
            let mut b = vec![0u8; 1 << 20];
            match slow.read(&mut b) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(_) => {}
            }
            assert!(t.elapsed() < Duration::from_secs(20), "slow client stuck");
        }
        assert_eq!(got, head);
        assert_eq!(rig.server.connections(), 0);
    }

    #[test]
    fn a_new_connection_takes_the_slot_of_the_oldest_silent_one_and_idle_ones_expire() {
        let mut rig = Rig::new(b"x 1\n".to_vec());
        let mut idle: Vec<TcpStream> = Vec::new();
        for _ in 0..MAX_CONNS {
            idle.push(TcpStream::connect(rig.addr).expect("connect"));
            // One at a time: their order is the order they were opened in.
            rig.run(Duration::from_millis(5));
        }
        rig.run(Duration::from_millis(50));
        assert_eq!(rig.server.connections(), MAX_CONNS);
        // A scrape while all are held: the oldest is told "busy", the scrape answered.
        let mut c = get(rig.addr);
        rig.run(Duration::from_millis(100));
        let mut b = Vec::new();
        c.read_to_end(&mut b).expect("read");
        assert_eq!(b, http::ok(b"x 1\n"));
        let mut first = idle.remove(0);
        let mut answer = Vec::new();
        first.read_to_end(&mut answer).expect("read");
        assert_eq!(answer, http::error(503));
        // The others are held until IDLE (the daemon sweeps every tick).
        assert_eq!(rig.server.connections(), MAX_CONNS - 1);
        std::thread::sleep(IDLE + Duration::from_millis(100));
        rig.server.sweep(rig.poll.registry(), &|_| Vec::new());
        assert_eq!(rig.server.connections(), 0);
        for mut c in idle {
            let mut b = Vec::new();
            c.read_to_end(&mut b).expect("closed without a word");
            assert!(b.is_empty());
        }
    }

    #[test]
    fn the_oldest_is_read_before_it_is_evicted() {
        let mut rig = Rig::new(b"x 1\n".to_vec());
        let mut held: Vec<TcpStream> = Vec::new();
        for _ in 0..MAX_CONNS {
            held.push(TcpStream::connect(rig.addr).expect("connect"));
            rig.run(Duration::from_millis(5));
        }
        rig.run(Duration::from_millis(50));
        assert_eq!(rig.server.connections(), MAX_CONNS);
        // The oldest sends its request; before the loop sees it, a newcomer is accepted.
        held[0]
            .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .expect("send");
        std::thread::sleep(Duration::from_millis(20));
        let _newcomer = TcpStream::connect(rig.addr).expect("connect");
        let body = rig.body.clone();
        rig.server
            .ready(LISTEN, rig.poll.registry(), &move |_| body.clone());
        let mut b = Vec::new();
        held[0].read_to_end(&mut b).expect("read");
        assert_eq!(b, http::ok(b"x 1\n"), "answered, not evicted");
        // Nobody else lost a slot.
        assert_eq!(rig.server.connections(), MAX_CONNS);
        for c in &held[1..] {
            c.set_nonblocking(true).expect("nonblocking");
            assert!(silent_and_open(c));
        }
    }

    #[test]
    fn when_every_slot_is_answering_a_new_connection_is_told_busy() {
        // 8 MiB answers nobody reads (more than the socket buffers take): every slot
        // stays answering.
        let body: Vec<u8> = vec![b'x'; 8 << 20];
        let mut rig = Rig::new(body);
        let deaf: Vec<TcpStream> = (0..MAX_CONNS).map(|_| get(rig.addr)).collect();
        rig.run(Duration::from_millis(300));
        assert_eq!(rig.server.connections(), MAX_CONNS);
        assert!(rig.server.conns.iter().flatten().all(|c| c.answering));
        let mut extra = TcpStream::connect(rig.addr).expect("connect");
        rig.run(Duration::from_millis(100));
        let mut answer = Vec::new();
        extra.read_to_end(&mut answer).expect("read");
        assert_eq!(answer, http::error(503));
        assert_eq!(rig.server.connections(), MAX_CONNS);
        drop(deaf);
    }

    #[test]
    fn a_backlog_longer_than_one_batch_is_taken_over_several_turns() {
        let mut rig = Rig::new(b"x 1\n".to_vec());
        // Requests already sent when accepted: each is answered in the accept.
        let n = 3 * ACCEPT_BATCH + 5;
        let mut clients: Vec<TcpStream> = (0..n).map(|_| get(rig.addr)).collect();
        let mut events = Events::with_capacity(64);
        let mut turns = 0;
        let mut answered = 0;
        let t = Instant::now();
        while answered < n {
            assert!(t.elapsed() < Duration::from_secs(10), "{answered} of {n}");
            rig.poll
                .poll(&mut events, Some(Duration::from_millis(100)))
                .expect("poll");
            let listener_events = events.iter().filter(|e| e.token() == LISTEN).count();
            if listener_events > 0 {
                turns += 1;
            }
            for ev in events.iter() {
                let body = rig.body.clone();
                rig.server
                    .ready(ev.token(), rig.poll.registry(), &move |_| body.clone());
            }
            answered = clients
                .iter_mut()
                .filter(|c| {
                    c.set_nonblocking(true).expect("nonblocking");
                    !silent_and_open(c)
                })
                .count();
        }
        // One batch per wake-up: the listener came back for the rest.
        assert!(turns > n / ACCEPT_BATCH, "{turns} turns");
        for mut c in clients {
            c.set_nonblocking(false).expect("blocking");
            let mut b = Vec::new();
            c.read_to_end(&mut b).expect("read");
            assert_eq!(b, http::ok(b"x 1\n"));
        }
    }

    /// Neither data nor EOF from the peer yet.
    fn silent_and_open(c: &TcpStream) -> bool {
        let mut b = [0u8; 1];
        matches!(c.peek(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}
