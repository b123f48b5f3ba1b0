/* SPDX-License-Identifier: GPL-2.0 */
/* File family records: open / openat / openat2. Mirrored in src/family/file.rs. */
#ifndef RW_FILE_H
#define RW_FILE_H
#include "common.h"

#define RW_PATH_LEN 512

/* rw_header.type of this family's records */
enum rw_file_type {
	RW_OPEN = 4,
};

/* open_event.syscall: which syscall the process made. */
enum rw_open_syscall {
	RW_SYS_OPEN = 1,
	RW_SYS_OPENAT = 2,
	RW_SYS_OPENAT2 = 3,
};

/* open_event.path_flags */
enum rw_open_path_flags {
	RW_OPEN_PATH_TRUNCATED = 1,  /* the path is longer than RW_PATH_LEN - 1 bytes */
	RW_OPEN_PATH_UNREADABLE = 2, /* the user pointer could not be read (path is empty) */
};

struct open_event {
	struct rw_header hdr;
	__s64 ret;   /* the new fd, or -errno */
	__u64 flags; /* O_* flags as the process passed them */
	__u32 mode; /* as passed; 0 unless O_CREAT/O_TMPFILE (open, openat), as the kernel sees it */
	__s32 dfd;  /* directory fd; AT_FDCWD (-100) for open */
	__u32 path_len;   /* bytes in path, without the NUL */
	__u32 syscall;    /* enum rw_open_syscall */
	__u32 path_flags; /* RW_OPEN_PATH_* */
	__u32 pad;
	char path[RW_PATH_LEN];
};

#endif
