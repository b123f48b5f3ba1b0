//! The control socket: a Unix stream socket (mode 0600) served by the daemon's loop
//! (src/serve.rs), and `ringwarden status`, its client. Protocol: the client sends one
//! line, `status\n` (at most [`MAX_LINE`] bytes); the daemon answers with the stats
//! document (one JSON object and a newline, the same as `--stats-json`) and closes.
use std::fs::DirBuilder;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::obs::jsonread::{self, Value};
use crate::obs::serve::{OwnedPath, Parsed, Request};
use crate::output::json::escape_str;
use crate::sys::{Exit, exit};
use crate::units::{fmt_ns, fmt_size, fmt_uptime, human};

/// The longest request line (without its newline).
pub const MAX_LINE: usize = 256;
const LIVE: &str = "another running process (a second ringwarden?) serves it";

/// Why the control socket cannot be had (the daemon warns and runs without it); the
/// message reads after "control socket PATH: ".
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot create its directory {}: {source}", .dir.display())]
    Dir { dir: PathBuf, source: io::Error },
    #[error("{}", LIVE)]
    Live,
    #[error("cannot replace the stale socket file: {0}")]
    Stale(io::Error),
    #[error("cannot check the existing socket: {0}")]
    Check(io::Error),
    #[error("a file that is not a socket is in the way; remove it or choose another path")]
    NotASocket,
    #[error("cannot bind: {0}")]
    Bind(io::Error),
    #[error("cannot make it non-blocking: {0}")]
    Nonblocking(io::Error),
    /// Reading back what was bound.
    #[error(transparent)]
    Io(io::Error),
    /// Registering it with the daemon's loop.
    #[error("registering it: {0}")]
    Register(io::Error),
}

/// `ringwarden status` cannot ask the daemon (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("cannot connect to {}: {source}; {}", .socket.display(), connect_fix(.source))]
    Connect { socket: PathBuf, source: io::Error },
    #[error(
        "no answer from {}: {source}; is the daemon stuck? try `systemctl status ringwarden`",
        .socket.display()
    )]
    NoAnswer { socket: PathBuf, source: io::Error },
    /// The socket's server is neither root nor this user: some other program bound the
    /// path (the daemon runs as root), and its answer would be its own word.
    #[error(
        "{} is served by a process of uid {uid}, not by root or by you: not asking it; is the daemon running, and is that its socket?",
        .socket.display()
    )]
    NotOurs { socket: PathBuf, uid: u32 },
}

impl Exit for AskError {
    fn exit_code(&self) -> u8 {
        exit::RUNTIME
    }
}

fn connect_fix(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        "the socket is mode 0600: run as root (sudo ringwarden status)"
    } else if e.kind() == io::ErrorKind::WouldBlock {
        "the daemon is not accepting connections: is it stuck? try `systemctl status ringwarden`"
    } else {
        "is the service running? try `systemctl status ringwarden`; or pass --control-socket PATH"
    }
}
/// How long the client waits for the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do with the bytes read so far (`eof`: the client has finished sending).
pub fn parse(buf: &[u8], eof: bool) -> Parsed {
    let line = match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i <= MAX_LINE => &buf[..i],
        Some(_) => return Parsed::Reply(too_long()),
        None if buf.len() > MAX_LINE => return Parsed::Reply(too_long()),
        // `printf status | nc -U`: the end of the stream ends the line too.
        None if eof && !buf.is_empty() => buf,
        None if eof => return Parsed::Close,
        None => return Parsed::More,
    };
    let cmd = line.strip_suffix(b"\r").unwrap_or(line).trim_ascii();
    if cmd == b"status" {
        return Parsed::Request(Request::Status);
    }
    let shown: String = String::from_utf8_lossy(cmd).chars().take(64).collect();
    let mut msg = b"unknown request ".to_vec();
    escape_str(&mut msg, &shown);
    msg.extend_from_slice(b"; the protocol is one line: status");
    Parsed::Reply(error_json(&String::from_utf8_lossy(&msg)))
}

fn too_long() -> Vec<u8> {
    error_json(&format!(
        "request line longer than {MAX_LINE} bytes; send status"
    ))
}

/// `{"error":"..."}` and a newline.
pub fn error_json(msg: &str) -> Vec<u8> {
    let mut out = b"{\"error\":".to_vec();
    escape_str(&mut out, msg);
    out.extend_from_slice(b"}\n");
    out
}

/// Binds the control socket at `path`, mode 0600, creating its directory (0755) if
/// missing. A stale socket file (nobody listening) is replaced; a live one, or anything
/// that is not a socket, is left alone: the error says why, and the daemon runs without
/// the socket (events matter more).
pub fn bind(path: &Path) -> Result<(UnixListener, OwnedPath), BindError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|source| BindError::Dir {
                dir: dir.to_path_buf(),
                source,
            })?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match connect_now(path) {
            // A full backlog (WouldBlock) is a live listener too, if a stuck one.
            Ok(_) => return Err(BindError::Live),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(BindError::Live),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(BindError::Stale)?;
                log::info!(
                    "control socket {}: replaced a stale socket file",
                    path.display()
                );
            }
            Err(e) => return Err(BindError::Check(e)),
        },
        Ok(_) => {
            return Err(BindError::NotASocket);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(BindError::Io(e)),
    }
    // Created as 0600, so there is no moment in which others could connect. The umask
    // is process-wide, which is fine: the daemon has one thread.
    // SAFETY: umask has no preconditions.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    // Two daemons starting together both find the path free; the second bind fails.
    // (Worded without "already": scripts and tests wait for the word "ready".)
    let l = bound.map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => BindError::Live,
        _ => BindError::Bind(e),
    })?;
    l.set_nonblocking(true).map_err(BindError::Nonblocking)?;
    let m = std::fs::symlink_metadata(path).map_err(BindError::Io)?;
    Ok((
        l,
        OwnedPath {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        },
    ))
}

/// `ringwarden status`: asks the daemon, prints a table (or the JSON as is).
/// Exit 1 with one line when the daemon cannot be asked.
pub fn status_command(socket: &Path, json: bool) -> ExitCode {
    match ask(socket) {
        Ok(text) => match jsonread::parse(&text) {
            Ok(v) if v.get("error").as_str().is_some() => {
                eprintln!(
                    "ringwarden status: the daemon at {} says: {}",
                    socket.display(),
                    printable(v.get("error").as_str().unwrap_or_default())
                );
                ExitCode::from(1)
            }
            Ok(v) => {
                if json {
                    print!("{text}");
                } else {
                    print!("{}", printable(&table(&v)));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "ringwarden status: {} answered something that is not the status ({e}); is it a ringwarden control socket?",
                    socket.display()
                );
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("ringwarden status: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Connects without waiting: a Unix stream connect to a listener whose backlog is full
/// blocks until it accepts, forever if it is stuck; non-blocking, that is WouldBlock.
/// (The daemon checks an existing socket this way from inside its loop at SIGHUP.)
fn connect_now(path: &Path) -> io::Result<UnixStream> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zeros is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket path is too long (at most 107 bytes)",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, b) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *b as libc::c_char;
    }
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new socket nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_un of at least len bytes.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&raw const addr).cast::<libc::sockaddr>(),
            len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let s = UnixStream::from(fd);
    s.set_nonblocking(false)?;
    Ok(s)
}

fn ask(socket: &Path) -> Result<String, AskError> {
    let mut s = connect_now(socket).map_err(|source| AskError::Connect {
        socket: socket.to_path_buf(),
        source,
    })?;
    let uid = peer_uid(&s).map_err(|source| AskError::Connect {
        socket: socket.to_path_buf(),
        source,
    })?;
    // SAFETY: getuid has no preconditions.
    if uid != 0 && uid != unsafe { libc::getuid() } {
        return Err(AskError::NotOurs {
            socket: socket.to_path_buf(),
            uid,
        });
    }
    let _ = s.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = s.set_write_timeout(Some(CLIENT_TIMEOUT));
    let mut text = String::new();
    s.write_all(b"status\n")
        .and_then(|()| s.take(64 << 20).read_to_string(&mut text))
        .map_err(|source| AskError::NoAnswer {
            socket: socket.to_path_buf(),
            source,
        })?;
    Ok(text)
}

/// The uid of the process that holds the other end (the kernel's word: SO_PEERCRED).
fn peer_uid(s: &UnixStream) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    // SAFETY: ucred is plain data; getsockopt writes at most `len` bytes into it.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid socket fd and a buffer of `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Text from the daemon as it goes to a terminal: control characters and characters that
/// change how text looks (line separators, bidirectional overrides) as `\u{..}` escapes.
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let tricky = matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        );
        if c != '\n' && (c.is_control() || tricky) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A size column: "512KiB", or bytes when not a whole KiB.
fn size(v: &Value) -> String {
    v.as_u64().map_or("?".to_string(), human)
}

fn num(v: &Value) -> String {
    v.as_u64().map_or("?".to_string(), |n| n.to_string())
}

/// The programs that ran, the costliest first, as bpftop shows them: runs, time per run
/// and the share of one CPU over the time the run statistics have been on.
fn program_costs(out: &mut String, v: &Value) {
    let Some(ms) = v.get("program_stats_ms").as_u64() else {
        return;
    };
    let mut rows: Vec<(String, &str, u64, u64)> = v
        .get("programs")
        .members()
        .iter()
        .filter_map(|(name, p)| {
            let runs = p.get("runs").as_u64()?;
            let ns = p.get("run_ns").as_u64()?;
            (runs > 0).then(|| {
                (
                    name.clone(),
                    p.get("family").as_str().unwrap_or("?"),
                    runs,
                    ns,
                )
            })
        })
        .collect();
    rows.sort_by(|a, b| b.3.cmp(&a.3).then_with(|| a.0.cmp(&b.0)));
    out.push_str(&format!(
        "program costs over {} (run statistics on): programs that ran: {}\n",
        fmt_uptime(ms),
        rows.len()
    ));
    let wall_ns = (ms as f64 * 1e6).max(1.0);
    for (name, family, runs, ns) in rows {
        out.push_str(&format!(
            "  {family}/{name}: {runs} runs, {} ns/run, {:.3}% of a CPU\n",
            ns / runs,
            ns as f64 * 100.0 / wall_ns
        ));
    }
}

/// The human form of the status document: a row per ring, the programs, the rest.
pub fn table(v: &Value) -> String {
    const HEAD: [&str; 13] = [
        "RING",
        "SIZE",
        "MIN",
        "MAX",
        "HIGH-WATER",
        "FILL",
        "PRODUCED",
        "RECEIVED",
        "DROPPED",
        "LOSS",
        "RESIZES",
        "P50",
        "P99",
    ];
    let mut rows: Vec<Vec<String>> = vec![HEAD.iter().map(|s| s.to_string()).collect()];
    let mut notes = Vec::new();
    for (name, r) in v.get("rings").members() {
        let pct = r.get("high_water_percent").as_f64().unwrap_or(0.0);
        let loss = r.get("loss_rate").as_f64().unwrap_or(0.0) * 100.0;
        rows.push(vec![
            name.clone(),
            size(r.get("size")),
            size(r.get("min")),
            size(r.get("max")),
            size(r.get("high_water")),
            format!("{pct:.1}%"),
            num(r.get("produced")),
            num(r.get("received")),
            num(r.get("dropped")),
            format!("{loss:.3}%"),
            format!(
                "+{}/-{}",
                num(r.get("resizes_up")),
                num(r.get("resizes_down"))
            ),
            fmt_ns(r.get("latency_p50_ns").as_u64().unwrap_or(0)),
            fmt_ns(r.get("latency_p99_ns").as_u64().unwrap_or(0)),
        ]);
        // A sharded ring: the row above is the sum, a row per shard follows.
        for (i, sh) in r.get("shards").elements().iter().enumerate() {
            let produced = sh.get("produced").as_u64().unwrap_or(0);
            let dropped = sh.get("dropped").as_u64().unwrap_or(0);
            let loss = if produced == 0 {
                0.0
            } else {
                dropped as f64 * 100.0 / produced as f64
            };
            rows.push(vec![
                format!(" {name}/{i}"),
                size(sh.get("size")),
                String::new(),
                String::new(),
                size(sh.get("high_water")),
                format!(
                    "{:.1}%",
                    sh.get("utilization").as_f64().unwrap_or(0.0) * 100.0
                ),
                num(sh.get("produced")),
                num(sh.get("received")),
                num(sh.get("dropped")),
                format!("{loss:.3}%"),
                format!(
                    "+{}/-{}",
                    num(sh.get("resizes_up")),
                    num(sh.get("resizes_down"))
                ),
                String::new(),
                String::new(),
            ]);
        }
        let (u, d) = (
            r.get("untracked").as_u64().unwrap_or(0),
            r.get("decode_errors").as_u64().unwrap_or(0),
        );
        if u > 0 || d > 0 {
            notes.push(format!("ring {name}: {u} untracked, {d} decode errors"));
        }
        let (f, rl) = (
            r.get("filtered").as_u64().unwrap_or(0),
            r.get("rate_limited").as_u64().unwrap_or(0),
        );
        if f > 0 || rl > 0 {
            notes.push(format!(
                "ring {name}: {f} filtered out, {rl} rate limited (not in PRODUCED)"
            ));
        }
    }
    let widths: Vec<usize> = (0..HEAD.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for n in notes {
        out.push_str(&n);
        out.push('\n');
    }
    let unseen = v.get("unseen");
    if !unseen.members().is_empty() {
        let part = |what: &str, by: &str| {
            let u = unseen.get(what);
            let list: Vec<String> = u
                .get(by)
                .members()
                .iter()
                .map(|(k, n)| format!("{k} {}", num(n)))
                .collect();
            let tail = if list.is_empty() {
                String::new()
            } else {
                format!(" ({})", list.join(", "))
            };
            format!("{}{tail}", num(u.get("total")))
        };
        out.push_str(&format!(
            "unseen by the other families: compat syscalls {}, io_uring submissions {}\n",
            part("compat", "syscalls"),
            part("io_uring", "opcodes")
        ));
    }
    let losses = v.get("losses").elements();
    if !losses.is_empty() {
        out.push_str("losses by uid, largest first:\n");
        for l in losses.iter().take(10) {
            let uid = match l.get("uid").as_u64() {
                Some(u) if u == u64::from(u32::MAX) => "other uids".to_string(),
                Some(u) => format!("uid {u}"),
                None => "uid ?".to_string(),
            };
            out.push_str(&format!(
                "  {} {uid}: {} filtered, {} dropped, {} rate limited\n",
                l.get("ring").as_str().unwrap_or("?"),
                num(l.get("filtered")),
                num(l.get("dropped")),
                num(l.get("rate_limited"))
            ));
        }
    }
    let counts = v.get("program_counts");
    out.push_str(&format!(
        "programs: {} attached, {} failed, {} not applicable\n",
        num(counts.get("attached")),
        num(counts.get("failed")),
        num(counts.get("not_applicable"))
    ));
    for (name, p) in v.get("programs").members() {
        let (what, why) = match (p.get("error").as_str(), p.get("not_applicable").as_str()) {
            (Some(e), _) => ("failed", e),
            (None, Some(w)) => ("not applicable", w),
            _ => continue,
        };
        out.push_str(&format!(
            "  {what}: {}/{name} ({}): {why}\n",
            p.get("family").as_str().unwrap_or("?"),
            p.get("attach").as_str().unwrap_or("?")
        ));
    }
    program_costs(&mut out, v);
    let c = v.get("context");
    if c.get("processes").as_u64().is_some() {
        out.push_str(&format!(
            "context: {} processes, {} cgroups known; evicted {} processes, {} cgroups; {} events of unknown processes\n",
            num(c.get("processes")),
            num(c.get("cgroups")),
            num(c.get("evictions").get("processes")),
            num(c.get("evictions").get("cgroups")),
            num(c.get("unknown")),
        ));
    }
    if let Some(m) = v.get("ring_memory").as_u64() {
        let budget = match v.get("memory_budget").as_u64() {
            Some(b) => format!(" of a {} memory budget", fmt_size(b)),
            None => " (no memory budget)".to_string(),
        };
        out.push_str(&format!("rings hold {}{budget}\n", fmt_size(m)));
    }
    let expired = match v.get("expired_events").as_u64() {
        Some(e) => format!(", expired {e}"),
        None => String::new(),
    };
    out.push_str(&format!(
        "uptime {}, pid {}, version {}, written {}, sink errors {}{expired}, memory {:.1} MiB\n",
        fmt_uptime(v.get("uptime_ms").as_u64().unwrap_or(0)),
        num(v.get("pid")),
        v.get("version").as_str().unwrap_or("?"),
        num(v.get("written")),
        num(v.get("sink_errors")),
        v.get("rss_bytes").as_u64().unwrap_or(0) as f64 / f64::from(1 << 20)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_status_prints_cannot_drive_a_terminal() {
        assert_eq!(
            printable("a\x1b[2Jb\u{202e}c\u{9b}d\nok\u{2028}"),
            "a\\u{1b}[2Jb\\u{202e}c\\u{9b}d\nok\\u{2028}"
        );
        assert_eq!(printable("plain é 🐛\n"), "plain é 🐛\n");
    }
    use crate::config::{DEFAULT_SOCKET, resolve_socket};
    use std::path::PathBuf;

    fn reply(p: Parsed) -> String {
        match p {
            Parsed::Reply(r) => String::from_utf8(r).expect("utf8"),
            other => panic!("not a reply: {other:?}"),
        }
    }

    #[test]
    fn requests() {
        for ok in ["status\n", "status\r\n", "  status \n", "status\nextra"] {
            assert!(
                matches!(
                    parse(ok.as_bytes(), false),
                    Parsed::Request(Request::Status)
                ),
                "{ok:?}"
            );
        }
        assert!(matches!(
            parse(b"status", true),
            Parsed::Request(Request::Status)
        ));
        assert!(matches!(parse(b"stat", false), Parsed::More));
        assert!(matches!(parse(b"", true), Parsed::Close));
        assert_eq!(
            reply(parse(b"reboot \"now\"\n", false)),
            "{\"error\":\"unknown request \\\"reboot \\\\\\\"now\\\\\\\"\\\"; the protocol is one line: status\"}\n"
        );
        assert_eq!(
            reply(parse(b"\xff\x00\n", false)),
            "{\"error\":\"unknown request \\\"\u{fffd}\\\\u0000\\\"; the protocol is one line: status\"}\n"
        );
        let long = vec![b'a'; MAX_LINE + 1];
        assert_eq!(
            reply(parse(&long, false)),
            "{\"error\":\"request line longer than 256 bytes; send status\"}\n"
        );
        let mut exact = vec![b' '; MAX_LINE - 6];
        exact.extend_from_slice(b"status\n");
        assert!(matches!(
            parse(&exact, false),
            Parsed::Request(Request::Status)
        ));
        // The error answers are JSON the client reads.
        let v = jsonread::parse(&reply(parse(b"x\n", false))).expect("json");
        assert!(v.get("error").as_str().expect("error").contains("\"x\""));
    }

    #[test]
    fn the_table() {
        let snap = crate::daemon::snapshot::tests::sample();
        let v = jsonread::parse(&String::from_utf8(snap.json()).expect("utf8")).expect("json");
        let t = table(&v);
        let want = format!(
            "\
RING     SIZE  MIN   MAX     HIGH-WATER  FILL   PRODUCED  RECEIVED  DROPPED  LOSS    RESIZES  P50    P99
file     1MiB  1MiB  256MiB  768KiB      75.0%  1000      990       10       1.000%  +2/-1    300us  500us
syscall  4KiB  4KiB  64MiB   0B          0.0%   0         0         0        0.000%  +0/-0    0ns    0ns
ring file: 3 untracked, 1 decode errors
ring file: 7 filtered out, 4 rate limited (not in PRODUCED)
losses by uid, largest first:
  file uid 1000: 5 filtered, 1 dropped, 0 rate limited
  file other uids: 2 filtered, 0 dropped, 0 rate limited
programs: 1 attached, 1 failed, 1 not applicable
  not applicable: anomaly/handle_init_module (tracepoint/syscalls/sys_enter_init_module): no module support
  failed: network/handle_connect (tracepoint/syscalls/sys_exit_connect): attach: \"EPERM\"
program costs over 10s (run statistics on): programs that ran: 1
  file/handle_openat: 1000 runs, 250 ns/run, 0.003% of a CPU
context: 120 processes, 30 cgroups known; evicted 7 processes, 1 cgroups; 2 events of unknown processes
rings hold 1028 KiB of a 4 MiB memory budget
uptime 1h 2m 3s, pid 42, version {}, written 0, sink errors 4, memory 12.0 MiB
",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(t, want, "\n{t}");
    }

    #[test]
    fn the_table_shows_each_shard_under_its_ring() {
        use crate::daemon::snapshot::ShardStats;
        let mut snap = crate::daemon::snapshot::tests::sample();
        let shard = |produced, received, dropped| ShardStats {
            size: 4096,
            high_water: 2048,
            utilization: 0.5,
            produced,
            received,
            dropped,
            ..ShardStats::default()
        };
        snap.rings[1].shards = vec![shard(10, 10, 0), shard(30, 27, 3)];
        let v = jsonread::parse(&String::from_utf8(snap.json()).expect("utf8")).expect("json");
        let t = table(&v);
        let rows: Vec<&str> = t.lines().skip(2).take(3).collect();
        assert!(rows[0].starts_with("syscall "), "{t}");
        let cells = |r: &str| r.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            cells(rows[1]),
            [
                "syscall/0",
                "4KiB",
                "2KiB",
                "50.0%",
                "10",
                "10",
                "0",
                "0.000%",
                "+0/-0"
            ]
        );
        assert_eq!(
            cells(rows[2]),
            [
                "syscall/1",
                "4KiB",
                "2KiB",
                "50.0%",
                "30",
                "27",
                "3",
                "10.000%",
                "+0/-0"
            ]
        );
    }

    #[test]
    fn the_table_shows_what_is_unseen() {
        let mut snap = crate::daemon::snapshot::tests::sample();
        snap.unseen = Some(crate::family::syscall::Unseen {
            compat: vec![(5, 3), (102, 1)],
            io_uring: vec![],
        });
        let v = jsonread::parse(&String::from_utf8(snap.json()).expect("utf8")).expect("json");
        let t = table(&v);
        assert!(
            t.contains("\nunseen by the other families: compat syscalls 4 (open 3, socketcall 1), io_uring submissions 0\nlosses by uid"),
            "{t}"
        );
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ns(999), "999ns");
        assert_eq!(fmt_ns(312_999), "312us");
        assert_eq!(fmt_ns(1_500_000), "1.50ms");
        assert_eq!(fmt_ns(2_000_000_000), "2.00s");
        assert_eq!(fmt_uptime(59_999), "59s");
        assert_eq!(fmt_uptime(90_061_000), "1d 1h 1m 1s");
        assert_eq!(error_json("a\"b"), b"{\"error\":\"a\\\"b\"}\n");
        let d = Some(PathBuf::from("/x.sock"));
        assert_eq!(resolve_socket(d.clone(), None), d);
        assert_eq!(resolve_socket(None, Some(d.clone())), d);
        assert_eq!(resolve_socket(None, Some(None)), None);
        assert_eq!(
            resolve_socket(None, None),
            Some(PathBuf::from(DEFAULT_SOCKET))
        );
    }

    #[test]
    fn bind_replaces_a_stale_socket_and_leaves_a_live_one_and_other_files() {
        let dir = std::env::temp_dir().join(format!("rw-control-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("control.sock");
        let (live, owned) = bind(&path).expect("bind, creating the directory");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("dir")), 0o755);
        assert_eq!(owned.path, path);
        let e = bind(&path).expect_err("live").to_string();
        assert!(e.contains("another running process"), "{e}");
        // Logged before `ready`, which scripts wait for: no "already" in it.
        assert!(!e.contains("ready") && !LIVE.contains("ready"));
        // Dropping the listener leaves the file behind: stale, replaced.
        drop(live);
        assert!(path.exists());
        let (_l, owned2) = bind(&path).expect("stale replaced");
        assert_eq!(owned2.path, path);
        UnixStream::connect(&path).expect("the new socket answers");
        let file = dir.join("plain");
        std::fs::write(&file, "x").expect("write");
        let e = bind(&file).expect_err("not a socket").to_string();
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).expect("kept"), "x");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
