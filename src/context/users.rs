//! User names by uid, from `/etc/passwd` itself. Not NSS (`getpwuid`): that can ask LDAP or
//! SSSD over the network and block the daemon's one thread. Users that only NSS knows
//! stay numbers.
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

/// At most this many uids are kept, so that a huge file costs bounded memory.
const MAX_ENTRIES: usize = 65_536;
/// At most this much of the file is read (65,536 entries of 256 bytes).
const MAX_BYTES: u64 = 16 << 20;
/// Longer names are malformed (LOGIN_NAME_MAX, with its NUL).
const MAX_NAME: usize = 255;

/// uid → user name, as parsed from a passwd file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Users {
    names: HashMap<u32, Box<str>>,
}

impl Users {
    /// The users in a passwd file's text. The first line for a uid wins, as for
    /// getpwuid; malformed lines (and NIS `+`/`-` lines) are skipped; past
    /// 65,536 uids the rest is ignored.
    pub fn parse(text: &str) -> Users {
        Users::parse_bytes(text.as_bytes())
    }

    /// The name of `uid`, if the file has it.
    pub fn name(&self, uid: u32) -> Option<&str> {
        self.names.get(&uid).map(|n| &**n)
    }

    /// The file at `path` read again when its modification time is not `previous`
    /// (the one returned last time): `Ok(None)` when unchanged, so the caller keeps the
    /// users it has, on an error too. A plain bounded read: no NSS, and the file is opened
    /// non-blocking and must be a regular file, so a FIFO put there cannot hang the daemon.
    /// Editors and `useradd` replace the file by a rename, which changes the time.
    pub fn load(
        path: &Path,
        previous: Option<SystemTime>,
    ) -> io::Result<Option<(Users, SystemTime)>> {
        if previous.is_some() && fs::metadata(path)?.modified().ok() == previous {
            return Ok(None);
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        // The time of the file read, not of the earlier stat: a change in between is
        // seen on the next call.
        let mtime = meta.modified()?;
        Ok(Some((Users::parse_bytes(&read_bounded(file)?), mtime)))
    }

    /// As [`Users::parse`], line by line on bytes: a line that is not UTF-8 (a Latin-1
    /// comment field, say) is skipped alone.
    fn parse_bytes(text: &[u8]) -> Users {
        let mut names = HashMap::new();
        for line in text.split(|&b| b == b'\n') {
            if names.len() >= MAX_ENTRIES {
                break;
            }
            let Some((uid, name)) = std::str::from_utf8(line).ok().and_then(entry) else {
                continue;
            };
            names.entry(uid).or_insert_with(|| name.into());
        }
        Users { names }
    }
}

/// A passwd line's uid and name: `name:password:uid:gid:gecos:home:shell`.
fn entry(line: &str) -> Option<(u32, &str)> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let fields: Vec<&str> = line.split(':').collect();
    let [name, _, uid, _, _, _, _] = fields[..] else {
        return None;
    };
    // `+name`/`-name` are NIS compat entries, not users; a name is printable text.
    let name_ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with(['+', '-', '#'])
        && !name.chars().any(|c| c.is_control() || c.is_whitespace());
    // Digits only (u32's parser takes a `+`); 4294967295 is (uid_t)-1, no uid.
    if !name_ok || uid.is_empty() || !uid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let uid = uid.parse::<u32>().ok().filter(|&u| u != u32::MAX)?;
    Some((uid, name))
}

/// The file's first MAX_BYTES; when it is longer, up to the last whole line in them, so
/// that a cut line cannot read as a different entry.
fn read_bounded(file: File) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_BYTES {
        let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        buf.truncate(end);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
toor:x:0:0:second root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";

    #[test]
    fn parses_a_passwd_file() {
        let u = Users::parse(PASSWD);
        assert_eq!(u.name(0), Some("root"), "the first entry for a uid wins");
        assert_eq!(u.name(1), Some("daemon"));
        assert_eq!(u.name(998), Some("systemd-network"));
        assert_eq!(u.name(1000), Some("alice"));
        assert_eq!(u.name(65534), Some("nobody"));
        assert_eq!(u.name(1001), None);
        assert_eq!(u.names.len(), 5);
    }

    #[test]
    fn skips_malformed_lines() {
        let text = "\
\n\
# a comment:x:5:5:::\n\
+::::::\n\
+@admins::::::\n\
-bob:x:6:6:::\n\
short:x:7:7\n\
long:x:8:8:::/bin/sh:extra\n\
:x:9:9:::\n\
neg:x:-10:10:::\n\
plus:x:+11:11:::\n\
hex:x:0x12:12:::\n\
big:x:4294967296:0:::\n\
minus1:x:4294967295:0:::\n\
empty:x::0:::\n\
sp ace:x:13:13:::\n\
tab\t:x:14:14:::\n\
crlf:x:15:15::/:/bin/sh\r\n\
ok:x:16:16:::\n\
no-newline:x:17:17:::";
        let u = Users::parse(text);
        assert_eq!(u.name(15), Some("crlf"));
        assert_eq!(u.name(16), Some("ok"));
        assert_eq!(u.name(17), Some("no-newline"));
        assert_eq!(u.names.len(), 3, "{u:?}");
        assert_eq!(u.name(u32::MAX), None);
    }

    #[test]
    fn skips_lines_that_are_not_utf8() {
        let mut text = b"jos\xe9:x:1001:1001:::\n".to_vec();
        text.extend_from_slice(b"ann:x:1002:1002:Ann M\xfcller:/home/ann:/bin/sh\n");
        text.extend_from_slice(b"bea:x:1003:1003:::\n");
        let u = Users::parse_bytes(&text);
        assert_eq!(u.name(1001), None);
        assert_eq!(u.name(1002), None);
        assert_eq!(u.name(1003), Some("bea"));
    }

    #[test]
    fn keeps_at_most_65536_uids() {
        let mut text = String::new();
        for uid in 0..70_000u32 {
            text += &format!("u{uid}:x:{uid}:0:::\n");
        }
        let u = Users::parse(&text);
        assert_eq!(u.names.len(), MAX_ENTRIES);
        assert_eq!(u.name(65_535), Some("u65535"));
        assert_eq!(u.name(65_536), None);
    }

    #[test]
    fn never_panics() {
        for s in [
            "",
            ":",
            "::::::",
            "\n\n",
            "a:b:c:d:e:f:g",
            "é:x:1:1:::",
            "\u{0}:x:1:1:::",
        ] {
            let _ = Users::parse(s);
        }
        assert_eq!(Users::parse("é:x:1:1:::").name(1), Some("é"));
    }

    #[test]
    fn loads_again_only_when_the_file_changed() -> io::Result<()> {
        let dir = std::env::temp_dir().join(format!("ringwarden-users-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let path = dir.join("passwd");
        fs::write(&path, PASSWD)?;
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        File::options().write(true).open(&path)?.set_modified(t0)?;

        let (users, mtime) = Users::load(&path, None)?.expect("a first load reads");
        assert_eq!(users.name(1000), Some("alice"));
        assert_eq!(mtime, t0);
        assert!(Users::load(&path, Some(mtime))?.is_none(), "unchanged");

        // Replaced as useradd does: a new file renamed over the old one.
        let new = dir.join("passwd.new");
        fs::File::create(&new)?.write_all(b"bob:x:1000:1000:::\n")?;
        fs::rename(&new, &path)?;
        let t1 = t0 + std::time::Duration::from_secs(1);
        File::options().write(true).open(&path)?.set_modified(t1)?;
        let (users, mtime) = Users::load(&path, Some(mtime))?.expect("changed");
        assert_eq!(users.name(1000), Some("bob"));
        assert_eq!(mtime, t1);

        // Not a regular file: refused, not read.
        assert_eq!(
            Users::load(&dir, None).map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::InvalidInput)
        );
        assert!(Users::load(&dir.join("missing"), Some(mtime)).is_err());
        fs::remove_dir_all(&dir)
    }

    #[test]
    fn a_cut_file_loses_its_last_line() -> io::Result<()> {
        let line = "someone:x:4242:4242:::\n";
        let mut data = Vec::new();
        while data.len() as u64 <= MAX_BYTES {
            data.extend_from_slice(line.as_bytes());
        }
        data.truncate(MAX_BYTES as usize + 10);
        let dir = std::env::temp_dir().join(format!("ringwarden-cut-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let path = dir.join("passwd");
        fs::write(&path, &data)?;
        let buf = read_bounded(File::open(&path)?)?;
        assert!(buf.len() as u64 <= MAX_BYTES);
        assert_eq!(buf.last(), Some(&b'\n'));
        assert!(buf.ends_with(line.as_bytes()), "whole lines only");
        fs::remove_dir_all(&dir)
    }
}
