//! Cgroup family records (bpf/cgroup.h): cgroup mkdir, rmdir, task attach, OOM kill.
use std::io::Write as _;
use std::mem::size_of;

use plain::Plain;

use super::record::{DecodeError, Fields, Header, cstr, prefix, view};
use super::summary::{PRIO_INFO, by, quoted};
use super::{KIB, MIB, Observed, Spec, max};
use crate::context::Change;


/// `enum rw_cgroup_type` (bpf/cgroup.h): the header's `type`.
pub mod kind {
    pub const CGROUP_MKDIR: u32 = 9;
    pub const CGROUP_RMDIR: u32 = 10;
    pub const CGROUP_ATTACH: u32 = 11;
    pub const OOM_KILL: u32 = 12;
}

pub const SPEC: Spec = Spec {
    name: "cgroup",
    needs: &[],
    ring_size: 128 * KIB,
    ring_min: 64 * KIB,
    ring_max: 16 * MIB,
    // Under a memory budget: few, and a container they miss is seen again by its processes.
    priority: 2,
    record_size: max(size_of::<CgroupEvent>(), size_of::<OomEvent>()),
    kinds: &[
        (kind::CGROUP_MKDIR, "cgroup_mkdir"),
        (kind::CGROUP_RMDIR, "cgroup_rmdir"),
        (kind::CGROUP_ATTACH, "cgroup_attach"),
        (kind::OOM_KILL, "oom_kill"),
    ],
    observe: Some(observe),
    own_context: &[],
};

pub const PATH_LEN: usize = 256;
pub const OOM_COMM_LEN: usize = 16;
pub const CGROUP_PATH_TRUNCATED: u32 = 1;
pub const CGROUP_THREADGROUP: u32 = 2;
pub const OOM_DETAIL: u32 = 1;
pub const OOM_UID: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CgroupEvent {
    pub hdr: Header,
    pub target_cgroup_id: u64,
    pub hierarchy_id: u32,
    pub level: u32,
    pub task_pid: u32,
    pub task_tid: u32,
    pub flags: u32,
    pub path_len: u32,
    pub path: [u8; PATH_LEN],
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for CgroupEvent {}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OomEvent {
    pub hdr: Header,
    pub victim_pid: u32,
    pub flags: u32,
    pub victim_uid: u32,
    pub oom_score_adj: i32,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub pgtables_kb: u64,
    pub victim_comm: [u8; OOM_COMM_LEN],
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for OomEvent {}

/// Cgroups made and removed in the v2 hierarchy (the one event headers' ids are of)
/// keep the context's cgroup table; a truncated path is left to the table's lookup.
fn observe<'a>(h: &'a Header, data: &'a [u8]) -> Option<Observed<'a>> {
    if h.kind != kind::CGROUP_MKDIR && h.kind != kind::CGROUP_RMDIR {
        return None;
    }
    let e: &CgroupEvent = view(data, h.kind).ok()?;
    if e.hierarchy_id != 0 {
        return None;
    }
    let change = if h.kind == kind::CGROUP_RMDIR {
        Change::CgroupRmdir {
            id: e.target_cgroup_id,
        }
    } else if e.flags & CGROUP_PATH_TRUNCATED == 0 {
        Change::CgroupMkdir {
            id: e.target_cgroup_id,
            path: prefix(&e.path, e.path_len),
        }
    } else {
        return None;
    };
    Some(Observed {
        change,
        context_only: false,
    })
}

pub fn render(k: u32, data: &[u8], line: &mut impl Fields) -> Result<(), DecodeError> {
    if k == kind::OOM_KILL {
        let e: &OomEvent = view(data, k)?;
        line.u64("victim_pid", e.victim_pid.into());
        // Older kernels report the pid only: leave out what they do not say.
        if e.flags & OOM_DETAIL != 0 {
            line.bytes("victim_comm", cstr(&e.victim_comm));
            line.i64("oom_score_adj", e.oom_score_adj.into());
            line.u64("total_vm_kb", e.total_vm_kb);
            line.u64("anon_rss_kb", e.anon_rss_kb);
            line.u64("file_rss_kb", e.file_rss_kb);
            line.u64("shmem_rss_kb", e.shmem_rss_kb);
            line.u64("pgtables_kb", e.pgtables_kb);
        }
        if e.flags & OOM_UID != 0 {
            line.u64("victim_uid", e.victim_uid.into());
        }
        return Ok(());
    }
    let e: &CgroupEvent = view(data, k)?;
    line.bytes("cgroup_path", prefix(&e.path, e.path_len));
    line.bool(
        "cgroup_path_truncated",
        e.flags & CGROUP_PATH_TRUNCATED != 0,
    );
    line.u64("target_cgroup_id", e.target_cgroup_id);
    line.u64("hierarchy_id", e.hierarchy_id.into());
    line.u64("level", e.level.into());
    if k == kind::CGROUP_ATTACH {
        line.u64("task_pid", e.task_pid.into());
        line.u64("task_tid", e.task_tid.into());
        line.bool("threadgroup", e.flags & CGROUP_THREADGROUP != 0);
    }
    Ok(())
}

/// The journal's one-line summary (see `super::summary`).
pub fn summary(h: &Header, data: &[u8], b: &mut Vec<u8>) -> Result<u8, DecodeError> {
    let k = h.kind;
    if k == kind::OOM_KILL {
            let e: &OomEvent = view(data, k)?;
            let _ = write!(b, "victim pid={}", e.victim_pid);
            if e.flags & OOM_DETAIL != 0 {
                b.extend_from_slice(b" comm=");
                quoted(b, cstr(&e.victim_comm));
            }
            if e.flags & OOM_UID != 0 {
                let _ = write!(b, " uid={}", e.victim_uid);
            }
            if e.flags & OOM_DETAIL != 0 {
                let _ = write!(
                    b,
                    " total_vm={}kB anon_rss={}kB",
                    e.total_vm_kb, e.anon_rss_kb
                );
            }
            by(b, h);
    } else {
            let e: &CgroupEvent = view(data, k)?;
            if k == kind::CGROUP_ATTACH {
                let _ = write!(b, "task {} to ", e.task_pid);
            }
            quoted(b, prefix(&e.path, e.path_len));
            if e.hierarchy_id != 0 {
                let _ = write!(b, " (v1 hierarchy {})", e.hierarchy_id);
            }
            by(b, h);
    }
    Ok(PRIO_INFO)
}

#[cfg(test)]
mod layout {
    use super::*;
    use crate::assert_layout;
    use crate::family::Family;

    #[test]
    fn mirrors_match_c() {
        assert_layout!(
            Family::Cgroup,
            "rw_header",
            Header,
            [seq, ts_ns, cgroup_id, kind, pid, tid, ppid, uid, gid, comm]
        );
        assert_layout!(
            Family::Cgroup,
            "cgroup_event",
            CgroupEvent,
            [
                hdr,
                target_cgroup_id,
                hierarchy_id,
                level,
                task_pid,
                task_tid,
                flags,
                path_len,
                path
            ]
        );
        assert_layout!(
            Family::Cgroup,
            "oom_event",
            OomEvent,
            [
                hdr,
                victim_pid,
                flags,
                victim_uid,
                oom_score_adj,
                total_vm_kb,
                anon_rss_kb,
                file_rss_kb,
                shmem_rss_kb,
                pgtables_kb,
                victim_comm
            ]
        );
    }

    #[test]
    fn constants_match_c() {
        use crate::assert_enum;
        let f = Family::Cgroup;
        assert_enum!(
            f,
            "rw_cgroup_type",
            [
                RW_CGROUP_MKDIR = kind::CGROUP_MKDIR,
                RW_CGROUP_RMDIR = kind::CGROUP_RMDIR,
                RW_CGROUP_ATTACH = kind::CGROUP_ATTACH,
                RW_OOM_KILL = kind::OOM_KILL,
            ]
        );
        assert_enum!(
            f,
            "rw_cgroup_flags",
            [
                RW_CGROUP_PATH_TRUNCATED = CGROUP_PATH_TRUNCATED,
                RW_CGROUP_THREADGROUP = CGROUP_THREADGROUP,
            ]
        );
        assert_enum!(
            f,
            "rw_oom_flags",
            [RW_OOM_DETAIL = OOM_DETAIL, RW_OOM_UID = OOM_UID]
        );
    }
}
