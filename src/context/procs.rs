//! The process table: what is known of each live process, so that every event can say
//! which program it came from and from which parent chain, for processes older than the
//! daemon too. Seeded from /proc at start, then kept by the process family's records
//! (exec, fork, exit); a pid it does not know is read from /proc on a miss (the caller
//! bounds how many per tick). Bounded: past `max` entries the least recently used one is
//! evicted and counted ([`super::bounded`]).
//!
//! Paths are bytes, as the kernel has them. A program's path is shared by the processes
//! that run it (forks copy a reference, not the bytes).
use std::collections::HashSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use super::bounded::Bounded;
use crate::sys::clock::boot_ns;

/// The audit login uid and session when unset ((uid_t)-1, (unsigned)-1).
const UNSET: u32 = u32::MAX;

/// One process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    pub ppid: u32,
    /// The executable's path as the kernel resolved it; none for kernel threads and
    /// processes whose exe could not be read.
    pub exe: Option<Rc<[u8]>>,
    /// The executable was unlinked (or replaced) since it was executed.
    pub exe_deleted: bool,
    pub comm: Comm,
    pub login_uid: Option<u32>,
    pub session_id: Option<u32>,
    /// Boot-clock time of the exec (or fork) that made it what it is: an event older
    /// than this happened while it was still what `prev` says, or before the table
    /// knew anything of it. Read from /proc: the process's start (to the clock tick).
    pub since: u64,
    /// What it ran before that exec, for events still in other rings from before it.
    pub prev: Option<Rc<Prev>>,
    /// Boot-clock time it was read from /proc (0: made from records): what /proc showed
    /// then may already be the result of an exec whose record comes later.
    pub read_at: u64,
    /// Set by the table on every change: two lookups that see the same generations saw
    /// the same process (what a renderer's cache keys on).
    pub generation: u64,
}

/// What a process ran before its last exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prev {
    pub exe: Option<Rc<[u8]>>,
    pub exe_deleted: bool,
    pub comm: Comm,
    /// From when it ran that.
    pub since: u64,
}

/// What a process ran when an event happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ran<'a> {
    pub exe: Option<&'a [u8]>,
    pub exe_deleted: bool,
    pub comm: &'a [u8],
}

impl Proc {
    /// What it ran at `ts`: before its last exec, what ran then; none when `ts` is older
    /// than what the table knows of it (the pid's previous process, or an exec before
    /// the one in `prev`): unknown, never what ran later.
    pub fn at(&self, ts: u64) -> Option<Ran<'_>> {
        let (exe, exe_deleted, comm) = match self.era(ts) {
            Era::Now => (&self.exe, self.exe_deleted, &self.comm),
            Era::Prev => {
                let p = self.prev.as_deref()?;
                (&p.exe, p.exe_deleted, &p.comm)
            }
            Era::Unknown => return None,
        };
        Some(Ran {
            exe: exe.as_deref(),
            exe_deleted,
            comm: comm.as_bytes(),
        })
    }

    /// Which of what the table knows [`Proc::at`] shows at `ts`.
    pub fn era(&self, ts: u64) -> Era {
        if ts >= self.since {
            Era::Now
        } else if self.prev.as_ref().is_some_and(|p| ts >= p.since) {
            Era::Prev
        } else {
            Era::Unknown
        }
    }
}

/// What [`Proc::at`] finds at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    Now,
    Prev,
    Unknown,
}

/// A task's comm, inline: the kernel's is at most 15 bytes (TASK_COMM_LEN 16 with its
/// NUL), and an allocation of its own per process cost more than the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Comm {
    len: u8,
    bytes: [u8; 16],
}

impl Comm {
    /// At most 16 bytes of `b` (/proc shows some kernel threads' longer names).
    pub fn new(b: &[u8]) -> Comm {
        let mut c = Comm::default();
        let n = b.len().min(c.bytes.len());
        c.bytes[..n].copy_from_slice(&b[..n]);
        c.len = n as u8;
        c
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The table (see the module doc).
pub struct Table {
    procs: Bounded<u32, Proc>,
    generations: u64,
    /// Every exe path in use, once: pruned of the ones no process holds when it grows
    /// past twice what the last prune kept, so that execs of ever new files cannot grow
    /// it beyond the paths in use.
    exes: HashSet<Rc<[u8]>>,
    /// Paths in `exes` after the last prune.
    exes_kept: usize,
}

impl Table {
    /// An empty table of at most `max` processes (at least one).
    pub fn new(max: usize) -> Table {
        Table {
            procs: Bounded::new(max),
            generations: 0,
            exes: HashSet::new(),
            exes_kept: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Entries evicted to make room so far.
    pub fn evictions(&self) -> u64 {
        self.procs.evictions()
    }

    /// What is known of `pid` (marks it used, so that it is evicted last).
    pub fn get(&mut self, pid: u32) -> Option<&Proc> {
        self.procs.get(&pid)
    }

    /// Puts `pid` in, replacing what was known of it.
    pub fn insert(&mut self, pid: u32, mut proc: Proc) {
        proc.exe = proc.exe.map(|x| self.shared(&x));
        self.generations += 1;
        proc.generation = self.generations;
        self.procs.insert(pid, proc);
    }

    /// An exec: the process now is `proc`; what it was stays in `prev` for the events
    /// from before (`proc.since`) still on their way.
    pub fn exec(&mut self, pid: u32, mut proc: Proc) {
        // An entry read from /proc after this exec may show its result already: then
        // nothing is known of before it.
        proc.prev = self
            .procs
            .peek(&pid)
            .filter(|p| p.read_at <= proc.since)
            .map(|p| {
                Rc::new(Prev {
                    exe: p.exe.clone(),
                    exe_deleted: p.exe_deleted,
                    comm: p.comm,
                    since: p.since,
                })
            });
        self.insert(pid, proc);
    }

    /// The same bytes as another process's exe, shared, when one runs it already.
    fn shared(&mut self, exe: &[u8]) -> Rc<[u8]> {
        if let Some(x) = self.exes.get(exe) {
            return x.clone();
        }
        // Pruned once it doubled since the last prune: paths no process holds any more
        // (execs of ever new files) stay at most as many as the live ones, plus 64.
        if self.exes.len() >= 2 * self.exes_kept + 64 {
            self.exes.retain(|x| Rc::strong_count(x) > 1);
            self.exes_kept = self.exes.len();
        }
        let x: Rc<[u8]> = Rc::from(exe);
        self.exes.insert(x.clone());
        x
    }

    /// A fork: the child runs what its parent ran at the fork until it execs. A parent
    /// not known then (unknown, or read from /proc after the fork, when it may have
    /// exec'd since): nothing is guessed, and whatever the child's pid named before goes
    /// (the child is read from /proc on its first miss).
    pub fn fork(&mut self, parent: u32, child: u32, ts: u64) {
        let copy = self
            .procs
            .peek(&parent)
            .filter(|p| p.read_at <= ts)
            .and_then(|p| {
                let (exe, exe_deleted, comm) = match p.era(ts) {
                    Era::Now => (&p.exe, p.exe_deleted, p.comm),
                    Era::Prev => {
                        let q = p.prev.as_deref()?;
                        (&q.exe, q.exe_deleted, q.comm)
                    }
                    Era::Unknown => return None,
                };
                Some(Proc {
                    ppid: parent,
                    exe: exe.clone(),
                    exe_deleted,
                    comm,
                    login_uid: p.login_uid,
                    session_id: p.session_id,
                    since: ts,
                    prev: None,
                    read_at: 0,
                    generation: 0,
                })
            });
        match copy {
            Some(c) => self.insert(child, c),
            None => self.exit(child),
        }
    }

    /// A process's parent changed (it was reparented when its parent exited): events
    /// carry the kernel's current parent.
    pub fn reparent(&mut self, pid: u32, ppid: u32) {
        self.generations += 1;
        let g = self.generations;
        if let Some(p) = self.procs.peek_mut(&pid) {
            p.ppid = ppid;
            p.generation = g;
        }
    }

    /// What is known of `pid`, without marking it used.
    pub fn peek(&self, pid: u32) -> Option<&Proc> {
        self.procs.peek(&pid)
    }

    /// Everything goes (evictions counted so far stay): what is needed again is read
    /// from /proc on its miss.
    pub fn clear(&mut self) {
        self.generations += 1;
        self.procs.clear();
    }

    /// An exit: the process is gone.
    pub fn exit(&mut self, pid: u32) {
        self.generations += 1;
        self.procs.remove(&pid);
    }

    /// Changes so far (inserts, execs, forks, reparents, exits): unchanged, every
    /// lookup finds what it found before.
    pub fn epoch(&self) -> u64 {
        self.generations
    }

    /// Marks `pid` used (see [`Table::get`]) without looking at it.
    pub fn touch(&mut self, pid: u32) {
        self.procs.get(&pid);
    }

    /// The parent chain of `pid`, nearest first, at most `depth` known processes (a
    /// loop, which a pid reused under a stale entry could make, ends it).
    pub fn ancestors(&mut self, pid: u32, depth: usize) -> Vec<(u32, Proc)> {
        let mut out: Vec<(u32, Proc)> = Vec::new();
        let mut at = pid;
        while out.len() < depth {
            let Some(ppid) = self.procs.peek(&at).map(|p| p.ppid) else {
                break;
            };
            if ppid == 0 || ppid == pid || out.iter().any(|(p, _)| *p == ppid) {
                break;
            }
            let Some(p) = self.get(ppid).cloned() else {
                break;
            };
            out.push((ppid, p));
            at = ppid;
        }
        out
    }

    /// Reads every process under `proc_root` (/proc) into the table; returns how many.
    pub fn seed(&mut self, proc_root: &Path) -> usize {
        let Ok(dir) = fs::read_dir(proc_root) else {
            return 0;
        };
        let mut n = 0;
        for d in dir.flatten() {
            let Some(pid) = std::str::from_utf8(d.file_name().as_bytes())
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(p) = read(proc_root, pid) {
                self.insert(pid, p);
                n += 1;
            }
        }
        n
    }
}

/// One process as /proc shows it now; none when it is gone (or not readable).
pub fn read(proc_root: &Path, pid: u32) -> Option<Proc> {
    let read_at = boot_ns();
    let dir = proc_root.join(pid.to_string());
    let stat = fs::read(dir.join("stat")).ok()?;
    let (comm, ppid, start_ticks) = parse_stat(&stat)?;
    // The link's target names the file; " (deleted)" is appended when it was unlinked,
    // which a file could also be called: the inode's link count tells.
    let exe_path = dir.join("exe");
    let (exe, exe_deleted) = match fs::read_link(&exe_path) {
        Ok(t) => {
            let deleted = nlink_cached(&exe_path) == Some(0);
            let b = t.as_os_str().as_bytes();
            let b = if deleted {
                b.strip_suffix(b" (deleted)").unwrap_or(b)
            } else {
                b
            };
            (Some(Rc::from(b)), deleted)
        }
        Err(_) => (None, false),
    };
    let id = |name: &str| {
        fs::read_to_string(dir.join(name))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|&v| v != UNSET)
    };
    Some(Proc {
        ppid,
        exe,
        exe_deleted,
        comm: Comm::new(comm),
        login_uid: id("loginuid"),
        session_id: id("sessionid"),
        since: start_ticks.saturating_mul(ns_per_tick()),
        prev: None,
        read_at,
        generation: 0,
    })
}

/// Nanoseconds per clock tick of /proc's times (USER_HZ: 100 on Linux).
fn ns_per_tick() -> u64 {
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz)
        .ok()
        .filter(|&h| h > 0)
        .map_or(10_000_000, |h| 1_000_000_000 / h)
}

/// The link count of the file `path` leads to, from what the kernel has cached
/// (AT_STATX_DONT_SYNC): an executable on a network or FUSE filesystem whose server
/// does not answer must not hang the loop.
fn nlink_cached(path: &Path) -> Option<u32> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: zeroed is a valid statx; the pointers outlive the call.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_STATX_DONT_SYNC,
            libc::STATX_NLINK,
            &mut st,
        )
    };
    (r == 0 && st.stx_mask & libc::STATX_NLINK != 0).then_some(st.stx_nlink)
}

/// comm, ppid and start time (clock ticks since boot) from /proc/PID/stat: `pid (comm)
/// state ppid ... starttime ...`, where comm may hold spaces and parentheses (the last
/// `)` ends it).
fn parse_stat(stat: &[u8]) -> Option<(&[u8], u32, u64)> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let comm = stat.get(open + 1..close)?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    let mut f = rest.split_ascii_whitespace();
    let _state = f.next()?;
    let ppid = f.next()?.parse().ok()?;
    // Fields 5 to 21 (pgrp ... itrealvalue), then starttime.
    let start = f.nth(17)?.parse().ok()?;
    Some((comm, ppid, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ppid: u32, exe: &str) -> Proc {
        Proc {
            ppid,
            exe: Some(Rc::from(exe.as_bytes())),
            exe_deleted: false,
            comm: Comm::new(b"x"),
            login_uid: None,
            session_id: None,
            since: 0,
            prev: None,
            read_at: 0,
            generation: 0,
        }
    }

    #[test]
    fn stat_with_odd_comm() {
        let tail = " 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 1234 8000000 200";
        let odd = format!("42 (a) b (c)) S 7{tail}");
        assert_eq!(
            parse_stat(odd.as_bytes()),
            Some((&b"a) b (c)"[..], 7, 1234))
        );
        let init = format!("1 (init) S 0{tail}");
        assert_eq!(parse_stat(init.as_bytes()), Some((&b"init"[..], 0, 1234)));
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b"1 (x"), None);
        assert_eq!(parse_stat(b"1 (x) S"), None);
        assert_eq!(parse_stat(b"1 (init) S 0 1"), None, "no start time");
    }

    #[test]
    fn fork_exec_exit_and_ancestors() {
        let mut t = Table::new(100);
        t.insert(1, p(0, "/sbin/init"));
        t.insert(10, p(1, "/usr/sbin/sshd"));
        t.fork(10, 11, 5);
        assert_eq!(t.get(11).map(|x| x.ppid), Some(10));
        assert_eq!(
            t.get(11).and_then(|x| x.exe.clone()),
            t.get(10).and_then(|x| x.exe.clone())
        );
        t.exec(11, p(10, "/usr/bin/bash"));
        t.fork(11, 12, 6);
        t.exec(12, p(11, "/usr/bin/sudo"));
        let chain: Vec<(u32, Option<Rc<[u8]>>)> = t
            .ancestors(12, 10)
            .into_iter()
            .map(|(pid, x)| (pid, x.exe))
            .collect();
        let want: Vec<(u32, Option<Rc<[u8]>>)> = vec![
            (11, Some(Rc::from(&b"/usr/bin/bash"[..]))),
            (10, Some(Rc::from(&b"/usr/sbin/sshd"[..]))),
            (1, Some(Rc::from(&b"/sbin/init"[..]))),
        ];
        assert_eq!(chain, want);
        assert_eq!(t.ancestors(12, 2).len(), 2);
        t.exit(12);
        assert!(t.get(12).is_none());
        // An unknown parent: nothing guessed.
        t.fork(999, 1000, 7);
        assert!(t.get(1000).is_none());
    }

    fn exe_at(t: &Table, pid: u32, ts: u64) -> Option<String> {
        let ran = t.peek(pid)?.at(ts)?;
        Some(String::from_utf8_lossy(ran.exe?).into_owned())
    }

    fn at(ppid: u32, exe: &str, since: u64) -> Proc {
        Proc {
            since,
            ..p(ppid, exe)
        }
    }

    /// An event older than all the table knows of its pid is unknown, never named by
    /// what the pid ran later.
    #[test]
    fn nothing_older_than_what_is_known_is_named() {
        let mut t = Table::new(100);
        t.insert(10, at(1, "/bin/sh", 0));
        // Two execs in a row: before the second, the first; before the first, unknown
        // (one exec of history is kept).
        t.exec(10, at(1, "/usr/bin/env", 100));
        t.exec(10, at(1, "/usr/bin/make", 200));
        assert_eq!(exe_at(&t, 10, 250).as_deref(), Some("/usr/bin/make"));
        assert_eq!(exe_at(&t, 10, 150).as_deref(), Some("/usr/bin/env"));
        assert_eq!(exe_at(&t, 10, 50), None);
        // A pid reused by a fork: an event of the old process still on its way is not
        // the new one's.
        t.fork(10, 11, 300);
        assert_eq!(exe_at(&t, 11, 310).as_deref(), Some("/usr/bin/make"));
        assert_eq!(exe_at(&t, 11, 290), None);
        // The exec of a pid not known: before it, unknown.
        t.exec(20, at(1, "/usr/bin/cat", 400));
        assert_eq!(exe_at(&t, 20, 399), None);
        // A fork older than the parent's exec copies what the parent ran then.
        t.fork(10, 12, 150);
        assert_eq!(exe_at(&t, 12, 160).as_deref(), Some("/usr/bin/env"));
    }

    /// An entry read from /proc may show an exec whose record comes later: the exec
    /// keeps no "before" from it, and a fork older than the read copies nothing.
    #[test]
    fn a_proc_read_is_not_history() {
        let mut t = Table::new(100);
        t.insert(
            10,
            Proc {
                read_at: 500,
                ..at(1, "/usr/bin/python3", 100)
            },
        );
        t.insert(11, at(5, "/bin/stale", 0));
        t.fork(10, 11, 400);
        assert!(
            t.get(11).is_none(),
            "the stale entry goes, nothing is guessed"
        );
        t.exec(10, at(1, "/usr/bin/python3", 450));
        assert!(t.peek(10).is_some_and(|p| p.prev.is_none()));
        assert_eq!(exe_at(&t, 10, 420), None);
        t.fork(10, 12, 600);
        assert_eq!(exe_at(&t, 12, 610).as_deref(), Some("/usr/bin/python3"));
    }

    #[test]
    fn a_loop_of_stale_parents_ends() {
        let mut t = Table::new(10);
        t.insert(5, p(6, "/a"));
        t.insert(6, p(5, "/b"));
        assert_eq!(t.ancestors(5, 10).len(), 1);
    }

    #[test]
    fn the_bound_evicts_the_least_recently_used_and_counts() {
        let mut t = Table::new(3);
        for pid in 1..=3 {
            t.insert(pid, p(0, "/x"));
        }
        // 1 is looked up: 2 goes first.
        assert!(t.get(1).is_some());
        t.insert(4, p(0, "/x"));
        assert_eq!(t.len(), 3);
        assert_eq!(t.evictions(), 1);
        assert!(t.get(2).is_none());
        assert!(t.get(1).is_some() && t.get(3).is_some() && t.get(4).is_some());
        // A slot freed by an exit is reused without an eviction.
        t.exit(3);
        t.insert(5, p(0, "/x"));
        assert_eq!(t.evictions(), 1);
        assert_eq!(t.len(), 3);
        // Many more: the table stays at its bound and counts every eviction.
        for pid in 100..1100 {
            t.insert(pid, p(0, "/x"));
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.evictions(), 1001);
    }

    #[test]
    fn forks_share_the_exe_bytes() {
        let mut t = Table::new(10);
        t.insert(1, p(0, "/usr/sbin/nginx"));
        t.fork(1, 2, 1);
        t.exec(3, p(1, "/usr/sbin/nginx"));
        let a = t.get(1).and_then(|x| x.exe.clone()).expect("exe");
        let b = t.get(2).and_then(|x| x.exe.clone()).expect("exe");
        let c = t.get(3).and_then(|x| x.exe.clone()).expect("exe");
        assert!(Rc::ptr_eq(&a, &b) && Rc::ptr_eq(&a, &c));
    }

    /// One process exec'ing ever new files keeps a handful of paths, not all of them.
    #[test]
    fn paths_no_process_runs_are_let_go() {
        let mut t = Table::new(32_768);
        for i in 0..10_000 {
            t.exec(7, p(1, &format!("/tmp/x/{i:04096}")));
            // Two in use: what it runs and what it ran before (prev).
            assert!(t.exes.len() <= 2 * 2 + 64, "{}", t.exes.len());
        }
    }

    /// The real /proc: this test process and its parent are there, with the exe the kernel
    /// names for this one.
    #[test]
    fn seeds_from_the_real_proc() {
        let mut t = Table::new(1 << 20);
        let n = t.seed(Path::new("/proc"));
        assert!(n >= 2, "{n} processes");
        let me = std::process::id();
        let exe = fs::read_link("/proc/self/exe").expect("exe");
        let mine = t.get(me).cloned().expect("this process");
        assert_eq!(
            mine.exe.as_deref(),
            Some(exe.as_os_str().as_bytes()),
            "{mine:?}"
        );
        assert!(!mine.exe_deleted);
        assert_eq!(mine.ppid, std::os::unix::process::parent_id());
        assert!(read(Path::new("/proc"), u32::MAX).is_none());
    }
}
