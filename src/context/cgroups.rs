//! The cgroup table: kernel cgroup id -> path in the cgroup v2 hierarchy, with the unit and
//! container that path puts a process in ([`placement`]), worked out once per cgroup
//! rather than once per event. Every event header carries `cgroup_id`
//! (bpf_get_current_cgroup_id()): a v2 kernfs id, which on 64-bit hosts is the inode
//! number of the cgroup's directory in the cgroup2 mount (on 32-bit ones the inode is only
//! its low half, so [`Table::seed`] assumes 64-bit).
//!
//! Seeded by walking the mount, then kept by the cgroup family's mkdir and rmdir records.
//! An id it does not know is asked of the kernel itself: `open_by_handle_at` with the id
//! as a kernfs file handle (root's CAP_DAC_READ_SEARCH), then the opened directory's path
//! from /proc/self/fd; that is a few syscalls, so the caller bounds misses per tick, as
//! for the process table. Bounded like the process table ([`super::bounded`]). An rmdir
//! does not drop the entry at once: events of the cgroup still queued in other rings are
//! read after the rmdir record, so the entry dies at the second [`Table::reap`].
//!
//! Paths are bytes, as the kernel has them, relative to the hierarchy's root (`/` is the
//! root). The table is the host's view: a daemon in a cgroup namespace, or given a mount
//! of a subtree, would name cgroups other than the kernel's records do, so
//! [`find_mount`] only takes a mount of the hierarchy's root.
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::bounded::Bounded;
use super::cgroup::{Placement, placement};

/// `FILEID_KERNFS` (include/linux/exportfs.h): a kernfs node's file handle, its 64-bit id.
const FILEID_KERNFS: i32 = 0xfe;
/// The walk goes no deeper below the root than this (a hierarchy nested without end
/// would otherwise cost the seed unbounded time and memory); deeper cgroups are read on
/// their first miss.
const MAX_DEPTH: usize = 64;
/// What d_path appends to the path of an unlinked directory.
const DELETED: &[u8] = b" (deleted)";

/// One cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the hierarchy's root: `/system.slice/sshd.service`, `/` for the root.
    pub path: Box<[u8]>,
    /// From the path (a default one when the path is not UTF-8).
    pub placement: Placement,
    /// Removed (rmdir): kept until the second reap after.
    dead: bool,
}

/// The cgroup2 mount, open for `open_by_handle_at`.
struct Mount {
    /// A plain read-only directory fd: the kernel refuses an O_PATH one as the mount fd
    /// of `open_by_handle_at` (EBADF, on 6.18).
    fd: OwnedFd,
    /// The mount's path as the kernel prints it in /proc/self/fd links, which start with it.
    prefix: Box<[u8]>,
}

/// The table (see the module doc).
pub struct Table {
    cgroups: Bounded<u64, Entry>,
    mount: Option<Mount>,
    /// Marked dead since the last reap: the next one moves them to `dead`.
    dying: Vec<u64>,
    /// Marked dead before the last reap: the next one removes them.
    dead: Vec<u64>,
}

impl Table {
    /// An empty table of at most `max` cgroups (at least one), which cannot resolve a
    /// miss ([`Table::open`] can).
    pub fn new(max: usize) -> Table {
        Table {
            cgroups: Bounded::new(max),
            mount: None,
            dying: Vec::new(),
            dead: Vec::new(),
        }
    }

    /// An empty table that resolves misses through the cgroup2 mount at `mount` (kept
    /// open). An error when it cannot be opened or is no cgroup2 mount.
    pub fn open(max: usize, mount: &Path) -> io::Result<Table> {
        let dir = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(mount)?;
        if !is_cgroup2(&dir) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is no cgroup2 mount", mount.display()),
            ));
        }
        let fd = OwnedFd::from(dir);
        let prefix = fs::read_link(fd_link(&fd))?.into_os_string().into_vec();
        let mut t = Table::new(max);
        t.mount = Some(Mount {
            fd,
            prefix: prefix.into(),
        });
        Ok(t)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.cgroups.len()
    }

    /// Entries evicted to make room so far.
    pub fn evictions(&self) -> u64 {
        self.cgroups.evictions()
    }

    /// The cgroup `id` if the table has it (marks it used, so that it is evicted last).
    pub fn get(&mut self, id: u64) -> Option<&Entry> {
        self.cgroups.get(&id)
    }

    /// The cgroup `id` if the table has it, without marking it used.
    pub fn peek(&self, id: u64) -> Option<&Entry> {
        self.cgroups.peek(&id)
    }

    /// The cgroup `id`, asked of the kernel when the table does not have it (see the
    /// module doc); none when the kernel has no such cgroup (any more) or the table was
    /// made without a mount.
    pub fn resolve(&mut self, id: u64) -> Option<&Entry> {
        if self.cgroups.peek(&id).is_none() {
            let m = self.mount.as_ref()?;
            let fd = open_by_id(&m.fd, id)?;
            let (path, dead) = m.path_of(&fd, id)?;
            drop(fd);
            self.put(id, path, dead);
        }
        self.cgroups.get(&id)
    }

    /// A cgroup made (the cgroup family's mkdir record): `path` relative to the
    /// hierarchy's root, as the record has it. The caller passes only the v2 hierarchy's
    /// records (`hierarchy_id` 0, the one event headers' ids are of) and no truncated
    /// path (that cgroup is left to [`Table::resolve`]); a path not starting with `/` is
    /// ignored.
    pub fn mkdir(&mut self, id: u64, path: &[u8]) {
        if path.first() == Some(&b'/') {
            self.put(id, path.into(), false);
        }
    }

    /// A cgroup removed (the rmdir record, v2 only as for [`Table::mkdir`]): marked dead,
    /// it stays for the events still queued in other rings until the second
    /// [`Table::reap`] from now.
    pub fn rmdir(&mut self, id: u64) {
        if let Some(e) = self.cgroups.peek_mut(&id)
            && !e.dead
        {
            e.dead = true;
            self.dying.push(id);
        }
    }

    /// Removes the cgroups marked dead before the previous call (the daemon calls it once
    /// per tick); returns how many.
    pub fn reap(&mut self) -> usize {
        let mut n = 0;
        for id in self.dead.drain(..) {
            if self.cgroups.peek(&id).is_some_and(|e| e.dead) {
                self.cgroups.remove(&id);
                n += 1;
            }
        }
        std::mem::swap(&mut self.dead, &mut self.dying);
        n
    }

    /// Walks the cgroup2 mount at `mount` into the table, shallowest first, until the
    /// table is full (nothing is evicted for it); returns how many cgroups it put in.
    /// Nothing when `mount` is no cgroup2 mount.
    pub fn seed(&mut self, mount: &Path) -> usize {
        let mut n = 0;
        walk(mount, |id, path| {
            if self.cgroups.len() >= self.cgroups.max() {
                return false;
            }
            self.put(id, path.into(), false);
            n += 1;
            true
        });
        n
    }

    fn put(&mut self, id: u64, path: Box<[u8]>, dead: bool) {
        let placement = std::str::from_utf8(&path)
            .map(placement)
            .unwrap_or_default();
        self.cgroups.insert(
            id,
            Entry {
                path,
                placement,
                dead,
            },
        );
        if dead {
            self.dying.push(id);
        }
    }
}

impl Mount {
    /// The hierarchy-relative path of the cgroup directory `fd` (of id `id`), and whether
    /// it was removed since it was opened; none when the kernel prints it outside the
    /// mount (another view of the hierarchy).
    fn path_of(&self, fd: &OwnedFd, id: u64) -> Option<(Box<[u8]>, bool)> {
        let link = fs::read_link(fd_link(fd)).ok()?.into_os_string().into_vec();
        let mut path = self.relative(&link)?;
        // An rmdir between the open and the readlink leaves " (deleted)" appended, which
        // a cgroup could also be called: the one with that name is looked at.
        let mut dead = false;
        if path.ends_with(DELETED) {
            let named = fs::symlink_metadata(Path::new(std::ffi::OsStr::from_bytes(&link)));
            if !named.is_ok_and(|m| m.is_dir() && m.ino() == id) {
                path.truncate(path.len() - DELETED.len());
                dead = true;
            }
        }
        Some((path.into(), dead))
    }

    /// A path the kernel printed, relative to the mount: `/` for the mount itself.
    fn relative(&self, link: &[u8]) -> Option<Vec<u8>> {
        let prefix = self.prefix.strip_suffix(b"/").unwrap_or(&self.prefix);
        let rest = link.strip_prefix(prefix)?;
        if rest.is_empty() {
            return Some(b"/".to_vec());
        }
        if rest.first() != Some(&b'/') {
            return None;
        }
        Some(rest.to_vec())
    }
}

/// The file handle `open_by_handle_at` reads: `struct file_handle` with the 8 bytes of a
/// kernfs handle in place of its flexible array.
#[repr(C)]
struct KernfsHandle {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    id: [u8; 8],
}

/// The cgroup directory of id `id`, opened by the kernel; none when it has no such cgroup
/// (ESTALE) or refuses (no CAP_DAC_READ_SEARCH).
fn open_by_id(mount: &OwnedFd, id: u64) -> Option<OwnedFd> {
    let mut h = KernfsHandle {
        handle_bytes: 8,
        handle_type: FILEID_KERNFS,
        id: id.to_ne_bytes(),
    };
    // SAFETY: `h` is a file_handle whose handle_bytes (8) bytes of f_handle follow it,
    // alive for the call; the kernel only reads it. The mount fd is open.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            (&raw mut h).cast::<libc::file_handle>(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a new fd that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The /proc/self/fd link of `fd`.
fn fd_link(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The directory is on a cgroup2 file system.
fn is_cgroup2(dir: &File) -> bool {
    // SAFETY: statfs is plain data, for which all zeroes are valid.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is open and `s` is writable, alive for the call.
    let r = unsafe { libc::fstatfs(dir.as_raw_fd(), &mut s) };
    r == 0 && s.f_type as u64 == libc::CGROUP2_SUPER_MAGIC as u64
}

/// Every cgroup under the cgroup2 mount at `mount`, shallowest first: its id (the
/// directory's inode) and its path relative to the mount, until `f` says stop. No
/// symlink is followed and no directory deeper than [`MAX_DEPTH`] is entered; what
/// cannot be read (removed meanwhile) is skipped.
fn walk(mount: &Path, mut f: impl FnMut(u64, &[u8]) -> bool) {
    let Ok(root) = File::open(mount) else {
        return;
    };
    let Ok(meta) = root.metadata() else {
        return;
    };
    if !meta.is_dir() || !is_cgroup2(&root) || !f(meta.ino(), b"/") {
        return;
    }
    drop(root);
    let mut queue: VecDeque<(PathBuf, Vec<u8>, usize)> = VecDeque::new();
    queue.push_back((mount.to_path_buf(), Vec::new(), 0));
    while let Some((dir, rel, depth)) = queue.pop_front() {
        if depth >= MAX_DEPTH {
            continue;
        }
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for d in entries.flatten() {
            // The entry's own type and inode: neither follows a symlink.
            if !d.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(meta) = d.metadata() else {
                continue;
            };
            let mut path = rel.clone();
            path.push(b'/');
            path.extend_from_slice(d.file_name().as_bytes());
            if !f(meta.ino(), &path) {
                return;
            }
            queue.push_back((d.path(), path, depth + 1));
        }
    }
}

/// Where the cgroup v2 hierarchy is mounted in this mount namespace (/sys/fs/cgroup, or
/// /sys/fs/cgroup/unified on a hybrid host), from /proc/self/mountinfo.
pub fn find_mount() -> Option<PathBuf> {
    parse_mountinfo(&fs::read("/proc/self/mountinfo").ok()?)
}

/// The first cgroup2 mount of the hierarchy's root in a mountinfo text (proc(5)):
/// `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`.
fn parse_mountinfo(text: &[u8]) -> Option<PathBuf> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let f: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let dash = f.iter().skip(6).position(|&x| x == b"-")? + 6;
        let (root, point) = (*f.get(3)?, *f.get(4)?);
        (f.get(dash + 1) == Some(&&b"cgroup2"[..]) && root == b"/")
            .then(|| PathBuf::from(std::ffi::OsString::from_vec(unescape(point))))
    })
}

/// A mountinfo field without its octal escapes (`\040` is a space).
fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && let Some(&[a, b, c]) = s.get(i + 1..i + 4)
            && [a, b, c].iter().all(|d| (b'0'..=b'7').contains(d))
            && a <= b'3'
        {
            out.push(((a - b'0') << 6) | ((b - b'0') << 3) | (c - b'0'));
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_evicts_and_counts() {
        let mut t = Table::new(2);
        t.mkdir(1, b"/");
        t.mkdir(2, b"/a.slice");
        assert!(t.get(1).is_some());
        t.mkdir(3, b"/a.slice/b.service");
        assert_eq!((t.len(), t.evictions()), (2, 1));
        assert!(t.get(2).is_none());
        assert!(t.get(1).is_some() && t.get(3).is_some());
        // No mount: a miss stays one.
        assert!(t.resolve(2).is_none());
    }

    #[test]
    fn mkdir_rmdir_reap() {
        let mut t = Table::new(10);
        t.mkdir(10, b"/system.slice/sshd.service");
        let e = t.get(10).cloned().expect("entry");
        assert_eq!(&*e.path, b"/system.slice/sshd.service");
        assert_eq!(e.placement.unit.as_deref(), Some("sshd.service"));
        assert_eq!(e.placement.slice.as_deref(), Some("system.slice"));
        // Not a path: ignored.
        t.mkdir(11, b"");
        t.mkdir(12, b"x");
        assert_eq!(t.len(), 1);
        // Dead, still there for one full tick, gone at the second reap.
        t.rmdir(10);
        t.rmdir(10);
        t.rmdir(99);
        assert!(t.get(10).is_some());
        assert_eq!(t.reap(), 0);
        assert!(t.get(10).is_some());
        t.rmdir(10);
        assert_eq!(t.reap(), 1);
        assert!(t.get(10).is_none());
        assert_eq!(t.reap(), 0);
        // Made again before it was reaped: it lives.
        t.mkdir(20, b"/a");
        t.rmdir(20);
        t.mkdir(20, b"/b");
        assert_eq!((t.reap(), t.reap()), (0, 0));
        assert_eq!(t.get(20).map(|e| &*e.path), Some(&b"/b"[..]));
    }

    #[test]
    fn a_path_that_is_not_utf8() {
        let mut t = Table::new(10);
        let path = b"/system.slice/a\xff.service";
        t.mkdir(5, path);
        let e = t.get(5).expect("entry");
        assert_eq!(&*e.path, path);
        assert_eq!(e.placement, Placement::default());
    }

    #[test]
    fn mountinfo() {
        let hybrid = b"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
            35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_mountinfo(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        // Optional fields before the dash; an escaped space; a subtree's mount skipped.
        let v2 = b"50 1 0:40 /docker/x /c rw - cgroup2 cgroup2 rw\n\
            30 24 0:26 / /sys/fs/cg\\040v2\\134 rw,nosuid shared:4 master:1 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(parse_mountinfo(v2), Some(PathBuf::from("/sys/fs/cg v2\\")));
        assert_eq!(parse_mountinfo(b""), None);
        assert_eq!(parse_mountinfo(b"1 2 3 / /x - cgroup2"), None);
        assert_eq!(parse_mountinfo(b"- - - - - - - cgroup2\n\n  "), None);
        assert_eq!(unescape(b"a\\040b\\12\\400\\"), b"a b\\12\\400\\");
    }

    /// This machine's cgroup2 mount, or none (with a note) where there is none.
    fn mount() -> Option<PathBuf> {
        let m = find_mount();
        if m.is_none() {
            eprintln!("skipped: no cgroup2 mount");
        }
        m
    }

    /// This process's cgroup and its id: the `0::` line of /proc/self/cgroup and the inode
    /// of that directory.
    fn own_cgroup(mount: &Path) -> Option<(u64, Vec<u8>)> {
        let text = fs::read("/proc/self/cgroup").ok()?;
        let line = text
            .split(|&b| b == b'\n')
            .find(|l| l.starts_with(b"0::"))?;
        let path = line[3..].to_vec();
        let mut full = mount.as_os_str().as_bytes().to_vec();
        full.extend_from_slice(&path);
        let ino = fs::metadata(std::ffi::OsStr::from_bytes(&full)).ok()?.ino();
        Some((ino, path))
    }

    #[test]
    fn seeds_from_the_real_mount() {
        let Some(mount) = mount() else { return };
        let mut t = Table::new(1 << 16);
        let n = t.seed(&mount);
        assert!(n >= 1 && t.len() == n, "{n}");
        let root = fs::metadata(&mount).expect("mount").ino();
        assert_eq!(t.get(root).map(|e| &*e.path), Some(&b"/"[..]));
        let (id, path) = own_cgroup(&mount).expect("own cgroup");
        assert_eq!(t.get(id).map(|e| e.path.to_vec()), Some(path.clone()));
        // The bound: the walk stops at it, evicting nothing.
        let mut small = Table::new(1);
        assert_eq!(small.seed(&mount), 1);
        assert_eq!((small.len(), small.evictions()), (1, 0));
        // No cgroup2 mount: nothing.
        assert_eq!(Table::new(10).seed(Path::new("/proc")), 0);
        assert!(Table::open(10, Path::new("/proc")).is_err());
    }

    #[test]
    fn resolves_by_handle_as_the_walk_names() {
        let Some(mount) = mount() else { return };
        let mut t = match Table::open(1 << 16, &mount) {
            Ok(t) => t,
            Err(e) => return eprintln!("skipped: {e}"),
        };
        let (id, path) = own_cgroup(&mount).expect("own cgroup");
        if t.resolve(id).is_none() {
            return eprintln!("skipped: no open_by_handle_at (not root?)");
        }
        assert_eq!(t.get(id).map(|e| e.path.to_vec()), Some(path.clone()));
        let mut found = Vec::new();
        walk(&mount, |id, path| {
            found.push((id, path.to_vec()));
            true
        });
        // The walk names this process's own cgroup as the kernel does.
        assert_eq!(
            found.iter().filter(|(i, p)| *i == id && *p == path).count(),
            1,
            "{found:?}"
        );
        for (id, path) in found {
            match t.resolve(id) {
                Some(e) => assert_eq!(*e.path, *path, "{id}"),
                // Removed meanwhile (the host's cgroups come and go): then it is gone.
                None => {
                    let mut full = mount.as_os_str().as_bytes().to_vec();
                    full.extend_from_slice(&path);
                    let now = fs::metadata(std::ffi::OsStr::from_bytes(&full));
                    assert!(!now.is_ok_and(|m| m.ino() == id), "{id} not resolved");
                }
            }
        }
        assert!(t.resolve(u64::MAX).is_none());
        assert!(t.resolve(0).is_none());
    }

    /// A cgroup made here (when this may make one): a name with a space and a byte that is
    /// not UTF-8 resolves as it is, one called "… (deleted)" keeps its name, and one
    /// removed between the open and the readlink reads as dead, without the suffix.
    #[test]
    fn resolves_made_and_removed_cgroups() {
        let Some(mount) = mount() else { return };
        let Ok(mut t) = Table::open(100, &mount) else {
            return eprintln!("skipped: mount not opened");
        };
        struct Dir(PathBuf);
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = fs::remove_dir(&self.0);
            }
        }
        let make = |name: &[u8]| {
            let mut rel = format!("/ringwarden-test-{}-", std::process::id()).into_bytes();
            rel.extend_from_slice(name);
            let mut full = mount.as_os_str().as_bytes().to_vec();
            full.extend_from_slice(&rel);
            let dir = Dir(PathBuf::from(std::ffi::OsString::from_vec(full)));
            fs::create_dir(&dir.0).ok()?;
            let id = fs::metadata(&dir.0).ok()?.ino();
            Some((dir, id, rel))
        };
        let Some((odd, id, rel)) = make(b"a b\xff") else {
            return eprintln!("skipped: no cgroup made");
        };
        let Some(e) = t.resolve(id) else {
            return eprintln!("skipped: no open_by_handle_at (not root?)");
        };
        assert_eq!(*e.path, *rel);
        assert!(!e.dead);
        let (named, id2, rel2) = make(b"x (deleted)").expect("second cgroup");
        assert_eq!(
            t.resolve(id2).map(|e| (e.path.to_vec(), e.dead)),
            Some((rel2, false))
        );
        drop(named);
        // Removed while open.
        let m = t.mount.as_ref().expect("mount");
        let fd = open_by_id(&m.fd, id).expect("open");
        drop(odd);
        assert_eq!(m.path_of(&fd, id), Some((rel.into(), true)));
        assert!(open_by_id(&m.fd, id).is_none());
    }
}
