/* SPDX-License-Identifier: GPL-2.0 */
/* Anomaly family: rules evaluated in the kernel, one record type for all of them.
 * Mirrored in src/family/anomaly.rs, which also names rules, severities and codes. */
#ifndef RW_ANOMALY_H
#define RW_ANOMALY_H
#include "common.h"

#define RW_ANOMALY_DETAIL_LEN 256
#define RW_ANOMALY_NAME_LEN 64
#define RW_ANOMALY_ARGS 6

/* rw_header.type of this family's records */
enum rw_anomaly_type {
	RW_ANOMALY = 13,
};

/* anomaly_event.rule */
enum rw_anomaly_rule {
	RW_RULE_SETUID_ROOT = 1,
	RW_RULE_EXEC_FROM_TMP = 2,
	RW_RULE_EXEC_FROM_MEMFD = 3,
	RW_RULE_PTRACE_ATTACH = 4,
	RW_RULE_BPF_PROG_LOAD = 5,
	RW_RULE_MODULE_LOAD = 6,
};

/* anomaly_event.severity */
enum rw_anomaly_severity {
	RW_SEV_LOW = 1,
	RW_SEV_MEDIUM = 2,
	RW_SEV_HIGH = 3,
	RW_SEV_CRITICAL = 4,
};

/* Syscall codes in args[] (setuid_root, module_load). */
enum rw_anomaly_syscall {
	RW_SC_SETUID = 1,
	RW_SC_SETREUID = 2,
	RW_SC_SETRESUID = 3,
	RW_SC_SETFSUID = 4,
	RW_SC_INIT_MODULE = 5,
	RW_SC_FINIT_MODULE = 6,
};

/* Location codes in args[0] of exec_from_tmp. */
enum rw_anomaly_location {
	RW_LOC_TMP = 1,     /* /tmp */
	RW_LOC_VAR_TMP = 2, /* /var/tmp */
	RW_LOC_DEV_SHM = 3, /* /dev/shm */
	/* Deeper than the walk goes (RW_WALK_MAX steps): reported rather than missed. */
	RW_LOC_UNKNOWN = 4,
};

/* anomaly_event.flags */
enum rw_anomaly_flags {
	RW_ANOMALY_DETAIL_TRUNCATED = 1,
	RW_ANOMALY_NAME_TRUNCATED = 2,
	/* ptrace_attach, bpf_prog_load: no attempt of its own, only `suppressed`
	 * failures flushed when the process that made the latest of them exited. */
	RW_ANOMALY_SUMMARY = 4,
	/* `suppressed` is the shared count of every uid that found the rate table full
	 * (more than 4096 (uid, rule) pairs), not this uid's alone. */
	RW_ANOMALY_RATE_SHARED = 8,
};

/* What args[], detail and name hold depends on the rule:
 *  setuid_root:     args = old_uid, old_euid, old_fsuid, new_uid, new_euid, new_fsuid;
 *                   detail unused; the syscall code is in `code`. A setuid-root binary's
 *                   gain (old_euid 0: sudo, su, ...) is rate-limited per (old_uid, rule)
 *                   as failures are, `suppressed` counting those not reported; a gain
 *                   where euid was not 0 (exploit-like) is always reported.
 *  exec_from_tmp:   args[0] = location; detail = bprm->filename; name = the file's dentry.
 *  exec_from_memfd: detail = bprm->filename; name = the file's dentry ("memfd:...").
 *  ptrace_attach:   args = target_pid, request, ret, suppressed.
 *  bpf_prog_load:   args = prog_type, insn_cnt, attr size, ret, suppressed; name = prog_name.
 *                   ptrace_attach and bpf_prog_load report at the syscall's exit: every
 *                   success; failures at most once a second per (uid, rule), `suppressed`
 *                   counting that uid's failures of the rule not reported since its last
 *                   record (a RW_ANOMALY_SUMMARY record carries only that count).
 *  module_load:     args = fd (finit) or len (init), flags (finit); detail = the
 *                   parameter string; `code` = the syscall. */
struct anomaly_event {
	struct rw_header hdr;
	__u32 rule;     /* enum rw_anomaly_rule */
	__u32 severity; /* enum rw_anomaly_severity */
	__u32 code;     /* enum rw_anomaly_syscall, when the rule has one */
	__u32 flags;
	__u64 args[RW_ANOMALY_ARGS];
	__u32 detail_len; /* bytes in detail, without the NUL */
	__u32 name_len;   /* bytes in name, without the NUL */
	char detail[RW_ANOMALY_DETAIL_LEN];
	char name[RW_ANOMALY_NAME_LEN];
	__u64 suppressed; /* setuid_root only (the others keep it in args) */
};

#endif
