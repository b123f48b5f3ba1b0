// SPDX-License-Identifier: GPL-2.0
/* The filter object: owns the filter maps (filter.h) every family's object is handed at
 * load, and follows the pid trees of include_pid_tree through fork: a child of a process
 * in the tree is in it. A process leaves the tree when its task is freed (after it was
 * reaped: every event of its own, its exit included, was judged before), and each entry
 * holds the process's start time, so a reused pid is never taken for it. Not a family:
 * it has no ring and reports nothing. */
/* One object for every kernel: it uses nothing 5.10 lacks (build.rs builds no variant). */
#define RW_NO_VARIANT_510
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
/* Not common.h: this object has no ring and no rw_config of its own (the daemon holds one
 * rw_config per family, which the tamper checks find by name). */
#include "filter.h"
#include "layout.h"

char LICENSE[] SEC("license") = "GPL";

/* Whether generation g's trees are followed: the current one's, and one being written. */
static __always_inline bool follows_tree(__u32 g, __u32 cur)
{
	struct rw_filter_set *set = bpf_map_lookup_elem(&rw_filter_sets, &g);
	return set && (set->bits & RW_F_INCLUDE_TREE) &&
	       (g == cur || (set->flags & RW_SET_SEEDING));
}

/* New processes only: a new thread is already in its process's tree. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(filter_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (BPF_CORE_READ(child, pid) != ctgid)
		return 0;
	__u32 zero = 0;
	__u32 *cur = bpf_map_lookup_elem(&rw_filter_gen, &zero);
	if (!cur)
		return 0;
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u64 pstart = BPF_CORE_READ(parent, group_leader, start_boottime);
	for (__u32 g = 0; g < 2; g++) {
		if (!follows_tree(g, *cur & 1) || !rw_in_tree(g, ptgid, pstart))
			continue;
		struct rw_fkey_tree k = { .gen = g, .tgid = ctgid };
		__u64 start = BPF_CORE_READ(child, start_boottime);
		if (bpf_map_update_elem(&rw_filter_tree, &k, &start, BPF_ANY)) {
			struct rw_filter_stats *s = bpf_map_lookup_elem(&rw_filter_stats, &zero);
			if (s)
				__sync_fetch_and_add(&s->tree_full, 1);
		}
	}
	return 0;
}

/* A process's leader is freed once its whole thread group is gone and reaped. */
SEC("tp_btf/sched_process_free")
int BPF_PROG(filter_free, struct task_struct *p)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);
	if (BPF_CORE_READ(p, pid) != tgid)
		return 0;
	__u64 start = BPF_CORE_READ(p, start_boottime);
	for (__u32 g = 0; g < 2; g++) {
		struct rw_fkey_tree k = { .gen = g, .tgid = tgid };
		__u64 *v = bpf_map_lookup_elem(&rw_filter_tree, &k);
		if (v && rw_tree_same(*v, start))
			bpf_map_delete_elem(&rw_filter_tree, &k);
	}
	return 0;
}

RW_LAYOUT(rw_filter_set);
RW_LAYOUT(rw_fkey_comm);
RW_LAYOUT(rw_fkey_uid);
RW_LAYOUT(rw_fkey_path);
RW_LAYOUT(rw_fkey_addr);
RW_LAYOUT(rw_fkey_port);
RW_LAYOUT(rw_fkey_tree);
RW_LAYOUT(rw_loss_key);
RW_LAYOUT(rw_loss);
RW_LAYOUT(rw_loss_slot);
RW_LAYOUT(rw_filter_stats);
RW_LAYOUT(rw_bucket);
RW_ENUM(rw_filter_bits);
RW_ENUM(rw_filter_list);
RW_ENUM(rw_set_flags);
