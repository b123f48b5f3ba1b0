// SPDX-License-Identifier: GPL-2.0
/* Anomaly family: security rules evaluated in the kernel; only matches reach the ring.
 * Syscall rules use tracepoint/syscalls/... (tracefs), the exec rules tp_btf. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "anomaly.h"

char LICENSE[] SEC("license") = "GPL";

RW_DECLARE_RING(anomaly);

/* Contexts of the per-syscall tracepoints, as their tracefs format files give them
 * (stable ABI: every argument widened to 8 bytes from offset 16). Own types, not
 * vmlinux's, so no CO-RE relocation can misplace them. */
struct rw_sys_enter_ctx {
	__u64 common;
	__s32 syscall_nr;
	__u32 pad;
	__u64 args[6];
};

struct rw_sys_exit_ctx {
	__u64 common;
	__s32 syscall_nr;
	__u32 pad;
	__s64 ret;
};

/* ---- reserved room, per-thread state, rate limit ---------------------------------- */

/* Fill levels above which a record is refused (counted as dropped, like a full ring):
 * below high severity at half full, high at three quarters, critical only when full.
 * Floods of lesser records can then never take the room a critical one needs. */
static __always_inline struct anomaly_event *reserve_sev(__u32 severity)
{
	if (RW_FILTERED(anomaly))
		return NULL;
	__u32 slot = rw_slot();
	void *rb = bpf_map_lookup_elem(&anomaly_rings, &slot);
	if (rb && severity < RW_SEV_CRITICAL) {
		__u64 size = bpf_ringbuf_query(rb, BPF_RB_RING_SIZE);
		__u64 used = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA);
		__u64 limit = severity >= RW_SEV_HIGH ? size / 4 * 3 : size / 2;
		/* The record and its 8-byte ring header. */
		if (used + sizeof(struct anomaly_event) + 8 > limit) {
			struct rw_counters *c = rw_counters_of(&anomaly_stats, &slot);
			if (c) {
				__sync_fetch_and_add(&c->produced, 1);
				rw_count_drop(c);
			}
			return NULL;
		}
	}
	return RW_RESERVE_JUDGED(anomaly, struct anomaly_event, RW_ANOMALY);
}

static __always_inline struct anomaly_event *reserve_rule(__u32 rule, __u32 severity)
{
	struct anomaly_event *e = reserve_sev(severity);
	if (!e)
		return NULL;
	e->rule = rule;
	e->severity = severity;
	e->code = 0;
	e->flags = 0;
	for (int i = 0; i < RW_ANOMALY_ARGS; i++)
		e->args[i] = 0;
	e->detail_len = 0;
	e->name_len = 0;
	e->detail[0] = 0;
	e->name[0] = 0;
	e->suppressed = 0;
	return e;
}

#define RW_BPF_OBJ_NAME_LEN 16

/* What a thread's syscall exit needs from its entry: the creds before a uid change,
 * or the arguments of a ptrace attach or a BPF program load. */
#define RW_PEND_PTRACE 100
#define RW_PEND_BPF 101

struct pending {
	__u32 code; /* enum rw_anomaly_syscall or RW_PEND_*; 0 = nothing pending */
	__u32 uid;
	__u32 euid;
	__u32 fsuid;
	__u64 args[3];
	__u32 name_len;
	char name[RW_BPF_OBJ_NAME_LEN];
	/* On the group leader: the rate key uid under which this process's latest
	 * suppressed failure of each rule (bit rule - RW_RULE_PTRACE_ATTACH) was counted,
	 * so its exit flushes that one even if the process changed uid since. */
	__u32 rate_mask;
	__u32 rate_uid[2];
};

/* Per thread (task local storage), not a hash keyed by tid: no table an unprivileged
 * user can fill (each thread holds one entry at most, freed with the thread), and a
 * thread killed inside the syscall leaves nothing behind. (The 5.10 variant's is a hash,
 * bpf/kernel.h: a thread's entry lasts its call; the group leader's rate notes are kept
 * under the tgid until anomaly_exit.) */
RW_THREAD_MAP(anomaly_pending, struct pending);

/* *x's value, leaving 0 (less what others add meanwhile). The 5.10 variant has no
 * exchange: it subtracts what it read, so a concurrent add is kept, not lost; two takers
 * racing may both take it, leaving the count below zero until later failures pay it back
 * (none is reported meanwhile, and userspace reads a negative count as 0). */
static __always_inline __u64 take_all(__u64 *x)
{
#if RW_HAS_FETCH
	return __sync_lock_test_and_set(x, 0);
#else
	__s64 n = *(volatile __s64 *)x;
	if (n <= 0)
		return 0;
	__sync_fetch_and_add(x, -n);
	return n;
#endif
}

static __always_inline struct pending *pending_new(__u32 code)
{
	struct pending *p = RW_THREAD_GET(&anomaly_pending, struct pending, true);
	if (!p) {
		/* No memory (or storage busy in a nested program): on the books. */
		RW_COUNT_UNTRACKED(anomaly);
		return NULL;
	}
	p->code = code;
	return p;
}

/* The entry state this exit waits for (code in [lo, hi]), taken (cleared) so it is
 * used once. Threads that never made such a syscall have no storage: a NULL check. */
static __always_inline bool pending_take(__u32 lo, __u32 hi, struct pending *out)
{
	struct pending *p = RW_THREAD_GET(&anomaly_pending, struct pending, false);
	if (!p || p->code < lo || p->code > hi)
		return false;
	*out = *p;
#ifdef RW_KERNEL_510
	RW_THREAD_FORGET(&anomaly_pending); /* the call is over: its entry is not kept */
#else
	p->code = 0;
#endif
	return true;
}

/* Failed ptrace/bpf attempts: one record per second per (uid, rule); the failures in
 * between are counted in the map and carried by that uid's next record of the rule. A
 * user with a subordinate uid range (newuidmap) can act as thousands of uids, so the
 * table can be filled on purpose: past it, failures share one entry per rule in
 * anomaly_rate_over, itself rate-limited, rather than being reported one by one. */
#define RW_RATE_WINDOW_NS 1000000000ULL
#define RW_RATE_ENTRIES 4096
/* The uid of the shared entries in anomaly_rate_over (no real uid: (uid_t)-1). */
#define RW_RATE_OVERFLOW_UID 0xffffffffU

struct rate_key {
	__u32 uid;
	__u32 rule;
};

struct rate_val {
	__u64 last_ns;    /* when the last failure was reported */
	__u64 suppressed; /* failures since then, not reported */
	__u32 last_tgid;  /* the process of the latest suppressed failure */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RW_RATE_ENTRIES);
	__type(key, struct rate_key);
	__type(value, struct rate_val);
} anomaly_rate SEC(".maps");

/* Indexed by rule: the uids that found anomaly_rate full, together. An array, so the
 * entry exists however full the table is. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct rate_val);
} anomaly_rate_over SEC(".maps");

/* Notes on the process's group leader under which uid a failure of a rule that has
 * a summary at exit was counted. No storage (no memory): the exit falls back to the
 * uid the process has then. */
static __always_inline void remember_rate_uid(__u32 uid, __u32 rule)
{
	__u32 i = rule - RW_RULE_PTRACE_ATTACH;
	if (i > 1)
		return;
	struct pending *p = RW_TASK_GET(&anomaly_pending, struct pending,
					RW_LOAD(rw_current_task(), group_leader),
					bpf_get_current_pid_tgid() >> 32, true);
	if (!p)
		return;
	p->rate_uid[i] = uid;
#if RW_HAS_FETCH
	__sync_fetch_and_or(&p->rate_mask, 1U << i);
#else
	p->rate_mask |= 1U << i; /* no atomic or (5.12): two threads' notes can race */
#endif
}

/* Whether this failure is reported; *slot is where the suppressed count is to be taken
 * from once the record is reserved (NULL: none), so a drop leaves it for the next.
 * *over is set when the count is the shared overflow entry's. */
static __always_inline bool rate_pass(__u32 uid, __u32 rule, struct rate_val **slot, bool *over)
{
	__u64 now = bpf_ktime_get_boot_ns();
	struct rate_key k = { .uid = uid, .rule = rule };
	struct rate_val *v = bpf_map_lookup_elem(&anomaly_rate, &k);
	*slot = NULL;
	*over = false;
	if (!v) {
		struct rate_val nv = { .last_ns = now, .suppressed = 0 };
		if (bpf_map_update_elem(&anomaly_rate, &k, &nv, BPF_NOEXIST) == 0)
			return true;
		v = bpf_map_lookup_elem(&anomaly_rate, &k);
	}
	if (!v) {
		/* Table full. */
		v = bpf_map_lookup_elem(&anomaly_rate_over, &rule);
		if (!v)
			return true;
		*over = true;
	}
	__u64 last = v->last_ns;
	/* One CPU wins a window; the others count themselves as suppressed. (5.10 has no
	 * compare-and-swap: CPUs racing at a window's start may each pass.) */
#if RW_HAS_FETCH
	if (now - last >= RW_RATE_WINDOW_NS &&
	    __sync_val_compare_and_swap(&v->last_ns, last, now) == last) {
#else
	if (now - last >= RW_RATE_WINDOW_NS) {
		v->last_ns = now;
#endif
		*slot = v;
		return true;
	}
	__sync_fetch_and_add(&v->suppressed, 1);
	v->last_tgid = bpf_get_current_pid_tgid() >> 32;
	remember_rate_uid(*over ? RW_RATE_OVERFLOW_UID : uid, rule);
	return false;
}

static __always_inline __u64 rate_take(struct rate_val *slot)
{
	return slot ? take_all(&slot->suppressed) : 0;
}

/* ---- setuid_root ----------------------------------------------------------------- */

static __always_inline int uid_enter(__u32 code)
{
	if (rw_skip())
		return 0;
	struct task_struct *task = rw_current_task();
	__u32 uid = BPF_CORE_READ(task, cred, uid.val);
	/* A root user cannot gain root (the common case: nothing to remember). A non-root
	 * user running a setuid-root binary (euid 0) still can: setuid(0) makes it root. */
	if (uid == 0)
		return 0;
	struct pending *p = pending_new(code);
	if (!p)
		return 0;
	p->uid = uid;
	p->euid = BPF_CORE_READ(task, cred, euid.val);
	p->fsuid = BPF_CORE_READ(task, cred, fsuid.val);
	return 0;
}

static __always_inline int uid_exit(struct rw_sys_exit_ctx *ctx)
{
	struct pending old;
	if (!pending_take(RW_SC_SETUID, RW_SC_SETFSUID, &old) || rw_skip())
		return 0;
	/* setfsuid returns the previous fsuid, not 0: only the creds tell. */
	if (old.code != RW_SC_SETFSUID && ctx->ret != 0)
		return 0;
	struct task_struct *task = rw_current_task();
	__u32 uid = BPF_CORE_READ(task, cred, uid.val);
	__u32 euid = BPF_CORE_READ(task, cred, euid.val);
	__u32 fsuid = BPF_CORE_READ(task, cred, fsuid.val);
	/* A gain: some id became 0 that was not (a setuid-root binary already had euid and
	 * fsuid 0; its setuid(0) gains the real uid). */
	if (!(uid == 0 && old.uid != 0) && !(euid == 0 && old.euid != 0) &&
	    !(fsuid == 0 && old.fsuid != 0))
		return 0;
	/* A setuid-root binary (euid 0 already) is what any user can run in a loop, and
	 * critical records pass the reserved room: rate-limited per user, the first of a
	 * window still at once. No summary at exit (each run is a process of its own, so
	 * that would be a record per run again): the count waits for the next record. */
	struct rate_val *slot = NULL;
	bool over = false;
	if (old.euid == 0 && !rate_pass(old.uid, RW_RULE_SETUID_ROOT, &slot, &over))
		return 0;
	struct anomaly_event *e = reserve_rule(RW_RULE_SETUID_ROOT, RW_SEV_CRITICAL);
	if (!e)
		return 0;
	e->suppressed = rate_take(slot);
	if (over)
		e->flags |= RW_ANOMALY_RATE_SHARED;
	e->code = old.code;
	e->args[0] = old.uid;
	e->args[1] = old.euid;
	e->args[2] = old.fsuid;
	e->args[3] = uid;
	e->args[4] = euid;
	e->args[5] = fsuid;
	RW_SUBMIT(anomaly, e);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_setuid")
int anomaly_setuid_enter(struct rw_sys_enter_ctx *ctx)
{
	return uid_enter(RW_SC_SETUID);
}

SEC("tracepoint/syscalls/sys_exit_setuid")
int anomaly_setuid_exit(struct rw_sys_exit_ctx *ctx)
{
	return uid_exit(ctx);
}

SEC("tracepoint/syscalls/sys_enter_setreuid")
int anomaly_setreuid_enter(struct rw_sys_enter_ctx *ctx)
{
	return uid_enter(RW_SC_SETREUID);
}

SEC("tracepoint/syscalls/sys_exit_setreuid")
int anomaly_setreuid_exit(struct rw_sys_exit_ctx *ctx)
{
	return uid_exit(ctx);
}

SEC("tracepoint/syscalls/sys_enter_setresuid")
int anomaly_setresuid_enter(struct rw_sys_enter_ctx *ctx)
{
	return uid_enter(RW_SC_SETRESUID);
}

SEC("tracepoint/syscalls/sys_exit_setresuid")
int anomaly_setresuid_exit(struct rw_sys_exit_ctx *ctx)
{
	return uid_exit(ctx);
}

SEC("tracepoint/syscalls/sys_enter_setfsuid")
int anomaly_setfsuid_enter(struct rw_sys_enter_ctx *ctx)
{
	return uid_enter(RW_SC_SETFSUID);
}

SEC("tracepoint/syscalls/sys_exit_setfsuid")
int anomaly_setfsuid_exit(struct rw_sys_exit_ctx *ctx)
{
	return uid_exit(ctx);
}

/* ---- exec_from_tmp / exec_from_memfd ---------------------------------------------- */

/* Steps of the walk to the root: a directory or a mount crossing each. A path name is
 * at most PATH_MAX (4096) bytes, so at most 2048 components, but trees can be made
 * arbitrarily deep by relative steps: a walk that does not reach the root within this
 * bound reports location "unknown" rather than nothing. */
#define RW_WALK_MAX 8192
/* The 5.10 variant's walk is unrolled by the verifier: fewer steps (deeper: "unknown"). */
#define RW_WALK_MAX_510 48

/* First 8 bytes of a dentry's name; returns bpf_probe_read_kernel_str's length. */
static __always_inline long dname8(struct dentry *d, char buf[8])
{
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	return bpf_probe_read_kernel_str(buf, 8, name);
}

static __always_inline bool is3(const char b[8], long n, char a, char c, char d)
{
	return n == 4 && b[0] == a && b[1] == c && b[2] == d;
}

struct walk_ctx {
	struct dentry *d;
	struct vfsmount *vm;
	struct dentry *root_d;
	struct vfsmount *root_vm;
	__u64 mnt_off;
	struct dentry *top;
	struct dentry *second;
	__u32 depth; /* steps taken, up to 3 */
	__u32 reached;
	__u32 ended; /* the walk stopped by itself (root, or a disconnected dentry) */
	__u32 pad;
};

/* One step up; 1 ends the walk. A bpf_loop callback is verified once, where an open
 * coded loop of mount crossings blows the verifier's budget. */
static long walk_step(__u32 i, struct walk_ctx *c)
{
	/* Locals: BPF_CORE_READ(c->x, ...) would make walk_ctx itself relocatable. */
	struct dentry *d = c->d;
	struct vfsmount *vm = c->vm;
	if (d == c->root_d && vm == c->root_vm) {
		c->reached = 1;
		c->ended = 1;
		return 1;
	}
	if (d == BPF_CORE_READ(vm, mnt_root)) {
		struct mount *m = (struct mount *)((void *)vm - c->mnt_off);
		struct mount *parent = BPF_CORE_READ(m, mnt_parent);
		if (parent == m) {
			/* The namespace root. */
			c->reached = 1;
			c->ended = 1;
			return 1;
		}
		c->d = BPF_CORE_READ(m, mnt_mountpoint);
		c->vm = (struct vfsmount *)((void *)parent + c->mnt_off);
		return 0;
	}
	struct dentry *up = BPF_CORE_READ(d, d_parent);
	/* A disconnected or pseudo dentry: not under any directory. */
	if (up == d) {
		c->ended = 1;
		return 1;
	}
	c->second = c->top;
	c->top = d;
	/* Only depths 0-3 are told apart: an exact count would make each step a state of
	 * its own for a verifier that unrolls the walk (the 5.10 variant's, E2BIG). */
	if (c->depth < 3)
		c->depth++;
	c->d = up;
	return 0;
}

/* Where the resolved file lives: walks from the file up to the task's root (crossing
 * mounts as d_path does) keeping the last two components. 0 when no rule matches;
 * RW_LOC_UNKNOWN when the path is deeper than RW_WALK_MAX steps. */
static __always_inline __u32 tmp_location(struct task_struct *task, struct file *file)
{
	struct walk_ctx c = {
		.d = BPF_CORE_READ(file, f_path.dentry),
		.vm = BPF_CORE_READ(file, f_path.mnt),
		.root_d = BPF_CORE_READ(task, fs, root.dentry),
		.root_vm = BPF_CORE_READ(task, fs, root.mnt),
		.mnt_off = bpf_core_field_offset(struct mount, mnt),
	};
	RW_LOOP(RW_WALK_MAX, RW_WALK_MAX_510, walk_step, &c);
	if (!c.ended)
		return RW_LOC_UNKNOWN;
	/* The file itself must be below the directory, not the directory. */
	if (!c.reached || c.depth < 2 || !c.top)
		return 0;
	char a[8] = {}, b[8] = {};
	long na = dname8(c.top, a);
	if (is3(a, na, 't', 'm', 'p'))
		return RW_LOC_TMP;
	if (c.depth < 3 || !c.second)
		return 0;
	long nb = dname8(c.second, b);
	if (is3(a, na, 'v', 'a', 'r') && is3(b, nb, 't', 'm', 'p'))
		return RW_LOC_VAR_TMP;
	if (is3(a, na, 'd', 'e', 'v') && is3(b, nb, 's', 'h', 'm'))
		return RW_LOC_DEV_SHM;
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(anomaly_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (rw_skip())
		return 0;
	struct file *file = BPF_CORE_READ(bprm, file);
	struct dentry *fd = BPF_CORE_READ(file, f_path.dentry);
	char head[8] = {};
	dname8(fd, head);
	__u32 rule, severity, loc = 0;
	/* memfd files are named "memfd:<name>" (shmem and hugetlbfs alike). */
	if (head[0] == 'm' && head[1] == 'e' && head[2] == 'm' && head[3] == 'f' &&
	    head[4] == 'd' && head[5] == ':') {
		rule = RW_RULE_EXEC_FROM_MEMFD;
		severity = RW_SEV_HIGH;
	} else {
		loc = tmp_location(p, file);
		if (!loc)
			return 0;
		rule = RW_RULE_EXEC_FROM_TMP;
		severity = RW_SEV_MEDIUM;
	}
	struct anomaly_event *e = reserve_rule(rule, severity);
	if (!e)
		return 0;
	e->args[0] = loc;
	long n = bpf_probe_read_kernel_str(e->detail, sizeof(e->detail),
					   BPF_CORE_READ(bprm, filename));
	if (n < 1) {
		n = 1;
		e->detail[0] = 0;
	}
	/* A string that filled the buffer may have been cut short. */
	if (n == sizeof(e->detail))
		e->flags |= RW_ANOMALY_DETAIL_TRUNCATED;
	e->detail_len = n - 1;
	n = bpf_probe_read_kernel_str(e->name, sizeof(e->name), BPF_CORE_READ(fd, d_name.name));
	if (n < 1) {
		n = 1;
		e->name[0] = 0;
	}
	if (n == sizeof(e->name))
		e->flags |= RW_ANOMALY_NAME_TRUNCATED;
	e->name_len = n - 1;
	RW_SUBMIT(anomaly, e);
	return 0;
}

/* ---- ptrace_attach ---------------------------------------------------------------- */

#define RW_PTRACE_ATTACH 16
#define RW_PTRACE_SEIZE 0x4206

SEC("tracepoint/syscalls/sys_enter_ptrace")
int anomaly_ptrace_enter(struct rw_sys_enter_ctx *ctx)
{
	__u64 req = ctx->args[0];
	if (req != RW_PTRACE_ATTACH && req != RW_PTRACE_SEIZE)
		return 0;
	if (rw_skip())
		return 0;
	struct pending *p = pending_new(RW_PEND_PTRACE);
	if (!p)
		return 0;
	p->args[0] = (__u32)ctx->args[1];
	p->args[1] = req;
	return 0;
}

/* Reported at the exit, where the outcome is known: a success always (high), a failure
 * (medium: nothing was gained) rate-limited, so a loop of refused attempts cannot flood
 * the ring. */
SEC("tracepoint/syscalls/sys_exit_ptrace")
int anomaly_ptrace_exit(struct rw_sys_exit_ctx *ctx)
{
	struct pending p;
	if (!pending_take(RW_PEND_PTRACE, RW_PEND_PTRACE, &p) || rw_skip())
		return 0;
	__s64 ret = ctx->ret;
	struct rate_val *slot = NULL;
	bool over = false;
	if (ret < 0 &&
	    !rate_pass((__u32)bpf_get_current_uid_gid(), RW_RULE_PTRACE_ATTACH, &slot, &over))
		return 0;
	struct anomaly_event *e =
		reserve_rule(RW_RULE_PTRACE_ATTACH, ret < 0 ? RW_SEV_MEDIUM : RW_SEV_HIGH);
	if (!e)
		return 0;
	e->args[0] = p.args[0];
	e->args[1] = p.args[1];
	e->args[2] = ret;
	e->args[3] = rate_take(slot);
	if (over)
		e->flags |= RW_ANOMALY_RATE_SHARED;
	RW_SUBMIT(anomaly, e);
	return 0;
}

/* ---- bpf_prog_load ---------------------------------------------------------------- */

#define RW_BPF_PROG_LOAD 5
/* Offsets in the user's union bpf_attr for BPF_PROG_LOAD (UAPI, fixed). */
#define RW_ATTR_PROG_TYPE 0
#define RW_ATTR_INSN_CNT 4
#define RW_ATTR_PROG_NAME 48

/* The attr is read at the entry: the exit cannot trust user memory to be unchanged. */
SEC("tracepoint/syscalls/sys_enter_bpf")
int anomaly_bpf_enter(struct rw_sys_enter_ctx *ctx)
{
	if ((__u32)ctx->args[0] != RW_BPF_PROG_LOAD)
		return 0;
	if (rw_skip())
		return 0;
	struct pending *p = pending_new(RW_PEND_BPF);
	if (!p)
		return 0;
	void *uattr = (void *)ctx->args[1];
	__u32 size = (__u32)ctx->args[2];
	__u32 v = 0;
	p->args[0] = 0;
	p->args[1] = 0;
	p->args[2] = size;
	p->name_len = 0;
	/* The storage is reused: no earlier load's name may show through. */
	__builtin_memset(p->name, 0, RW_BPF_OBJ_NAME_LEN);
	if (size >= RW_ATTR_PROG_TYPE + 4 &&
	    bpf_probe_read_user(&v, sizeof(v), uattr + RW_ATTR_PROG_TYPE) == 0)
		p->args[0] = v;
	v = 0;
	if (size >= RW_ATTR_INSN_CNT + 4 &&
	    bpf_probe_read_user(&v, sizeof(v), uattr + RW_ATTR_INSN_CNT) == 0)
		p->args[1] = v;
	/* An older, shorter attr has no name (the kernel treats the missing tail as 0). */
	if (size >= RW_ATTR_PROG_NAME + RW_BPF_OBJ_NAME_LEN &&
	    bpf_probe_read_user(p->name, RW_BPF_OBJ_NAME_LEN, uattr + RW_ATTR_PROG_NAME) == 0) {
		__u32 n = 0;
		for (int i = 0; i < RW_BPF_OBJ_NAME_LEN; i++) {
			if (p->name[i] == 0)
				break;
			n++;
		}
		p->name_len = n;
	}
	return 0;
}

/* As ptrace: a load that succeeded always (high), failures rate-limited (medium). */
SEC("tracepoint/syscalls/sys_exit_bpf")
int anomaly_bpf_exit(struct rw_sys_exit_ctx *ctx)
{
	struct pending p;
	if (!pending_take(RW_PEND_BPF, RW_PEND_BPF, &p) || rw_skip())
		return 0;
	__s64 ret = ctx->ret;
	struct rate_val *slot = NULL;
	bool over = false;
	if (ret < 0 &&
	    !rate_pass((__u32)bpf_get_current_uid_gid(), RW_RULE_BPF_PROG_LOAD, &slot, &over))
		return 0;
	struct anomaly_event *e =
		reserve_rule(RW_RULE_BPF_PROG_LOAD, ret < 0 ? RW_SEV_MEDIUM : RW_SEV_HIGH);
	if (!e)
		return 0;
	e->args[0] = p.args[0];
	e->args[1] = p.args[1];
	e->args[2] = p.args[2];
	e->args[3] = ret;
	e->args[4] = rate_take(slot);
	if (over)
		e->flags |= RW_ANOMALY_RATE_SHARED;
	__builtin_memcpy(e->name, p.name, RW_BPF_OBJ_NAME_LEN);
	e->name[RW_BPF_OBJ_NAME_LEN] = 0;
	e->name_len = p.name_len < RW_BPF_OBJ_NAME_LEN ? p.name_len : RW_BPF_OBJ_NAME_LEN;
	RW_SUBMIT(anomaly, e);
	return 0;
}

/* ---- suppressed failures, flushed at the process's exit ---------------------------- */

/* A flood's failures after its first record wait in anomaly_rate for the uid's next
 * record of the rule, which may never come: when the process that made the latest of
 * them ends, one `summary` record carries the count, so it is seen when the flood ends
 * (and not lost if the daemon stops before another attempt). */
static __always_inline void flush_val(struct rate_val *v, __u32 tgid, __u32 rule, __u32 flags)
{
	if (!v || v->last_tgid != tgid || (__s64)v->suppressed <= 0)
		return;
	/* Taken before the reserve (threads of a dying group may race here), given back
	 * if the record cannot be had. */
	__u64 n = take_all(&v->suppressed);
	if (!n)
		return;
	struct anomaly_event *e = reserve_rule(rule, RW_SEV_MEDIUM);
	if (!e) {
		__sync_fetch_and_add(&v->suppressed, n);
		return;
	}
	e->flags = RW_ANOMALY_SUMMARY | flags;
	e->args[rule == RW_RULE_PTRACE_ATTACH ? 3 : 4] = n;
	RW_SUBMIT(anomaly, e);
}

static __always_inline void flush_rule(struct pending *lp, __u32 uid, __u32 tgid, __u32 rule)
{
	__u32 i = rule - RW_RULE_PTRACE_ATTACH;
	if (lp && i < 2 && (lp->rate_mask & (1U << i))) {
		uid = lp->rate_uid[i & 1];
		if (uid == RW_RATE_OVERFLOW_UID) {
			flush_val(bpf_map_lookup_elem(&anomaly_rate_over, &rule), tgid, rule,
				  RW_ANOMALY_RATE_SHARED);
			return;
		}
	}
	struct rate_key k = { .uid = uid, .rule = rule };
	flush_val(bpf_map_lookup_elem(&anomaly_rate, &k), tgid, rule, 0);
	flush_val(bpf_map_lookup_elem(&anomaly_rate_over, &rule), tgid, rule,
		  RW_ANOMALY_RATE_SHARED);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(anomaly_exit, struct task_struct *p)
{
	/* Once per process: when its thread group is dead (signal->live is decremented
	 * before this tracepoint). */
	bool last = BPF_CORE_READ(p, signal, live.counter) == 0;
	if (last && !rw_skip()) {
		__u32 tgid = BPF_CORE_READ(p, tgid);
		/* The uid each rule's latest failure was counted under, as noted on the group
		 * leader (alive until reaped, after this); without a note, the uid now. */
		struct pending *lp =
			RW_TASK_GET(&anomaly_pending, struct pending, p->group_leader, tgid, false);
		__u32 uid = (__u32)bpf_get_current_uid_gid();
		flush_rule(lp, uid, tgid, RW_RULE_PTRACE_ATTACH);
		flush_rule(lp, uid, tgid, RW_RULE_BPF_PROG_LOAD);
	}
#ifdef RW_KERNEL_510
	/* The variant's hash: the thread's own entry (left by a call it never returned
	 * from) goes with it, the group's rate notes (keyed by tgid) with the group, once
	 * flushed. */
	RW_THREAD_FORGET(&anomaly_pending);
	if (last) {
		__u64 g = BPF_CORE_READ(p, tgid);
		bpf_map_delete_elem(&anomaly_pending, &g);
	}
#endif
	return 0;
}

/* ---- module_load (attempts; the tracepoints exist only with CONFIG_MODULES) ------- */

static __always_inline void module_params(struct anomaly_event *e, const char *uargs)
{
	long n = bpf_probe_read_user_str(e->detail, sizeof(e->detail), uargs);
	if (n < 1) {
		n = 1;
		e->detail[0] = 0;
	}
	if (n == sizeof(e->detail))
		e->flags |= RW_ANOMALY_DETAIL_TRUNCATED;
	e->detail_len = n - 1;
}

SEC("tracepoint/syscalls/sys_enter_init_module")
int anomaly_init_module(struct rw_sys_enter_ctx *ctx)
{
	if (rw_skip())
		return 0;
	struct anomaly_event *e = reserve_rule(RW_RULE_MODULE_LOAD, RW_SEV_HIGH);
	if (!e)
		return 0;
	e->code = RW_SC_INIT_MODULE;
	e->args[0] = ctx->args[1]; /* len */
	module_params(e, (const char *)ctx->args[2]);
	RW_SUBMIT(anomaly, e);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_finit_module")
int anomaly_finit_module(struct rw_sys_enter_ctx *ctx)
{
	if (rw_skip())
		return 0;
	struct anomaly_event *e = reserve_rule(RW_RULE_MODULE_LOAD, RW_SEV_HIGH);
	if (!e)
		return 0;
	e->code = RW_SC_FINIT_MODULE;
	e->args[0] = (__u64)(__s64)(int)ctx->args[0]; /* fd, sign kept */
	e->args[1] = ctx->args[2];                    /* flags */
	module_params(e, (const char *)ctx->args[1]);
	RW_SUBMIT(anomaly, e);
	return 0;
}

RW_LAYOUT(anomaly_event);
RW_ENUM(rw_anomaly_type);
RW_ENUM(rw_anomaly_rule);
RW_ENUM(rw_anomaly_severity);
RW_ENUM(rw_anomaly_syscall);
RW_ENUM(rw_anomaly_location);
RW_ENUM(rw_anomaly_flags);
