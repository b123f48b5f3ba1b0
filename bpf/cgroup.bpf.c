// SPDX-License-Identifier: GPL-2.0
/* Cgroup family: mkdir, rmdir, task attach (tp_btf cgroup tracepoints, every hierarchy,
 * v1 and v2) and OOM kills (the classic oom/mark_victim tracepoint: its tp_btf
 * arguments changed in 6.8, the record's `pid` field did not). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "cgroup.h"

char LICENSE[] SEC("license") = "GPL";

RW_DECLARE_RING(cgroup);

/* Everything but the attach-only fields; the path comes from the tracepoint, which
 * formats it relative to the hierarchy's root. */
static __always_inline struct cgroup_event *cgroup_record(struct cgroup *cgrp, const char *path,
							  __u32 type)
{
	struct cgroup_event *e = RW_RESERVE(cgroup, struct cgroup_event, type);
	if (!e)
		return NULL;
	e->target_cgroup_id = BPF_CORE_READ(cgrp, kn, id);
	e->hierarchy_id = BPF_CORE_READ(cgrp, root, hierarchy_id);
	e->level = BPF_CORE_READ(cgrp, level);
	e->task_pid = 0;
	e->task_tid = 0;
	e->flags = 0;
	long n = bpf_probe_read_kernel_str(e->path, sizeof(e->path), path);
	if (n < 1) {
		n = 1;
		e->path[0] = 0;
	}
	e->path_len = n - 1;
	/* A string that filled the buffer may have been cut short. */
	if (n == sizeof(e->path))
		e->flags |= RW_CGROUP_PATH_TRUNCATED;
	return e;
}

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	if (rw_skip())
		return 0;
	struct cgroup_event *e = cgroup_record(cgrp, path, RW_CGROUP_MKDIR);
	if (e)
		RW_SUBMIT(cgroup, e);
	return 0;
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	if (rw_skip())
		return 0;
	struct cgroup_event *e = cgroup_record(cgrp, path, RW_CGROUP_RMDIR);
	if (e)
		RW_SUBMIT(cgroup, e);
	return 0;
}

/* Once per migrated thread: moving a process moves each of its threads. */
SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(cgroup_attach, struct cgroup *dst_cgrp, const char *path, struct task_struct *task,
	     bool threadgroup)
{
	if (rw_skip())
		return 0;
	struct cgroup_event *e = cgroup_record(dst_cgrp, path, RW_CGROUP_ATTACH);
	if (!e)
		return 0;
	e->task_pid = BPF_CORE_READ(task, tgid);
	e->task_tid = BPF_CORE_READ(task, pid);
	if (threadgroup)
		e->flags |= RW_CGROUP_THREADGROUP;
	RW_SUBMIT(cgroup, e);
	return 0;
}

/* Fires once per victim task (the kernel marks a task only once). */
SEC("tracepoint/oom/mark_victim")
int oom_mark_victim(struct trace_event_raw_mark_victim *ctx)
{
	if (rw_skip())
		return 0;
	struct oom_event *e = RW_RESERVE(cgroup, struct oom_event, RW_OOM_KILL);
	if (!e)
		return 0;
	e->victim_pid = ctx->pid;
	e->flags = 0;
	e->victim_uid = 0;
	e->oom_score_adj = 0;
	e->total_vm_kb = 0;
	e->anon_rss_kb = 0;
	e->file_rss_kb = 0;
	e->shmem_rss_kb = 0;
	e->pgtables_kb = 0;
	e->victim_comm[0] = 0;
	/* Up to 6.8 the record holds the pid only; later kernels added fields. */
	if (bpf_core_field_exists(ctx->total_vm) && bpf_core_field_exists(ctx->__data_loc_comm)) {
		e->flags |= RW_OOM_DETAIL;
		e->oom_score_adj = ctx->oom_score_adj;
		e->total_vm_kb = ctx->total_vm;
		e->anon_rss_kb = ctx->anon_rss;
		e->file_rss_kb = ctx->file_rss;
		e->shmem_rss_kb = ctx->shmem_rss;
		e->pgtables_kb = ctx->pgtables;
		/* __data_loc: offset from the record's start in the low 16 bits. */
		__u32 loc = ctx->__data_loc_comm;
		if (bpf_probe_read_kernel_str(e->victim_comm, sizeof(e->victim_comm),
					      (void *)ctx + (loc & 0xffff)) < 1)
			e->victim_comm[0] = 0;
	}
	if (bpf_core_field_exists(ctx->uid)) {
		e->flags |= RW_OOM_UID;
		e->victim_uid = ctx->uid;
	}
	RW_SUBMIT(cgroup, e);
	return 0;
}

RW_LAYOUT(cgroup_event);
RW_LAYOUT(oom_event);
RW_ENUM(rw_cgroup_type);
RW_ENUM(rw_cgroup_flags);
RW_ENUM(rw_oom_flags);
