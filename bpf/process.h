/* SPDX-License-Identifier: GPL-2.0 */
/* Process family records: exec, exit, fork. Mirrored in src/family/process.rs. */
#ifndef RW_PROCESS_H
#define RW_PROCESS_H
#include "common.h"
#include "path.h"

#define RW_FILENAME_LEN 512
#define RW_ARGS_LEN 1024

/* rw_header.type of this family's records */
enum rw_process_type {
	RW_EXEC = 1,
	RW_EXIT = 2,
	RW_FORK = 3,
};

/* login_uid, session_id: not set (AUDIT_UID_UNSET, AUDIT_SID_UNSET). */
#define RW_UNSET 0xffffffffU

/* exec_event.flags */
enum rw_exec_flags {
	RW_EXEC_FILENAME_TRUNCATED = 1,
	RW_EXEC_ARGS_TRUNCATED = 2,
	/* Rejected by the filters (and counted so), sent only to keep the daemon's process
	 * table true: never written out. Also in exit_event and fork_event .flags. */
	RW_EXEC_CONTEXT_ONLY = 4,
};

/* Sent variable-size: the record ends after exe_len bytes of exe. */
struct exec_event {
	struct rw_header hdr;
	__u32 filename_len; /* bytes in filename, without the NUL */
	__u32 args_len;     /* bytes in args: the argv strings, each NUL-terminated */
	__u32 argc;         /* the real argc, even when args is truncated */
	__u32 flags;
	__u32 exe_len;   /* bytes in exe (no NUL); 0 when the file could not be named */
	__u32 exe_flags; /* RW_RESOLVE_* (path.h) */
	/* The audit login uid and session (set once by pam_loginuid at login, kept through
	 * su, sudo, setpriv and fork); RW_UNSET when never set or the kernel has no audit. */
	__u32 login_uid;
	__u32 session_id;
	char filename[RW_FILENAME_LEN]; /* as the caller passed it to execve */
	char args[RW_ARGS_LEN];
	/* The file the kernel executed (the interpreter for a script, as /proc/PID/exe
	 * says), named from its dentry and mounts. */
	char exe[];
};

struct exit_event {
	struct rw_header hdr;
	__s32 exit_code; /* status >> 8, as wait(2) reports it */
	__u32 signal;    /* terminating signal, 0 for a normal exit */
	__u64 lifetime_ns;
	__u32 core_dumped;
	__u32 flags; /* RW_EXEC_CONTEXT_ONLY or 0 */
};

struct fork_event {
	struct rw_header hdr;
	__u32 child_pid;
	__u32 child_tid;
	__u32 flags; /* RW_EXEC_CONTEXT_ONLY or 0 */
	__u32 pad;
};

#endif
