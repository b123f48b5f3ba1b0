// SPDX-License-Identifier: GPL-2.0
/* File family: open, openat, openat2, taken with the changes below on the generic raw
 * sys_enter / sys_exit (their own classic tracepoints cost each open two perf trace
 * records, ~400 ns a pair here: bench/notes.md, issue 15). Enter remembers the arguments
 * and a first copy of the path in the thread's own storage, exit pairs them with the
 * result: one event per completed syscall. The path is read again at exit (a copy that
 * changed in between is flagged), and a successful open's file is named from the
 * kernel's objects (resolved_path), not from the process's memory. */
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

/* A syscall in flight: its arguments and the path as it was at entry. */
struct open_start {
	__u64 filename; /* user pointer */
	__u64 flags;
	__u32 mode;
	__s32 dfd;
	__u32 syscall;
	__u32 active;     /* 1 from an enter to its exit */
	__u32 path_len;   /* of the entry copy */
	__u32 path_flags; /* of the entry copy: RW_OPEN_PATH_TRUNCATED, _UNREADABLE */
	__u32 fepoch;     /* the filter set the entry was judged by (its epoch and gen) */
	__u32 fgen;
	char path[RW_PATH_LEN];
};

/* Per thread (task local storage), not a table keyed by tid: nothing another user can
 * fill (a fixed-size table full of threads blocked in open hid everyone else's opens),
 * nothing evicted, and it goes away with the thread. Its memory is per thread that ever
 * opened while the daemon ran. (The 5.10 variant's is that table, of RW_THREADS_510
 * threads: bpf/kernel.h.) */
RW_THREAD_MAP(file_inflight, struct open_start);

RW_DECLARE_OUT_BUF(file);
_Static_assert(sizeof(struct open_event) + RW_RESOLVED_LEN <= RW_OUT_MASK, "record under the mask");

/* Reads the user's path into buf; returns its length, sets RW_OPEN_PATH_* in *flags. */
static __always_inline __u32 read_path(char *buf, __u64 filename, __u32 *flags)
{
	const char *up = (const char *)filename;
	long n = bpf_probe_read_user_str(buf, RW_PATH_LEN, up);
	if (n < 1) {
		buf[0] = 0;
		*flags |= RW_OPEN_PATH_UNREADABLE;
		return 0;
	}
	if (n == RW_PATH_LEN) {
		/* The buffer is full: truncated unless the string ends exactly there. */
		char next = 0;
		if (bpf_probe_read_user(&next, 1, up + RW_PATH_LEN - 1) || next)
			*flags |= RW_OPEN_PATH_TRUNCATED;
	}
	return n - 1;
}

#define RW_O_ACCMODE 00000003
#define RW_O_TRUNC 00001000

/* Whether only_writes rejects an open with these flags: it keeps what may write. */
static __always_inline bool not_a_write(struct rw_filter_set *set, __u64 flags)
{
	return (set->bits & RW_F_ONLY_WRITES) && !(flags & RW_O_ACCMODE) &&
	       !(flags & (RW_O_CREAT | RW_O_TRUNC));
}

/* The rules judged at entry (task, only_writes): whether they reject the open; counted
 * when they do. */
static __always_inline bool entry_filtered(struct rw_filter_set *set, __u8 gen, __u64 flags)
{
	if (rw_task_filtered_by(&file_stats, set, gen))
		return true;
	if (!not_a_write(set, flags))
		return false;
	rw_count_filtered(&file_stats, (__u32)bpf_get_current_uid_gid());
	return true;
}

static __always_inline int stash(__u64 filename, __u64 flags, __u32 mode, __s32 dfd, __u32 sc)
{
	__u8 gen = 0;
	struct rw_filter_set *set = rw_fset(&gen);
	if (set && set->bits && entry_filtered(set, gen, flags)) {
		/* An older entry whose exit was missed must not pair with this exit: the exits
		 * attach first, but a program run can still be skipped (the kernel's recursion
		 * guard, a busy task storage). */
		struct open_start *old = RW_THREAD_GET(&file_inflight, struct open_start, false);
		if (old)
			old->active = 0;
		return 0;
	}
	struct open_start *s = RW_THREAD_GET(&file_inflight, struct open_start, true);
	if (!s) {
		/* No memory for the entry (or storage busy): on the books. */
		RW_COUNT_UNTRACKED(file);
		return 0;
	}
	s->filename = filename;
	s->flags = flags;
	s->mode = mode;
	s->dfd = dfd;
	s->syscall = sc;
	/* The page may not be present yet (the kernel faults it in, this read cannot):
	 * then only the exit copy exists, flagged unchecked. */
	s->path_flags = 0;
	s->path_len = read_path(s->path, filename, &s->path_flags);
	s->fepoch = set ? set->epoch : 0;
	s->fgen = gen;
	s->active = 1;
	return 0;
}

/* open(2)/openat(2) ignore mode unless they may create a file; report it the same way
 * (the register holds whatever the caller left there otherwise). */
static __always_inline __u32 creat_mode(__u64 flags, __u64 mode)
{
	return (flags & (RW_O_CREAT | RW_O_TMPFILE_BIT)) ? (__u32)mode : 0;
}

struct cmp_ctx {
	const char *a;
	const char *b;
	__u32 n;
	__u32 differ;
};

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cmp_step masks a word's first bytes as its low ones"
#endif

/* Sixty-four bytes a callback run, eight a word: each run is a call (with its return
 * thunk), which costs more than its compare (at eight bytes a run, a 20-byte path took
 * four runs). Most paths take one. No branch on what the words hold: the verifier walks
 * one path through the words, not one per way out. */
static long cmp_step(__u32 i, struct cmp_ctx *c)
{
	__u32 base = i * 64;
	__u32 n = c->n;
	if (base >= n || base > RW_PATH_LEN - 64)
		return 1;
	__u64 acc = 0;
#pragma unroll
	for (__u32 w = 0; w < 8; w++) {
		__u32 off = base + w * 8;
		if (off >= n)
			break;
		/* Plain 8-byte loads: a memcpy here is eight byte loads and shifts (the
		 * paths need not be 8-aligned; the kernel allows unaligned loads of map
		 * memory on the machines with efficient unaligned access this runs on). */
		__u64 x = *(const __u64 *)(c->a + off);
		__u64 y = *(const __u64 *)(c->b + off);
		/* The last word's bytes past n are not compared: the reads do not clear
		 * them. Little endian: the first bytes are the low ones. `partial` is 1 when
		 * fewer than 8 bytes are left (left - 8 wraps), and the mask keeps `left`
		 * bytes then, all eight otherwise. */
		__u32 left = n - off;
		__u32 partial = (left - 8) >> 31;
		acc |= (x ^ y) & (~0ULL >> (partial * (64 - left * 8)));
	}
	if (acc) {
		c->differ = 1;
		return 1;
	}
	return 0;
}

/* A path buffer, as the type of a global function's argument: the verifier lets the
 * function read the type's size. */
struct rw_path_bytes {
	char s[RW_PATH_LEN];
};

/* Whether the first n bytes of a and b differ. A bpf_loop callback: a byte loop
 * open-coded in each of the three exit programs took ~60 ms of the daemon's start to
 * verify. Global: the verifier walks the callback until its states converge, and inlined
 * it did so once for each state its callers reach (~20 passes in an open's exit). */
RW_GLOBAL int rw_differs(const struct rw_path_bytes *a, const struct rw_path_bytes *b, __u32 n)
{
	if (!a || !b)
		return 1; /* never: the verifier asks a global to check */
	struct cmp_ctx c = { .a = a->s, .b = b->s, .n = n };
	RW_LOOP(RW_PATH_LEN / 64, RW_PATH_LEN / 64, cmp_step, &c);
	return c.differ;
}

/* Superblock magics (include/uapi/linux/magic.h) of the pseudo filesystems whose files
 * have no dentry name: the kernel names them from the inode (d_dname). */
#define RW_PIPEFS_MAGIC 0x50495045
#define RW_SOCKFS_MAGIC 0x534F434B

static const char pipe_fmt[] = "pipe:[%llu]";
static const char socket_fmt[] = "socket:[%llu]";

#ifdef RW_KERNEL_510
/* bpf_snprintf(o, 32, fmt, ino) without it (5.13): fmt's text up to its "%llu", the
 * decimal ino, and "]". Returns the length. */
static __always_inline __u32 pseudo_name(char *o, const char *fmt, __u64 ino)
{
	__u32 n = 0;
	for (; n < 8 && fmt[n] != '%'; n++)
		o[n] = fmt[n];
	__u32 k = 1; /* digits */
	for (__u64 v = ino / 10; v && k < 20; v /= 10)
		k++;
	__u64 v = ino;
	for (__u32 j = 0; j < 20 && j < k; j++, v /= 10)
		o[(n + k - 1 - j) & 31] = '0' + v % 10;
	o[(n + k) & 31] = ']';
	return n + k + 1;
}
#endif

/* Names the file at fd `fd` of the task (the current one, rw_current_task(): its fields
 * are plain loads, not helper calls, except in the 5.10 variant); returns its length, the file in *filep (its inode
 * is read only for an open the filters keep) and in *at where the name starts in p->tmp,
 * at most RW_RESOLVED_LEN (it is copied into the record only once the filters keep the
 * open). The name is always in p->tmp: a pointer that could be into either of two
 * buffers doubled what the verifier walks (the daemon's start, 160 -> 600 ms). */
static __always_inline __u32 resolve(struct task_struct *task, long fd, struct rw_path_scratch *p,
				     struct open_event *e, __u32 *flags, struct file **filep,
				     __u32 *at)
{
	*at = RW_RESOLVED_LEN;
	struct fdtable *fdt = RW_LOAD(task, files, fdt);
	__u64 max = RW_LOAD(fdt, max_fds);
	struct file **fds = RW_LOAD(fdt, fd);
	struct file *file = NULL;
	if ((__u64)fd < max)
		bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	*filep = file;
	if (!file) {
		*flags |= RW_OPEN_RESOLVED_UNAVAILABLE;
		return 0;
	}
	struct path fp = {};
	bpf_core_read(&fp, sizeof(fp), &file->f_path);
	__u32 rf = 0;
	__u32 pos = rw_resolve(task, &fp, p, &rf);
	*flags |= rf << RW_OPEN_RESOLVE_SHIFT;
	if ((rf & RW_RESOLVE_PSEUDO) && pos == RW_RESOLVED_LEN) {
		/* No name (pipes, sockets): as /proc/PID/fd shows them, pipe:[INO], written
		 * after the end of the (empty) walked name. */
		__u64 magic = BPF_CORE_READ(file, f_inode, i_sb, s_magic);
		const char *fmt = magic == RW_PIPEFS_MAGIC   ? pipe_fmt
				  : magic == RW_SOCKFS_MAGIC ? socket_fmt
							     : NULL;
		if (!fmt)
			return 0;
		__u64 ino = BPF_CORE_READ(file, f_inode, i_ino);
		e->ino = ino;
#ifdef RW_KERNEL_510
		return pseudo_name(&p->tmp[RW_RESOLVED_LEN], fmt, ino);
#else
		long n = bpf_snprintf(&p->tmp[RW_RESOLVED_LEN], 32, fmt, &ino, sizeof(ino));
		return n > 1 && n <= 32 ? (__u32)n - 1 : 0;
#endif
	}
	*at = pos;
	return RW_RESOLVED_LEN - pos;
}

/* Whether the path rules of `set` reject `path` (`len` bytes): a prefix of its first
 * RW_FILTER_PATH_LEN bytes. */
static __always_inline bool path_rejected(struct rw_filter_set *set, __u8 gen, const char *path,
					  __u32 len)
{
	__u32 zero = 0;
	struct rw_filter_scratch *k = bpf_map_lookup_elem(&rw_filter_scratch, &zero);
	if (!k)
		return false;
	if (len > RW_FILTER_PATH_LEN)
		len = RW_FILTER_PATH_LEN;
	/* The mask on the very register the helper gets: the compiler drops it after the
	 * check above, and 6.1's verifier does not carry the check to a copy of len (the
	 * file changes' exit: "R1 min value is outside of the allowed memory range"). */
	__u32 n = len;
	barrier_var(n);
	bpf_probe_read_kernel(k->key.path, n & RW_FILTER_PATH_MASK, path);
	k->key.prefixlen = 16 + 8 * len;
	k->key.gen = gen;
	if (set->bits & RW_F_INCLUDE_PATH) {
		k->key.list = RW_FL_INCLUDE;
		if (!bpf_map_lookup_elem(&rw_filter_path, &k->key))
			return true;
	}
	if (set->bits & RW_F_EXCLUDE_PATH) {
		k->key.list = RW_FL_EXCLUDE;
		if (bpf_map_lookup_elem(&rw_filter_path, &k->key))
			return true;
	}
	return false;
}

/* The rules judged at exit: the path rules of the set the entry was judged by, on the
 * path the kernel resolved; a failed open (no file) by the path as given when it is
 * absolute. A path neither gives (relative, cut short at its top, seen through a mount
 * namespace a user made: own_view) is not held against the open. If that set was replaced meanwhile (two reloads during one open), the whole
 * open is judged again by the set in force. Then the rate limits. */
/* Whether the task sees files through a mount namespace an unprivileged user could have
 * made (one owned by a user namespace below the initial one): there a path can be made to
 * say anything (a bind mount of /etc at /dev/shm/x), so path rules cannot judge it. The
 * private namespaces systemd gives services are the initial user namespace's. */
static __always_inline bool own_view(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(task, nsproxy, mnt_ns, user_ns, level) != 0;
}

static __always_inline bool exit_filtered(const struct open_start *s, struct open_event *e,
					  const char *resolved, __u32 rlen, __u32 pf)
{
	__u8 gen = s->fgen & 1;
	__u32 k = gen;
	struct rw_filter_set *set = bpf_map_lookup_elem(&rw_filter_sets, &k);
	if (!set)
		return false;
	if (set->epoch != s->fepoch) {
		set = rw_fset(&gen);
		if (!set || (set->bits && entry_filtered(set, gen, s->flags)))
			return set != NULL;
	}
	if ((set->bits & (RW_F_INCLUDE_PATH | RW_F_EXCLUDE_PATH)) && !own_view()) {
		const char *path = NULL;
		__u32 len = 0;
		if (e->ret >= 0) {
			if (rlen &&
			    !(pf & (RW_OPEN_RESOLVED_TRUNCATED | RW_OPEN_RESOLVED_UNAVAILABLE))) {
				path = resolved;
				len = rlen;
			}
		} else if (e->path[0] == '/') {
			path = e->path;
			len = e->path_len;
		}
		if (path && path_rejected(set, gen, path, len)) {
			rw_count_filtered(&file_stats, (__u32)bpf_get_current_uid_gid());
			return true;
		}
	}
	/* Kept by the filters: the rate limits have the last word. */
	return rw_rate_limited_current(&file_stats, set, gen);
}

/* The exit copy of a path (user pointer `user`) into `out`, against the entry copy `ent`
 * (ent_len bytes, ent_pf its RW_OPEN_PATH_* bits): the entry copy wins when they differ
 * (the kernel read the path right after entry), and the difference is flagged. Returns
 * the length; *pf gets the flags. Opens and changes alike. */
static __always_inline __u32 recheck_path(char *out, __u64 user, const char *ent, __u32 ent_len,
					  __u32 ent_pf, __u32 *pf)
{
	__u32 f = 0;
	__u32 n = read_path(out, user, &f);
	if (!(ent_pf & RW_OPEN_PATH_UNREADABLE)) {
		bool changed = false;
		if (f & RW_OPEN_PATH_UNREADABLE)
			f = RW_OPEN_PATH_UNCHECKED;
		else if (n != ent_len || rw_differs((const struct rw_path_bytes *)out,
						    (const struct rw_path_bytes *)ent, n))
			changed = true;
		if ((f & RW_OPEN_PATH_UNCHECKED) || changed) {
			bpf_probe_read_kernel(out, RW_PATH_LEN, ent);
			n = ent_len;
			f = (f & RW_OPEN_PATH_UNCHECKED) | (ent_pf & RW_OPEN_PATH_TRUNCATED);
			if (changed)
				f |= RW_OPEN_PATH_CHANGED;
		}
	} else if (!(f & RW_OPEN_PATH_UNREADABLE)) {
		f |= RW_OPEN_PATH_UNCHECKED;
	}
	*pf = f;
	return n;
}

static __always_inline int emit(long ret, __u32 sc)
{
	struct task_struct *task = rw_current_task();
	struct open_start *s = RW_THREAD_GET(&file_inflight, struct open_start, false);
	if (!s || !s->active)
		return 0;
	RW_THREAD_DONE_AT_RETURN(file_inflight);
	s->active = 0;
	/* An enter of another syscall whose exit was not seen (e.g. its exit program was not
	 * attached yet), and this syscall's enter was not either: neither is followed. */
	if (s->syscall != sc) {
		RW_COUNT_UNTRACKED(file);
		return 0;
	}
	struct rw_out_buf *b = file_out_buf();
	if (!b) {
		RW_COUNT_UNTRACKED(file);
		return 0;
	}
	struct open_event *e = (struct open_event *)b->rec;
	/* The header is filled once the filters keep the open: its helper calls are half of
	 * what an open left out would cost otherwise. */
	__u64 ts = bpf_ktime_get_boot_ns();
	e->ret = ret;
	e->flags = s->flags;
	e->ino = 0;
	e->mode = s->mode;
	e->dfd = s->dfd;
	e->syscall = sc;

	/* A successful open is judged by the file the kernel resolved before anything else
	 * is done for it: one the filters leave out costs no second copy of its path. */
	__u32 rlen = 0, rpf = 0, at = RW_RESOLVED_LEN;
	struct file *file = NULL;
	char *out = b->rec + sizeof(struct open_event);
	if (ret >= 0) {
		struct rw_path_scratch *p = rw_path_buf();
		if (!p) {
			RW_COUNT_UNTRACKED(file);
			return 0;
		}
		rlen = resolve(task, ret, p, e, &rpf, &file, &at);
		if (rlen > RW_RESOLVED_LEN) /* cannot be; the verifier wants the bound here */
			rlen = RW_RESOLVED_LEN;
		/* Bounds on the registers the helpers get (see rw_walk_step): at + rlen stays
		 * within tmp. */
		barrier_var(at);
		if (at > RW_RESOLVED_LEN)
			at = RW_RESOLVED_LEN;
		const char *name = &p->tmp[at];
		if (exit_filtered(s, e, name, rlen, rpf))
			return 0;
		__u32 n = rlen;
		barrier_var(n);
		if (n > RW_RESOLVED_LEN)
			n = RW_RESOLVED_LEN;
		bpf_probe_read_kernel(out, n, name);
	}

	/* The exit copy against the entry copy (recheck_path). */
	__u32 pf = 0;
	__u32 n = recheck_path(e->path, s->filename, s->path, s->path_len, s->path_flags, &pf);
	e->path_len = n;
	/* A failed open: judged by the path as given (exit_filtered). */
	if (ret < 0 && exit_filtered(s, e, b->rec + sizeof(struct open_event), 0, 0))
		return 0;
	rw_fill_header(&e->hdr, RW_OPEN, ts);
	if (file && !e->ino)
		e->ino = BPF_CORE_READ(file, f_inode, i_ino);
	if (rlen > RW_RESOLVED_LEN)
		rlen = RW_RESOLVED_LEN;
	e->path_flags = pf | rpf;
	e->resolved_len = rlen;
	RW_OUTPUT(file, &e->hdr, sizeof(*e) + rlen, RW_OUT_MASK);
	return 0;
}

/* ---- Changes: unlink, rmdir, mkdir, rename, chmod, chown, link, symlink, truncate ----
 *
 * One enter and one exit program for all 22 syscalls of the kind (and the 3 opens), on
 * the generic sys_enter / sys_exit raw tracepoints (tp_btf) rather than the 44
 * per-syscall ones: a classic tracepoint costs an RCU grace period each when it is
 * detached (~75 ms here, so 44 of them added 3.3 s to every stop and every reload that
 * turns the family off), a raw one none. The price is a run on every syscall of the machine, which leaves at
 * the number check (is_change_nr). The entry keeps the arguments and a copy of each
 * path; the exit pairs them with the result, reads the paths again (a change is flagged)
 * and names from the kernel's objects the directory a relative path starts from (the
 * directory fd's file, or the working directory) or, for a call on an fd, the file
 * itself. */

/* Syscall numbers (sys_enter's id). x86_64, and the asm-generic table of arm64, which has
 * only the *at forms (and fchmod, fchown, truncate, ftruncate): the others are negative
 * there, distinct so that they can be switch cases, and never match a real number. */
#if defined(__TARGET_ARCH_x86)
#define NR_OPEN 2
#define NR_OPENAT 257
#define NR_OPENAT2 437
#define NR_UNLINK 87
#define NR_UNLINKAT 263
#define NR_RMDIR 84
#define NR_MKDIR 83
#define NR_MKDIRAT 258
#define NR_RENAME 82
#define NR_RENAMEAT 264
#define NR_RENAMEAT2 316
#define NR_CHMOD 90
#define NR_FCHMOD 91
#define NR_FCHMODAT 268
#define NR_FCHMODAT2 452
#define NR_CHOWN 92
#define NR_LCHOWN 94
#define NR_FCHOWN 93
#define NR_FCHOWNAT 260
#define NR_LINK 86
#define NR_LINKAT 265
#define NR_SYMLINK 88
#define NR_SYMLINKAT 266
#define NR_TRUNCATE 76
#define NR_FTRUNCATE 77
#elif defined(__TARGET_ARCH_arm64)
#define NR_OPEN -20
#define NR_OPENAT 56
#define NR_OPENAT2 437
#define NR_UNLINK -1
#define NR_UNLINKAT 35
#define NR_RMDIR -2
#define NR_MKDIR -3
#define NR_MKDIRAT 34
#define NR_RENAME -4
#define NR_RENAMEAT 38
#define NR_RENAMEAT2 276
#define NR_CHMOD -5
#define NR_FCHMOD 52
#define NR_FCHMODAT 53
#define NR_FCHMODAT2 452
#define NR_CHOWN -6
#define NR_LCHOWN -7
#define NR_FCHOWN 55
#define NR_FCHOWNAT 54
#define NR_LINK -8
#define NR_LINKAT 37
#define NR_SYMLINK -9
#define NR_SYMLINKAT 36
#define NR_TRUNCATE 45
#define NR_FTRUNCATE 46
#else
#error "syscall numbers for the file changes: x86_64 and arm64 only"
#endif

#define RW_AT_REMOVEDIR 0x200
#define RW_AT_EMPTY_PATH 0x1000

/* A change in flight: its arguments and the paths as they were at entry. */
struct change_start {
	__u64 p1; /* user pointers: 0 when the call has no such path */
	__u64 p2;
	__s64 length;
	int nr; /* the syscall number: the exit must be this call's */
	__u32 syscall;
	__u32 type;
	__u32 mode;
	__u32 flags;
	__u32 uid;
	__u32 gid;
	__s32 fd;
	__s32 fd2;
	__u32 active;
	__u32 len1;
	__u32 len2;
	__u32 pf;    /* RW_OPEN_PATH_* of the entry copies (path2's shifted) */
	__u32 paths; /* which of p1 (1), p2 (2) the call takes: a NULL one is still read */
	char path[RW_PATH_LEN];
	char path2[RW_PATH_LEN];
};

/* Per thread, as file_inflight (see there). */
RW_THREAD_MAP(change_inflight, struct change_start);

/* A change record: two paths and up to two resolved names, more than rw_out_buf holds. */
#define RW_CHANGE_MASK 16383
struct change_buf {
	char rec[RW_CHANGE_MASK + 1];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct change_buf);
} change_out SEC(".maps");

/* Where a name may start in the record's names: after the paths (each under RW_PATH_LEN)
 * and the first resolved name. */
#define RW_CHANGE_NAMES_OFF_MAX (2 * RW_PATH_LEN + RW_RESOLVED_LEN)
_Static_assert(sizeof(struct change_event) + RW_CHANGE_NAMES_OFF_MAX + RW_RESOLVED_LEN <=
		       RW_CHANGE_MASK,
	       "record under the mask");

/* The arguments of syscall `nr` into `s`; false for a number that is not a change. */
static __always_inline bool change_args(int nr, const unsigned long *a, struct change_start *s)
{
	s->p1 = 0;
	s->p2 = 0;
	s->length = 0;
	s->mode = 0;
	s->flags = 0;
	s->uid = 0;
	s->gid = 0;
	s->fd = RW_AT_FDCWD;
	s->fd2 = RW_AT_FDCWD;
	if (nr == NR_UNLINK) {
		s->syscall = RW_SYS_UNLINK, s->type = RW_UNLINK, s->p1 = a[0];
	} else if (nr == NR_UNLINKAT) {
		s->syscall = RW_SYS_UNLINKAT, s->fd = a[0], s->p1 = a[1], s->flags = a[2];
		s->type = (s->flags & RW_AT_REMOVEDIR) ? RW_RMDIR : RW_UNLINK;
	} else if (nr == NR_RMDIR) {
		s->syscall = RW_SYS_RMDIR, s->type = RW_RMDIR, s->p1 = a[0];
	} else if (nr == NR_MKDIR) {
		s->syscall = RW_SYS_MKDIR, s->type = RW_MKDIR, s->p1 = a[0], s->mode = a[1];
	} else if (nr == NR_MKDIRAT) {
		s->syscall = RW_SYS_MKDIRAT, s->type = RW_MKDIR, s->fd = a[0], s->p1 = a[1];
		s->mode = a[2];
	} else if (nr == NR_RENAME) {
		s->syscall = RW_SYS_RENAME, s->type = RW_RENAME, s->p1 = a[0], s->p2 = a[1];
	} else if (nr == NR_RENAMEAT || nr == NR_RENAMEAT2) {
		s->syscall = nr == NR_RENAMEAT ? RW_SYS_RENAMEAT : RW_SYS_RENAMEAT2;
		s->type = RW_RENAME, s->fd = a[0], s->p1 = a[1], s->fd2 = a[2], s->p2 = a[3];
		s->flags = nr == NR_RENAMEAT2 ? a[4] : 0;
	} else if (nr == NR_CHMOD) {
		s->syscall = RW_SYS_CHMOD, s->type = RW_CHMOD, s->p1 = a[0], s->mode = a[1];
	} else if (nr == NR_FCHMOD) {
		s->syscall = RW_SYS_FCHMOD, s->type = RW_CHMOD, s->fd = a[0], s->mode = a[1];
	} else if (nr == NR_FCHMODAT || nr == NR_FCHMODAT2) {
		s->syscall = nr == NR_FCHMODAT ? RW_SYS_FCHMODAT : RW_SYS_FCHMODAT2;
		s->type = RW_CHMOD, s->fd = a[0], s->p1 = a[1], s->mode = a[2];
		s->flags = nr == NR_FCHMODAT2 ? a[3] : 0;
	} else if (nr == NR_CHOWN || nr == NR_LCHOWN) {
		s->syscall = nr == NR_CHOWN ? RW_SYS_CHOWN : RW_SYS_LCHOWN;
		s->type = RW_CHOWN, s->p1 = a[0], s->uid = a[1], s->gid = a[2];
	} else if (nr == NR_FCHOWN) {
		s->syscall = RW_SYS_FCHOWN, s->type = RW_CHOWN, s->fd = a[0], s->uid = a[1];
		s->gid = a[2];
	} else if (nr == NR_FCHOWNAT) {
		s->syscall = RW_SYS_FCHOWNAT, s->type = RW_CHOWN, s->fd = a[0], s->p1 = a[1];
		s->uid = a[2], s->gid = a[3], s->flags = a[4];
	} else if (nr == NR_LINK) {
		s->syscall = RW_SYS_LINK, s->type = RW_LINK, s->p1 = a[0], s->p2 = a[1];
	} else if (nr == NR_LINKAT) {
		s->syscall = RW_SYS_LINKAT, s->type = RW_LINK, s->fd = a[0], s->p1 = a[1];
		s->fd2 = a[2], s->p2 = a[3], s->flags = a[4];
	} else if (nr == NR_SYMLINK) {
		s->syscall = RW_SYS_SYMLINK, s->type = RW_SYMLINK, s->p1 = a[0], s->p2 = a[1];
	} else if (nr == NR_SYMLINKAT) {
		s->syscall = RW_SYS_SYMLINKAT, s->type = RW_SYMLINK, s->p1 = a[0], s->fd2 = a[1];
		s->p2 = a[2];
	} else if (nr == NR_TRUNCATE) {
		s->syscall = RW_SYS_TRUNCATE, s->type = RW_TRUNCATE, s->p1 = a[0];
		s->length = a[1];
	} else if (nr == NR_FTRUNCATE) {
		s->syscall = RW_SYS_FTRUNCATE, s->type = RW_TRUNCATE, s->fd = a[0];
		s->length = a[1];
	} else {
		return false;
	}
	return true;
}

/* Whether sys_enter's id is a change: a few compares (a binary search), all most
 * syscalls of the machine pay here. */
static __always_inline bool is_change_nr(long id)
{
	switch (id) {
	case NR_UNLINK:
	case NR_UNLINKAT:
	case NR_RMDIR:
	case NR_MKDIR:
	case NR_MKDIRAT:
	case NR_RENAME:
	case NR_RENAMEAT:
	case NR_RENAMEAT2:
	case NR_CHMOD:
	case NR_FCHMOD:
	case NR_FCHMODAT:
	case NR_FCHMODAT2:
	case NR_CHOWN:
	case NR_LCHOWN:
	case NR_FCHOWN:
	case NR_FCHOWNAT:
	case NR_LINK:
	case NR_LINKAT:
	case NR_SYMLINK:
	case NR_SYMLINKAT:
	case NR_TRUNCATE:
	case NR_FTRUNCATE:
		return true;
	}
	return false;
}

/* The number of the syscall a sys_exit ends (syscall_get_nr). */
#if defined(__TARGET_ARCH_x86)
#define RW_SYSCALL_NR(regs) ((int)(regs)->orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define RW_SYSCALL_NR(regs) ((int)(regs)->syscallno)
#endif

/* The opens, from the generic sys_enter (the changes' program): their own classic
 * tracepoints cost an open two perf trace records. A compat call's number is another
 * syscall's: not followed, as the classic tracepoints never fired for them. */
static __always_inline __u32 open_sc(long nr)
{
	return nr == NR_OPEN      ? RW_SYS_OPEN
	       : nr == NR_OPENAT  ? RW_SYS_OPENAT
	       : nr == NR_OPENAT2 ? RW_SYS_OPENAT2
				  : 0;
}

static __always_inline int open_enter(struct pt_regs *regs, __u32 sc)
{
	__u64 a1 = PT_REGS_PARM1_SYSCALL(regs), a2 = PT_REGS_PARM2_SYSCALL(regs);
	__u64 a3 = PT_REGS_PARM3_SYSCALL(regs), a4 = PT_REGS_PARM4_SYSCALL(regs);
	if (sc == RW_SYS_OPEN) {
		__u64 flags = (__u32)a2;
		return stash(a1, flags, creat_mode(flags, a3), RW_AT_FDCWD, RW_SYS_OPEN);
	}
	if (sc == RW_SYS_OPENAT) {
		__u64 flags = (__u32)a3;
		return stash(a2, flags, creat_mode(flags, a4), (__s32)a1, RW_SYS_OPENAT);
	}
	/* struct open_how { flags, mode, resolve }: usize >= 24 or the kernel refuses it.
	 * If it cannot be read the kernel fails with EFAULT; flags and mode stay 0. */
	struct open_how how = {};
	bpf_probe_read_user(&how, 2 * sizeof(__u64), (void *)a3);
	return stash(a2, how.flags, (__u32)how.mode, (__s32)a1, RW_SYS_OPENAT2);
}

/* tp_btf, not raw_tp: the registers are read with plain loads. */
SEC("tp_btf/sys_enter")
int BPF_PROG(file_change_enter, struct pt_regs *regs, long id)
{
	__u32 sc = open_sc(id);
	if (!sc && !is_change_nr(id))
		return 0;
	struct task_struct *task = rw_current_task();
	/* A 32-bit call's number is an ia32 one, another syscall here: those are counted
	 * unseen by the syscall family (COMPAT_WATCHED), not misread. */
	if (is_compat_syscall(task) || rw_skip_tgid(RW_TASK_TGID(task)))
		return 0;
	if (sc)
		return open_enter(regs, sc);
	struct change_start *s = RW_THREAD_GET(&change_inflight, struct change_start, true);
	if (!s) {
		RW_COUNT_UNTRACKED(file);
		return 0;
	}
	/* An entry still waiting: its exit never came (a skipped run). Counted, not
	 * silently overwritten. */
	if (s->active)
		RW_COUNT_UNTRACKED(file);
	s->active = 0;
	int nr = id;
	unsigned long a[5] = {
		PT_REGS_PARM1_SYSCALL(regs), PT_REGS_PARM2_SYSCALL(regs),
		PT_REGS_PARM3_SYSCALL(regs), PT_REGS_PARM4_SYSCALL(regs),
		PT_REGS_PARM5_SYSCALL(regs),
	};
	if (!change_args(nr, a, s))
		return 0;
	s->nr = nr;
	s->paths = 0;
	if (s->syscall != RW_SYS_FCHMOD && s->syscall != RW_SYS_FCHOWN &&
	    s->syscall != RW_SYS_FTRUNCATE)
		s->paths = 1;
	if (s->type == RW_RENAME || s->type == RW_LINK || s->type == RW_SYMLINK)
		s->paths |= 2;
	__u32 pf = 0, pf2 = 0;
	s->len1 = (s->paths & 1) ? read_path(s->path, s->p1, &pf) : 0;
	s->len2 = (s->paths & 2) ? read_path(s->path2, s->p2, &pf2) : 0;
	s->pf = pf | pf2 << RW_CHANGE_PATH2_SHIFT;
	s->active = 1;
	return 0;
}

/* Packing of the global functions' results (a global function returns one scalar). */
#define RW_PACK_LEN_MASK 0x1fff /* a length, at most RW_RESOLVED_LEN */
#define RW_PACK_FLAGS_SHIFT 13
#define RW_PACK_UNAVAILABLE (1 << 17)

/* The exit copies of the call's paths against their entry copies, back to back at the
 * start of the record's names, as open does: an entry copy wins when they differ, flagged.
 * Returns both lengths and their RW_OPEN_PATH_* flags packed (RW_RECHECK_*). Global:
 * verified once, not once per exit; one call and one storage lookup for both paths. */
#define RW_RECHECK_LEN_BITS 9 /* a length under RW_PATH_LEN */
#define RW_RECHECK_HALF 13    /* a length and its 4 flag bits */
#define RW_RECHECK_LEN_MASK ((1 << RW_RECHECK_LEN_BITS) - 1)
_Static_assert(RW_PATH_LEN == 1 << RW_RECHECK_LEN_BITS, "a length fits its bits");

__noinline int rw_change_recheck(void)
{
	struct change_start *s = RW_THREAD_GET(&change_inflight, struct change_start, false);
	__u32 zero = 0;
	struct change_buf *b = bpf_map_lookup_elem(&change_out, &zero);
	if (!s || !b)
		return 0;
	struct change_event *e = (struct change_event *)b->rec;
	__u32 f1 = 0, f2 = 0, n1 = 0, n2 = 0;
	if (s->paths & 1)
		n1 = recheck_path(e->names, s->p1, s->path, s->len1, s->pf & 15, &f1) &
		     RW_RECHECK_LEN_MASK;
	if (s->paths & 2)
		n2 = recheck_path(e->names + n1, s->p2, s->path2, s->len2,
				  (s->pf >> RW_CHANGE_PATH2_SHIFT) & 15, &f2) &
		     RW_RECHECK_LEN_MASK;
	__u32 first = n1 | (f1 & 15) << RW_RECHECK_LEN_BITS;
	__u32 second = n2 | (f2 & 15) << RW_RECHECK_LEN_BITS;
	return first | second << RW_RECHECK_HALF;
}

/* Names the file at `fd` of the current task, or its working directory for AT_FDCWD,
 * into the record's names at byte `off` (after the paths, and for the second after the
 * first resolved name; clamped to RW_CHANGE_NAMES_OFF_MAX). Returns the
 * length with the RW_RESOLVE_* flags above RW_PACK_FLAGS_SHIFT, or RW_PACK_UNAVAILABLE
 * when the fd names no file. Global: verified once, not once per name. */
__noinline int rw_change_name(long fd, __u32 off)
{
	struct task_struct *task = rw_current_task();
	struct rw_path_scratch *p = rw_path_buf();
	__u32 zero = 0;
	struct change_buf *b = bpf_map_lookup_elem(&change_out, &zero);
	if (!p || !b)
		return 0;
	struct path fp = {};
	if (fd == RW_AT_FDCWD) {
		struct fs_struct *fs = RW_LOAD(task, fs);
		bpf_core_read(&fp, sizeof(fp), &fs->pwd);
	} else {
		struct fdtable *fdt = RW_LOAD(task, files, fdt);
		__u64 max = RW_LOAD(fdt, max_fds);
		struct file **fds = RW_LOAD(fdt, fd);
		struct file *file = NULL;
		if ((__u64)fd < max)
			bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
		if (!file)
			return RW_PACK_UNAVAILABLE;
		bpf_core_read(&fp, sizeof(fp), &file->f_path);
	}
	__u32 rf = 0;
	__u32 pos = rw_resolve(task, &fp, p, &rf);
	barrier_var(pos);
	if (pos > RW_RESOLVED_LEN)
		pos = RW_RESOLVED_LEN;
	__u32 n = RW_RESOLVED_LEN - pos;
	barrier_var(n);
	if (n > RW_RESOLVED_LEN)
		n = RW_RESOLVED_LEN;
	barrier_var(off);
	if (off > RW_CHANGE_NAMES_OFF_MAX)
		off = RW_CHANGE_NAMES_OFF_MAX;
	bpf_probe_read_kernel(b->rec + sizeof(struct change_event) + off, n,
			      &p->tmp[pos & (RW_RESOLVED_LEN - 1)]);
	return n | rf << RW_PACK_FLAGS_SHIFT;
}

/* The task rules, the path rules and the rate limits. The path rules judge a change only
 * by a file named from the kernel (the file of an fd call): a path as passed is the
 * process's word ("/tmp/../etc/x", a symlink, a buffer rewritten after the kernel read
 * it), and a rule must never let a process hide its change by how it spells it. */
static __always_inline bool change_filtered(struct change_event *e, const char *r1, __u32 r1_len)
{
	__u8 gen = 0;
	struct rw_filter_set *set = rw_fset(&gen);
	if (!set)
		return false;
	if (set->bits) {
		if (rw_task_filtered_by(&file_stats, set, gen))
			return true;
		if ((set->bits & (RW_F_INCLUDE_PATH | RW_F_EXCLUDE_PATH)) && !own_view() &&
		    (e->path_flags & RW_CHANGE_R1_FILE) && r1_len &&
		    !(e->path_flags &
		      ((RW_RESOLVE_TRUNCATED << RW_CHANGE_R1_SHIFT) | RW_CHANGE_R1_UNAVAILABLE)) &&
		    path_rejected(set, gen, r1, r1_len)) {
			rw_count_filtered(&file_stats, (__u32)bpf_get_current_uid_gid());
			return true;
		}
	}
	/* Rate limits apply with or without rules (a set with only rate limits has no bits). */
	return rw_rate_limited_current(&file_stats, set, gen);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(file_change_exit, struct pt_regs *regs, long ret)
{
	/* The number first, from the registers: every syscall exit of the machine comes
	 * here, and a storage lookup is a helper call. */
	int nr = RW_SYSCALL_NR(regs);
	__u32 sc = open_sc(nr);
	if (!sc && !is_change_nr(nr))
		return 0;
	struct task_struct *task = rw_current_task();
	/* A compat call's number is another syscall's: its enter kept nothing. */
	if (is_compat_syscall(task))
		return 0;
	/* Both paths follow only calls whose enter passed rw_skip: a stop since is what
	 * matters. */
	if (sc)
		return rw_stopped() ? 0 : emit(ret, sc);
	struct change_start *s = RW_THREAD_GET(&change_inflight, struct change_start, false);
	if (!s || !s->active)
		return 0;
	RW_THREAD_DONE_AT_RETURN(change_inflight);
	s->active = 0;
	if (rw_stopped())
		return 0;
	if (s->nr != nr) {
		RW_COUNT_UNTRACKED(file);
		return 0;
	}
	__u32 zero = 0;
	struct change_buf *b = bpf_map_lookup_elem(&change_out, &zero);
	if (!b) {
		RW_COUNT_UNTRACKED(file);
		return 0;
	}
	struct change_event *e = (struct change_event *)b->rec;
	__u64 ts = bpf_ktime_get_boot_ns();
	e->ret = ret;
	e->length = s->length;
	e->syscall = s->syscall;
	e->mode = s->mode;
	e->flags = s->flags;
	e->uid = s->uid;
	e->gid = s->gid;
	e->fd = s->fd;
	e->fd2 = s->fd2;

	/* The names back to back: path, path2, then the resolved ones. Each path is under
	 * RW_PATH_LEN (read_path's length leaves out the NUL). */
	__u32 rc = s->paths ? rw_change_recheck() : 0;
	__u32 l1 = rc & RW_RECHECK_LEN_MASK;
	__u32 pf1 = (rc >> RW_RECHECK_LEN_BITS) & 15;
	__u32 l2 = (rc >> RW_RECHECK_HALF) & RW_RECHECK_LEN_MASK;
	__u32 pf2 = (rc >> (RW_RECHECK_HALF + RW_RECHECK_LEN_BITS)) & 15;
	e->path_len = l1;
	e->path2_len = l2;
	__u32 flags = pf1 | pf2 << RW_CHANGE_PATH2_SHIFT;

	/* The first name: the file of an fd call (or AT_EMPTY_PATH with an empty path), or
	 * the directory a relative path starts from. A symlink's target is text, not a path
	 * the call resolves: only its link's directory is named. */
	bool fd_call = s->syscall == RW_SYS_FCHMOD || s->syscall == RW_SYS_FCHOWN ||
		       s->syscall == RW_SYS_FTRUNCATE;
	/* AT_EMPTY_PATH with "": the call is on the directory fd's own file (the calls that
	 * take the flag; the others refuse it). */
	bool empty_path = (s->syscall == RW_SYS_FCHOWNAT || s->syscall == RW_SYS_FCHMODAT2 ||
			   s->syscall == RW_SYS_LINKAT) &&
			  (s->flags & RW_AT_EMPTY_PATH) && e->path_len == 0 &&
			  !(pf1 & (RW_OPEN_PATH_UNREADABLE | RW_OPEN_PATH_UNCHECKED));
	bool file = fd_call || empty_path;
	__u32 r1 = 0;
	if (s->type != RW_SYMLINK && (file || (l1 && e->names[0] != '/'))) {
		/* An fd call's fd is unsigned: -100 there is no AT_FDCWD. */
		int r = fd_call && s->fd == RW_AT_FDCWD ? RW_PACK_UNAVAILABLE
							: rw_change_name(s->fd, l1 + l2);
		r1 = r & RW_PACK_LEN_MASK;
		flags |= ((r >> RW_PACK_FLAGS_SHIFT) & 15) << RW_CHANGE_R1_SHIFT;
		if (file)
			flags |= RW_CHANGE_R1_FILE;
		if (r & RW_PACK_UNAVAILABLE)
			flags |= RW_CHANGE_R1_UNAVAILABLE;
	}
	if (r1 > RW_RESOLVED_LEN)
		r1 = RW_RESOLVED_LEN;
	e->path_flags = flags;
	char *out = e->names + l1 + l2;
	if (change_filtered(e, out, r1))
		return 0;
	__u32 r2 = 0;
	if ((s->paths & 2) && l2 && e->names[l1] != '/') {
		int r = rw_change_name(s->fd2, l1 + l2 + r1);
		r2 = r & RW_PACK_LEN_MASK;
		flags |= ((r >> RW_PACK_FLAGS_SHIFT) & 15) << RW_CHANGE_R2_SHIFT;
		if (r & RW_PACK_UNAVAILABLE)
			flags |= RW_CHANGE_R2_UNAVAILABLE;
	}
	if (r2 > RW_RESOLVED_LEN)
		r2 = RW_RESOLVED_LEN;
	e->path_flags = flags;
	e->resolved_len = r1;
	e->resolved2_len = r2;
	rw_fill_header(&e->hdr, s->type, ts);
	RW_OUTPUT(file, &e->hdr, sizeof(*e) + l1 + l2 + r1 + r2, RW_CHANGE_MASK);
	return 0;
}

RW_THREAD_PROGS(file, (RW_THREAD_FORGET(&file_inflight), RW_THREAD_FORGET(&change_inflight)));

RW_LAYOUT(open_event);
RW_LAYOUT(change_event);
RW_ENUM(rw_file_type);
RW_ENUM(rw_open_syscall);
RW_ENUM(rw_open_path_flags);
RW_ENUM(rw_change_syscall);
RW_ENUM(rw_change_flags);
RW_ENUM(rw_resolve_flags);
