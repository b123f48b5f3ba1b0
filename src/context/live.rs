//! The daemon's live context: the process table kept by the records that change it, the
//! user names, and what an event's pid, uid and time look up. A miss reads /proc, at
//! most `READS_PER_TICK` times a tick, so a fork storm of unknown pids cannot stall the
//! loop; past that an event says its process is unknown, it is never held back for it.
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

use super::ContextSettings;
use super::cgroups;
use super::procs::{self, Proc, Table};
use super::users::Users;

/// /proc reads on a miss per tick (one costs ~30 us: ~8 ms a second at most).
const READS_PER_TICK: u32 = 256;

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
    pub ts: u64,
    /// Parents, nearest first.
    pub ancestors: Vec<(u32, &'a Proc)>,
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

impl Seen<'_> {
    /// A number that is the same for two lookups only if they render the same process
    /// fields and ancestors (not the user: that is the header's uid): a renderer's
    /// cache key.
    pub fn key(&self) -> u64 {
        let mut k = fold(u64::from(self.pid), self.proc.generation);
        k = fold(k, u64::from(self.ts < self.proc.since));
        for (pid, p) in &self.ancestors {
            k = fold(fold(k, u64::from(*pid)), p.generation);
            k = fold(k, u64::from(self.ts < p.since));
        }
        k
    }
}

/// FNV-1a style mixing of one word: cheap, and collisions need equal generations.
fn fold(k: u64, v: u64) -> u64 {
    (k ^ v).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(17)
}

/// The tables (see the module doc).
pub struct Context {
    pub settings: ContextSettings,
    procs: Table,
    cgroups: cgroups::Table,
    users: Users,
    passwd: PathBuf,
    passwd_mtime: Option<SystemTime>,
    proc_root: PathBuf,
    reads_left: u32,
    /// Exits seen since the last tick, and in the tick before: removed a tick late, so
    /// that the last events of a process, still in other rings, know it.
    exited: Vec<(u32, u64)>,
    exiting: Vec<(u32, u64)>,
    /// Events that found no process (counted, for the metrics).
    pub unknown: u64,
    pub proc_reads: u64,
    /// Pids read from /proc into the table at start.
    pub seeded: usize,
    ancestors: Vec<u32>,
}

impl Context {
    /// Tables seeded from `proc_root` (/proc), the cgroup2 mount `cgroup_mount` (none:
    /// cgroups are not named) and `passwd` (/etc/passwd).
    pub fn start(
        settings: ContextSettings,
        proc_root: &Path,
        cgroup_mount: Option<&Path>,
        passwd: &Path,
    ) -> Context {
        let mut procs = Table::new(settings.max_processes);
        let seeded = procs.seed(proc_root);
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
            proc_root: proc_root.to_path_buf(),
            reads_left: READS_PER_TICK,
            exited: Vec::new(),
            exiting: Vec::new(),
            unknown: 0,
            proc_reads: 0,
            seeded,
            ancestors: Vec::new(),
        };
        c.reload_users();
        c
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
        for (pid, generation) in self.exiting.drain(..) {
            // A pid reused since (a new fork or a /proc read) is another process.
            if self
                .procs
                .peek(pid)
                .is_some_and(|p| p.generation == generation)
            {
                self.procs.exit(pid);
            }
        }
        std::mem::swap(&mut self.exited, &mut self.exiting);
        self.cgroups.reap();
        self.reload_users();
    }

    fn reload_users(&mut self) {
        match Users::load(&self.passwd, self.passwd_mtime) {
            Ok(Some((users, mtime))) => {
                self.users = users;
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
                    comm: Rc::from(comm),
                    login_uid,
                    session_id,
                    since: ts,
                    prev: None,
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
        if self.reads_left == 0 || pid == 0 {
            return false;
        }
        self.reads_left -= 1;
        self.proc_reads += 1;
        match procs::read(&self.proc_root, pid) {
            Some(p) => {
                self.procs.insert(pid, p);
                true
            }
            None => false,
        }
    }

    /// What is known of the event: its process (none when it is not known and could
    /// not be read within the budget) and its user's name.
    pub fn lookup(&mut self, ev: Event) -> Found<'_> {
        let known = self.prepare(ev);
        // A cgroup not in the table is asked of the kernel, within the same budget.
        if self.cgroups.get(ev.cgroup_id).is_none() && self.reads_left > 0 {
            self.reads_left -= 1;
            self.cgroups.resolve(ev.cgroup_id);
        }
        Found {
            process: if known { self.seen(ev) } else { None },
            user: self.users.name(ev.uid),
            cgroup: self.cgroups.peek(ev.cgroup_id),
        }
    }

    #[cfg(test)]
    fn process(&mut self, ev: Event) -> Option<Seen<'_>> {
        self.lookup(ev).process
    }

    /// Makes the event's process and its parents known (reading /proc on a miss) and
    /// lists the parents in `self.ancestors`; false when the process is unknown.
    fn prepare(&mut self, ev: Event) -> bool {
        if self.procs.get(ev.pid).is_none() && !self.read(ev.pid) {
            self.unknown += 1;
            return false;
        }
        // The kernel's parent at the event: a reparented process shows its new parent.
        if self.procs.peek(ev.pid).is_some_and(|p| p.ppid != ev.ppid) && ev.ppid != 0 {
            self.procs.reparent(ev.pid, ev.ppid);
        }
        self.ancestors.clear();
        let mut at = ev.pid;
        while self.ancestors.len() < self.settings.ancestors {
            let Some(ppid) = self.procs.peek(at).map(|p| p.ppid) else {
                break;
            };
            if ppid == 0 || ppid == ev.pid || self.ancestors.contains(&ppid) {
                break;
            }
            if self.procs.get(ppid).is_none() && !self.read(ppid) {
                break;
            }
            self.ancestors.push(ppid);
            at = ppid;
        }
        true
    }

    fn seen(&self, ev: Event) -> Option<Seen<'_>> {
        let procs = &self.procs;
        let proc = procs.peek(ev.pid)?;
        let ancestors = self
            .ancestors
            .iter()
            .filter_map(|&pid| procs.peek(pid).map(|p| (pid, p)))
            .collect();
        Some(Seen {
            pid: ev.pid,
            proc,
            ts: ev.ts,
            ancestors,
        })
    }
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
            Path::new("/nonexistent"),
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
        assert_eq!(s.proc.at(s.ts).exe, Some(&b"/usr/bin/bash"[..]));
        let before = s.key();
        let s = c.process(ev(11, 10, 350)).expect("known");
        assert_eq!(s.proc.at(s.ts).exe, Some(&b"/usr/bin/cat"[..]));
        assert_eq!(s.ancestors.len(), 1);
        assert_eq!(s.ancestors[0].0, 10);
        assert_ne!(before, s.key(), "the cache must tell the two apart");
        assert_eq!(s.key(), c.process(ev(11, 10, 351)).expect("known").key());
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
            ..Context::start(
                settings,
                Path::new("/nonexistent"),
                None,
                Path::new("/etc/passwd"),
            )
        };
        c.proc_root = PathBuf::from("/proc");
        let me = std::process::id();
        let s = c
            .process(ev(me, std::os::unix::process::parent_id(), 1))
            .expect("this process");
        assert!(s.proc.exe.is_some());
        assert_eq!(c.proc_reads, 2, "itself and its parent");
    }
}
