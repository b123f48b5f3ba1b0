//! `[output.file]`: the event archive. The active file (`events.jsonl`) is rotated by size
//! or age into a sibling whose name sorts by time (`events-20261201T213000Z.jsonl`, `.gz`
//! once compressed); rotated files are compressed in the loop's spare time, and retention
//! deletes the oldest by count, age and total size, counting the events it deletes
//! (`expired`). The writing itself, and what a failed write does, is [`super::sink`]'s.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use log::{info, warn};

use super::gzip;
pub use crate::config::archive::ArchiveSettings;

/// The names of one archive: the active file `DIR/STEM.EXT` and its rotated siblings
/// `DIR/STEM-YYYYMMDDTHHMMSSZ[_NNN].EXT[.gz]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub dir: PathBuf,
    pub stem: String,
    /// From the first dot of the active file's name (`.jsonl`), or empty.
    pub ext: String,
}

/// Length of `YYYYMMDDTHHMMSSZ`.
const STAMP: usize = 16;

impl Names {
    pub fn of(active: &Path) -> Names {
        let dir = active
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let name = active
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (stem, ext) = match name.find('.') {
            Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
            _ => (name, String::new()),
        };
        Names { dir, stem, ext }
    }

    /// A rotated file's (uncompressed) name; `n` > 0 when that second already has one.
    fn rotated(&self, stamp: &str, n: u32) -> String {
        match n {
            0 => format!("{}-{stamp}{}", self.stem, self.ext),
            // `_` sorts after the `.` of the first name, and 3 digits keep the order.
            n => format!("{}-{stamp}_{n:03}{}", self.stem, self.ext),
        }
    }

    /// The name for a file rotated at `stamp`: sorting after `last` (the newest so far),
    /// so that name order is rotation order even when many rotate in one second, or the
    /// clock steps back: then `last`'s stamp with the next number (past `_999`, the stamp
    /// counted up by one second).
    fn after(&self, last: Option<&str>, stamp: &str) -> String {
        let name = self.rotated(stamp, 0);
        let Some((ls, n)) = last
            .filter(|l| name.as_str() <= *l)
            .and_then(|l| self.split(l))
        else {
            return name;
        };
        if n < 999 {
            self.rotated(&ls, n + 1)
        } else {
            self.rotated(&next_second(&ls), 0)
        }
    }

    /// A rotated name's stamp and number (0 without one).
    fn split(&self, plain: &str) -> Option<(String, u32)> {
        let rest = plain.strip_prefix(&self.stem)?.strip_prefix('-')?;
        let stamp = rest.get(..STAMP)?.to_string();
        let n = match rest[STAMP..].strip_prefix('_') {
            Some(t) => t.get(..3)?.parse().ok()?,
            None => 0,
        };
        Some((stamp, n))
    }

    /// `name` as one of this archive's rotated files: its uncompressed name and whether
    /// it is the gzip of it. Anything else in the directory is not ours to touch.
    pub fn parse<'a>(&self, name: &'a str) -> Option<(&'a str, bool)> {
        let rest = name.strip_prefix(&self.stem)?.strip_prefix('-')?;
        let stamp = rest.get(..STAMP)?.as_bytes();
        let digits = |r: std::ops::Range<usize>| stamp[r].iter().all(u8::is_ascii_digit);
        if !(digits(0..8) && stamp[8] == b'T' && digits(9..15) && stamp[15] == b'Z') {
            return None;
        }
        let mut tail = &rest[STAMP..];
        if let Some(t) = tail.strip_prefix('_') {
            let n = t.get(..3)?;
            if !n.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            tail = &t[3..];
        }
        let tail = tail.strip_prefix(self.ext.as_str())?;
        let gz = match tail {
            "" => false,
            ".gz" => true,
            _ => return None,
        };
        Some((&name[..name.len() - if gz { 3 } else { 0 }], gz))
    }

    /// The rotated files in the directory, oldest first (by name: the names sort by
    /// time). A file that is there both compressed and not is listed once, compressed.
    pub fn list(&self) -> io::Result<Vec<Rotated>> {
        let mut out: Vec<Rotated> = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Some((plain, gz)) = self.parse(&name) else {
                continue;
            };
            // Not followed: a link planted here is not ours.
            let Ok(m) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            if !m.is_file() {
                continue;
            }
            out.push(Rotated {
                plain: plain.to_string(),
                path: e.path(),
                gz,
                size: m.len(),
                mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        // Unstable sorts only, keyed alike: the binary has one such sort less to carry.
        out.sort_unstable_by(|a, b| a.plain.cmp(&b.plain).then(b.gz.cmp(&a.gz)));
        out.dedup_by(|later, first| later.plain == first.plain);
        Ok(out)
    }
}

/// A rotated file retention deleted, told in-band by an `expired` record so that
/// `archive verify` can account for the events missing at the archive's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    pub file: String,
    pub lines: u64,
    pub events: u64,
    /// Events every deletion of this daemon's has taken so far, this one included: the
    /// latest record says them all, even when older records went with later deletions.
    pub total_events: u64,
    /// The setting that deleted it (`keep_files`, `keep_age`, `max_total`, or a full
    /// disk).
    pub why: &'static str,
}

/// `YYYYMMDDTHHMMSSZ` plus one, counted on its 14 digits as one number: it sorts after
/// (a calendar-exact date does not matter for a name that only has to sort).
fn next_second(stamp: &str) -> String {
    let mut b: Vec<u8> = stamp.bytes().collect();
    for i in (0..b.len()).rev() {
        match b[i] {
            b'9' => b[i] = b'0',
            c if c.is_ascii_digit() => {
                b[i] = c + 1;
                break;
            }
            _ => {}
        }
    }
    String::from_utf8(b).unwrap_or_else(|_| stamp.to_string())
}

/// One rotated file.
#[derive(Clone, Debug)]
pub struct Rotated {
    /// Its name without `.gz`.
    pub plain: String,
    pub path: PathBuf,
    pub gz: bool,
    pub size: u64,
    pub mtime: SystemTime,
}

/// Lines counted in an archive file, and of them the daemon's own records (`lost`,
/// `expired`, `tamper`, `throttle`: `"origin":"daemon"` near the start of the line; in
/// an event's string the quotes would be escaped).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub lines: u64,
    pub daemon: u64,
    /// The start of the line under way.
    head: Vec<u8>,
}

/// How far into a line the daemon's mark is looked for.
const HEAD: usize = 48;
const MARK: &[u8] = b"\"origin\":\"daemon\"";

impl Tally {
    pub fn feed(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            let (line, end) = match b.iter().position(|&c| c == b'\n') {
                Some(i) => (&b[..i], Some(i + 1)),
                None => (b, None),
            };
            if self.head.len() < HEAD {
                let take = (HEAD - self.head.len()).min(line.len());
                self.head.extend_from_slice(&line[..take]);
            }
            let Some(next) = end else {
                return;
            };
            self.lines += 1;
            if self.head.windows(MARK.len()).any(|w| w == MARK) {
                self.daemon += 1;
            }
            self.head.clear();
            b = &b[next..];
        }
    }

    /// Events: lines that are not the daemon's own records.
    pub fn events(&self) -> u64 {
        self.lines.saturating_sub(self.daemon)
    }
}

/// Counts a rotated file: a gzip of ours from its header, any other by reading it.
pub fn tally(path: &Path, gz: bool) -> io::Result<Tally> {
    // Not through a link, not blocking on a fifo someone swapped in: a regular file only.
    let open = || -> io::Result<File> {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        if !f.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(f)
    };
    let mut t = Tally::default();
    if gz {
        if let Some((lines, daemon)) = open().ok().and_then(gzip::counts)
            && daemon <= lines
        {
            return Ok(Tally {
                lines,
                daemon,
                head: Vec::new(),
            });
        }
        gzip::read_all(open()?, &mut |b| t.feed(b)).map_err(io::Error::other)?;
    } else {
        read_chunks(open()?, &mut |b| t.feed(b))?;
    }
    Ok(t)
}

/// Calls `f` with successive chunks of `r` until its end.
pub fn read_chunks(mut r: impl Read, f: &mut dyn FnMut(&[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => f(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A rotated file being gzipped, a slice at a time (see [`Archive::work`]).
struct Compress {
    plain: String,
    tally: Tally,
    src: File,
    tmp: PathBuf,
    out: File,
    enc: gzip::Encoder,
    obuf: Vec<u8>,
}

/// Writeback of the active file is started every this many bytes.
const WRITEBACK: u64 = 4 << 20;

/// Input taken per call of [`Archive::work`]: ~1-2 ms of the loop's time, so a ring is
/// never kept waiting longer than that for it.
const SLICE: usize = 128 << 10;

/// The active file and the rotated ones beside it.
pub struct Archive {
    pub path: PathBuf,
    names: Names,
    pub set: ArchiveSettings,
    /// `None` after the active file could not be (re)opened: retried on the next tick.
    pub file: Option<File>,
    /// Bytes in the active file.
    size: u64,
    /// Up to where writeback was started (see [`Archive::wrote`]).
    started_back: u64,
    /// The lines written into the active file by this run; `whole`: they are all of it
    /// (it was empty when opened), so its counts are known at rotation.
    tally: Tally,
    whole: bool,
    /// Counts of the files this run rotated, by uncompressed name: retention needs not
    /// read them.
    known: Vec<(String, Tally)>,
    /// When the active file was opened (rotation by interval).
    opened: Instant,
    /// Lines deleted by retention (or to make room on a full disk).
    pub expired: u64,
    /// Of them, events (not the daemon's own records).
    expired_events: u64,
    /// Deletions not yet told in-band (see [`Expired`]).
    pub notes: Vec<Expired>,
    job: Option<Compress>,
    /// Rotated files waiting to be compressed, oldest first.
    queue: Vec<String>,
    /// The newest rotated file's (uncompressed) name: the next one sorts after it.
    last: Option<String>,
}

impl Archive {
    /// The archive whose active file is `path`, already opened as `file` (a regular file).
    /// Finishes what a previous run left: an uncompressed file whose `.gz` is complete is
    /// removed, a partial `.gz.tmp` too, and uncompressed rotated files are queued.
    pub fn new(path: &Path, file: File, set: ArchiveSettings) -> Archive {
        let size = file.metadata().map_or(0, |m| m.len());
        let mut a = Archive {
            path: path.to_path_buf(),
            names: Names::of(path),
            set,
            file: Some(file),
            size,
            started_back: size,
            tally: Tally::default(),
            whole: size == 0,
            known: Vec::new(),
            opened: Instant::now(),
            expired: 0,
            expired_events: 0,
            notes: Vec::new(),
            job: None,
            queue: Vec::new(),
            last: None,
        };
        if a.set.is_set() {
            a.last = a
                .names
                .list()
                .ok()
                .and_then(|l| l.last().map(|r| r.plain.clone()));
            a.recover();
            a.expire();
        }
        a
    }

    fn recover(&mut self) {
        let Ok(rd) = fs::read_dir(&self.names.dir) else {
            return;
        };
        let mut plains = Vec::new();
        let mut gzs = Vec::new();
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if let Some(base) = name.strip_suffix(".gz.tmp")
                && self.names.parse(base) == Some((base, false))
            {
                let _ = fs::remove_file(e.path());
            } else if let Some((plain, gz)) = self.names.parse(&name) {
                if gz {
                    gzs.push(plain.to_string());
                } else {
                    plains.push(plain.to_string());
                }
            }
        }
        plains.sort_unstable();
        for p in plains {
            if gzs.contains(&p) {
                // The .gz was renamed into place only once whole and synced.
                let _ = fs::remove_file(self.names.dir.join(&p));
            } else if self.set.compress {
                self.queue.push(p);
            }
        }
    }

    /// Bytes the active file may still take before it is rotated (`None`: no limit).
    pub fn room(&self) -> Option<u64> {
        self.set
            .rotate_size
            .map(|max| max.saturating_sub(self.size))
    }

    /// Whether the active file is empty.
    pub fn empty(&self) -> bool {
        self.size == 0
    }

    /// `bytes` were written into the active file. Every [`WRITEBACK`] bytes the kernel is
    /// asked to start writing them out (not waited for), so the fsync at rotation finds
    /// little left to do and holds the loop for less.
    pub fn wrote(&mut self, chunk: &[u8], lines: u64, daemon: Option<u64>) {
        let bytes = chunk.len() as u64;
        match daemon {
            // Counted by the writer, at a line's start: no scan.
            Some(d) if self.tally.head.is_empty() => {
                self.tally.lines += lines;
                self.tally.daemon += d;
            }
            _ => self.tally.feed(chunk),
        }
        self.size += bytes;
        if self.set.rotate_size.is_some()
            && self.size.saturating_sub(self.started_back) >= WRITEBACK
        {
            if let Some(f) = &self.file {
                use std::os::fd::AsRawFd;
                // SAFETY: a valid fd and a range inside the file.
                unsafe {
                    libc::sync_file_range(
                        f.as_raw_fd(),
                        self.started_back as i64,
                        (self.size - self.started_back) as i64,
                        libc::SYNC_FILE_RANGE_WRITE,
                    )
                };
            }
            self.started_back = self.size;
        }
    }

    /// The active file was cut back by `bytes` (a partial line removed).
    pub fn trimmed(&mut self, bytes: u64) {
        self.size = self.size.saturating_sub(bytes);
        self.started_back = self.started_back.min(self.size);
        // The cut line's start was fed to the tally as the line under way.
        self.tally.head.clear();
    }

    /// Whether the interval says rotate now (a file with nothing in it is not rotated).
    pub fn due(&self) -> bool {
        self.size > 0
            && self
                .set
                .rotate_interval
                .is_some_and(|d| self.opened.elapsed() >= d)
    }

    /// Whether the active file was deleted behind the daemon's back (written into, it
    /// would keep its space until the daemon stops, and nobody could read it).
    pub fn unlinked(&self) -> bool {
        self.file
            .as_ref()
            .is_some_and(|f| f.metadata().is_ok_and(|m| m.nlink() == 0))
    }

    /// Opens the path anew (after logrotate moved the file away, or it was deleted). The
    /// same file found again (a SIGHUP with nothing rotated) keeps its age and counts.
    pub fn reopen(&mut self) -> io::Result<()> {
        let before = self.file.take().and_then(|f| identity(&f));
        let f = super::sink::open_file(&self.path).map_err(|e| match e {
            // The error's own errno: a full disk (ENOSPC) makes room on the next tick.
            super::Error::Open { source, .. } => source,
            e => io::Error::other(e.to_string()),
        })?;
        if !f.metadata()?.is_file() {
            return Err(io::Error::other(format!(
                "{} is not a regular file",
                self.path.display()
            )));
        }
        if before.is_none() || identity(&f) != before {
            self.size = f.metadata()?.len();
            self.started_back = self.size;
            self.tally = Tally::default();
            self.whole = self.size == 0;
            self.opened = Instant::now();
        }
        self.file = Some(f);
        Ok(())
    }

    /// The active file was deleted behind the daemon's back: what this run wrote into it
    /// is gone, counted as expired (and told in-band) like a file retention deletes.
    pub fn lost_active(&mut self) {
        let t = std::mem::take(&mut self.tally);
        self.count_expired(
            &t,
            self.path.display().to_string(),
            "deleted by another process",
        );
    }

    fn count_expired(&mut self, t: &Tally, file: String, why: &'static str) {
        self.expired = self.expired.saturating_add(t.lines);
        self.expired_events = self.expired_events.saturating_add(t.events());
        self.notes.push(Expired {
            file,
            lines: t.lines,
            events: t.events(),
            total_events: self.expired_events,
            why,
        });
    }

    /// Closes the active file into a rotated name (synced, and its directory entry too),
    /// opens a new one, queues the rotated file for compression and applies retention.
    pub fn rotate(&mut self) -> io::Result<()> {
        if let Some(f) = &self.file {
            f.sync_all()?;
        }
        // The path holds another file (ours was moved away, by logrotate without a signal
        // yet, and another made in its place): not ours to rename; write to it from now on.
        let at_path = fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if at_path.is_none() || at_path != self.file.as_ref().and_then(identity) {
            return self.reopen();
        }
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let stamp = crate::sys::clock::compact_utc(secs);
        let mut name = self.names.after(self.last.as_deref(), &stamp);
        // Never another file's name (one a previous run left, compressed or not).
        while fs::symlink_metadata(self.names.dir.join(&name)).is_ok()
            || fs::symlink_metadata(self.names.dir.join(format!("{name}.gz"))).is_ok()
        {
            name = self.names.after(Some(&name), &stamp);
        }
        match fs::rename(&self.path, self.names.dir.join(&name)) {
            Ok(()) => {}
            // Moved away in between: a new file, as a SIGUSR1 would have opened.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.reopen(),
            Err(e) => return Err(e),
        }
        sync_dir(&self.names.dir);
        if self.whole {
            self.known
                .push((name.clone(), std::mem::take(&mut self.tally)));
        }
        self.last = Some(name.clone());
        if self.set.compress {
            self.queue.push(name);
        }
        self.reopen()?;
        self.expire();
        Ok(())
    }

    /// Retention: the oldest rotated files go while there are more than `keep_files`,
    /// while they are older than `keep_age`, and while the archive is over `max_total`.
    /// Their lines are counted as expired.
    pub fn expire(&mut self) {
        let s = &self.set;
        if s.keep_files.is_none() && s.keep_age.is_none() && s.max_total.is_none() {
            return;
        }
        let Ok(files) = self.names.list() else {
            return;
        };
        let now = SystemTime::now();
        let mut total: u64 = files.iter().map(|f| f.size).sum::<u64>() + self.reserve();
        for (i, f) in files.iter().enumerate() {
            let s = &self.set;
            let over_count = s.keep_files.is_some_and(|k| files.len() - i > k as usize);
            let too_old = s
                .keep_age
                .is_some_and(|a| now.duration_since(f.mtime).is_ok_and(|age| age > a));
            let over_total = s.max_total.is_some_and(|m| total > m);
            if !(over_count || too_old || over_total) {
                break;
            }
            let why = if over_count {
                "keep_files"
            } else if too_old {
                "keep_age"
            } else {
                "max_total"
            };
            if self.delete(f, why) {
                total -= f.size;
            }
        }
    }

    /// Room `max_total` keeps beside the rotated files (see [`ArchiveSettings::reserve`]).
    fn reserve(&self) -> u64 {
        self.set
            .rotate_size
            .map_or(self.size, |r| self.set.reserve(r))
            .max(self.size)
    }

    /// On a full disk: the oldest rotated file is deleted (counted as expired) to make
    /// room. Returns whether one was.
    pub fn free_oldest(&mut self) -> bool {
        // A compression in flight holds a partial copy: it goes first.
        if self.cancel_job(true) {
            return true;
        }
        match self.names.list() {
            Ok(files) => files.first().is_some_and(|f| self.delete(f, "a full disk")),
            Err(_) => false,
        }
    }

    /// Deletes one rotated file and counts its lines; false if it could not be.
    fn delete(&mut self, f: &Rotated, why: &'static str) -> bool {
        if self.job.as_ref().is_some_and(|j| j.plain == f.plain) {
            self.cancel_job(false);
        }
        let t = match self.known.iter().position(|(n, _)| *n == f.plain) {
            Some(i) => Ok(self.known.swap_remove(i).1),
            None => tally(&f.path, f.gz),
        };
        if let Err(e) = fs::remove_file(&f.path) {
            warn!("archive: cannot delete {}: {e}", f.path.display());
            return false;
        }
        if f.gz {
            // A plain twin a failed removal left (the list shows the .gz only): the same
            // lines, not to be counted a second time.
            let _ = fs::remove_file(self.names.dir.join(&f.plain));
        }
        self.queue.retain(|q| *q != f.plain);
        let file = f
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match t {
            Ok(t) => {
                info!(
                    "archive: deleted {} ({} events, {} lines, counted as expired) for {why}",
                    f.path.display(),
                    t.events(),
                    t.lines
                );
                self.count_expired(&t, file, why);
            }
            Err(e) => warn!(
                "archive: deleted {} for {why}; its lines could not be counted: {e}",
                f.path.display()
            ),
        }
        true
    }

    /// Drops the compression in flight (its partial `.gz.tmp`); the uncompressed file
    /// stays. Returns whether there was one.
    /// `requeue`: the file is compressed again later (from the start).
    pub fn cancel_job(&mut self, requeue: bool) -> bool {
        match self.job.take() {
            Some(j) => {
                let _ = fs::remove_file(&j.tmp);
                if requeue {
                    self.queue.insert(0, j.plain);
                }
                true
            }
            None => false,
        }
    }

    /// Whether compression work is waiting.
    pub fn busy(&self) -> bool {
        self.job.is_some() || !self.queue.is_empty()
    }

    /// One slice of compression work (at most [`SLICE`] bytes of input). Returns whether
    /// more is waiting. A file that cannot be compressed stays as it is.
    pub fn work(&mut self) -> bool {
        if self.job.is_none() {
            if self.queue.is_empty() {
                return false;
            }
            let plain = self.queue.remove(0);
            match self.start(&plain) {
                Ok(j) => self.job = Some(j),
                Err(e) => warn!("archive: cannot compress {plain}: {e}; it stays uncompressed"),
            }
            return self.busy();
        }
        if let Err(e) = self.step() {
            if let Some(j) = &self.job {
                warn!(
                    "archive: compressing {} failed: {e}; it stays uncompressed",
                    j.plain
                );
            }
            self.cancel_job(false);
        }
        self.busy()
    }

    fn start(&self, plain: &str) -> io::Result<Compress> {
        let src_path = self.names.dir.join(plain);
        let src = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&src_path)?;
        let tmp = self.names.dir.join(format!("{plain}.gz.tmp"));
        let _ = fs::remove_file(&tmp);
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        let mtime = src
            .metadata()?
            .modified()?
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        let mut obuf = Vec::with_capacity(SLICE);
        let enc = gzip::Encoder::new(mtime, &mut obuf);
        Ok(Compress {
            plain: plain.to_string(),
            tally: Tally::default(),
            src,
            tmp,
            out,
            enc,
            obuf,
        })
    }

    fn step(&mut self) -> io::Result<()> {
        let Some(j) = &mut self.job else {
            return Ok(());
        };
        let mut input = vec![0u8; SLICE];
        let n = loop {
            match j.src.read(&mut input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r?,
            }
        };
        if n > 0 {
            j.tally.feed(&input[..n]);
            j.enc.write(&input[..n], &mut j.obuf);
            j.out.write_all(&j.obuf)?;
            j.obuf.clear();
            return Ok(());
        }
        j.enc.finish(&mut j.obuf);
        j.out.write_all(&j.obuf)?;
        use std::os::unix::fs::FileExt;
        j.out.write_all_at(
            &gzip::counts_field(j.tally.lines, j.tally.daemon),
            gzip::COUNTS_AT,
        )?;
        // The source's time: files order by it (`archive verify`), as gzip keeps it.
        if let Ok(t) = j.src.metadata().and_then(|m| m.modified()) {
            let _ = j.out.set_modified(t);
        }
        j.out.sync_all()?;
        let plain_path = self.names.dir.join(&j.plain);
        let gz = self.names.dir.join(format!("{}.gz", j.plain));
        fs::rename(&j.tmp, &gz)?;
        // Done either way: the .gz is whole. A plain copy left behind is shadowed by it
        // (listed once) and goes with it.
        match fs::remove_file(&plain_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => warn!(
                "archive: {} is compressed but its uncompressed copy stays: {e}",
                j.plain
            ),
            _ => {}
        }
        sync_dir(&self.names.dir);
        self.job = None;
        // Smaller now: retention may keep more.
        self.expire();
        Ok(())
    }
}

/// A file's device and inode: the same file under whatever name.
fn identity(f: &File) -> Option<(u64, u64)> {
    f.metadata().ok().map(|m| (m.dev(), m.ino()))
}

/// A rename or unlink is durable once its directory is synced.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_parse_back() {
        let n = Names::of(Path::new("/var/log/ringwarden/events.jsonl"));
        assert_eq!(n.dir, Path::new("/var/log/ringwarden"));
        assert_eq!((n.stem.as_str(), n.ext.as_str()), ("events", ".jsonl"));
        let a = n.rotated("20261201T213000Z", 0);
        let b = n.rotated("20261201T213000Z", 1);
        let c = n.rotated("20261201T213001Z", 0);
        assert_eq!(a, "events-20261201T213000Z.jsonl");
        assert_eq!(b, "events-20261201T213000Z_001.jsonl");
        let mut v = vec![c.clone(), b.clone(), a.clone()];
        v.sort();
        assert_eq!(v, [a.clone(), b.clone(), c.clone()]);
        assert_eq!(n.parse(&a), Some((a.as_str(), false)));
        let gz = format!("{b}.gz");
        assert_eq!(n.parse(&gz), Some((b.as_str(), true)));
        for other in [
            "events.jsonl",
            "events-2026.jsonl",
            "events-20261201T213000Z.jsonl.gz.tmp",
            "events-20261201T213000Z.json",
            "other-20261201T213000Z.jsonl",
            "events-20261201X213000Z.jsonl",
        ] {
            assert_eq!(n.parse(other), None, "{other}");
        }
        // Name order is rotation order: within a second, after a clock step back, past 999.
        assert_eq!(n.after(None, "20261201T213000Z"), a);
        assert_eq!(n.after(Some(&a), "20261201T213000Z"), b);
        assert_eq!(
            n.after(Some(&c), "20261201T212959Z"),
            "events-20261201T213001Z_001.jsonl"
        );
        let full = n.rotated("20261201T235959Z", 999);
        assert_eq!(
            n.after(Some(&full), "20261201T235959Z"),
            "events-20261201T235960Z.jsonl"
        );
        assert!(n.after(Some(&full), "20261201T235959Z") > full);
        let bare = Names::of(Path::new("events"));
        assert_eq!(bare.dir, Path::new("."));
        assert_eq!(
            bare.rotated("20261201T213000Z", 0),
            "events-20261201T213000Z"
        );
    }
}
