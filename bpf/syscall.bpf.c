// SPDX-License-Identifier: GPL-2.0
/* Syscall family: the configured syscalls with args, return value and latency, from the
 * generic raw_tp sys_enter / sys_exit (no tracefs, one pair for every syscall). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "syscall.h"

char LICENSE[] SEC("license") = "GPL";

RW_DECLARE_RING(syscall, 1024 * 1024);

/* 1 = report this syscall number. Written by userspace (--syscalls), changeable live. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RW_SYSCALL_MAX_NR);
	__type(key, __u32);
	__type(value, __u8);
} syscall_filter SEC(".maps");

struct syscall_start {
	__u64 ts;
	__u64 nr;
	__u64 args[6];
};

/* Syscalls in flight, by thread: a plain hash (see RW_STASH). The exit tracepoint fires
 * even for a thread killed inside a syscall; thread exit and exec clean up the syscalls
 * that never return. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct syscall_start);
} syscall_inflight SEC(".maps");

/* x86: thread_info.status bit set for the duration of a 32-bit syscall (int 0x80,
 * sysenter, 32-bit syscall), including its sys_exit. arch/x86/include/asm/thread_info.h. */
#define RW_TS_COMPAT 0x0002

/* Whether the current syscall is a 32-bit compat one. Its id is an ia32 number, which
 * names another syscall in the 64-bit table (ia32 getpid 20 is x86_64 writev). */
static __always_inline bool is_compat_syscall(void)
{
#if defined(__TARGET_ARCH_x86)
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	if (!bpf_core_field_exists(task->thread_info.status))
		return false;
	return BPF_CORE_READ(task, thread_info.status) & RW_TS_COMPAT;
#else
	/* Other arches' compat syscalls are not told apart yet. */
	return false;
#endif
}

SEC("raw_tp/sys_enter")
int BPF_PROG(syscall_enter, struct pt_regs *regs, long id)
{
	/* Cheapest first: every syscall of the machine comes through here. (x32 syscalls
	 * carry __X32_SYSCALL_BIT in id: out of range, not followed.) */
	if (id < 0 || id >= RW_SYSCALL_MAX_NR)
		return 0;
	__u32 nr = id;
	__u8 *on = bpf_map_lookup_elem(&syscall_filter, &nr);
	if (!on || !*on)
		return 0;
	if (rw_skip())
		return 0;
	/* The filter and the names are the 64-bit table's: a compat syscall whose number is
	 * in the set is no such syscall. It is not reported but counted as untracked, so the
	 * books show it; compat syscalls whose number is not in the set are not looked at
	 * (that would cost a read on every syscall of the machine). Checked after the filter
	 * for the same reason. Its exit finds no entry and reports nothing. */
	if (is_compat_syscall()) {
		RW_COUNT_UNTRACKED(syscall);
		return 0;
	}
	struct syscall_start s = {};
	s.ts = bpf_ktime_get_boot_ns();
	s.nr = nr;
	s.args[0] = PT_REGS_PARM1_CORE_SYSCALL(regs);
	s.args[1] = PT_REGS_PARM2_CORE_SYSCALL(regs);
	s.args[2] = PT_REGS_PARM3_CORE_SYSCALL(regs);
	s.args[3] = PT_REGS_PARM4_CORE_SYSCALL(regs);
	s.args[4] = PT_REGS_PARM5_CORE_SYSCALL(regs);
	s.args[5] = PT_REGS_PARM6_CORE_SYSCALL(regs);
	__u64 key = bpf_get_current_pid_tgid();
	RW_STASH(syscall, &syscall_inflight, &key, &s);
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(syscall_exit, struct pt_regs *regs, long ret)
{
	__u64 now = bpf_ktime_get_boot_ns();
	__u64 key = bpf_get_current_pid_tgid();
	/* Only syscalls that passed the filter on entry have an entry here. */
	struct syscall_start *sp = bpf_map_lookup_elem(&syscall_inflight, &key);
	if (!sp)
		return 0;
	struct syscall_start s = *sp;
	bpf_map_delete_elem(&syscall_inflight, &key);
	if (rw_skip())
		return 0;
	struct syscall_event *e = RW_RESERVE(syscall, struct syscall_event, RW_SYSCALL);
	if (!e)
		return 0;
	e->nr = s.nr;
	e->pad = 0;
	e->ret = ret;
	e->latency_ns = now > s.ts ? now - s.ts : 0;
	for (int i = 0; i < 6; i++)
		e->args[i] = s.args[i];
	RW_SUBMIT(syscall, e);
	return 0;
}

/* A successful execve by a thread other than the leader takes over the leader's pid
 * (de_thread) before its sys_exit runs: move the entry to the new key. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(syscall_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (rw_skip())
		return 0;
	__u64 key = bpf_get_current_pid_tgid();
	__u64 old = (key & ~0xffffffffULL) | (__u32)old_pid;
	if (old == key)
		return 0;
	struct syscall_start *sp = bpf_map_lookup_elem(&syscall_inflight, &old);
	if (!sp)
		return 0;
	struct syscall_start s = *sp;
	bpf_map_delete_elem(&syscall_inflight, &old);
	RW_STASH(syscall, &syscall_inflight, &key, &s);
	return 0;
}

/* exit / exit_group never return: drop the thread's entry so a later thread that
 * reuses the id cannot pick it up. Fires once per exiting thread. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(syscall_thread_exit, struct task_struct *p)
{
	if (rw_skip())
		return 0;
	__u64 key = bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&syscall_inflight, &key);
	return 0;
}

RW_LAYOUT(syscall_event);
