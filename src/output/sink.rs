//! The interface every output implements ([`Sink`]), and the JSON-lines one ([`Lines`]):
//! to a file, stdout, or nowhere (`--output none`). Writing never blocks the loop on a
//! stream (a pipe, tty or socket whose reader stalls), so signals and rings are always
//! served; what cannot be written is counted as `sink_errors`, and no write error leaves
//! half a line behind in a file.
use crate::context::Context;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{error, info};

use super::archive::{Archive, ArchiveSettings};
use super::raised::{Raised, SinkLost, What};
use crate::family::DecodeError;
use crate::family::record::RingOf;
use crate::sys::clock::WallClock;

/// Events buffered while a stream sink is not writable; past this, new events are
/// counted as sink errors instead of growing memory without bound.
pub const MAX_BUFFERED: usize = 8 << 20;

enum Target {
    /// A regular file (or anything else that does not block for long): plain writes.
    File(File),
    /// A pipe, fifo or tty, opened as our own non-blocking file description.
    Stream(File),
    /// A socket (systemd's journal stdout): `send(MSG_DONTWAIT)` per write.
    Socket(OwnedFd),
    /// A regular file named by `--output` (or `[output.file]`): the active file of an
    /// archive.
    Archive(Box<Archive>),
    /// `--output none`: events are counted, not rendered or written (a counting sink,
    /// for measuring the data path without the cost of JSON).
    Null,
}

/// An output of rendered events, driven by the loop: the consumer renders each record
/// into it, the loop flushes it after every pass and when its fd becomes writable.
pub trait Sink {
    /// Whether events are to be rendered at all (not for `--output none`).
    fn renders(&self) -> bool {
        true
    }
    /// The fd to watch for writability, for outputs that can stall.
    fn pollable(&self) -> Option<BorrowedFd<'_>>;
    /// Events that could not be delivered, counted.
    fn errors(&self) -> u64;
    /// Whether there is room for another event; if not, the caller counts it with
    /// [`Sink::count_lost`].
    fn has_room(&self) -> bool;
    fn count_lost(&mut self, n: u64);
    /// Renders one ring record for this output, with its context from `ctx` if given.
    fn render(
        &mut self,
        ring: RingOf<'_>,
        clock: &WallClock,
        data: &[u8],
        ctx: Option<&mut Context>,
    ) -> Result<(), DecodeError>;
    /// Renders one event the daemon raised itself (no ring, no seq; see
    /// [`super::raised`]). The caller checks [`Sink::renders`] and [`Sink::has_room`].
    fn raise(&mut self, clock: &WallClock, ev: &Raised<'_>);
    /// Bytes rendered and not yet written.
    fn buffered(&self) -> usize;
    /// Writes as much as the target takes now.
    fn flush(&mut self) -> Flushed;
    /// Flushes, waiting for a stream to take the rest until `deadline`; what is left
    /// then is counted as lost (shutdown must not hang on a stalled reader).
    fn flush_until(&mut self, deadline: Instant);
    /// Events written out, and deleted since by retention (an archive's `expired`).
    fn books(&self) -> SinkBooks;
    /// Every tick: rotation by age, retention, and a held output tried again.
    fn tick(&mut self, _clock: &WallClock) {}
    /// SIGUSR1 or SIGHUP: what was buffered goes to the file open now, then the path is
    /// opened anew (after logrotate moved it away).
    fn reopen(&mut self) {}
    /// A slice of deferred work (compressing rotated files) when `idle` or when none
    /// was done for a while; returns whether more is waiting.
    fn background(&mut self, _idle: bool) -> bool {
        false
    }
    /// While the output is held: keeps a record the daemon raised (a ring's `lost`
    /// record, a `tamper` anomaly) to write when it resumes, rather than counting it
    /// lost. False: not kept (count it).
    fn keep(&mut self, _clock: &WallClock, _ev: &Raised<'_>) -> bool {
        false
    }
}

/// A sink's own books beside `sink_errors`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkBooks {
    /// Events (and daemon-raised records) the output took: lines written to a file, or
    /// entries the journal accepted.
    pub written: u64,
    /// An archive's: events in rotated files that retention deleted (`None`: not an
    /// archive).
    pub expired: Option<u64>,
}

/// An archive that could not be written: nothing more is rendered (every event is
/// counted as a sink error) until a tick finds it writable again.
struct Stall {
    /// `errors` before the window began.
    errors_at: u64,
    since_ns: u64,
    /// The write's error (ENOSPC: retention makes room).
    errno: Option<i32>,
    error: String,
}

/// The daemon's own records kept while the output is held, at most (a ring's `lost`
/// records say what they lost in one line each: a few hundred bytes a tick).
const MAX_HELD: usize = 1 << 20;

/// While busy, deferred work still gets a slice this often.
const WORK_EVERY: Duration = Duration::from_millis(20);

/// JSON lines to a file, a stream or nowhere.
pub struct Lines {
    target: Target,
    /// Complete JSON lines not yet written.
    pub buf: Vec<u8>,
    /// Bytes of a line already written whose rest is still in `buf` (0 at a line end).
    partial: u64,
    errors: u64,
    last_error: Option<String>,
    /// Lines the target took.
    written: u64,
    stall: Option<Stall>,
    /// When [`Sink::background`] last did a slice.
    last_work: Instant,
    /// The loop's clock as of the last tick (for the records the sink raises itself).
    clock: WallClock,
    /// Records raised while held, written when it resumes ([`Sink::keep`]).
    held: Vec<u8>,
    held_lines: u64,
    /// Lines in `buf`, and of them the daemon's own records: what a write of the whole
    /// buffer took, without scanning it.
    buf_lines: u64,
    buf_daemon: u64,
}

/// Outcome of one flush.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    Done,
    /// The stream is full: wait for it to become writable.
    Blocked,
}

impl Lines {
    /// `None` = stdout; `none`: counted, not written. A regular file is an archive (see
    /// [`Archive`]): rotated, expired and compressed as `archive` says, reopened on
    /// SIGUSR1, and held while it cannot be written.
    pub fn open(path: Option<&Path>, archive: &ArchiveSettings) -> Result<Lines, super::Error> {
        let target = match path {
            Some(p) if p == Path::new("none") => Target::Null,
            Some(p) => {
                let f = open_file(p)?;
                if is_stream(&f) {
                    Target::Stream(f)
                } else if f.metadata().is_ok_and(|m| m.is_file()) {
                    Target::Archive(Box::new(Archive::new(p, f, archive.clone())))
                } else {
                    Target::File(f)
                }
            }
            None => stdout_target()?,
        };
        if archive.is_set() && !matches!(target, Target::Archive(_)) {
            return Err(super::Error::NotAFile(
                path.map_or(PathBuf::from("-"), Path::to_path_buf),
            ));
        }
        Ok(Lines {
            target,
            buf: Vec::with_capacity(128 << 10),
            partial: 0,
            errors: 0,
            last_error: None,
            written: 0,
            stall: None,
            last_work: Instant::now(),
            clock: WallClock::now(),
            held: Vec::new(),
            held_lines: 0,
            buf_lines: 0,
            buf_daemon: 0,
        })
    }
}

/// Opens `--output PATH` for appending, as the daemon's own: created 0600 (events hold
/// every command line and path), never through a link (a root daemon appending through a
/// link planted in /tmp writes any file), and owned by us (see [`check_ours`]).
pub fn open_file(p: &Path) -> Result<File, super::Error> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(p)
        .map_err(|source| {
            // ELOOP from O_NOFOLLOW; EACCES where fs.protected_symlinks refuses another
            // user's link in a sticky directory first.
            let link = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
            if source.raw_os_error() == Some(libc::ELOOP) || link {
                super::Error::Symlink(p.to_path_buf())
            } else {
                super::Error::Open {
                    path: p.to_path_buf(),
                    source,
                }
            }
        })?;
    check_ours(&f, p)?;
    Ok(f)
}

impl Sink for Lines {
    fn renders(&self) -> bool {
        !matches!(self.target, Target::Null)
    }

    fn pollable(&self) -> Option<BorrowedFd<'_>> {
        match &self.target {
            Target::File(_) | Target::Archive(_) | Target::Null => None,
            Target::Stream(f) => Some(f.as_fd()),
            Target::Socket(s) => Some(s.as_fd()),
        }
    }

    fn errors(&self) -> u64 {
        self.errors
    }

    fn has_room(&self) -> bool {
        self.stall.is_none() && self.buf.len() < MAX_BUFFERED
    }

    fn count_lost(&mut self, n: u64) {
        self.errors += n;
    }

    fn render(
        &mut self,
        ring: RingOf<'_>,
        clock: &WallClock,
        data: &[u8],
        ctx: Option<&mut Context>,
    ) -> Result<(), DecodeError> {
        super::json::render_with(ring, clock, data, ctx, &mut self.buf)?;
        self.buf_lines += 1;
        Ok(())
    }

    fn raise(&mut self, clock: &WallClock, ev: &Raised<'_>) {
        self.push_raised(clock, ev);
    }

    fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn flush(&mut self) -> Flushed {
        while !self.buf.is_empty() {
            let len = match self.next_chunk() {
                Some(len) => len,
                None => {
                    // The active file is full: rotate it, then write on.
                    if let Err(e) = self.rotate() {
                        self.fail(e);
                        return Flushed::Done;
                    }
                    continue;
                }
            };
            match self.write_some(len) {
                // A target that takes nothing without an error would make this loop for
                // ever: what is buffered is lost, counted, as for any write error.
                Ok(0) => {
                    self.fail(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the output accepted no bytes",
                    ));
                    return Flushed::Done;
                }
                Ok(n) => {
                    let out = &self.buf[..n];
                    // All of it (the usual case): the lines are counted already, and the
                    // buffer ends at a line's end. Else the part written is scanned.
                    let whole = n == self.buf.len() && self.partial == 0;
                    let (lines, daemon) = if whole {
                        self.partial = 0;
                        (self.buf_lines, Some(self.buf_daemon))
                    } else {
                        self.partial = match out.iter().rposition(|&c| c == b'\n') {
                            Some(i) => (n - i - 1) as u64,
                            None => self.partial + n as u64,
                        };
                        (count_lines(out), None)
                    };
                    self.written += lines;
                    if let Target::Archive(a) = &mut self.target {
                        a.wrote(out, lines, daemon);
                    }
                    self.buf.drain(..n);
                    if whole {
                        (self.buf_lines, self.buf_daemon) = (0, 0);
                    } else {
                        self.recount();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(e) => {
                    self.fail(e);
                    return Flushed::Done;
                }
            }
        }
        Flushed::Done
    }

    fn flush_until(&mut self, deadline: Instant) {
        // Held at the stop: one more try, so the window's lost record is written if it can.
        if self.stall.is_some() {
            let clock = self.clock.clone();
            self.resume(&clock);
        }
        self.note_expired();
        while self.flush() == Flushed::Blocked {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let lines = count_lines(&self.buf);
                self.report("output still not writable at exit", lines);
                self.buf.clear();
                return;
            }
            if let Some(fd) = self.pollable() {
                let mut p = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                let ms = left.min(Duration::from_millis(100)).as_millis() as i32;
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, ms.max(1)) };
            }
        }
    }

    fn books(&self) -> SinkBooks {
        SinkBooks {
            written: self.written,
            expired: match &self.target {
                Target::Archive(a) => Some(a.expired),
                _ => None,
            },
        }
    }

    fn tick(&mut self, clock: &WallClock) {
        if !matches!(self.target, Target::Archive(_)) {
            return;
        }
        self.clock = clock.clone();
        // Deleted behind the daemon's back: what this run wrote into it is gone (counted
        // as expired, told in-band), and nothing more goes into it.
        if self.stall.is_none()
            && let Target::Archive(a) = &mut self.target
            && a.unlinked()
        {
            info!(
                "output {}: the file was deleted by another process; what was written to it is counted as expired; writing to a new one",
                a.path.display()
            );
            a.lost_active();
            self.reopen_path();
        }
        self.note_expired();
        let Target::Archive(a) = &mut self.target else {
            return;
        };
        if let Some(st) = &self.stall {
            // A full disk: the oldest rotated file makes room (retention's order).
            if matches!(st.errno, Some(libc::ENOSPC | libc::EDQUOT)) {
                a.free_oldest();
            }
            self.resume(clock);
            return;
        }
        if a.due() {
            self.flush();
            if self.stall.is_none()
                && let Err(e) = self.rotate()
            {
                self.fail(e);
            }
        } else if a.set.keep_age.is_some() {
            a.expire();
        }
    }

    fn reopen(&mut self) {
        if !matches!(self.target, Target::Archive(_)) {
            return;
        }
        // What was rendered before the signal belongs in the file open before it.
        if self.stall.is_none() {
            self.flush();
        }
        self.reopen_path();
    }

    fn keep(&mut self, clock: &WallClock, ev: &Raised<'_>) -> bool {
        if self.stall.is_none() || self.held.len() >= MAX_HELD {
            return false;
        }
        let mut line = super::json::Line::begin(&mut self.held);
        ev.walk(clock, &mut line);
        line.end();
        self.held_lines += 1;
        true
    }

    fn background(&mut self, idle: bool) -> bool {
        let Target::Archive(a) = &mut self.target else {
            return false;
        };
        if self.stall.is_some() || !a.busy() {
            return false;
        }
        if idle || self.last_work.elapsed() >= WORK_EVERY {
            self.last_work = Instant::now();
            return a.work();
        }
        true
    }
}

impl Lines {
    /// Opens the archive's path anew (its errno kept: a full disk makes room next tick).
    fn reopen_path(&mut self) {
        let Target::Archive(a) = &mut self.target else {
            return;
        };
        self.partial = 0;
        match a.reopen() {
            Ok(()) => info!("output {}: reopened", a.path.display()),
            Err(e) if self.stall.is_none() => self.fail(e),
            Err(_) => {}
        }
    }

    /// The archive's deletions not told yet, as `expired` records into the buffer (while
    /// held: once it resumes).
    fn note_expired(&mut self) {
        let Target::Archive(a) = &mut self.target else {
            return;
        };
        if self.stall.is_some() {
            return;
        }
        let clock = self.clock.clone();
        for e in std::mem::take(&mut a.notes) {
            let ev = Raised::now(What::Expired(&e));
            self.push_raised(&clock, &ev);
        }
    }

    /// A record the daemon raised, as one line into the buffer (and its counts).
    fn push_raised(&mut self, clock: &WallClock, ev: &Raised<'_>) {
        let mut line = super::json::Line::begin(&mut self.buf);
        ev.walk(clock, &mut line);
        line.end();
        self.buf_lines += 1;
        self.buf_daemon += 1;
    }

    /// The buffer's counts again, after part of it was written (a rare path).
    fn recount(&mut self) {
        let mut t = super::archive::Tally::default();
        t.feed(&self.buf);
        (self.buf_lines, self.buf_daemon) = (t.lines, t.daemon);
    }

    /// Bytes of `buf` to write next; `None`: the archive's active file is full, rotate it
    /// first. Within `rotate_size` only whole lines go (a line longer than that goes
    /// alone into an empty file).
    fn next_chunk(&self) -> Option<usize> {
        let all = Some(self.buf.len());
        let Target::Archive(a) = &self.target else {
            return all;
        };
        let Some(room) = a.room() else {
            return all;
        };
        let line_end = |b: &[u8]| {
            b.iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |i| i + 1)
        };
        if self.partial > 0 {
            // The rest of a line already begun goes where its start went.
            return Some(line_end(&self.buf));
        }
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        if self.buf.len() <= room {
            return all;
        }
        match self.buf[..room].iter().rposition(|&c| c == b'\n') {
            Some(i) => Some(i + 1),
            None if a.empty() => Some(line_end(&self.buf)),
            None => None,
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        match &mut self.target {
            Target::Archive(a) => a.rotate(),
            _ => Ok(()),
        }
    }

    fn write_some(&mut self, len: usize) -> io::Result<usize> {
        let buf = &self.buf[..len];
        match &mut self.target {
            Target::Null => Ok(len),
            Target::File(f) => f.write(buf),
            Target::Archive(a) => match &mut a.file {
                Some(f) => f.write(buf),
                None => Err(io::Error::from_raw_os_error(libc::EBADF)),
            },
            Target::Stream(f) => f.write(atomic_chunk(buf)),
            Target::Socket(s) => {
                let chunk = atomic_chunk(buf);
                // SAFETY: valid fd and buffer.
                let n = unsafe {
                    libc::send(
                        s.as_raw_fd(),
                        chunk.as_ptr().cast(),
                        chunk.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }
        }
    }

    /// A hard write error: the buffered lines are lost (counted). A file is cut back to
    /// its last complete line, so a partial write never leaves half a JSON object. An
    /// archive is then held: nothing more is written until a tick finds it writable
    /// ([`Lines::resume`]), and every event meanwhile is counted.
    fn fail(&mut self, e: io::Error) {
        let before = self.errors;
        match &mut self.target {
            Target::File(f) => trim_partial_line(f, self.partial),
            Target::Archive(a) => {
                if let Some(f) = &a.file {
                    trim_partial_line(f, self.partial);
                }
                a.trimmed(self.partial);
            }
            _ => {}
        }
        self.partial = 0;
        let lines = count_lines(&self.buf);
        self.buf.clear();
        (self.buf_lines, self.buf_daemon) = (0, 0);
        let Target::Archive(a) = &mut self.target else {
            self.report(&e.to_string(), lines);
            return;
        };
        self.errors += lines;
        // A partial .gz in flight takes room too (the file is compressed later).
        a.cancel_job(true);
        let msg = e.to_string();
        if self.last_error.as_deref() != Some(&msg) {
            error!(
                "output {}: {msg}; {lines} buffered events lost; holding the output (tried again every second), events meanwhile are counted as sink_errors",
                a.path.display()
            );
            self.last_error = Some(msg.clone());
        }
        self.stall = Some(Stall {
            errors_at: before,
            since_ns: crate::sys::clock::boot_ns(),
            errno: e.raw_os_error(),
            error: msg,
        });
    }

    /// A held archive tried again: reopened if it has to be, then a `lost` record with
    /// `reason: "sink"` counting every event lost since it was held. Written: the output
    /// is back, said in one line. Not: held on, the same window.
    fn resume(&mut self, clock: &WallClock) {
        let Some(st) = self.stall.take() else {
            return;
        };
        let Target::Archive(a) = &mut self.target else {
            return;
        };
        let unlinked = a.unlinked();
        if unlinked {
            // Removed to make room (the admin): what it held is counted as expired.
            a.lost_active();
        }
        if (a.file.is_none() || unlinked) && a.reopen().is_err() {
            self.stall = Some(st);
            return;
        }
        let lost = self.errors - st.errors_at;
        if lost > 0 {
            let ev = Raised::now(What::SinkLost(SinkLost {
                count: lost,
                since_ns: st.since_ns,
                error: &st.error,
            }));
            self.push_raised(clock, &ev);
        }
        // Then what the daemon raised meanwhile.
        self.buf.extend_from_slice(&self.held);
        self.buf_lines += self.held_lines;
        self.buf_daemon += self.held_lines;
        let before = self.errors;
        self.flush();
        match &mut self.stall {
            Some(again) => {
                // Only the daemon's own records were buffered (nothing is rendered while
                // held): kept for the next try, which says the whole window again.
                self.errors = before;
                again.errors_at = st.errors_at;
                again.since_ns = st.since_ns;
            }
            None => {
                self.held.clear();
                self.held_lines = 0;
                self.last_error = None;
                let mut since = Vec::new();
                clock.write_rfc3339(&mut since, st.since_ns);
                if let Target::Archive(a) = &self.target {
                    info!(
                        "output {}: writing again; {lost} events lost since {} ({}), counted as sink_errors and in a lost record",
                        a.path.display(),
                        String::from_utf8_lossy(&since),
                        st.error
                    );
                }
            }
        }
    }

    fn report(&mut self, msg: &str, lines: u64) {
        self.errors += lines;
        if self.last_error.as_deref() != Some(msg) {
            error!("writing events failed: {msg}; {lines} events lost (counted as sink_errors)");
            self.last_error = Some(msg.to_string());
        }
    }
}

/// Whole lines of at most PIPE_BUF bytes, which a non-blocking pipe writes entirely or
/// not at all: a reader that stalls for good then never holds half a line (only a
/// single line longer than that can still be cut).
fn atomic_chunk(buf: &[u8]) -> &[u8] {
    const PIPE_BUF: usize = 4096;
    if buf.len() <= PIPE_BUF {
        return buf;
    }
    match buf[..PIPE_BUF].iter().rposition(|&c| c == b'\n') {
        Some(i) => &buf[..=i],
        None => match buf.iter().position(|&c| c == b'\n') {
            Some(i) => &buf[..=i],
            None => buf,
        },
    }
}

/// What `--output PATH` may be: a regular file or a fifo owned by the daemon's user (one it
/// just created, or one its admin made), or a character device owned by root (/dev/null,
/// a terminal). Anything owned by another user is refused: whoever owns the file reads the
/// events, and may have made it for that.
fn check_ours(f: &File, p: &Path) -> Result<(), super::Error> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata().map_err(|source| super::Error::Open {
        path: p.to_path_buf(),
        source,
    })?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let ft = m.file_type();
    let why = if ft.is_file() || ft.is_fifo() {
        (m.uid() != me).then(|| format!("belongs to uid {}", m.uid()))
    } else if ft.is_char_device() {
        (m.uid() != 0).then(|| format!("is a device of uid {}", m.uid()))
    } else {
        Some("is not a regular file".to_string())
    };
    match why {
        None => Ok(()),
        Some(why) => Err(super::Error::NotOurs {
            path: p.to_path_buf(),
            why,
            uid: if ft.is_char_device() { 0 } else { me },
        }),
    }
}

/// Pipes, fifos, sockets and terminals can stall on a slow reader; files and other
/// devices (/dev/null) do not.
fn is_stream(f: &File) -> bool {
    match f.metadata() {
        Ok(m) => {
            let ft = m.file_type();
            // SAFETY: isatty only inspects the fd.
            ft.is_fifo() || ft.is_socket() || unsafe { libc::isatty(f.as_raw_fd()) } == 1
        }
        Err(_) => false,
    }
}

fn count_lines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

/// After a short write the file ends inside a line: cut those `partial` bytes off.
fn trim_partial_line(f: &File, partial: u64) {
    if partial == 0 {
        return;
    }
    if let Ok(len) = f.metadata().map(|m| m.len()) {
        let _ = f.set_len(len.saturating_sub(partial));
    }
}

/// Our own handle on stdout: a regular file is written as is; a pipe, fifo or tty is
/// reopened through /proc as a new file description that we alone make non-blocking
/// (setting O_NONBLOCK on the inherited one would change it for the shell too); a
/// socket is written with MSG_DONTWAIT.
fn stdout_target() -> Result<Target, super::Error> {
    let out = io::stdout();
    let fd = out.as_fd();
    let dup = fd.try_clone_to_owned().map_err(super::Error::Stdout)?;
    let file = File::from(dup);
    if !is_stream(&file) {
        return Ok(Target::File(file));
    }
    if file.metadata().is_ok_and(|m| m.file_type().is_socket()) {
        return Ok(Target::Socket(OwnedFd::from(file)));
    }
    match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/proc/self/fd/1")
    {
        Ok(f) => Ok(Target::Stream(f)),
        // No /proc: blocking writes to the inherited stdout.
        Err(_) => Ok(Target::File(file)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_only_whole_lines_in_the_file() {
        // A 4000-byte file-size limit makes the kernel cut the write short in the middle
        // of line 251, then fail (EFBIG). (RLIMIT_FSIZE is per process: no other unit
        // test writes files.)
        let p = std::env::temp_dir().join(format!("rw-sink-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let mut s = Lines::open(Some(&p), &ArchiveSettings::default()).expect("open");
        let line = b"{\"x\":123456789}\n"; // 16 bytes: 250 whole lines fit
        let limit = libc::rlimit {
            rlim_cur: 4000,
            rlim_max: libc::RLIM_INFINITY,
        };
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain struct arguments. SIGXFSZ is ignored so the write fails instead.
        unsafe {
            libc::getrlimit(libc::RLIMIT_FSIZE, &mut old);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
        }
        for _ in 0..1000 {
            s.buf.extend_from_slice(line);
        }
        assert_eq!(s.flush(), Flushed::Done);
        // SAFETY: restoring the previous limit.
        unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &old) };
        let data = std::fs::read(&p).expect("read");
        let _ = std::fs::remove_file(&p);
        assert_eq!(data.len() % line.len(), 0, "only whole lines remain");
        assert_eq!(data.len() / line.len(), 4000 / 16);
        assert_eq!(s.errors(), 1000 - 250);
    }

    #[test]
    fn stalled_pipe_reader_does_not_block_and_loss_is_counted() {
        // A fifo whose reader never reads (a path, not /proc/self/fd/N: --output refuses
        // links).
        let path = std::env::temp_dir().join(format!("rw-sink-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid C string; the reader end is ours and closed below.
        let reader = unsafe {
            assert_eq!(libc::mkfifo(c.as_ptr(), 0o600), 0);
            libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK)
        };
        assert!(reader >= 0);
        let mut s = Lines::open(Some(&path), &ArchiveSettings::default()).expect("open fifo");
        assert!(s.pollable().is_some());
        let line = b"{\"x\":1}\n";
        for _ in 0..100_000 {
            s.buf.extend_from_slice(line);
        }
        assert_eq!(s.flush(), Flushed::Blocked);
        let t = Instant::now();
        s.flush_until(Instant::now() + Duration::from_millis(100));
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(s.buf.is_empty());
        // The pipe took 64 KiB = 8192 whole lines; the rest is counted.
        assert_eq!(s.errors(), 100_000 - 8192);
        // SAFETY: closing our own fd.
        unsafe { libc::close(reader) };
        let _ = std::fs::remove_file(&path);
    }
}
