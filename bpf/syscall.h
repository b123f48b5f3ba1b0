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

/* Bits of a syscall_filter entry, by syscall number. */
enum rw_syscall_filter_bits {
	RW_FILTER_REPORT = 1, /* a 64-bit syscall of the configured set: reported */
	RW_FILTER_COMPAT = 2, /* an ia32 number whose compat syscall no family sees: counted */
};

/* Entries of syscall_filter (= syscalls::MAX_NR on the Rust side). */
enum rw_syscall_limits {
	RW_SYSCALL_MAX_NR = 1024,
	RW_IO_URING_OPS = 256, /* io_kiocb.opcode is a u8: every value has a slot */
};

struct syscall_event {
	struct rw_header hdr;
	__u32 nr;
	__u32 pad;
	__s64 ret;
	__u64 latency_ns; /* sys_enter -> sys_exit */
	__u64 args[6];
};

/* What no other program sees, counted where it can be (one map entry, read whole by
 * userspace). Compat syscalls (x86_64 `int 0x80` and 32-bit binaries) whose ia32 number
 * has RW_FILTER_COMPAT, by that number: the syscalls/sys_enter_* tracepoints of the file,
 * network and anomaly families never fire for them. io_uring submissions by opcode: the
 * kernel does the work without a syscall. */
struct syscall_unseen {
	__u64 compat[RW_SYSCALL_MAX_NR];
	__u64 io_uring[RW_IO_URING_OPS];
};

#endif
