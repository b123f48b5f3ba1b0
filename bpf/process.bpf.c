// SPDX-License-Identifier: GPL-2.0
/* Process family: exec, exit, fork from tp_btf sched tracepoints (no tracefs needed). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "process.h"

char LICENSE[] SEC("license") = "GPL";

RW_DECLARE_RING(process);

#define RW_EEXIST 17

/* The args read masks its size with RW_ARGS_LEN - 1. */
_Static_assert((RW_ARGS_LEN & (RW_ARGS_LEN - 1)) == 0, "RW_ARGS_LEN must be a power of two");

RW_DECLARE_OUT_BUF(process);
_Static_assert(sizeof(struct exec_event) + RW_RESOLVED_LEN <= RW_OUT_MASK, "record under the mask");

/* The filters judge the current task's record: false, not to be sent. One they reject
 * is still sent, flagged RW_EXEC_CONTEXT_ONLY (and counted as filtered), while the daemon
 * keeps process context: an exec, fork or exit it missed would leave the table wrong
 * (a reused pid named as its old process). */
static __always_inline bool rw_judge_process(__u32 *flags)
{
	if (!RW_FILTERED(process))
		return true;
	if (!rw_context_on())
		return false;
	*flags = RW_EXEC_CONTEXT_ONLY;
	return true;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (rw_skip())
		return 0;
	__u32 flags = 0;
	if (!rw_judge_process(&flags))
		return 0;
	struct rw_out_buf *b = process_out_buf();
	struct rw_path_scratch *ps = rw_path_buf();
	if (!b || !ps) {
		RW_COUNT_UNTRACKED(process);
		return 0;
	}
	struct exec_event *e = (struct exec_event *)b->rec;
	rw_fill_header(&e->hdr, RW_EXEC, bpf_ktime_get_boot_ns());

	e->flags = flags;
	const char *fname = BPF_CORE_READ(bprm, filename);
	long n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), fname);
	if (n < 1) {
		n = 1;
		e->filename[0] = 0;
	}
	e->filename_len = n - 1;
	/* A string that filled the buffer may have been cut short. */
	if (n == sizeof(e->filename))
		e->flags |= RW_EXEC_FILENAME_TRUNCATED;

	e->argc = BPF_CORE_READ(bprm, argc);
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	unsigned long start = BPF_CORE_READ(mm, arg_start);
	unsigned long end = BPF_CORE_READ(mm, arg_end);
	unsigned long len = end > start ? end - start : 0;
	if (len > RW_ARGS_LEN) {
		len = RW_ARGS_LEN;
		e->flags |= RW_EXEC_ARGS_TRUNCATED;
	}
	/* The size must be provably within e->args whatever the compiler makes of the clamp
	 * above: barrier_var hides len's range from the compiler, so it cannot fold the mask
	 * away, and the mask bounds the size to [1, RW_ARGS_LEN] for the verifier by itself
	 * (it equals len for every len in that range). */
	barrier_var(len);
	if (len && bpf_probe_read_user(e->args, ((len - 1) & (RW_ARGS_LEN - 1)) + 1, (void *)start))
		len = 0;
	e->args_len = len;

	/* Fields of CONFIG_AUDIT kernels only. */
	e->login_uid = bpf_core_field_exists(p->loginuid) ? p->loginuid.val : RW_UNSET;
	e->session_id = bpf_core_field_exists(p->sessionid) ? p->sessionid : RW_UNSET;

	/* The executed file as the kernel's objects name it, from the new task's root. */
	e->exe_flags = 0;
	__u32 exe_len = 0;
	struct file *file = bprm->file;
	if (file)
		exe_len = rw_resolve_file(p, file, ps, e->exe, &e->exe_flags);
	e->exe_len = exe_len;
	RW_OUTPUT(process, &e->hdr, sizeof(*e) + exe_len, RW_OUT_MASK);
	return 0;
}

/* Processes whose exit was reported, for the threads that exit with it. */
struct exit_key {
	__u64 signal;         /* struct signal_struct *, shared by the threads */
	__u64 start_boottime; /* of the group leader: a reused signal_struct is another key */
};

/* LRU: an entry only has to outlive the few threads racing through do_exit together;
 * nothing else ever needs it, so eviction loses nothing. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct exit_key);
	__type(value, __u8);
} process_exited SEC(".maps");

/* Reported once per process: by its last thread, when the thread group is dead. The
 * kernel decrements signal->live before this tracepoint, so threads exiting at once can
 * all read 0 (6.1's tracepoint has no group_dead argument to tell the last one): the
 * first of them to claim the process's key reports. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(process_exit, struct task_struct *p)
{
	if (rw_skip())
		return 0;
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	struct exit_key key = {
		.signal = (__u64)BPF_CORE_READ(p, signal),
		.start_boottime = BPF_CORE_READ(p, group_leader, start_boottime),
	};
	__u8 one = 1;
	/* Any other failure reports: better a rare duplicate than a lost exit. */
	if (bpf_map_update_elem(&process_exited, &key, &one, BPF_NOEXIST) == -RW_EEXIST)
		return 0;
	__u32 flags = 0;
	if (!rw_judge_process(&flags))
		return 0;
	struct exit_event *e = RW_RESERVE_JUDGED(process, struct exit_event, RW_EXIT);
	if (!e)
		return 0;
	e->flags = flags;
	int code = BPF_CORE_READ(p, exit_code);
	e->exit_code = (code >> 8) & 0xff;
	e->signal = code & 0x7f;
	e->core_dumped = (code & 0x80) ? 1 : 0;
	__u64 start = key.start_boottime;
	e->lifetime_ns = e->hdr.ts_ns > start ? e->hdr.ts_ns - start : 0;
	RW_SUBMIT(process, e);
	return 0;
}

/* New processes only; new threads of an existing process are not forks. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(process_fork, struct task_struct *parent, struct task_struct *child)
{
	if (rw_skip())
		return 0;
	__u32 cpid = BPF_CORE_READ(child, pid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (cpid != ctgid)
		return 0;
	__u32 flags = 0;
	if (!rw_judge_process(&flags))
		return 0;
	struct fork_event *e = RW_RESERVE_JUDGED(process, struct fork_event, RW_FORK);
	if (!e)
		return 0;
	e->child_pid = ctgid;
	e->child_tid = cpid;
	e->flags = flags;
	e->pad = 0;
	RW_SUBMIT(process, e);
	return 0;
}

RW_LAYOUT(exec_event);
RW_LAYOUT(exit_event);
RW_LAYOUT(fork_event);
RW_ENUM(rw_process_type);
RW_ENUM(rw_exec_flags);
RW_ENUM(rw_resolve_flags);
