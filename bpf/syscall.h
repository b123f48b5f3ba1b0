/* SPDX-License-Identifier: GPL-2.0 */
/* Syscall family record: one per completed syscall of the configured set.
 * Mirrored in src/family/syscall.rs. */
#ifndef RW_SYSCALL_H
#define RW_SYSCALL_H
#include "common.h"

/* rw_header.type of this family's records */
enum rw_syscall_type {
	RW_SYSCALL = 8,
};

/* Entries of syscall_filter (= syscalls::MAX_NR on the Rust side). */
enum rw_syscall_limits {
	RW_SYSCALL_MAX_NR = 1024,
};

struct syscall_event {
	struct rw_header hdr;
	__u32 nr;
	__u32 pad;
	__s64 ret;
	__u64 latency_ns; /* sys_enter -> sys_exit */
	__u64 args[6];
};

#endif
