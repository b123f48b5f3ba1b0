/* SPDX-License-Identifier: GPL-2.0 */
/* Cgroup family records: mkdir, rmdir, task attach, OOM kill.
 * Mirrored in src/family/cgroup.rs. */
#ifndef RW_CGROUP_H
#define RW_CGROUP_H
#include "common.h"

#define RW_CGROUP_PATH_LEN 256
#define RW_OOM_COMM_LEN 16

/* rw_header.type of this family's records */
enum rw_cgroup_type {
	RW_CGROUP_MKDIR = 9,
	RW_CGROUP_RMDIR = 10,
	RW_CGROUP_ATTACH = 11,
	RW_OOM_KILL = 12,
};

/* cgroup_event.flags */
enum rw_cgroup_flags {
	RW_CGROUP_PATH_TRUNCATED = 1,
	RW_CGROUP_THREADGROUP = 2, /* attach: the whole thread group was moved */
};

/* mkdir, rmdir and attach. The header is the task doing it; the target is the cgroup. */
struct cgroup_event {
	struct rw_header hdr;
	__u64 target_cgroup_id; /* cgrp->kn->id: the cgroup's id (v2: its inode number) */
	__u32 hierarchy_id;     /* 0 for the cgroup v2 hierarchy */
	__u32 level;            /* depth below the hierarchy's root */
	__u32 task_pid;         /* attach: the moved task's tgid, else 0 */
	__u32 task_tid;         /* attach: the moved task's pid (thread id), else 0 */
	__u32 flags;
	__u32 path_len;                /* bytes in path, without the NUL */
	char path[RW_CGROUP_PATH_LEN]; /* relative to the hierarchy's root */
};

/* oom_event.flags */
/* Newer kernels (after 6.8) report more than the pid; these say which fields are set. */
enum rw_oom_flags {
	RW_OOM_DETAIL = 1, /* victim_comm, sizes and oom_score_adj */
	RW_OOM_UID = 2,    /* victim_uid */
};

/* OOM kill. The header is the task whose allocation failed; the victim is the task
 * the OOM killer chose. */
struct oom_event {
	struct rw_header hdr;
	__u32 victim_pid; /* as the tracepoint reports it: the victim's task pid */
	__u32 flags;
	__u32 victim_uid;
	__s32 oom_score_adj;
	__u64 total_vm_kb;
	__u64 anon_rss_kb;
	__u64 file_rss_kb;
	__u64 shmem_rss_kb;
	__u64 pgtables_kb;
	char victim_comm[RW_OOM_COMM_LEN];
};

#endif
