//! The daemon's own log (`log` + `env_logger`, on stderr). Under systemd, stderr is a
//! stream to journald: then each line starts with its syslog priority (`<3>` error,
//! `<4>` warn, `<6>` info, `<7>` debug and trace), which journald turns into the entry's
//! PRIORITY, and carries no timestamp or module path (journald records time and
//! source itself). Anywhere else the lines stay env_logger's readable ones.
use std::io::Write;
use std::os::fd::AsRawFd;

use log::Level;

/// Sets up the logger: `RUST_LOG` filters (default info); the format depends on where
/// stderr goes.
pub fn init() {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if stderr_is_journal() {
        b.format(|out, r| {
            let mut line = Vec::with_capacity(128);
            journal_line(&mut line, r.level(), r.target(), &r.args().to_string());
            out.write_all(&line)
        });
    }
    b.init();
}

/// systemd sets `$JOURNAL_STREAM` to `DEV:INODE` of the stream it connects stdout and
/// stderr to; it is the journal only if stderr still is that file (a shell may have
/// redirected it, or a child inherited the variable).
fn stderr_is_journal() -> bool {
    let Some(want) = std::env::var("JOURNAL_STREAM")
        .ok()
        .and_then(|v| parse_journal_stream(&v))
    else {
        return false;
    };
    // SAFETY: fstat fills a plain struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd 2 and a valid pointer.
    if unsafe { libc::fstat(std::io::stderr().as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    want == (st.st_dev, st.st_ino)
}

/// `DEV:INODE`, both decimal, as systemd writes it.
pub fn parse_journal_stream(v: &str) -> Option<(u64, u64)> {
    let (dev, ino) = v.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// The syslog priority of a log level.
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// One record as journal stream lines: `<P>message`. A message from outside the
/// daemon's own modules (libbpf's) keeps its source as `libbpf: `. Each line of a
/// multi-line message gets the prefix, so none loses its priority.
pub fn journal_line(out: &mut Vec<u8>, level: Level, target: &str, msg: &str) {
    let own = target == "ringwarden" || target.starts_with("ringwarden::");
    for line in msg.split('\n') {
        let _ = write!(out, "<{}>", priority(level));
        if !own {
            let _ = write!(out, "{target}: ");
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(level: Level, target: &str, msg: &str) -> String {
        let mut v = Vec::new();
        journal_line(&mut v, level, target, msg);
        String::from_utf8(v).expect("utf8")
    }

    #[test]
    fn priorities_prefix_each_line() {
        assert_eq!(
            line(Level::Info, "ringwarden::daemon", "ready: 3 programs"),
            "<6>ready: 3 programs\n"
        );
        assert_eq!(line(Level::Error, "ringwarden", "x"), "<3>x\n");
        assert_eq!(line(Level::Warn, "ringwarden::sink", "w"), "<4>w\n");
        assert_eq!(line(Level::Debug, "ringwarden::daemon", "d"), "<7>d\n");
        assert_eq!(line(Level::Trace, "libbpf", "t"), "<7>libbpf: t\n");
        assert_eq!(line(Level::Warn, "ringwarden", "a\nb"), "<4>a\n<4>b\n");
        // A crate named like ours is not ours.
        assert_eq!(line(Level::Info, "ringwardenx", "m"), "<6>ringwardenx: m\n");
    }

    #[test]
    fn journal_stream_is_dev_colon_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(
            parse_journal_stream("18446744073709551615:1"),
            Some((u64::MAX, 1))
        );
        for bad in ["", "8", "8:", ":1", "a:1", "8:1:2", " 8:1", "-1:2"] {
            assert_eq!(parse_journal_stream(bad), None, "{bad:?}");
        }
    }
}
