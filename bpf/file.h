/* SPDX-License-Identifier: GPL-2.0 */
/* File family records: open / openat / openat2. Mirrored in src/family/file.rs. */
#ifndef RW_FILE_H
#define RW_FILE_H
#include "common.h"
#include "path.h"

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
	/* The user's buffer said something else at exit than at entry: path is the entry
	 * copy (closer to what the kernel read), resolved_path tells what was opened. */
	RW_OPEN_PATH_CHANGED = 4,
	/* Only one of the two copies could be read: a change could not be checked. */
	RW_OPEN_PATH_UNCHECKED = 8,
	/* resolved_path's RW_RESOLVE_* (path.h), shifted by RW_OPEN_RESOLVE_SHIFT; pipes and
	 * sockets (PSEUDO, no dentry name) are named pipe:[INO], socket:[INO]. */
	RW_OPEN_RESOLVED_TRUNCATED = 16,
	RW_OPEN_RESOLVED_DELETED = 32,
	RW_OPEN_RESOLVED_PSEUDO = 64,
	RW_OPEN_RESOLVED_OUTSIDE_ROOT = 128,
	/* The open succeeded but its file was not found in the fd table. */
	RW_OPEN_RESOLVED_UNAVAILABLE = 256,
};

#define RW_OPEN_RESOLVE_SHIFT 4
_Static_assert(RW_OPEN_RESOLVED_TRUNCATED == RW_RESOLVE_TRUNCATED << RW_OPEN_RESOLVE_SHIFT, "");
_Static_assert(RW_OPEN_RESOLVED_DELETED == RW_RESOLVE_DELETED << RW_OPEN_RESOLVE_SHIFT, "");
_Static_assert(RW_OPEN_RESOLVED_PSEUDO == RW_RESOLVE_PSEUDO << RW_OPEN_RESOLVE_SHIFT, "");
_Static_assert(RW_OPEN_RESOLVED_OUTSIDE_ROOT == RW_RESOLVE_OUTSIDE_ROOT << RW_OPEN_RESOLVE_SHIFT,
	       "");

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
