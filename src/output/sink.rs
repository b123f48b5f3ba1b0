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
use std::path::Path;
use std::time::{Duration, Instant};

use log::error;

use super::raised::Raised;
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
}

/// JSON lines to a file, a stream or nowhere.
pub struct Lines {
    target: Target,
    /// Complete JSON lines not yet written.
    pub buf: Vec<u8>,
    /// Bytes of a line already written whose rest is still in `buf` (0 at a line end).
    partial: u64,
    errors: u64,
    last_error: Option<String>,
}

/// Outcome of one flush.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    Done,
    /// The stream is full: wait for it to become writable.
    Blocked,
}

impl Lines {
    /// `None` = stdout; `none`: counted, not written.
    pub fn open(path: Option<&Path>) -> Result<Lines, super::Error> {
        let target = match path {
            Some(p) if p == Path::new("none") => Target::Null,
            Some(p) => {
                // O_NOFOLLOW: a link in the last component is refused, not followed (a
                // root daemon appending through a link planted in /tmp writes any file).
                // New files are 0600: events hold every command line and path.
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
                    .open(p)
                    .map_err(|source| {
                        // ELOOP from O_NOFOLLOW; EACCES where fs.protected_symlinks
                        // refuses another user's link in a sticky directory first.
                        let link =
                            std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
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
                if is_stream(&f) {
                    Target::Stream(f)
                } else {
                    Target::File(f)
                }
            }
            None => stdout_target()?,
        };
        Ok(Lines {
            target,
            buf: Vec::with_capacity(128 << 10),
            partial: 0,
            errors: 0,
            last_error: None,
        })
    }
}

impl Sink for Lines {
    fn renders(&self) -> bool {
        !matches!(self.target, Target::Null)
    }

    fn pollable(&self) -> Option<BorrowedFd<'_>> {
        match &self.target {
            Target::File(_) | Target::Null => None,
            Target::Stream(f) => Some(f.as_fd()),
            Target::Socket(s) => Some(s.as_fd()),
        }
    }

    fn errors(&self) -> u64 {
        self.errors
    }

    fn has_room(&self) -> bool {
        self.buf.len() < MAX_BUFFERED
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
        super::json::render_with(ring, clock, data, ctx, &mut self.buf)
    }

    fn raise(&mut self, clock: &WallClock, ev: &Raised<'_>) {
        let mut line = super::json::Line::begin(&mut self.buf);
        ev.walk(clock, &mut line);
        line.end();
    }

    fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn flush(&mut self) -> Flushed {
        while !self.buf.is_empty() {
            match self.write_some() {
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
                    self.partial = match out.iter().rposition(|&c| c == b'\n') {
                        Some(i) => (n - i - 1) as u64,
                        None => self.partial + n as u64,
                    };
                    self.buf.drain(..n);
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
}

impl Lines {
    fn write_some(&mut self) -> io::Result<usize> {
        match &mut self.target {
            Target::Null => Ok(self.buf.len()),
            Target::File(f) => f.write(&self.buf),
            Target::Stream(f) => f.write(atomic_chunk(&self.buf)),
            Target::Socket(s) => {
                let chunk = atomic_chunk(&self.buf);
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
    /// its last complete line, so a partial write never leaves half a JSON object.
    fn fail(&mut self, e: io::Error) {
        if let Target::File(f) = &self.target {
            trim_partial_line(f, self.partial);
        }
        self.partial = 0;
        let lines = count_lines(&self.buf);
        self.report(&e.to_string(), lines);
        self.buf.clear();
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
        let mut s = Lines::open(Some(&p)).expect("open");
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
        let mut s = Lines::open(Some(&path)).expect("open fifo");
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
