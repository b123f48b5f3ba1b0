// SPDX-License-Identifier: GPL-2.0
/* The filter object: owns the filter maps (filter.h) every family's object is handed at
 * load, and follows the pid trees of include_pid_tree through fork: a child of a process
 * in the tree is in it, and a process leaves it when its last thread exits (so a reused
 * pid is not taken for it). Not a family: it has no ring and reports nothing. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline bool follows_tree(__u32 gen)
{
	struct rw_filter_set *set = bpf_map_lookup_elem(&rw_filter_sets, &gen);
	return set && (set->bits & RW_F_INCLUDE_TREE);
}

/* New processes only: a new thread is already in its process's tree. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(filter_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (BPF_CORE_READ(child, pid) != ctgid)
		return 0;
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	/* Both generations: the one being written is followed too, so a flip finds it whole. */
	for (__u32 g = 0; g < 2; g++) {
		if (!follows_tree(g) || !rw_in_tree(g, ptgid))
			continue;
		struct rw_fkey_tree k = { .gen = g, .tgid = ctgid };
		__u8 one = 1;
		if (bpf_map_update_elem(&rw_filter_tree, &k, &one, BPF_ANY)) {
			__u32 zero = 0;
			struct rw_filter_stats *s = bpf_map_lookup_elem(&rw_filter_stats, &zero);
			if (s)
				__sync_fetch_and_add(&s->tree_full, 1);
		}
	}
	return 0;
}

/* The kernel decrements signal->live before this tracepoint: 0 means the whole thread
 * group is gone. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(filter_exit, struct task_struct *p)
{
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	__u32 tgid = BPF_CORE_READ(p, tgid);
	for (__u32 g = 0; g < 2; g++) {
		struct rw_fkey_tree k = { .gen = g, .tgid = tgid };
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
RW_LAYOUT(rw_filter_stats);
RW_ENUM(rw_filter_bits);
RW_ENUM(rw_filter_list);
RW_LAYOUT(rw_bucket);
