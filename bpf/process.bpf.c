// SPDX-License-Identifier: GPL-2.0
/* Process family: exec, exit, fork from tp_btf sched tracepoints (no tracefs needed). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "process.h"

char LICENSE[] SEC("license") = "GPL";

RW_DECLARE_RING(process, 256 * 1024);

SEC("tp_btf/sched_process_exec")
int BPF_PROG(process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (rw_skip())
		return 0;
	struct exec_event *e = RW_RESERVE(process, struct exec_event, RW_EXEC);
	if (!e)
		return 0;

	e->flags = 0;
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
	if (len && bpf_probe_read_user(e->args, len & (RW_ARGS_LEN * 2 - 1), (void *)start))
		len = 0;
	e->args_len = len;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Reported once per process: by its last thread, when the thread group is dead. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(process_exit, struct task_struct *p)
{
	if (rw_skip())
		return 0;
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	struct exit_event *e = RW_RESERVE(process, struct exit_event, RW_EXIT);
	if (!e)
		return 0;
	int code = BPF_CORE_READ(p, exit_code);
	e->exit_code = (code >> 8) & 0xff;
	e->signal = code & 0x7f;
	e->core_dumped = (code & 0x80) ? 1 : 0;
	e->pad = 0;
	__u64 start = BPF_CORE_READ(p, group_leader, start_boottime);
	e->lifetime_ns = e->hdr.ts_ns > start ? e->hdr.ts_ns - start : 0;
	bpf_ringbuf_submit(e, 0);
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
	struct fork_event *e = RW_RESERVE(process, struct fork_event, RW_FORK);
	if (!e)
		return 0;
	e->child_pid = ctgid;
	e->child_tid = cpid;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

RW_LAYOUT(exec_event);
RW_LAYOUT(exit_event);
RW_LAYOUT(fork_event);
