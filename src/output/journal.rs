//! The `journal` event sink (`--output journal`): every event is one entry of
//! systemd-journald's native protocol, one datagram on its socket. An entry is a list of
//! fields: `KEY=value\n` for text, or `KEY\n`, the value's length as a little-endian u64,
//! the value's bytes and `\n` for anything else (a newline, another control byte, bytes
//! that are not UTF-8), so kernel byte strings arrive exact. An entry too big for one
//! datagram goes as a sealed memfd passed with SCM_RIGHTS, as journald documents.
//!
//! Fields: `MESSAGE` (a one-line summary for people, see [`summary`]), `PRIORITY`
//! (anomalies by severity, everything else info), `SYSLOG_IDENTIFIER=ringwarden`, and every
//! field of the JSON schema as `RINGWARDEN_<KEY>` (the JSON key in upper case), written
//! by the same per-family walk as the JSON line ([`crate::family::Fields`]). Lists
//! (`argv`, `args`) are their JSON text; `argv` that is not UTF-8 also gets
//! `RINGWARDEN_ARGV_HEX`, as in JSON. Byte strings are the raw bytes.
//!
//! The socket is non-blocking and watched by the loop: entries wait (up to
//! [`MAX_BUFFERED`] bytes) while journald is slow or away, and what it never takes is
//! counted as sink errors with a rate-limited log line.
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{info, warn};

use super::json::{bytes_array, hex_array, u64_array};
use super::sink::{Flushed, MAX_BUFFERED, Sink};
use crate::context::Context;
use crate::family::record::{self, Ancestor, DecodeError, Fields, Header, RingOf, view};
use crate::sys::clock::WallClock;
use crate::units::{push_i64, push_u64};

/// journald's socket for native entries.
pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";
/// Overrides [`DEFAULT_SOCKET`]: a testing aid (tests bind their own socket, or run
/// journald in a namespace of its own), not a setting for production.
pub const SOCKET_ENV: &str = "RINGWARDEN_JOURNAL_SOCKET";
/// A journal that went away is looked for again at most this often.
const RETRY: Duration = Duration::from_secs(1);
/// Lost events are reported at most this often (with the count since the last line).
const LOG_EVERY: Duration = Duration::from_secs(10);

pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from)
}

// ---------------------------------------------------------------------------------
// Encoding

/// Writes an event's fields as `RINGWARDEN_*` journal fields into `buf`.
pub struct Entry<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> Entry<'a> {
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        Entry { buf }
    }

    #[inline]
    fn key(&mut self, k: &str) {
        self.buf.extend_from_slice(b"RINGWARDEN_");
        let start = self.buf.len();
        self.buf.extend_from_slice(k.as_bytes());
        self.buf[start..].make_ascii_uppercase();
    }

    /// A value written in place by `f` after `KEY=`; re-framed in the binary-safe form
    /// in the rare case that it turns out not to be one line of text.
    fn with(&mut self, k: &str, f: impl FnOnce(&mut Vec<u8>)) {
        self.key(k);
        let start = self.buf.len();
        self.buf.push(b'=');
        f(self.buf);
        if is_text(&self.buf[start + 1..]) {
            self.buf.push(b'\n');
        } else {
            let v = self.buf.split_off(start + 1);
            self.buf.truncate(start);
            put_value(self.buf, &v);
        }
    }
}

/// Whether `v` can be sent as `KEY=value\n`: UTF-8 without control bytes.
fn is_text(v: &[u8]) -> bool {
    !v.iter().any(|&b| b < 0x20 || b == 0x7f) && std::str::from_utf8(v).is_ok()
}

/// The value after a field name: `=value\n` for text, otherwise the binary-safe form
/// `\n`, length (u64 little-endian), the bytes, `\n`.
pub fn put_value(buf: &mut Vec<u8>, v: &[u8]) {
    if is_text(v) {
        buf.push(b'=');
        buf.extend_from_slice(v);
    } else {
        buf.push(b'\n');
        buf.extend_from_slice(&(v.len() as u64).to_le_bytes());
        buf.extend_from_slice(v);
    }
    buf.push(b'\n');
}

impl Fields for Entry<'_> {
    fn u64(&mut self, k: &str, v: u64) {
        self.key(k);
        self.buf.push(b'=');
        push_u64(self.buf, v);
        self.buf.push(b'\n');
    }

    fn i64(&mut self, k: &str, v: i64) {
        self.key(k);
        self.buf.push(b'=');
        push_i64(self.buf, v);
        self.buf.push(b'\n');
    }

    fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.buf
            .extend_from_slice(if v { b"=true\n" } else { b"=false\n" });
    }

    fn str(&mut self, k: &str, v: &str) {
        self.bytes(k, v.as_bytes());
    }

    fn display(&mut self, k: &str, v: impl std::fmt::Display) {
        self.with(k, |b| {
            let _ = write!(b, "{v}");
        });
    }

    fn bytes(&mut self, k: &str, v: &[u8]) {
        self.key(k);
        put_value(self.buf, v);
    }

    /// The JSON text of the list (one line: JSON escapes newlines); when an element is
    /// not UTF-8, `KEY_HEX` holds every element in hex, as the JSON line does.
    fn bytes_list<'b>(&mut self, k: &str, items: impl Iterator<Item = &'b [u8]> + Clone) {
        self.key(k);
        self.buf.push(b'=');
        let all_utf8 = bytes_array(self.buf, items.clone());
        self.buf.push(b'\n');
        if !all_utf8 {
            self.key(k);
            self.buf.extend_from_slice(b"_HEX=");
            hex_array(self.buf, items);
            self.buf.push(b'\n');
        }
    }

    fn u64_list(&mut self, k: &str, v: &[u64]) {
        self.key(k);
        self.buf.push(b'=');
        u64_array(self.buf, v);
        self.buf.push(b'\n');
    }

    fn ascii_with(&mut self, k: &str, f: impl FnOnce(&mut Vec<u8>)) {
        // Printable ASCII by the trait's contract: always `KEY=value\n`.
        self.key(k);
        self.buf.push(b'=');
        f(self.buf);
        self.buf.push(b'\n');
    }

    /// The JSON text of the list, as the JSON line has it (one line of UTF-8).
    fn ancestors(&mut self, k: &str, list: &[Ancestor<'_>]) {
        self.key(k);
        self.buf.push(b'=');
        super::json::ancestors_array(self.buf, list);
        self.buf.push(b'\n');
    }

    const FORMAT: u64 = 2;
    fn continuing(buf: &mut Vec<u8>) -> impl Fields + '_ {
        Entry::new(buf)
    }
    fn splice(&mut self, fields: &[u8]) {
        self.buf.extend_from_slice(fields);
    }
}

/// Writes the one-line `MESSAGE` of a record (its type, then its family's summary, see
/// `crate::family::summary`) and returns its syslog priority.
pub fn summary(h: &Header, data: &[u8], b: &mut Vec<u8>) -> Result<u8, DecodeError> {
    let (family, name) = record::type_of(h.kind)?;
    b.extend_from_slice(name.as_bytes());
    b.push(b' ');
    family.summary(h, data, b)
}

/// Appends the journal entry of one ring record to `buf` (nothing on an error).
pub fn encode(
    ring: &str,
    clock: &WallClock,
    data: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    encode_with(ring.into(), clock, data, None, buf)
}

/// [`encode`], with the event's context from `ctx` when given.
pub fn encode_with(
    ring: RingOf<'_>,
    clock: &WallClock,
    data: &[u8],
    ctx: Option<&mut Context>,
    buf: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let h: &Header = view(data, 0)?;
    record::all_or_nothing(buf, |buf| {
        buf.extend_from_slice(b"MESSAGE=");
        let priority = summary(h, data, buf)?;
        // The summary escapes every control byte: always one line of text.
        buf.extend_from_slice(b"\nPRIORITY=");
        buf.push(b'0' + priority);
        buf.extend_from_slice(b"\nSYSLOG_IDENTIFIER=ringwarden\n");
        record::walk(ring, clock, h, data, ctx, &mut Entry::new(buf))
    })
}

/// Appends the journal entry of an event the daemon raised itself.
pub fn encode_raised(clock: &WallClock, ev: &super::Raised<'_>, buf: &mut Vec<u8>) {
    buf.extend_from_slice(b"MESSAGE=");
    let priority = ev.summary(buf);
    buf.extend_from_slice(b"\nPRIORITY=");
    buf.push(b'0' + priority);
    buf.extend_from_slice(b"\nSYSLOG_IDENTIFIER=ringwarden\n");
    ev.walk(clock, &mut Entry::new(buf));
}

// ---------------------------------------------------------------------------------
// The sink

/// Why events were counted as sink errors (for the rate-limited log line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loss {
    /// MAX_BUFFERED bytes of entries wait already.
    Full,
    /// A send failed for good (errno).
    Send(i32),
    /// An oversized entry could not be passed by memfd (errno).
    Memfd(i32),
    /// The socket was still unreachable at exit.
    Unreachable,
    /// journald had not taken them one second after shutdown.
    Exit,
}

impl Loss {
    const SLOTS: usize = 5;

    fn slot(self) -> usize {
        match self {
            Loss::Full => 0,
            Loss::Send(_) => 1,
            Loss::Memfd(_) => 2,
            Loss::Unreachable => 3,
            Loss::Exit => 4,
        }
    }
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loss::Full => write!(
                f,
                "journald is not keeping up and {} MiB of entries wait already",
                MAX_BUFFERED >> 20
            ),
            Loss::Send(e) => write!(
                f,
                "sending an entry failed: {}",
                io::Error::from_raw_os_error(*e)
            ),
            Loss::Memfd(e) => write!(
                f,
                "passing an oversized entry by memfd failed: {}",
                io::Error::from_raw_os_error(*e)
            ),
            Loss::Unreachable => write!(f, "the journal socket is still unreachable at exit"),
            Loss::Exit => write!(f, "journald did not take them within 1 s of shutdown"),
        }
    }
}

pub struct JournalSink {
    path: PathBuf,
    sock: UnixDatagram,
    connected: bool,
    tried: Instant,
    /// The connect error last logged (a new one is logged; the same one again is not).
    down: Option<String>,
    /// Entries back to back; `lens` holds their lengths. The first `sent` entries
    /// (`head` bytes) are out already.
    buf: Vec<u8>,
    lens: Vec<usize>,
    sent: usize,
    head: usize,
    errors: u64,
    delivered: u64,
    /// When losses were last logged, and which reasons have ever been (by slot).
    logged_at: Option<Instant>,
    logged: [bool; Loss::SLOTS],
    /// Losses not logged yet, per reason slot, with that reason's latest detail.
    unlogged: [(u64, Loss); Loss::SLOTS],
}

impl JournalSink {
    /// A non-blocking datagram socket connected to `path`. A journal that is not there
    /// (yet) is not an error: it is logged, retried every second, and entries wait.
    pub fn open(path: &Path) -> Result<JournalSink, super::Error> {
        let sock = UnixDatagram::unbound()
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(super::Error::JournalSocket)?;
        let mut j = JournalSink {
            path: path.to_path_buf(),
            sock,
            connected: false,
            tried: Instant::now(),
            down: None,
            buf: Vec::with_capacity(128 << 10),
            lens: Vec::new(),
            sent: 0,
            head: 0,
            errors: 0,
            delivered: 0,
            logged_at: None,
            logged: [false; Loss::SLOTS],
            unlogged: [(0, Loss::Full); Loss::SLOTS],
        };
        j.connect();
        Ok(j)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Entries journald has taken.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Bytes of entries waiting.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() - self.head
    }

    pub fn has_room(&self) -> bool {
        self.pending_bytes() < MAX_BUFFERED
    }

    /// Queues the entry of one ring record.
    pub fn push(
        &mut self,
        ring: RingOf<'_>,
        clock: &WallClock,
        data: &[u8],
        ctx: Option<&mut Context>,
    ) -> Result<(), DecodeError> {
        let mark = self.buf.len();
        encode_with(ring, clock, data, ctx, &mut self.buf)?;
        self.lens.push(self.buf.len() - mark);
        Ok(())
    }

    /// Queues a ready-made entry.
    pub fn push_raw(&mut self, entry: &[u8]) {
        self.buf.extend_from_slice(entry);
        self.lens.push(entry.len());
    }

    /// `n` events that found no room (see [`JournalSink::has_room`]).
    pub fn count_full(&mut self, n: u64) {
        self.lose(n, Loss::Full);
    }

    fn connect(&mut self) -> bool {
        self.tried = Instant::now();
        match self.sock.connect(&self.path) {
            Ok(()) => {
                self.connected = true;
                if self.down.take().is_some() {
                    info!("journal socket {}: reachable again", self.path.display());
                }
                true
            }
            Err(e) => {
                self.went_down(&e);
                false
            }
        }
    }

    fn went_down(&mut self, e: &io::Error) {
        self.connected = false;
        let msg = e.to_string();
        if self.down.as_deref() != Some(msg.as_str()) {
            warn!(
                "journal socket {}: {e}; events wait in memory (up to {} MiB) until journald takes them, \
                 and are counted as sink_errors if it never does (retried every second; is systemd-journald running?)",
                self.path.display(),
                MAX_BUFFERED >> 20
            );
            self.down = Some(msg);
        }
    }

    fn advance(&mut self) {
        self.head += self.lens[self.sent];
        self.sent += 1;
    }

    /// Drops the entries already sent from the front of the queue: all of them when
    /// everything is out, otherwise only once they are half the buffer (a slow journald
    /// takes a few entries per wake-up: moving up to 8 MiB each time would cost more
    /// than the sends).
    fn compact(&mut self) {
        if self.sent == self.lens.len() {
            self.buf.clear();
            self.lens.clear();
        } else if self.head >= self.buf.len() / 2 {
            self.buf.drain(..self.head);
            self.lens.drain(..self.sent);
        } else {
            return;
        }
        self.sent = 0;
        self.head = 0;
    }

    /// Sends what journald takes now. `Blocked`: entries wait (for writability, or for
    /// the socket to come back).
    pub fn flush(&mut self) -> Flushed {
        if self.log_due() {
            self.log_losses();
        }
        if self.sent == self.lens.len() {
            self.compact();
            return Flushed::Done;
        }
        // Not connected: look for the socket again at most once per RETRY.
        if !self.connected && (self.tried.elapsed() < RETRY || !self.connect()) {
            return Flushed::Blocked;
        }
        while self.sent < self.lens.len() {
            let entry = &self.buf[self.head..self.head + self.lens[self.sent]];
            let err = match self.sock.send(entry) {
                Ok(_) => {
                    self.delivered += 1;
                    self.advance();
                    continue;
                }
                Err(e) => e,
            };
            match err.raw_os_error().unwrap_or(0) {
                libc::EINTR => {}
                libc::EAGAIN => {
                    self.compact();
                    return Flushed::Blocked;
                }
                libc::EMSGSIZE => match send_memfd(&self.sock, entry) {
                    Ok(()) => {
                        self.delivered += 1;
                        self.advance();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.compact();
                        return Flushed::Blocked;
                    }
                    Err(e) => {
                        self.advance();
                        self.lose(1, Loss::Memfd(e.raw_os_error().unwrap_or(0)));
                    }
                },
                // The peer is gone (journald restarted): connect to the new socket.
                libc::ECONNREFUSED
                | libc::ECONNRESET
                | libc::ENOTCONN
                | libc::EDESTADDRREQ
                | libc::ENOENT
                | libc::EPIPE => {
                    self.went_down(&err);
                    if !self.connect() {
                        self.compact();
                        return Flushed::Blocked;
                    }
                }
                e => {
                    self.advance();
                    self.lose(1, Loss::Send(e));
                }
            }
        }
        self.compact();
        Flushed::Done
    }

    /// At exit: sends the rest, waiting until `deadline` for a slow journald; what is
    /// left then (or at once, if the socket is unreachable) is counted and logged.
    pub fn flush_until(&mut self, deadline: Instant) {
        while self.flush() == Flushed::Blocked {
            if !self.connected && !self.connect() {
                self.lose_all(Loss::Unreachable);
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.lose_all(Loss::Exit);
                break;
            }
            let mut p = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            let ms = left.min(Duration::from_millis(100)).as_millis() as i32;
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, ms.max(1)) };
        }
        self.log_losses();
    }

    fn lose_all(&mut self, why: Loss) {
        let n = (self.lens.len() - self.sent) as u64;
        self.buf.clear();
        self.lens.clear();
        self.sent = 0;
        self.head = 0;
        self.lose(n, why);
    }

    fn log_due(&self) -> bool {
        self.logged_at.is_none_or(|t| t.elapsed() >= LOG_EVERY)
    }

    /// Counts lost events. A reason is logged at once the first time it happens, then
    /// at most every LOG_EVERY, with the count since the last line.
    fn lose(&mut self, n: u64, why: Loss) {
        if n == 0 {
            return;
        }
        self.errors += n;
        let slot = why.slot();
        self.unlogged[slot] = (self.unlogged[slot].0 + n, why);
        if !self.logged[slot] || self.log_due() {
            self.log_losses();
        }
    }

    /// One line per reason with losses since the last line.
    fn log_losses(&mut self) {
        for slot in 0..Loss::SLOTS {
            let (n, why) = self.unlogged[slot];
            if n == 0 {
                continue;
            }
            warn!(
                "journal: {why}: {n} events counted as sink_errors ({} in all; reported at most every {} s)",
                self.errors,
                LOG_EVERY.as_secs()
            );
            self.unlogged[slot].0 = 0;
            self.logged[slot] = true;
            self.logged_at = Some(Instant::now());
        }
    }
}

impl Sink for JournalSink {
    fn pollable(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd())
    }
    fn errors(&self) -> u64 {
        JournalSink::errors(self)
    }
    fn has_room(&self) -> bool {
        JournalSink::has_room(self)
    }
    fn count_lost(&mut self, n: u64) {
        self.count_full(n)
    }
    fn render(
        &mut self,
        ring: RingOf<'_>,
        clock: &WallClock,
        data: &[u8],
        ctx: Option<&mut Context>,
    ) -> Result<(), DecodeError> {
        self.push(ring, clock, data, ctx)
    }
    fn raise(&mut self, clock: &WallClock, ev: &super::Raised<'_>) {
        let mark = self.buf.len();
        encode_raised(clock, ev, &mut self.buf);
        self.lens.push(self.buf.len() - mark);
    }
    fn buffered(&self) -> usize {
        self.pending_bytes()
    }
    fn flush(&mut self) -> Flushed {
        JournalSink::flush(self)
    }
    fn flush_until(&mut self, deadline: Instant) {
        JournalSink::flush_until(self, deadline)
    }
    fn books(&self) -> super::SinkBooks {
        super::SinkBooks {
            written: self.delivered,
            expired: None,
        }
    }
}

/// An entry too big for a datagram: written to a memfd, sealed so journald can trust it
/// will not change, and passed with SCM_RIGHTS in an empty datagram.
fn send_memfd(sock: &UnixDatagram, entry: &[u8]) -> io::Result<()> {
    // SAFETY: a NUL-terminated name and valid flags.
    let fd = unsafe {
        libc::memfd_create(
            c"ringwarden-journal".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let mut f = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.write_all(entry)?;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on our own fd.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    send_fd(sock, f.as_fd())
}

/// An empty datagram carrying one fd.
fn send_fd(sock: &UnixDatagram, fd: BorrowedFd) -> io::Result<()> {
    // u64s: the control buffer must be aligned for cmsghdr.
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) } as usize;
    debug_assert!(space <= size_of_val(&control));
    // SAFETY: zeroed msghdr is valid (no name, no iov); the control buffer outlives the
    // call, is aligned and big enough for one cmsghdr with one int; CMSG_* stay inside.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
        if libc::sendmsg(
            sock.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        ) < 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::anomaly::{AnomalyEvent, code, rule};
    use crate::family::cgroup::{CgroupEvent, OomEvent};
    use crate::family::file::OpenEvent;
    use crate::family::kind;
    use crate::family::network::NetEvent;
    use crate::family::process::{ExecEvent, ExitEvent, ForkEvent};
    use crate::family::syscall::SyscallEvent;
    use crate::family::{cgroup, file, network, process};
    use crate::output::json;
    use std::net::Ipv6Addr;

    fn hdr(k: u32) -> Header {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"bash");
        Header {
            seq: 42,
            ts_ns: 1_500_000_000,
            cgroup_id: 7,
            kind: k,
            pid: 100,
            tid: 101,
            ppid: 1,
            uid: 1000,
            gid: 1000,
            comm,
        }
    }

    fn bytes<T: plain::Plain>(v: &T) -> Vec<u8> {
        // SAFETY: the record types are repr(C) plain data.
        unsafe { plain::as_bytes(v) }.to_vec()
    }

    /// A zeroed record (every record type is plain data: all zeros is valid).
    fn zeroed<T: plain::Plain>() -> T {
        // SAFETY: plain data, every bit pattern valid.
        unsafe { std::mem::zeroed() }
    }

    fn exec(filename: &[u8], args: &[u8], f: impl FnOnce(&mut ExecEvent)) -> Vec<u8> {
        let mut e: ExecEvent = zeroed();
        e.hdr = hdr(kind::EXEC);
        e.filename[..filename.len()].copy_from_slice(filename);
        e.filename_len = filename.len() as u32;
        e.args[..args.len()].copy_from_slice(args);
        e.args_len = args.len() as u32;
        e.argc = args.iter().filter(|&&b| b == 0).count() as u32;
        // A process of no login, as most are.
        e.login_uid = crate::family::process::UNSET;
        e.session_id = crate::family::process::UNSET;
        f(&mut e);
        bytes(&e)
    }

    fn entry(ring: &str, rec: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(ring, &WallClock::default(), rec, &mut buf).expect("encodes");
        buf
    }

    /// An independent reader of the native protocol: (name, value) in order.
    fn fields(mut e: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while !e.is_empty() {
            let nl = e.iter().position(|&b| b == b'\n').expect("field ends");
            let line = &e[..nl];
            if let Some(eq) = line.iter().position(|&b| b == b'=') {
                let k = String::from_utf8(line[..eq].to_vec()).expect("name");
                out.push((k, line[eq + 1..].to_vec()));
                e = &e[nl + 1..];
            } else {
                let k = String::from_utf8(line.to_vec()).expect("name");
                let rest = &e[nl + 1..];
                let n = u64::from_le_bytes(rest[..8].try_into().expect("len")) as usize;
                out.push((k, rest[8..8 + n].to_vec()));
                assert_eq!(rest[8 + n], b'\n', "binary field ends with a newline");
                e = &rest[9 + n..];
            }
        }
        out
    }

    fn field<'a>(f: &'a [(String, Vec<u8>)], k: &str) -> &'a [u8] {
        let mut it = f.iter().filter(|(n, _)| n == k);
        let v = &it.next().unwrap_or_else(|| panic!("{k} missing")).1;
        assert!(it.next().is_none(), "{k} twice");
        v
    }

    fn message(ring: &str, rec: &[u8]) -> (String, u8) {
        let f = fields(&entry(ring, rec));
        let m = String::from_utf8(field(&f, "MESSAGE").to_vec()).expect("utf8");
        let p = field(&f, "PRIORITY");
        assert_eq!(p.len(), 1);
        (m, p[0] - b'0')
    }

    #[test]
    fn values_text_or_binary_safe() {
        let put = |v: &[u8]| {
            let mut b = b"K".to_vec();
            put_value(&mut b, v);
            b
        };
        assert_eq!(put(b"/usr/bin/ls"), b"K=/usr/bin/ls\n");
        assert_eq!(put(b""), b"K=\n");
        assert_eq!(put("caf\u{e9}".as_bytes()), "K=caf\u{e9}\n".as_bytes());
        assert_eq!(put(b"a\nb"), b"K\n\x03\0\0\0\0\0\0\0a\nb\n");
        assert_eq!(put(b"a\tb"), b"K\n\x03\0\0\0\0\0\0\0a\tb\n");
        assert_eq!(put(b"\xff"), b"K\n\x01\0\0\0\0\0\0\0\xff\n");
        assert_eq!(put(b"x\x7f"), b"K\n\x02\0\0\0\0\0\0\0x\x7f\n");
    }

    #[test]
    fn an_exec_entry_byte_for_byte() {
        let rec = exec(b"/usr/bin/ls", b"ls\0-l\0a b\0", |_| {});
        let want = concat!(
            "MESSAGE=exec \"/usr/bin/ls\" pid=100 ppid=1 uid=1000 argv=\"ls -l 'a b'\"\n",
            "PRIORITY=6\n",
            "SYSLOG_IDENTIFIER=ringwarden\n",
            "RINGWARDEN_TYPE=exec\n",
            "RINGWARDEN_RING=process\n",
            "RINGWARDEN_SEQ=42\n",
            "RINGWARDEN_TS=1970-01-01T00:00:01.500000000Z\n",
            "RINGWARDEN_TS_NS=1500000000\n",
            "RINGWARDEN_PID=100\n",
            "RINGWARDEN_TID=101\n",
            "RINGWARDEN_PPID=1\n",
            "RINGWARDEN_UID=1000\n",
            "RINGWARDEN_GID=1000\n",
            "RINGWARDEN_COMM=bash\n",
            "RINGWARDEN_CGROUP_ID=7\n",
            "RINGWARDEN_FILENAME=/usr/bin/ls\n",
            "RINGWARDEN_ARGV=[\"ls\",\"-l\",\"a b\"]\n",
            "RINGWARDEN_ARGC=3\n",
            "RINGWARDEN_FILENAME_TRUNCATED=false\n",
            "RINGWARDEN_ARGV_TRUNCATED=false\n",
        );
        assert_eq!(
            String::from_utf8(entry("process", &rec)).expect("utf8"),
            want
        );
    }

    #[test]
    fn byte_strings_stay_exact() {
        let rec = exec(b"/tmp/a\nb\xff", b"x\xff\0y\"\n\0", |e| {
            e.hdr.comm = *b"c\x01\xfe\0\0\0\0\0\0\0\0\0\0\0\0\0";
        });
        let e = entry("process", &rec);
        let f = fields(&e);
        assert_eq!(field(&f, "RINGWARDEN_FILENAME"), b"/tmp/a\nb\xff");
        assert_eq!(field(&f, "RINGWARDEN_COMM"), b"c\x01\xfe");
        // The binary-safe form on the wire, exactly.
        let wire: &[u8] = b"RINGWARDEN_FILENAME\n\x09\0\0\0\0\0\0\0/tmp/a\nb\xff\n";
        assert!(e.windows(wire.len()).any(|w| w == wire));
        // argv: JSON text (lossy) plus every element in hex, as in the JSON line.
        assert_eq!(
            field(&f, "RINGWARDEN_ARGV"),
            "[\"x\u{fffd}\",\"y\\\"\\n\"]".as_bytes()
        );
        assert_eq!(field(&f, "RINGWARDEN_ARGV_HEX"), b"[\"78ff\",\"79220a\"]");
        let (m, _) = message("process", &rec);
        assert_eq!(
            m,
            "exec \"/tmp/a\\nb\\xff\" pid=100 ppid=1 uid=1000 argv=\"x\\xff y\\\"\\n\""
        );
    }

    /// Every field of the JSON line is in the entry under RINGWARDEN_<KEY>, with the same
    /// value, and nothing else is; names are valid journal field names.
    fn same_as_json(ring: &str, rec: &[u8]) {
        let mut json = Vec::new();
        json::render(ring, &WallClock::default(), rec, &mut json).expect("renders");
        let v: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        let obj = v.as_object().expect("object");
        let f = fields(&entry(ring, rec));
        assert_eq!(f[0].0, "MESSAGE");
        assert_eq!(f[1].0, "PRIORITY");
        assert_eq!(f[2], ("SYSLOG_IDENTIFIER".into(), b"ringwarden".to_vec()));
        // (serde_json's map is sorted by key: the order is checked byte for byte above.)
        // A byte string that is not UTF-8 has `k_hex` in JSON; here `k` is exact instead.
        let hex: Vec<&String> = obj
            .keys()
            .filter(|k| k.ends_with("_hex") && k.as_str() != "argv_hex")
            .collect();
        assert_eq!(
            f.len() - 3,
            obj.len() - hex.len(),
            "{ring}: {:?}",
            obj.keys()
        );
        for k in hex {
            let base = &k[..k.len() - 4];
            let h = obj[k].as_str().expect("hex string");
            let raw: Vec<u8> = (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
                .collect();
            assert_eq!(
                field(&f, &format!("RINGWARDEN_{}", base.to_ascii_uppercase())),
                raw
            );
        }
        for (k, jv) in obj
            .iter()
            .filter(|(k, _)| !k.ends_with("_hex") || *k == "argv_hex")
        {
            let name = format!("RINGWARDEN_{}", k.to_ascii_uppercase());
            assert!(name.len() <= 64);
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            );
            let val = field(&f, &name);
            let want = match jv {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if obj.contains_key(&format!("{k}_hex")) && k != "argv" {
                continue; // lossy in JSON, checked exact above
            }
            assert_eq!(String::from_utf8_lossy(val), want, "{ring} {k}");
        }
    }

    #[test]
    fn every_family_has_the_json_fields() {
        same_as_json("process", &exec(b"/bin/sh", b"sh\0-c\0x\0", |_| {}));
        let mut x: ExitEvent = zeroed();
        x.hdr = hdr(kind::EXIT);
        x.exit_code = 1;
        same_as_json("process", &bytes(&x));
        let mut fk: ForkEvent = zeroed();
        fk.hdr = hdr(kind::FORK);
        same_as_json("process", &bytes(&fk));
        let mut o: OpenEvent = zeroed();
        o.hdr = hdr(kind::OPEN);
        o.ret = -13;
        o.path_len = 11;
        o.path[..11].copy_from_slice(b"/etc/shadow");
        o.path_flags = file::OPEN_PATH_UNREADABLE;
        same_as_json("file", &bytes(&o));
        for k in [kind::CONNECT, kind::ACCEPT, kind::CLOSE] {
            let mut n: NetEvent = zeroed();
            n.hdr = hdr(k);
            n.family = network::AF_INET6;
            n.protocol = network::IPPROTO_TCP;
            n.oldstate = 99;
            same_as_json("network", &bytes(&n));
        }
        let mut s: SyscallEvent = zeroed();
        s.hdr = hdr(kind::SYSCALL);
        s.nr = 101;
        s.args = [1, 2, 3, u64::MAX, 0, 0];
        same_as_json("syscall", &bytes(&s));
        for k in [kind::CGROUP_MKDIR, kind::CGROUP_RMDIR, kind::CGROUP_ATTACH] {
            let mut c: CgroupEvent = zeroed();
            c.hdr = hdr(k);
            c.path_len = 4;
            c.path[..4].copy_from_slice(b"/a\xffb");
            same_as_json("cgroup", &bytes(&c));
        }
        let mut m: OomEvent = zeroed();
        m.hdr = hdr(kind::OOM_KILL);
        m.flags = cgroup::OOM_DETAIL | cgroup::OOM_UID;
        same_as_json("cgroup", &bytes(&m));
        for r in 0..=7 {
            let mut a: AnomalyEvent = zeroed();
            a.hdr = hdr(kind::ANOMALY);
            a.rule = r;
            a.severity = 3;
            a.code = code::FINIT_MODULE;
            same_as_json("anomaly", &bytes(&a));
        }
    }

    #[test]
    fn short_and_unknown_records_leave_nothing() {
        let mut buf = b"keep".to_vec();
        let rec = exec(b"/bin/true", b"", |_| {});
        assert!(encode("process", &WallClock::default(), &rec[..100], &mut buf).is_err());
        let mut bad = rec.clone();
        bad[24] = 99;
        assert_eq!(
            encode("process", &WallClock::default(), &bad, &mut buf),
            Err(DecodeError::UnknownType(99))
        );
        assert_eq!(buf, b"keep");
    }

    #[test]
    fn messages_per_type() {
        let m = |ring: &str, rec: Vec<u8>| message(ring, &rec);
        assert_eq!(
            m(
                "process",
                exec(b"/usr/bin/env", b"env\0\0it's\0", |e| {
                    e.flags = process::EXEC_ARGS_TRUNCATED;
                    e.argc = 40;
                })
            ),
            (
                "exec \"/usr/bin/env\" pid=100 ppid=1 uid=1000 argv=\"env '' 'it\\'s'\" (argv truncated, argc=40)"
                    .into(),
                6
            )
        );
        let mut x: ExitEvent = zeroed();
        x.hdr = hdr(kind::EXIT);
        x.exit_code = 2;
        x.lifetime_ns = 1_234_567_890;
        assert_eq!(
            m("process", bytes(&x)).0,
            "exit \"bash\" pid=100 uid=1000 status=2 after 1.235s"
        );
        x.signal = 11;
        x.core_dumped = 1;
        assert_eq!(
            m("process", bytes(&x)).0,
            "exit \"bash\" pid=100 uid=1000 killed by SIGSEGV (core dumped) after 1.235s"
        );
        x.signal = 77;
        x.core_dumped = 0;
        assert_eq!(
            m("process", bytes(&x)).0,
            "exit \"bash\" pid=100 uid=1000 killed by signal 77 after 1.235s"
        );
        let mut fk: ForkEvent = zeroed();
        fk.hdr = hdr(kind::FORK);
        fk.child_pid = 555;
        assert_eq!(
            m("process", bytes(&fk)).0,
            "fork \"bash\" pid=100 uid=1000 child_pid=555"
        );

        let mut o: OpenEvent = zeroed();
        o.hdr = hdr(kind::OPEN);
        o.path_len = 11;
        o.path[..11].copy_from_slice(b"/etc/shadow");
        o.ret = -13;
        o.flags = libc::O_CLOEXEC as u64;
        assert_eq!(
            m("file", bytes(&o)),
            (
                "open \"/etc/shadow\" by \"bash\" pid=100 uid=1000 O_RDONLY|O_CLOEXEC failed: EACCES"
                    .into(),
                6
            )
        );
        o.ret = 3;
        o.flags = (libc::O_WRONLY | libc::O_CREAT) as u64;
        o.resolved_len = 11;
        o.path_flags = file::OPEN_PATH_CHANGED;
        // The resolved path follows the fixed part.
        let mut rec = bytes(&o);
        rec.extend_from_slice(b"/etc/passwd");
        assert_eq!(
            m("file", rec).0,
            "open \"/etc/shadow\" by \"bash\" pid=100 uid=1000 O_WRONLY|O_CREAT fd=3 \
             file=\"/etc/passwd\" (path changed during the call)"
        );
        o.resolved_len = 0;
        o.path_flags = 0;
        o.ret = -4000;
        assert!(m("file", bytes(&o)).0.ends_with(" failed: errno 4000"));

        let mut n: NetEvent = zeroed();
        n.hdr = hdr(kind::CONNECT);
        n.family = network::AF_INET;
        n.saddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        n.daddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        n.sport = 40000;
        n.dport = 443;
        n.ret = -111;
        assert_eq!(
            m("network", bytes(&n)).0,
            "connect \"bash\" pid=100 uid=1000 10.0.0.2:40000 -> 10.0.0.1:443 failed: ECONNREFUSED"
        );
        n.ret = -115;
        assert!(m("network", bytes(&n)).0.ends_with(":443 (in progress)"));
        n.ret = 0;
        assert!(m("network", bytes(&n)).0.ends_with(" -> 10.0.0.1:443"));
        n.hdr.kind = kind::ACCEPT;
        n.family = network::AF_INET6;
        n.saddr = Ipv6Addr::LOCALHOST.octets();
        n.daddr = Ipv6Addr::LOCALHOST.octets();
        assert_eq!(
            m("network", bytes(&n)).0,
            "accept \"bash\" pid=100 uid=1000 [::1]:40000 <- [::1]:443"
        );
        n.hdr.kind = kind::CLOSE;
        n.bytes_sent = 10;
        n.bytes_received = 20;
        n.bytes_retrans = 5;
        assert_eq!(
            m("network", bytes(&n)).0,
            "close \"bash\" pid=100 uid=1000 [::1]:40000 -> [::1]:443 sent=10 received=20 retrans=5"
        );

        let mut s: SyscallEvent = zeroed();
        s.hdr = hdr(kind::SYSCALL);
        s.nr = 101;
        s.ret = -1;
        s.args = [16, 1234, 0x7ffd_0000_1000, -100i64 as u64, 0, 65536];
        assert_eq!(
            m("syscall", bytes(&s)).0,
            "syscall ptrace(16, 1234, 0x7ffd00001000, -100, 0, 0x10000) = -1 by \"bash\" pid=100 uid=1000"
        );
        s.nr = 4000;
        assert!(
            m("syscall", bytes(&s))
                .0
                .starts_with("syscall syscall_4000(")
        );

        let mut c: CgroupEvent = zeroed();
        c.hdr = hdr(kind::CGROUP_MKDIR);
        c.path_len = 15;
        c.path[..15].copy_from_slice(b"/system.slice/x");
        assert_eq!(
            m("cgroup", bytes(&c)).0,
            "cgroup_mkdir \"/system.slice/x\" by \"bash\" pid=100 uid=1000"
        );
        c.hdr.kind = kind::CGROUP_ATTACH;
        c.task_pid = 77;
        c.hierarchy_id = 3;
        assert_eq!(
            m("cgroup", bytes(&c)).0,
            "cgroup_attach task 77 to \"/system.slice/x\" (v1 hierarchy 3) by \"bash\" pid=100 uid=1000"
        );
        let mut om: OomEvent = zeroed();
        om.hdr = hdr(kind::OOM_KILL);
        om.victim_pid = 9;
        assert_eq!(
            m("cgroup", bytes(&om)).0,
            "oom_kill victim pid=9 by \"bash\" pid=100 uid=1000"
        );
        om.flags = cgroup::OOM_DETAIL | cgroup::OOM_UID;
        om.victim_comm[..6].copy_from_slice(b"stress");
        om.victim_uid = 1001;
        om.total_vm_kb = 2048;
        om.anon_rss_kb = 1024;
        assert_eq!(
            m("cgroup", bytes(&om)).0,
            "oom_kill victim pid=9 comm=\"stress\" uid=1001 total_vm=2048kB anon_rss=1024kB by \"bash\" pid=100 uid=1000"
        );
    }

    fn anomaly(r: u32, sev: u32, f: impl FnOnce(&mut AnomalyEvent)) -> (String, u8) {
        let mut a: AnomalyEvent = zeroed();
        a.hdr = hdr(kind::ANOMALY);
        a.rule = r;
        a.severity = sev;
        f(&mut a);
        message("anomaly", &bytes(&a))
    }

    #[test]
    fn anomaly_messages_and_priorities() {
        assert_eq!(
            anomaly(rule::SETUID_ROOT, 4, |a| {
                a.code = code::SETRESUID;
                a.args = [1000, 1000, 1000, 0, 0, 0];
            }),
            (
                "anomaly critical setuid_root: \"bash\" pid=100 uid=1000 became root via setresuid (uid 1000->0, euid 1000->0, fsuid 1000->0)".into(),
                2
            )
        );
        assert_eq!(
            anomaly(rule::EXEC_FROM_TMP, 2, |a| {
                a.args[0] = 1;
                a.detail[..6].copy_from_slice(b"/tmp/x");
                a.detail_len = 6;
            }),
            (
                "anomaly medium exec_from_tmp: \"bash\" pid=100 uid=1000 ran \"/tmp/x\" from /tmp"
                    .into(),
                4
            )
        );
        assert_eq!(
            anomaly(rule::EXEC_FROM_MEMFD, 3, |a| {
                a.name[..9].copy_from_slice(b"memfd:evl");
                a.name_len = 9;
                a.detail[..13].copy_from_slice(b"/proc/self/fd");
                a.detail_len = 13;
            }),
            (
                "anomaly high exec_from_memfd: \"bash\" pid=100 uid=1000 ran \"memfd:evl\" (\"/proc/self/fd\")"
                    .into(),
                3
            )
        );
        assert_eq!(
            anomaly(rule::PTRACE_ATTACH, 3, |a| a.args =
                [4321, 0x4206, 0, 0, 0, 0])
            .0,
            "anomaly high ptrace_attach: \"bash\" pid=100 uid=1000 PTRACE_SEIZE of pid 4321"
        );
        assert_eq!(
            anomaly(rule::BPF_PROG_LOAD, 1, |a| {
                a.args = [2, 10, 128, 0, 0, 0];
                a.name[..3].copy_from_slice(b"x\"y");
                a.name_len = 3;
            }),
            (
                "anomaly low bpf_prog_load: \"bash\" pid=100 uid=1000 loaded BPF program \"x\\\"y\" (type 2, 10 instructions)".into(),
                5
            )
        );
        assert_eq!(
            anomaly(rule::MODULE_LOAD, 3, |a| {
                a.code = code::FINIT_MODULE;
                a.args[0] = 3;
                a.detail[..5].copy_from_slice(b"foo=1");
                a.detail_len = 5;
            })
            .0,
            "anomaly high module_load: \"bash\" pid=100 uid=1000 finit_module fd=3 params=\"foo=1\""
        );
        assert_eq!(
            anomaly(rule::MODULE_LOAD, 3, |a| {
                a.code = code::INIT_MODULE;
                a.args[0] = 4096;
            })
            .0,
            "anomaly high module_load: \"bash\" pid=100 uid=1000 init_module len=4096"
        );
        assert_eq!(
            anomaly(99, 9, |_| {}),
            (
                "anomaly unknown(9) unknown(99): \"bash\" pid=100 uid=1000".into(),
                4
            )
        );
    }

    // --- the sink, on real sockets ---

    fn bound(tag: &str) -> (PathBuf, UnixDatagram) {
        let p = std::env::temp_dir().join(format!("rw-journal-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let s = UnixDatagram::bind(&p).expect("bind");
        (p, s)
    }

    /// One datagram: its bytes and the fd passed with it, if any.
    fn recv_with_fd(s: &UnixDatagram) -> (Vec<u8>, Option<OwnedFd>) {
        let mut data = vec![0u8; 1 << 16];
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: the buffers outlive the call; CMSG_* walk only the control buffer.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of_val(&control) as _;
            let n = libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            assert!(n >= 0, "recvmsg: {}", io::Error::last_os_error());
            data.truncate(n as usize);
            let c = libc::CMSG_FIRSTHDR(&msg);
            let fd = (!c.is_null() && (*c).cmsg_type == libc::SCM_RIGHTS).then(|| {
                OwnedFd::from_raw_fd(std::ptr::read_unaligned(
                    libc::CMSG_DATA(c).cast::<libc::c_int>(),
                ))
            });
            (data, fd)
        }
    }

    #[test]
    fn entries_go_out_one_datagram_each() {
        let (p, rx) = bound("plain");
        let mut j = JournalSink::open(&p).expect("open");
        let rec = exec(b"/bin/true", b"true\0", |_| {});
        for _ in 0..3 {
            j.push("process".into(), &WallClock::default(), &rec, None)
                .expect("push");
        }
        assert_eq!(j.flush(), Flushed::Done);
        assert_eq!((j.delivered(), j.errors(), j.pending_bytes()), (3, 0, 0));
        for _ in 0..3 {
            let (d, fd) = recv_with_fd(&rx);
            assert!(fd.is_none());
            assert_eq!(d, entry("process", &rec));
        }
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn an_oversized_entry_goes_by_sealed_memfd() {
        let (p, rx) = bound("memfd");
        let mut j = JournalSink::open(&p).expect("open");
        // Bigger than any socket send buffer allows for one datagram (wmem_max is 4 MiB
        // at most here): sendto fails with EMSGSIZE.
        let mut big = b"MESSAGE=big\nRINGWARDEN_BLOB".to_vec();
        put_value(&mut big, &vec![b'x'; 5 << 20]);
        j.push_raw(&big);
        j.push_raw(b"MESSAGE=small\n");
        assert_eq!(j.flush(), Flushed::Done);
        assert_eq!((j.delivered(), j.errors()), (2, 0));
        let (d, fd) = recv_with_fd(&rx);
        assert!(d.is_empty(), "the datagram itself is empty");
        let fd = fd.expect("an fd came with it");
        // SAFETY: fcntl on a valid fd.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        assert_eq!(
            seals,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL
        );
        // The file description (and its offset, at the end after our write) is shared.
        let mut f = File::from(fd);
        io::Seek::rewind(&mut f).expect("rewind");
        let mut got = Vec::new();
        io::Read::read_to_end(&mut f, &mut got).expect("read memfd");
        assert!(got == big, "memfd holds the entry exactly");
        assert_eq!(recv_with_fd(&rx).0, b"MESSAGE=small\n");
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_receiver_that_does_not_read_blocks_then_counts() {
        let (p, rx) = bound("stall");
        let mut j = JournalSink::open(&p).expect("open");
        for i in 0..2000 {
            j.push_raw(format!("MESSAGE={i}\n").as_bytes());
        }
        assert_eq!(j.flush(), Flushed::Blocked);
        let queued = j.delivered();
        assert!(queued > 0 && queued < 2000, "{queued}");
        j.flush_until(Instant::now() + Duration::from_millis(50));
        assert_eq!(j.delivered() + j.errors(), 2000);
        assert_eq!(j.errors(), 2000 - queued);
        // What was queued is there, in order.
        rx.set_nonblocking(true).expect("nonblocking");
        let mut n = 0;
        let mut b = [0u8; 64];
        while let Ok(len) = rx.recv(&mut b) {
            assert_eq!(&b[..len], format!("MESSAGE={n}\n").as_bytes());
            n += 1;
        }
        assert_eq!(n, queued);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_missing_socket_holds_entries_then_counts_them() {
        let p = std::env::temp_dir().join(format!("rw-journal-none-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let mut j = JournalSink::open(&p).expect("open");
        j.push_raw(b"MESSAGE=a\n");
        j.push_raw(b"MESSAGE=b\n");
        assert_eq!(j.flush(), Flushed::Blocked);
        assert_eq!((j.delivered(), j.errors()), (0, 0));
        // The journal appears: the next connect attempt (at most once a second) finds it.
        let rx = UnixDatagram::bind(&p).expect("bind");
        j.tried -= RETRY;
        assert_eq!(j.flush(), Flushed::Done);
        assert_eq!(j.delivered(), 2);
        let mut b = [0u8; 64];
        assert_eq!(rx.recv(&mut b).expect("recv"), 10);
        // It goes away again: entries wait, and at exit they are counted.
        drop(rx);
        let _ = std::fs::remove_file(&p);
        j.push_raw(b"MESSAGE=c\n");
        assert_eq!(j.flush(), Flushed::Blocked);
        j.flush_until(Instant::now() + Duration::from_secs(5));
        assert_eq!((j.delivered(), j.errors(), j.pending_bytes()), (2, 1, 0));
    }
}
