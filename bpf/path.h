/* SPDX-License-Identifier: GPL-2.0 */
/* The path of a file as the kernel's own objects name it: a walk from the file's dentry up
 * to the task's root, crossing mounts as d_path does (bpf_d_path is not allowed for
 * tracepoint programs). What the file family reports as resolved_path and the process
 * family as exe; nothing the process could have rewritten in its memory. Mirrored in
 * src/family/path.rs. */
#ifndef RW_PATH_H
#define RW_PATH_H

/* Room for a resolved path: PATH_MAX. A longer path keeps its end (the file's name). */
#define RW_RESOLVED_LEN 4096

/* What a resolved path is, besides its bytes. */
enum rw_resolve_flags {
	/* Longer than RW_RESOLVED_LEN (or deeper than the walk goes): it keeps the end, the
	 * top of the path is missing. */
	RW_RESOLVE_TRUNCATED = 1,
	RW_RESOLVE_DELETED = 2, /* the file has no name any more (unlinked, O_TMPFILE) */
	/* Not in any directory (pipe, socket, memfd, anon inode): the path is the kernel's
	 * name for it. */
	RW_RESOLVE_PSEUDO = 4,
	/* Not below the task's root (chroot, another mount namespace): the path runs from
	 * the top of the file's mount tree. */
	RW_RESOLVE_OUTSIDE_ROOT = 8,
};

#ifdef __BPF__

/* NAME_MAX: a longer name is not a directory entry. */
#define RW_NAME_MAX 255
/* Steps of the walk to the root: components and mount crossings. A path that fits
 * RW_RESOLVED_LEN has fewer than RW_RESOLVED_LEN / 2 components. */
#define RW_WALK_STEPS 4096
/* Steps of the 5.10 variant (a bounded loop: the verifier walks every step). */
#define RW_WALK_STEPS_510 48

/* Per CPU: the path is written from the end of tmp (the walk goes from the file up);
 * tracing programs do not nest on a CPU (the kernel's recursion guard), so one is
 * enough. The string ends at RW_RESOLVED_LEN; the rest is room for a name read at the
 * last index the masks allow. */
struct rw_path_scratch {
	char tmp[2 * RW_RESOLVED_LEN];
	/* The walk's position in tmp: here, not in the walk's state on the stack, so that
	 * each step starts from a position the verifier knows nothing of. On the stack it
	 * was a range one name narrower a step, and the verifier walked the step until the
	 * range reached 0 (~16 passes: 11,700 of each open exit's 24,600 instructions). */
	__u32 pos;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rw_path_scratch);
} rw_path_scratch SEC(".maps");

static __always_inline struct rw_path_scratch *rw_path_buf(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&rw_path_scratch, &zero);
}

struct rw_walk {
	struct rw_path_scratch *b; /* the buffer the name goes to, and the position */
	struct dentry *d;
	struct vfsmount *vm;
	struct dentry *vm_root; /* vm's mnt_root: read once per mount, not per step */
	struct dentry *root_d;
	struct vfsmount *root_vm;
	__u64 mnt_off;
	__u32 flags;
	__u32 done;
	__u32 pad;
};

/* A dentry's d_parent, d_name.len and d_name.name. Each probe read is a helper call
 * (~25 ns here), so they are read in one where they lie within 32 bytes of each other at
 * their natural alignment (d_name follows d_parent in every kernel we know), one by one
 * otherwise; the offsets are constants once relocated, so the verifier keeps one branch. */
static __always_inline struct dentry *rw_dentry_up(struct dentry *d, __u32 *len,
						   const unsigned char **name)
{
	__u32 op = bpf_core_field_offset(struct dentry, d_parent);
	__u32 ol = bpf_core_field_offset(struct dentry, d_name.len);
	__u32 on = bpf_core_field_offset(struct dentry, d_name.name);
	if (ol >= op + 8 && ol + 4 <= op + 32 && on >= op + 8 && on + 8 <= op + 32 &&
	    (ol - op) % 4 == 0 && (on - op) % 8 == 0) {
		__u64 w[4] = {};
		bpf_probe_read_kernel(w, sizeof(w), (void *)d + op);
		*len = *(__u32 *)((void *)w + (ol - op));
		*name = (const unsigned char *)*(__u64 *)((void *)w + (on - op));
		return (struct dentry *)w[0];
	}
	*len = BPF_CORE_READ(d, d_name.len);
	*name = BPF_CORE_READ(d, d_name.name);
	return BPF_CORE_READ(d, d_parent);
}

/* One step up from c->d, prepending its name; 1 ends the walk. A bpf_loop callback is
 * verified once, where an open-coded loop of mount crossings blows the verifier's budget. */
static long rw_walk_step(__u32 i, struct rw_walk *c)
{
	/* Locals: BPF_CORE_READ(c->x, ...) would make rw_walk itself relocatable. */
	struct dentry *d = c->d;
	struct vfsmount *vm = c->vm;
	if (d == c->root_d && vm == c->root_vm) {
		c->done = 1;
		return 1;
	}
	if (d == c->vm_root) {
		struct mount *m = (struct mount *)((void *)vm - c->mnt_off);
		struct mount *parent = BPF_CORE_READ(m, mnt_parent);
		if (parent == m) {
			/* The top of the mount tree without passing the task's root. */
			c->flags |= RW_RESOLVE_OUTSIDE_ROOT;
			c->done = 1;
			return 1;
		}
		struct vfsmount *up_vm = (struct vfsmount *)((void *)parent + c->mnt_off);
		c->d = BPF_CORE_READ(m, mnt_mountpoint);
		c->vm = up_vm;
		c->vm_root = BPF_CORE_READ(up_vm, mnt_root);
		return 0;
	}
	__u32 len = 0;
	const unsigned char *name = NULL;
	struct dentry *up = rw_dentry_up(d, &len, &name);
	/* Not under any directory: a pseudo file; its own name is all there is. */
	bool pseudo = up == d;
	__u32 need = len + (pseudo ? 0 : 1);
	struct rw_path_scratch *b = c->b;
	if (!b)
		return 1;
	/* Where the string starts in tmp (it ends at RW_RESOLVED_LEN). */
	__u32 pos = b->pos;
	if (!up || len > RW_NAME_MAX || need > pos) {
		c->flags |= RW_RESOLVE_TRUNCATED;
		return 1;
	}
	pos -= need;
	b->pos = pos;
	pos &= RW_RESOLVED_LEN - 1; /* a no-op (pos < RW_RESOLVED_LEN) the verifier needs */
	if (!pseudo) {
		b->tmp[pos] = '/';
		pos++;
	}
	/* The mask on the very register the helper gets: the compiler would drop it (len was
	 * checked above), and 6.1's verifier does not carry that check to a copy of len
	 * reloaded from the stack ("R2 unbounded memory access"). */
	__u32 n = len;
	barrier_var(n);
	n &= RW_NAME_MAX;
	bpf_probe_read_kernel(&b->tmp[pos & (RW_RESOLVED_LEN - 1)], n, name);
	if (pseudo) {
		c->flags |= RW_RESOLVE_PSEUDO;
		c->done = 1;
		return 1;
	}
	c->d = up;
	return 0;
}

/* Names the file at `fp` (its f_path) as seen from `task`'s root (rw_current_task():
 * RW_LOAD reads its fields) into b->tmp: returns where the name starts (it ends at
 * RW_RESOLVED_LEN; RW_RESOLVED_LEN when there is none, e.g. a pseudo file the kernel
 * names from its inode) and adds RW_RESOLVE_* to *flags. */
static __always_inline __u32 rw_resolve(struct task_struct *task, const struct path *fp,
					struct rw_path_scratch *b, __u32 *flags)
{
	struct dentry *fd_d = fp->dentry;
	b->pos = RW_RESOLVED_LEN;
	struct rw_walk c = {
		.b = b,
		.d = fd_d,
		.vm = fp->mnt,
		.vm_root = BPF_CORE_READ(fp->mnt, mnt_root),
		.root_d = RW_LOAD(task, fs, root.dentry),
		.root_vm = RW_LOAD(task, fs, root.mnt),
		.mnt_off = bpf_core_field_offset(struct mount, mnt),
	};
	RW_LOOP(RW_WALK_STEPS, RW_WALK_STEPS_510, rw_walk_step, &c);
	if (!c.done)
		c.flags |= RW_RESOLVE_TRUNCATED;
	__u32 pos = b->pos;
	if (pos > RW_RESOLVED_LEN)
		pos = RW_RESOLVED_LEN;
	if (pos == RW_RESOLVED_LEN && c.done && !(c.flags & RW_RESOLVE_PSEUDO)) {
		/* The root itself. */
		pos = RW_RESOLVED_LEN - 1;
		b->tmp[pos] = '/';
	}
	/* Unlinked: out of the dentry hash but not a root (d_unlinked). The parent is read
	 * again rather than kept by the walk's first step: a branch on the step's index
	 * there doubled what the verifier walks (the daemon's start, 160 -> 350 ms). */
	if (!(c.flags & RW_RESOLVE_PSEUDO) && !BPF_CORE_READ(fd_d, d_hash.pprev) &&
	    BPF_CORE_READ(fd_d, d_parent) != fd_d)
		c.flags |= RW_RESOLVE_DELETED;
	*flags |= c.flags;
	return pos;
}

/* Names `file` as seen from `task`'s root into `dst` (room for RW_RESOLVED_LEN bytes, no
 * NUL): returns the length (0 when it has no name) and adds RW_RESOLVE_* to *flags. */
static __always_inline __u32 rw_resolve_file(struct task_struct *task, struct file *file,
					     struct rw_path_scratch *ps, char *dst, __u32 *flags)
{
	struct path fp = {};
	bpf_core_read(&fp, sizeof(fp), &file->f_path);
	__u32 pos = rw_resolve(task, &fp, ps, flags);
	if (pos >= RW_RESOLVED_LEN)
		return 0;
	__u32 len = RW_RESOLVED_LEN - pos;
	/* Bounds on the registers the helper gets (see rw_walk_step). */
	barrier_var(len);
	if (len > RW_RESOLVED_LEN)
		len = RW_RESOLVED_LEN;
	__u32 at = pos;
	barrier_var(at);
	at &= RW_RESOLVED_LEN - 1;
	bpf_probe_read_kernel(dst, len, &ps->tmp[at]);
	return len;
}

#endif /* __BPF__ */
#endif /* RW_PATH_H */
