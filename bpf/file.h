/* SPDX-License-Identifier: GPL-2.0 */
/* File family records: open / openat / openat2. Mirrored in src/family/file.rs. */
#ifndef RW_FILE_H
#define RW_FILE_H
#include "common.h"

#define RW_PATH_LEN 512
/* Room for resolved_path: PATH_MAX. A longer path keeps its end (the file's name). */
#define RW_RESOLVED_LEN 4096

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
	/* The user's buffer said something else at exit than at entry: path is the entry
	 * copy (closer to what the kernel read), resolved_path tells what was opened. */
	RW_OPEN_PATH_CHANGED = 4,
	/* Only one of the two copies could be read: a change could not be checked. */
	RW_OPEN_PATH_UNCHECKED = 8,
	/* resolved_path does not fit RW_RESOLVED_LEN (or is deeper than the walk goes): it
	 * keeps the end, the top of the path is missing. */
	RW_OPEN_RESOLVED_TRUNCATED = 16,
	RW_OPEN_RESOLVED_DELETED = 32, /* the file has no name any more (unlinked, O_TMPFILE) */
	/* Not in any directory (pipe, socket, memfd, anon inode): resolved_path is the
	 * kernel's name for it (pipe:[INO], socket:[INO], memfd:NAME). */
	RW_OPEN_RESOLVED_PSEUDO = 64,
	/* Not below the task's root (chroot, another mount namespace): resolved_path runs
	 * from the top of the file's mount tree. */
	RW_OPEN_RESOLVED_OUTSIDE_ROOT = 128,
	/* The open succeeded but its file was not found in the fd table. */
	RW_OPEN_RESOLVED_UNAVAILABLE = 256,
};

/* Sent variable-size: the record ends after resolved_len bytes of resolved. */
struct open_event {
	struct rw_header hdr;
	__s64 ret;   /* the new fd, or -errno */
	__u64 flags; /* O_* flags as the process passed them */
	__u64 ino;   /* inode number of the opened file; 0 when the open failed */
	__u32 mode; /* as passed; 0 unless O_CREAT/O_TMPFILE (open, openat), as the kernel sees it */
	__s32 dfd;  /* directory fd; AT_FDCWD (-100) for open */
	__u32 path_len;         /* bytes in path, without the NUL */
	__u32 syscall;          /* enum rw_open_syscall */
	__u32 path_flags;       /* RW_OPEN_* */
	__u32 resolved_len;     /* bytes in resolved (no NUL); 0 when the open failed */
	char path[RW_PATH_LEN]; /* from the process's memory: as it passed it */
	char resolved[];        /* from the kernel's objects: what was opened */
};

#endif
