// SPDX-License-Identifier: GPL-2.0
/* File family: open, openat, openat2 from the syscalls tracepoints (tracefs). Enter
 * stashes the arguments by thread, exit pairs them with the result: one event per
 * completed syscall. The path is read at exit, when the kernel has already copied it
 * (so its page is present and a non-sleepable read does not fail on a fault). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "file.h"

char LICENSE[] SEC("license") = "GPL";

RW_DECLARE_RING(file);

/* Same on x86, arm64 and the other asm-generic arches. */
#define RW_O_CREAT 00000100
#define RW_O_TMPFILE_BIT 020000000
#define RW_AT_FDCWD -100

/* Arguments of a syscall in flight, by thread. */
struct open_args {
	__u64 filename; /* user pointer */
	__u64 flags;
	__u32 mode;
	__s32 dfd;
	__u32 syscall;
	__u32 pad;
};

/* A plain hash, not LRU: an entry lives only between a thread's enter and exit, so
 * the map holds at most one entry per thread inside open (an LRU could evict a live
 * one under load and lose an event). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct open_args);
} file_inflight SEC(".maps");

static __always_inline int stash(__u64 filename, __u64 flags, __u32 mode, __s32 dfd, __u32 sc)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct open_args a = {
		.filename = filename,
		.flags = flags,
		.mode = mode,
		.dfd = dfd,
		.syscall = sc,
	};
	RW_STASH(file, &file_inflight, &tid, &a);
	return 0;
}

/* open(2)/openat(2) ignore mode unless they may create a file; report it the same way
 * (the register holds whatever the caller left there otherwise). */
static __always_inline __u32 creat_mode(__u64 flags, __u64 mode)
{
	return (flags & (RW_O_CREAT | RW_O_TMPFILE_BIT)) ? (__u32)mode : 0;
}

static __always_inline int emit(long ret, __u32 sc)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct open_args *a = bpf_map_lookup_elem(&file_inflight, &tid);
	if (!a)
		return 0;
	struct open_args args = *a;
	bpf_map_delete_elem(&file_inflight, &tid);
	/* An enter of another syscall whose exit was not seen (e.g. its exit program was not
	 * attached yet), and this syscall's enter was not either: neither is followed. */
	if (args.syscall != sc) {
		RW_COUNT_UNTRACKED(file);
		return 0;
	}

	struct open_event *e = RW_RESERVE(file, struct open_event, RW_OPEN);
	if (!e)
		return 0;
	e->ret = ret;
	e->flags = args.flags;
	e->mode = args.mode;
	e->dfd = args.dfd;
	e->syscall = sc;
	e->path_flags = 0;
	e->pad = 0;
	const char *up = (const char *)args.filename;
	long n = bpf_probe_read_user_str(e->path, sizeof(e->path), up);
	if (n < 1) {
		n = 1;
		e->path[0] = 0;
		e->path_flags |= RW_OPEN_PATH_UNREADABLE;
	} else if (n == sizeof(e->path)) {
		/* The buffer is full: truncated unless the string ends exactly there. */
		char next = 0;
		if (bpf_probe_read_user(&next, 1, up + sizeof(e->path) - 1) || next)
			e->path_flags |= RW_OPEN_PATH_TRUNCATED;
	}
	e->path_len = n - 1;
	RW_SUBMIT(file, e);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int file_enter_open(struct trace_event_raw_sys_enter *ctx)
{
	if (rw_skip())
		return 0;
	__u64 flags = (__u32)ctx->args[1];
	return stash(ctx->args[0], flags, creat_mode(flags, ctx->args[2]), RW_AT_FDCWD,
		     RW_SYS_OPEN);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int file_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	if (rw_skip())
		return 0;
	__u64 flags = (__u32)ctx->args[2];
	return stash(ctx->args[1], flags, creat_mode(flags, ctx->args[3]), (__s32)ctx->args[0],
		     RW_SYS_OPENAT);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int file_enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	if (rw_skip())
		return 0;
	/* struct open_how { flags, mode, resolve }: usize >= 24 or the kernel refuses it.
	 * If it cannot be read the kernel fails with EFAULT; flags and mode stay 0. */
	struct open_how how = {};
	bpf_probe_read_user(&how, 2 * sizeof(__u64), (void *)ctx->args[2]);
	return stash(ctx->args[1], how.flags, (__u32)how.mode, (__s32)ctx->args[0], RW_SYS_OPENAT2);
}

SEC("tracepoint/syscalls/sys_exit_open")
int file_exit_open(struct trace_event_raw_sys_exit *ctx)
{
	if (rw_skip())
		return 0;
	return emit(ctx->ret, RW_SYS_OPEN);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int file_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	if (rw_skip())
		return 0;
	return emit(ctx->ret, RW_SYS_OPENAT);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int file_exit_openat2(struct trace_event_raw_sys_exit *ctx)
{
	if (rw_skip())
		return 0;
	return emit(ctx->ret, RW_SYS_OPENAT2);
}

RW_LAYOUT(open_event);
RW_ENUM(rw_file_type);
RW_ENUM(rw_open_syscall);
RW_ENUM(rw_open_path_flags);
