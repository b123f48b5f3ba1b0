// SPDX-License-Identifier: GPL-2.0
/* Syscall family: the configured syscalls with args, return value and latency, from the
 * generic sys_enter / sys_exit raw tracepoints (tp_btf: no tracefs, one pair for every
 * syscall). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "syscall.h"

char LICENSE[] SEC("license") = "GPL";

RW_DECLARE_RING(syscall);

/* By syscall number: enum rw_syscall_filter_bits. Written by userspace (--syscalls sets
 * RW_FILTER_REPORT, changeable live; RW_FILTER_COMPAT is fixed: syscall::COMPAT_WATCHED). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RW_SYSCALL_MAX_NR);
	__type(key, __u32);
	__type(value, __u8);
} syscall_filter SEC(".maps");

/* A syscall of the set in flight on a thread, from its enter to its exit. */
struct syscall_start {
	__u64 ts;
	__u32 nr;
	__u32 active; /* 1 between a reported enter and its exit */
	__u64 args[6];
};

/* Per thread (task local storage, RW_THREAD_MAP), not a hash keyed by tid: cheaper on the
 * hot path (no hashing, no bucket lock, no freelist; perf showed the hash at ~10 % of a
 * getppid storm), and it lives and dies with the task: a thread that exits inside a
 * syscall leaves nothing behind, and a non-leader thread whose execve takes over the
 * leader's pid keeps its own entry, so no exec/exit bookkeeping programs are needed
 * (except in the 5.10 variant, whose map is that hash: RW_THREAD_PROGS below). */
RW_THREAD_MAP(syscall_inflight, struct syscall_start);

_Static_assert((RW_SYSCALL_MAX_NR & (RW_SYSCALL_MAX_NR - 1)) == 0, "masked as an index");

/* The counts of struct syscall_unseen, in one entry so that userspace reads them with one
 * lookup. A plain array with atomic adds, not a per-CPU one: both paths are rare next to
 * native syscalls, and libbpf cannot read a per-CPU array in one call. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syscall_unseen);
} syscall_unseen SEC(".maps");

static __always_inline struct syscall_unseen *unseen(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&syscall_unseen, &zero);
}

/* tp_btf, not raw_tp: the arguments are typed, so the registers and the task are read
 * with plain loads instead of a bpf_probe_read_kernel call each. */
SEC("tp_btf/sys_enter")
int BPF_PROG(syscall_enter, struct pt_regs *regs, long id)
{
	/* Cheapest first: every syscall of the machine comes through here. (x32 syscalls
	 * carry __X32_SYSCALL_BIT in id: out of range, not followed.) */
	if (id < 0 || id >= RW_SYSCALL_MAX_NR)
		return 0;
	__u32 nr = id;
	__u8 *f = bpf_map_lookup_elem(&syscall_filter, &nr);
	if (!f || !*f)
		return 0;
	struct task_struct *task = rw_current_task();
	/* Compat syscalls carry ia32 numbers, which name other syscalls in the 64-bit table
	 * (ia32 getpid 20 is x86_64 writev), so only numbers with a bit set are looked at:
	 * telling compat apart takes a helper call (14-30 ns per syscall measured here), and
	 * most syscalls of the machine have no bit and leave above. An ia32 number with
	 * RW_FILTER_COMPAT is counted: no other program of ringwarden sees it (the
	 * per-syscall tracepoints do not fire for compat syscalls). One in the 64-bit set
	 * is not reported but counted as untracked, so the ring's books show it; its exit
	 * finds no active entry and reports nothing. */
	if (is_compat_syscall(task)) {
		struct syscall_unseen *u = unseen();
		/* nr comes back from the stack after the calls, its range lost to the
		 * verifier; the mask restores it (barrier_var: the compiler, which knows the
		 * range, would fold the mask away). */
		__u32 i = nr;
		barrier_var(i);
		if (u && (*f & RW_FILTER_COMPAT))
			__sync_fetch_and_add(&u->compat[i & (RW_SYSCALL_MAX_NR - 1)], 1);
		if ((*f & RW_FILTER_REPORT) && !rw_skip())
			RW_COUNT_UNTRACKED(syscall);
		return 0;
	}
	if (!(*f & RW_FILTER_REPORT) || rw_skip_tgid(RW_TASK_TGID(task)))
		return 0;
	struct syscall_start *s = RW_THREAD_GET(&syscall_inflight, struct syscall_start, true);
	if (!s) {
		/* No memory for the entry (or storage busy in a nested program): on the books. */
		RW_COUNT_UNTRACKED(syscall);
		return 0;
	}
	s->ts = bpf_ktime_get_boot_ns();
	s->nr = nr;
	s->args[0] = PT_REGS_PARM1_SYSCALL(regs);
	s->args[1] = PT_REGS_PARM2_SYSCALL(regs);
	s->args[2] = PT_REGS_PARM3_SYSCALL(regs);
	s->args[3] = PT_REGS_PARM4_SYSCALL(regs);
	s->args[4] = PT_REGS_PARM5_SYSCALL(regs);
	s->args[5] = PT_REGS_PARM6_SYSCALL(regs);
	s->active = 1;
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(syscall_exit, struct pt_regs *regs, long ret)
{
	/* Only threads that made a syscall of the set have storage: for every other exit
	 * of the machine this is a NULL check. */
	struct syscall_start *sp = RW_THREAD_GET(&syscall_inflight, struct syscall_start, false);
	if (!sp || !sp->active)
		return 0;
	RW_THREAD_DONE_AT_RETURN(syscall_inflight);
	sp->active = 0;
	/* The enter passed rw_skip: only a stop since matters. */
	if (rw_stopped())
		return 0;
	__u64 now = bpf_ktime_get_boot_ns();
	struct syscall_event *e = RW_RESERVE_AT(syscall, struct syscall_event, RW_SYSCALL, now);
	if (!e)
		return 0;
	e->nr = sp->nr;
	e->pad = 0;
	e->ret = ret;
	e->latency_ns = now > sp->ts ? now - sp->ts : 0;
	for (int i = 0; i < 6; i++)
		e->args[i] = sp->args[i];
	RW_SUBMIT(syscall, e);
	return 0;
}

RW_THREAD_PROGS(syscall, RW_THREAD_FORGET(&syscall_inflight));

/* The tracepoints' records (trace_event_raw_*), reduced to the one member read: CO-RE
 * finds `opcode` wherever the running kernel's record has it. io_uring_submit_req is
 * 6.3+; before it, io_uring_submit_sqe (5.19-6.2: from the request; 5.5-5.18: the
 * opcode a plain argument). Both keep a u8 `opcode` in their record. */
struct trace_event_raw_io_uring_submit_req___rw {
	__u8 opcode;
} __attribute__((preserve_access_index));

struct trace_event_raw_io_uring_submit_sqe___rw {
	__u8 opcode;
} __attribute__((preserve_access_index));

static __always_inline void count_io_uring(__u8 op)
{
	struct syscall_unseen *u = unseen();
	if (u)
		__sync_fetch_and_add(&u->io_uring[op], 1);
}

/* One per io_uring request submitted (io_submit_sqe, also from an SQPOLL thread), with
 * its opcode: opens, connects and accepts done this way reach no syscall tracepoint. A
 * request whose setup fails (bad opcode, ...) fires io_uring_req_failed instead and does
 * nothing: not counted. Classic tracepoints, not tp_btf: the record's layout is the same
 * idea on every kernel, the raw arguments are not. The loader attaches whichever of the
 * two this kernel has; the guards keep the other verifiable. */
SEC("tracepoint/io_uring/io_uring_submit_req")
int syscall_io_uring(void *ctx)
{
	struct trace_event_raw_io_uring_submit_req___rw *r = ctx;
	if (!bpf_core_type_exists(struct trace_event_raw_io_uring_submit_req___rw) ||
	    !bpf_core_field_exists(r->opcode))
		return 0;
	count_io_uring(r->opcode);
	return 0;
}

SEC("tracepoint/io_uring/io_uring_submit_sqe")
int syscall_io_uring_sqe(void *ctx)
{
	struct trace_event_raw_io_uring_submit_sqe___rw *r = ctx;
	if (!bpf_core_type_exists(struct trace_event_raw_io_uring_submit_sqe___rw) ||
	    !bpf_core_field_exists(r->opcode))
		return 0;
	count_io_uring(r->opcode);
	return 0;
}

RW_LAYOUT(syscall_event);
RW_LAYOUT(syscall_unseen);
RW_ENUM(rw_syscall_type);
RW_ENUM(rw_syscall_limits);
RW_ENUM(rw_syscall_filter_bits);
