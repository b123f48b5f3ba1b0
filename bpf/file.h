/* SPDX-License-Identifier: GPL-2.0 */
/* File family records: open / openat / openat2, and the changes (unlink, rmdir, mkdir,
 * rename, chmod, chown, link, symlink, truncate). Mirrored in src/family/file.rs. */
#ifndef RW_FILE_H
#define RW_FILE_H
#include "common.h"
#include "path.h"

#define RW_PATH_LEN 512

/* rw_header.type of this family's records */
enum rw_file_type {
	RW_OPEN = 4,
	RW_UNLINK = 14,
	RW_RMDIR = 15,
	RW_MKDIR = 16,
	RW_RENAME = 17,
	RW_CHMOD = 18,
	RW_CHOWN = 19,
	RW_LINK = 20,
	RW_SYMLINK = 21,
	RW_TRUNCATE = 22,
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

/* change_event.syscall: which syscall the process made. */
enum rw_change_syscall {
	RW_SYS_UNLINK = 1,
	RW_SYS_UNLINKAT = 2,
	RW_SYS_RMDIR = 3,
	RW_SYS_MKDIR = 4,
	RW_SYS_MKDIRAT = 5,
	RW_SYS_RENAME = 6,
	RW_SYS_RENAMEAT = 7,
	RW_SYS_RENAMEAT2 = 8,
	RW_SYS_CHMOD = 9,
	RW_SYS_FCHMOD = 10,
	RW_SYS_FCHMODAT = 11,
	RW_SYS_FCHMODAT2 = 12,
	RW_SYS_CHOWN = 13,
	RW_SYS_LCHOWN = 14,
	RW_SYS_FCHOWN = 15,
	RW_SYS_FCHOWNAT = 16,
	RW_SYS_LINK = 17,
	RW_SYS_LINKAT = 18,
	RW_SYS_SYMLINK = 19,
	RW_SYS_SYMLINKAT = 20,
	RW_SYS_TRUNCATE = 21,
	RW_SYS_FTRUNCATE = 22,
};

/* change_event.path_flags. The two paths as the process passed them have the
 * RW_OPEN_PATH_* bits of open (path at 0, path2 shifted by RW_CHANGE_PATH2_SHIFT); each
 * resolved name has the RW_RESOLVE_* bits (path.h) shifted by its own shift. */
enum rw_change_flags {
	RW_CHANGE_PATH2_SHIFT = 4,
	RW_CHANGE_R1_SHIFT = 8,
	RW_CHANGE_R2_SHIFT = 12,
	/* resolved is the file the call changed (an fd: fchmod, fchown, ftruncate, or
	 * AT_EMPTY_PATH), not the directory path starts from. */
	RW_CHANGE_R1_FILE = 1 << 16,
	/* The fd (or directory fd) named no file in the fd table: nothing resolved. */
	RW_CHANGE_R1_UNAVAILABLE = 1 << 17,
	RW_CHANGE_R2_UNAVAILABLE = 1 << 18,
};

/* One file change, paired from the syscall's entry and exit. Sent variable-size: the
 * names follow the fixed part back to back, each only as long as it is (a rename of two
 * short paths is ~150 bytes, not the 1.2 KB of two full path fields: 8 times as many
 * fit a ring, and the copy into it is shorter): path (path_len), path2 (path2_len),
 * resolved (resolved_len), resolved2 (resolved2_len). */
struct change_event {
	struct rw_header hdr;
	__s64 ret;     /* 0 or -errno */
	__s64 length;  /* truncate, ftruncate: the length asked for */
	__u32 syscall; /* enum rw_change_syscall */
	__u32 mode;    /* mkdir*, chmod*: as passed */
	__u32 flags;   /* as passed: unlinkat, renameat2, fchmodat2, fchownat, linkat */
	__u32 uid;     /* chown*: as passed ((u32)-1: unchanged) */
	__u32 gid;
	__s32 fd;            /* the fd of f* calls; the directory fd path starts from (AT_FDCWD) */
	__s32 fd2;           /* the directory fd path2 starts from (AT_FDCWD) */
	__u32 path_len;      /* the (first) path as passed: from the process's memory */
	__u32 path2_len;     /* rename, link: the new name; symlink: the link's name */
	__u32 path_flags;    /* RW_CHANGE_*, RW_OPEN_PATH_* */
	__u32 resolved_len;  /* from the kernel: the directory path starts from, or the file */
	__u32 resolved2_len; /* from the kernel: path2's directory */
	char names[];
};

#endif
