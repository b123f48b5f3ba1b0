//! The daemon's live context: the process table kept by the records that change it, the
//! user names, and what an event's pid, uid and time look up. A miss reads /proc, at
//! most `READS_PER_TICK` times a tick, so a fork storm of unknown pids cannot stall the
//! loop; past that an event says its process is unknown, it is never held back for it.
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

use super::ContextSettings;
use super::bounded::Bounded;
use super::cgroups;
use super::procs::{self, Comm, Era, Proc, Ran, Table};
use super::users::Users;

/// /proc reads on a miss per tick (one costs ~30 us: ~8 ms a second at most).
const READS_PER_TICK: u32 = 256;
/// Cgroups asked of the kernel on a miss per tick (one costs ~10 us); most come from
/// the cgroup family's mkdir records instead.
const CGROUP_READS_PER_TICK: u32 = 1024;
/// Rendered fragments kept (the most recently used processes'): ~500 bytes each, so
/// that a host of tens of thousands of processes pays for the ones whose events come
/// now, not for every one that ever had an event (a miss rebuilds one in ~500 ns).
const FRAGMENTS: usize = 1024;

/// What a record tells the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// `pid` now runs `exe` (none: not resolved), as the kernel named it at the exec.
    Exec {
        pid: u32,
        ppid: u32,
        ts: u64,
        exe: Option<&'a [u8]>,
        exe_deleted: bool,
        comm: &'a [u8],
        login_uid: Option<u32>,
        session_id: Option<u32>,
    },
    Fork {
        parent: u32,
        child: u32,
        ts: u64,
    },
    Exit {
        pid: u32,
    },
    /// A cgroup of the v2 hierarchy made, `path` from its root (untruncated).
    CgroupMkdir {
        id: u64,
        path: &'a [u8],
    },
    CgroupRmdir {
        id: u64,
    },
}

/// What an event is: the header's numbers the lookups key on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub ts: u64,
    pub cgroup_id: u64,
}

/// The context of one event, borrowed from the tables.
pub struct Seen<'a> {
    pub pid: u32,
    pub proc: &'a Proc,
    /// What it ran at the event.
    pub ran: Ran<'a>,
    pub ts: u64,
    /// Parents, nearest first, and what each ran at the event.
    pub ancestors: Vec<(u32, Ran<'a>)>,
}

/// What the tables know of one event.
pub struct Found<'a> {
    /// None: the process is not known (`context: "unknown"`).
    pub process: Option<Seen<'a>>,
    /// The name of the event's uid.
    pub user: Option<&'a str>,
    /// The event's cgroup (v2): its path and what the path says.
    pub cgroup: Option<&'a cgroups::Entry>,
}

/// The tables (see the module doc).
pub struct Context {
    pub settings: ContextSettings,
    procs: Table,
    cgroups: cgroups::Table,
    users: Users,
    passwd: PathBuf,
    passwd_mtime: Option<SystemTime>,
    /// None: the /proc mounted here is a PID namespace's, whose pids are not the
    /// kernel's that events carry: nothing is read from it (a wrong process is worse
    /// than none).
    proc_root: Option<PathBuf>,
    reads_left: u32,
    cgroup_reads_left: u32,
    /// Exits seen since the last tick, and in the tick before: removed a tick late, so
    /// that the last events of a process, still in other rings, know it.
    exited: Vec<(u32, u64)>,
    exiting: Vec<(u32, u64)>,
    /// Events that found no process (counted, for the metrics).
    pub unknown: u64,
    /// Times the process table was emptied after the process ring lost records.
    pub forgotten: u64,
    pub proc_reads: u64,
    /// Pids read from /proc into the table at start.
    pub seeded: usize,
    ancestors: Vec<u32>,
    /// Rendered context fields by pid (see [`Context::fragment`]), what the one being
    /// looked up depends on, and the buffer a fragment is built in.
    frags: Bounded<u32, Frag>,
    stamp: Vec<u64>,
    scratch: Vec<u8>,
    /// The newest exec or fork time in the chain `prepare` found (`u64::MAX`: the event
    /// is older than one of them).
    newest: u64,
    /// Bumped when the user names are read again: cached fragments name users.
    users_generation: u64,
}

impl Context {
    /// Tables seeded from `proc_root` (/proc), the cgroup2 mount `cgroup_mount` (none:
    /// cgroups are not named) and `passwd` (/etc/passwd).
    pub fn start(
        settings: ContextSettings,
        proc_root: Option<&Path>,
        cgroup_mount: Option<&Path>,
        passwd: &Path,
    ) -> Context {
        let mut procs = Table::new(settings.max_processes);
        let seeded = proc_root.map_or(0, |r| procs.seed(r));
        let cgroups = match cgroup_mount.map(|m| cgroups::Table::open(settings.max_cgroups, m)) {
            Some(Ok(mut t)) => {
                if let Some(m) = cgroup_mount {
                    t.seed(m);
                }
                t
            }
            Some(Err(e)) => {
                log::warn!("context: cgroups will not be named: {e}");
                cgroups::Table::new(settings.max_cgroups)
            }
            None => cgroups::Table::new(settings.max_cgroups),
        };
        let mut c = Context {
            settings,
            procs,
            cgroups,
            users: Users::default(),
            passwd: passwd.to_path_buf(),
            passwd_mtime: None,
            proc_root: proc_root.map(Path::to_path_buf),
            reads_left: READS_PER_TICK,
            cgroup_reads_left: CGROUP_READS_PER_TICK,
            exited: Vec::new(),
            exiting: Vec::new(),
            unknown: 0,
            forgotten: 0,
            proc_reads: 0,
            seeded,
            ancestors: Vec::new(),
            frags: Bounded::new(FRAGMENTS.min(settings.max_processes)),
            stamp: Vec::new(),
            scratch: Vec::new(),
            newest: 0,
            users_generation: 0,
        };
        c.reload_users();
        c
    }

    /// A new `ancestors` depth (a reload): fragments made for the old one go.
    pub fn set_ancestors(&mut self, n: usize) {
        self.settings.ancestors = n;
        self.frags.clear();
    }

    /// Processes in the table.
    pub fn processes(&self) -> usize {
        self.procs.len()
    }

    /// Process entries evicted to stay within `max_processes`.
    pub fn process_evictions(&self) -> u64 {
        self.procs.evictions()
    }

    /// Cgroups in the table.
    pub fn cgroups(&self) -> usize {
        self.cgroups.len()
    }

    /// Cgroup entries evicted to stay within `max_cgroups`.
    pub fn cgroup_evictions(&self) -> u64 {
        self.cgroups.evictions()
    }

    /// Once a tick: the /proc read budget comes back, the exits of two ticks ago go,
    /// and the passwd file is read again if it changed.
    pub fn tick(&mut self) {
        self.reads_left = READS_PER_TICK;
        self.cgroup_reads_left = CGROUP_READS_PER_TICK;
        for (pid, generation) in self.exiting.drain(..) {
            // A pid reused since (a new fork or a /proc read) is another process.
            if self
                .procs
                .peek(pid)
                .is_some_and(|p| p.generation == generation)
            {
                self.procs.exit(pid);
                self.frags.remove(&pid);
            }
        }
        std::mem::swap(&mut self.exited, &mut self.exiting);
        self.cgroups.reap();
        self.reload_users();
    }

    /// The process ring lost records: an exec, fork or exit the table never saw could
    /// leave a process named by its parent's program, or a reused pid by the process
    /// that had it. The table is emptied and filled again from /proc on each miss
    /// (within the read budget: events say `context: "unknown"` rather than something
    /// untrue meanwhile). Counted in `forgotten`.
    pub fn forget_processes(&mut self) {
        self.procs.clear();
        self.frags.clear();
        self.exited.clear();
        self.exiting.clear();
        self.forgotten += 1;
    }

    fn reload_users(&mut self) {
        match Users::load(&self.passwd, self.passwd_mtime) {
            Ok(Some((users, mtime))) => {
                self.users = users;
                self.users_generation += 1;
                self.passwd_mtime = Some(mtime);
            }
            Ok(None) => {}
            // Unreadable: the names known stay; numbers are still right.
            Err(e) => log::debug!("{}: {e}", self.passwd.display()),
        }
    }

    pub fn apply(&mut self, change: Change<'_>) {
        match change {
            Change::Exec {
                pid,
                ppid,
                ts,
                exe,
                exe_deleted,
                comm,
                login_uid,
                session_id,
            } => self.procs.exec(
                pid,
                Proc {
                    ppid,
                    exe: exe.map(Rc::from),
                    exe_deleted,
                    comm: Comm::new(comm),
                    login_uid,
                    session_id,
                    since: ts,
                    prev: None,
                    read_at: 0,
                    generation: 0,
                },
            ),
            Change::Fork { parent, child, ts } => {
                if self.procs.peek(parent).is_none() {
                    self.read(parent);
                }
                self.procs.fork(parent, child, ts);
            }
            Change::Exit { pid } => {
                if let Some(p) = self.procs.peek(pid) {
                    self.exited.push((pid, p.generation));
                }
            }
            Change::CgroupMkdir { id, path } => self.cgroups.mkdir(id, path),
            Change::CgroupRmdir { id } => self.cgroups.rmdir(id),
        }
    }

    /// `pid` from /proc into the table, within the tick's budget.
    fn read(&mut self, pid: u32) -> bool {
        let Some(root) = &self.proc_root else {
            return false;
        };
        if self.reads_left == 0 || pid == 0 {
            return false;
        }
        self.reads_left -= 1;
        self.proc_reads += 1;
        match procs::read(root, pid) {
            Some(p) => {
                self.procs.insert(pid, p);
                true
            }
            None => false,
        }
    }

    /// Makes the event's process and its parents known (reading /proc on a miss), lists
    /// the parents in `self.ancestors` and what a fragment of them depends on in
    /// `self.stamp` (see [`Context::fragment`]); false when the process is unknown. One
    /// lookup a process.
    fn prepare(&mut self, ev: Event) -> bool {
        self.stamp.clear();
        let facts = |p: &Proc| (p.ppid, p.generation, p.since, p.era(ev.ts));
        let (mut ppid, mut generation, since, era) = match self.procs.get(ev.pid).map(facts) {
            Some(f) => f,
            None if self.read(ev.pid) => match self.procs.peek(ev.pid).map(facts) {
                Some(f) => f,
                None => return false,
            },
            None => {
                self.unknown += 1;
                return false;
            }
        };
        if era == Era::Unknown {
            // The pid's previous process, or before what the table knows: unknown.
            self.stamp.push(generation << 2 | era as u64);
            self.newest = u64::MAX;
            self.unknown += 1;
            return false;
        }
        // The kernel's parent at the event: a reparented process shows its new parent.
        if ev.ppid != 0 && ev.ppid != ppid {
            self.procs.reparent(ev.pid, ev.ppid);
            ppid = ev.ppid;
            generation = self.procs.peek(ev.pid).map_or(0, |p| p.generation);
        }
        // Generations are unique per change: equal stamps, equal fragments. The era: an
        // event older than the exec renders what ran before, or nothing when older still.
        self.stamp.push(generation << 2 | era as u64);
        self.newest = if ev.ts < since { u64::MAX } else { since };
        self.ancestors.clear();
        while self.ancestors.len() < self.settings.ancestors {
            if ppid == 0 || ppid == ev.pid || self.ancestors.contains(&ppid) {
                break;
            }
            let (next, generation, since, era) = match self.procs.get(ppid).map(facts) {
                Some(f) => f,
                None if self.read(ppid) => match self.procs.peek(ppid).map(facts) {
                    Some(f) => f,
                    None => break,
                },
                None => break,
            };
            self.stamp.push(generation << 2 | era as u64);
            self.newest = if ev.ts < since {
                u64::MAX
            } else {
                self.newest.max(since)
            };
            if era == Era::Unknown {
                // What the parent ran then is not known: the chain ends (it could not
                // be told from another process's).
                break;
            }
            self.ancestors.push(ppid);
            ppid = next;
        }
        true
    }

    /// The event's context fields as `build` writes them from what the tables know,
    /// cached per pid: rebuilt only when the process, a parent, the user names or the
    /// cgroup known changed (or `salt`, which says the format, differs). The cache keeps
    /// the [`FRAGMENTS`] most recently used (a clock sweep, like the tables).
    pub fn fragment(
        &mut self,
        ev: Event,
        salt: u64,
        build: impl FnOnce(&Found<'_>, &mut Vec<u8>),
    ) -> &[u8] {
        // Nothing changed since this pid's fragment was made for the same uid, parent,
        // cgroup and output, and the event is not older than any exec it shows: the
        // fragment holds (two lookups, the common case on a steady host).
        let epoch = (self.procs.epoch(), self.users_generation);
        let same = |f: &Frag| {
            f.epoch == epoch
                && f.quick == (salt, ev.uid, ev.ppid, ev.cgroup_id)
                && ev.ts >= f.newest
        };
        if self.frags.get(&ev.pid).is_some_and(same) {
            self.procs.touch(ev.pid);
            return self.frags.peek(&ev.pid).map_or(&[], |f| &f.bytes);
        }
        let known = self.prepare(ev);
        // A cgroup not in the table is asked of the kernel, within its own budget.
        let mut cgroup = self.cgroups.get(ev.cgroup_id).is_some();
        if !cgroup && self.cgroup_reads_left > 0 {
            self.cgroup_reads_left -= 1;
            cgroup = self.cgroups.resolve(ev.cgroup_id).is_some();
        }
        self.stamp.extend([
            salt,
            u64::from(known),
            u64::from(ev.uid),
            self.users_generation,
            ev.cgroup_id,
            u64::from(cgroup),
        ]);
        // The quick check holds only for a known process in a known cgroup (what a
        // miss would read later must not stay cached as unknown).
        let newest = if known && cgroup {
            self.newest
        } else {
            u64::MAX
        };
        let epoch = (self.procs.epoch(), self.users_generation);
        let quick = (salt, ev.uid, ev.ppid, ev.cgroup_id);
        if let Some(f) = self.frags.get_mut(&ev.pid)
            && *f.stamp == *self.stamp
        {
            f.epoch = epoch;
            f.quick = quick;
            f.newest = newest;
            return self.frags.peek(&ev.pid).map_or(&[], |f| &f.bytes);
        }
        // Built in a buffer kept for it, stored exact-size.
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        build(&self.found(ev, known), &mut scratch);
        self.frags.insert(
            ev.pid,
            Frag {
                stamp: self.stamp.as_slice().into(),
                bytes: scratch.as_slice().into(),
                epoch,
                quick,
                newest,
            },
        );
        self.scratch = scratch;
        self.frags.peek(&ev.pid).map_or(&[], |f| &f.bytes)
    }

    /// What is known of the event, uncached (tests; the renderers use [`Context::fragment`]).
    #[cfg(test)]
    pub fn lookup(&mut self, ev: Event) -> Found<'_> {
        let known = self.prepare(ev);
        if self.cgroups.get(ev.cgroup_id).is_none() {
            self.cgroups.resolve(ev.cgroup_id);
        }
        self.found(ev, known)
    }

    /// What the tables hold for the event, once [`Context::prepare`] has run for it.
    fn found(&self, ev: Event, known: bool) -> Found<'_> {
        Found {
            process: if known {
                seen(&self.procs, &self.ancestors, ev)
            } else {
                None
            },
            user: self.users.name(ev.uid),
            cgroup: self.cgroups.peek(ev.cgroup_id),
        }
    }

    #[cfg(test)]
    fn process(&mut self, ev: Event) -> Option<Seen<'_>> {
        self.lookup(ev).process
    }
}

/// The event's process and the parents listed in `ancestors`, from the table.
fn seen<'a>(procs: &'a Table, ancestors: &[u32], ev: Event) -> Option<Seen<'a>> {
    let proc = procs.peek(ev.pid)?;
    Some(Seen {
        pid: ev.pid,
        proc,
        ran: proc.at(ev.ts)?,
        ts: ev.ts,
        ancestors: ancestors
            .iter()
            .map_while(|&pid| Some((pid, procs.peek(pid)?.at(ev.ts)?)))
            .collect(),
    })
}

/// A rendered fragment of context fields and the stamp it was rendered for.
struct Frag {
    stamp: Box<[u64]>,
    bytes: Box<[u8]>,
    /// The tables' epoch, and the event's output, uid, parent and cgroup, when the stamp
    /// was last found to hold; the newest exec or fork in it (`u64::MAX`: never quick).
    epoch: (u64, u64),
    quick: (u64, u32, u32, u64),
    newest: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(max: usize) -> Context {
        let settings = ContextSettings {
            max_processes: max,
            ..ContextSettings::default()
        };
        let mut c = Context::start(
            settings,
            Some(Path::new("/nonexistent")),
            None,
            Path::new("/nonexistent"),
        );
        c.users = Users::parse("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/a:/bin/sh\n");
        c
    }

    fn exec(pid: u32, ppid: u32, ts: u64, exe: &'static [u8]) -> Change<'static> {
        Change::Exec {
            pid,
            ppid,
            ts,
            exe: Some(exe),
            exe_deleted: false,
            comm: b"c",
            login_uid: Some(1000),
            session_id: Some(3),
        }
    }

    fn ev(pid: u32, ppid: u32, ts: u64) -> Event {
        Event {
            pid,
            ppid,
            uid: 1000,
            ts,
            cgroup_id: 1,
        }
    }

    #[test]
    fn an_event_from_before_an_exec_sees_what_ran_then() {
        let mut c = ctx(100);
        c.apply(exec(10, 1, 100, b"/usr/bin/bash"));
        c.apply(Change::Fork {
            parent: 10,
            child: 11,
            ts: 200,
        });
        c.apply(exec(11, 10, 300, b"/usr/bin/cat"));
        let s = c.process(ev(11, 10, 250)).expect("known");
        assert_eq!(s.ran.exe, Some(&b"/usr/bin/bash"[..]));
        c.prepare(ev(11, 10, 250));
        let before = c.stamp.clone();
        let s = c.process(ev(11, 10, 350)).expect("known");
        assert_eq!(s.ran.exe, Some(&b"/usr/bin/cat"[..]));
        assert_eq!(s.ancestors.len(), 1);
        assert_eq!(s.ancestors[0].0, 10);
        c.prepare(ev(11, 10, 350));
        let after = c.stamp.clone();
        assert_ne!(before, after, "the cache must tell the two apart");
        c.prepare(ev(11, 10, 351));
        assert_eq!(after, c.stamp);
    }

    /// What a renderer would write: the exe the event's process and its parent ran.
    fn frag(c: &mut Context, e: Event) -> String {
        let b = c.fragment(e, 1, |f, buf| {
            let Some(s) = &f.process else {
                buf.extend_from_slice(b"unknown");
                return;
            };
            buf.extend_from_slice(s.ran.exe.unwrap_or(b"?"));
            for (_, a) in &s.ancestors {
                buf.push(b' ');
                buf.extend_from_slice(a.exe.unwrap_or(b"?"));
            }
        });
        String::from_utf8_lossy(b).into_owned()
    }

    /// The cached fragment follows every change it depends on: a parent's exec, an
    /// event from before an exec, a reparent, an exit, the depth.
    #[test]
    fn a_cached_fragment_never_outlives_what_it_says() {
        let mut c = ctx(100);
        c.apply(exec(10, 1, 100, b"/bin/bash"));
        c.apply(exec(11, 10, 200, b"/bin/cat"));
        assert_eq!(frag(&mut c, ev(11, 10, 300)), "/bin/cat /bin/bash");
        assert_eq!(frag(&mut c, ev(11, 10, 301)), "/bin/cat /bin/bash");
        // The parent execs: the child's next event names the new program.
        c.apply(exec(10, 1, 400, b"/bin/python3"));
        assert_eq!(frag(&mut c, ev(11, 10, 500)), "/bin/cat /bin/python3");
        // An event still on its way from before that exec: what ran then.
        assert_eq!(frag(&mut c, ev(11, 10, 350)), "/bin/cat /bin/bash");
        assert_eq!(frag(&mut c, ev(11, 10, 501)), "/bin/cat /bin/python3");
        // Reparented to init (unknown here): no parent listed.
        assert_eq!(frag(&mut c, ev(11, 1, 600)), "/bin/cat");
        c.apply(exec(12, 10, 700, b"/bin/ls"));
        assert_eq!(frag(&mut c, ev(12, 10, 800)), "/bin/ls /bin/python3");
        c.set_ancestors(0);
        assert_eq!(frag(&mut c, ev(12, 10, 801)), "/bin/ls");
        c.apply(Change::Exit { pid: 12 });
        c.tick();
        c.tick();
        assert_eq!(frag(&mut c, ev(12, 10, 900)), "unknown");
    }

    /// The fragment cache keeps the most recently used within its bound, and one
    /// evicted is rebuilt right.
    #[test]
    fn the_fragment_cache_is_bounded() {
        let mut c = ctx(8);
        for pid in 20..40 {
            c.apply(exec(pid, 1, 100, b"/bin/sh"));
            assert_eq!(frag(&mut c, ev(pid, 1, 200)), "/bin/sh");
            assert!(c.frags.len() <= 8, "{}", c.frags.len());
        }
        assert_eq!(c.frags.len(), 8);
        assert!(c.frags.peek(&20).is_none());
        assert_eq!(frag(&mut c, ev(39, 1, 300)), "/bin/sh");
    }

    /// After the process ring lost records nothing known before is trusted: the
    /// process is unknown until read again (here there is no /proc to read).
    #[test]
    fn a_loss_forgets_the_processes() {
        let mut c = ctx(100);
        c.apply(exec(10, 1, 100, b"/bin/sh"));
        assert_eq!(frag(&mut c, ev(10, 1, 200)), "/bin/sh");
        c.forget_processes();
        assert_eq!(frag(&mut c, ev(10, 1, 201)), "unknown");
        assert_eq!((c.processes(), c.forgotten), (0, 1));
        c.apply(exec(10, 1, 300, b"/bin/cat"));
        assert_eq!(frag(&mut c, ev(10, 1, 301)), "/bin/cat");
    }

    #[test]
    fn users_are_named_known_process_or_not() {
        let mut c = ctx(100);
        let f = c.lookup(ev(4242, 1, 1));
        assert!(f.process.is_none());
        assert_eq!(f.user, Some("alice"));
    }

    #[test]
    fn an_exit_is_forgotten_two_ticks_later() {
        let mut c = ctx(100);
        c.apply(exec(10, 1, 100, b"/bin/true"));
        c.apply(Change::Exit { pid: 10 });
        c.tick();
        assert!(
            c.process(ev(10, 1, 101)).is_some(),
            "its last events still know it"
        );
        c.tick();
        assert!(c.procs.peek(10).is_none());
        // Not in /proc either (the root does not exist): unknown, counted.
        assert!(c.process(ev(10, 1, 102)).is_none());
        assert_eq!(c.unknown, 1);
    }

    #[test]
    fn a_reused_pid_is_not_removed_by_the_old_exit() {
        let mut c = ctx(100);
        c.apply(exec(10, 1, 100, b"/bin/old"));
        c.apply(Change::Exit { pid: 10 });
        c.apply(exec(10, 1, 200, b"/bin/new"));
        c.tick();
        c.tick();
        let s = c.process(ev(10, 1, 300)).expect("the new process");
        assert_eq!(s.proc.exe.as_deref(), Some(&b"/bin/new"[..]));
    }

    #[test]
    fn a_reparented_process_shows_its_new_parent() {
        let mut c = ctx(100);
        c.apply(exec(1, 0, 1, b"/sbin/init"));
        c.apply(exec(10, 1, 2, b"/bin/sh"));
        c.apply(exec(11, 10, 3, b"/bin/sleep"));
        let s = c.process(ev(11, 1, 4)).expect("known");
        assert_eq!(s.ancestors.iter().map(|a| a.0).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn ancestors_off_lists_none() {
        let mut c = ctx(100);
        c.settings.ancestors = 0;
        c.apply(exec(10, 1, 100, b"/bin/sh"));
        c.apply(exec(11, 10, 100, b"/bin/sh"));
        assert!(
            c.process(ev(11, 10, 101))
                .expect("known")
                .ancestors
                .is_empty()
        );
    }

    /// The real /proc: this test process is found by a miss read.
    #[test]
    fn a_miss_reads_proc() {
        let settings = ContextSettings {
            ancestors: 1,
            ..ContextSettings::default()
        };
        let mut c = Context {
            procs: Table::new(10),
            ..Context::start(settings, None, None, Path::new("/etc/passwd"))
        };
        c.proc_root = Some(PathBuf::from("/proc"));
        let me = std::process::id();
        let ppid = std::os::unix::process::parent_id();
        let now = crate::sys::clock::boot_ns();
        let s = c.process(ev(me, ppid, now)).expect("this process");
        assert!(s.ran.exe.is_some());
        assert_eq!(s.ancestors.len(), 1, "its parent");
        assert_eq!(c.proc_reads, 2, "itself and its parent");
        // An event from before this process started was another process's with its pid:
        // unknown, not this one.
        assert!(c.process(ev(me, ppid, 1)).is_none());
        assert_eq!(c.proc_reads, 2, "known now: no read");
    }

    /// This host's /proc shows the kernel's pids; a directory that is no /proc of the
    /// initial PID namespace does not.
    #[test]
    fn only_the_hosts_proc_is_read() {
        assert!(super::super::proc_shows_kernel_pids(Path::new("/proc")));
        assert!(!super::super::proc_shows_kernel_pids(Path::new(
            "/nonexistent"
        )));
        let mut c = Context::start(ContextSettings::default(), None, None, Path::new("/x"));
        assert!(c.process(ev(std::process::id(), 1, 1)).is_none());
        assert_eq!(c.proc_reads, 0);
    }
}
