/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by every family: the record header, the ring plumbing and the accounting.
 * Record layouts and the named constants (enums) are mirrored in src/family/; tests
 * there read this object's BTF and fail if the two drift. */
#ifndef RW_COMMON_H
#define RW_COMMON_H

#define RW_COMM_LEN 16

#include "filter.h"

/* Record types (rw_header.type) are declared by each family in its own header as
 * `enum rw_FAMILY_type`; the values are unique across families (a Rust test checks). */

/* Every record starts with this header (64 bytes). */
struct rw_header {
	__u64 seq;       /* per-ring sequence number, given to every attempt */
	__u64 ts_ns;     /* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id; /* cgroup v2 id of the task */
	__u32 type;      /* enum rw_FAMILY_type */
	__u32 pid;       /* tgid */
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	char comm[RW_COMM_LEN];
};

/* Per ring slot: the most bytes waiting in the ring seen by a producer right after its
 * commit since userspace last reset it (every tick). Polling userspace cannot see how
 * full a ring got between its wake-ups; this can. Its own map, so that userspace can
 * reset it without touching the counters. */
struct rw_fill {
	__u64 high_water;
};

/* Per ring slot accounting: produced = received + dropped at any quiescent point. */
struct rw_counters {
	__u64 produced;     /* every reserve attempt; its old value is the attempt's seq */
	__u64 dropped;      /* every reserve failure */
	__u64 untracked;    /* syscalls not followed from enter to exit (RW_COUNT_UNTRACKED) */
	__u64 filtered;     /* events the filters (filter.h) rejected: no seq, no ring space */
	__u64 rate_limited; /* events a rate limit (filter.h) refused: no seq, no ring space */
};

/* Written by userspace into the rw_config map of every family after load. */
struct rw_config {
	__u32 self_tgid; /* the daemon's tgid as the kernel sees it; 0 = not known yet */
	__u32 flags;     /* RW_CONFIG_* */
	/* In a PID namespace the daemon knows only its pid in there: the programs learn
	 * its real tgid the first time they see it (see rw_skip). */
	__u32 ns_tgid;
	__u32 family; /* the family's index (bit in rw_filter_set.families, rw_loss_key) */
	__u64 pidns_dev;
	__u64 pidns_ino;
	/* 0: the kernel's default wake-ups. Otherwise batching: commits do not wake the
	 * reader (it drains on a short timer), except the one that fills the ring past this
	 * many bytes. A wake-up costs the producer ~3 us per event on a VM. */
	__u64 wakeup_bytes;
	/* Ring shards (issue 15): with shards > 1, a program on CPU c writes to slot
	 * c * shards / cpus of the outer array, counters and fill maps (each has `shards`
	 * slots), so producers on different CPU groups do not share a ring's lock. */
	__u32 shards;
	__u32 cpus; /* possible CPUs: every CPU id is below */
};

/* rw_config.flags */
enum rw_config_flags {
	/* Set at shutdown: every program stops reporting at once. Detaching classic
	 * tracepoints costs ~75 ms each here (an RCU grace period per perf event), so the
	 * daemon stops the programs through this flag, drains and reports, and only then
	 * detaches. */
	RW_CONFIG_STOPPED = 1,
	/* The daemon keeps a process table (issue 12): the records that keep it (exec) are
	 * sent even when the filters reject them, marked for the table only, so that the
	 * context of the events that do pass stays true. */
	RW_CONFIG_CONTEXT = 2,
};

/* Keys of the per-family maps: rw_config has one slot; the outer ring array, the
 * counters and the fill marks are indexed by ring slot, one per shard (a group of CPUs;
 * see rw_slot). The object declares one; userspace sets how many before the load. */
enum rw_slots {
	RW_SLOT = 0,
	RW_RING_SLOTS = 1,
};

#ifdef __BPF__

/* Declares FAM_ring (the ring buffer, named after the family), FAM_rings (the
 * ARRAY_OF_MAPS the programs go through, so userspace can swap the ring at run time)
 * and FAM_stats (the counters, which never change on a swap). The ring's size is set
 * by userspace at load (the family's Spec in src/family/FAM.rs): one page here. */
#define RW_DECLARE_RING(fam)                                                                       \
	struct fam##_ring_def {                                                                    \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                                                \
		__uint(max_entries, 4096);                                                         \
	};                                                                                         \
	struct fam##_ring_def fam##_ring SEC(".maps");                                             \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);                                          \
		__uint(max_entries, RW_RING_SLOTS);                                                \
		__type(key, __u32);                                                                \
		__array(values, struct fam##_ring_def);                                            \
	} fam##_rings SEC(".maps") = { .values = { [0] = &fam##_ring } };                          \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                                  \
		__uint(max_entries, RW_RING_SLOTS);                                                \
		__type(key, __u32);                                                                \
		__type(value, struct rw_counters);                                                 \
	} fam##_stats SEC(".maps");                                                                \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                                  \
		__uint(max_entries, RW_RING_SLOTS);                                                \
		__type(key, __u32);                                                                \
		__type(value, struct rw_fill);                                                     \
	} fam##_fill SEC(".maps")

/* Settings userspace writes after load (a map, not .rodata, so one generic loader
 * serves every family and later changes need no reload). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rw_config);
} rw_config SEC(".maps");

static __always_inline struct rw_config *rw_cfg(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&rw_config, &zero);
}

/* The ring slot of the current CPU: its shard, consecutive CPUs sharing one, every
 * shard with its share. Every map a record touches (counters, ring, fill) is looked up
 * with it, so seq, drops and marks are per shard. A tracing program runs with migration
 * disabled, so a reserve and its commit agree. */
static __always_inline __u32 rw_slot(void)
{
	struct rw_config *cfg = rw_cfg();
	if (!cfg || cfg->shards <= 1 || !cfg->cpus)
		return RW_SLOT;
	__u64 s = (__u64)bpf_get_smp_processor_id() * cfg->shards / cfg->cpus;
	return s < cfg->shards ? (__u32)s : RW_SLOT;
}

/* The counters of `*slot`, or of slot 0 (which always exists) when the maps have no
 * such slot: a config written behind the daemon's back (which the tamper check reports
 * and restores) must not make an event vanish uncounted. `*slot` is then 0 too, so the
 * ring and the books of the record agree. */
static __always_inline struct rw_counters *rw_counters_of(void *stats, __u32 *slot)
{
	struct rw_counters *c = bpf_map_lookup_elem(stats, slot);
	if (!c) {
		*slot = RW_SLOT;
		c = bpf_map_lookup_elem(stats, slot);
	}
	return c;
}

/* Whether the current task belongs to the daemon, in a PID namespace where its real
 * tgid is not known yet: a task whose tgid in the daemon's namespace is the daemon's.
 * The answer is remembered in the config, so this runs until the daemon's first event. */
static __always_inline bool rw_learn_self(struct rw_config *cfg, __u32 tgid)
{
	struct bpf_pidns_info ns = {};
	if (!cfg || bpf_get_ns_current_pid_tgid(cfg->pidns_dev, cfg->pidns_ino, &ns, sizeof(ns)))
		return false;
	if (ns.tgid != cfg->ns_tgid)
		return false;
	cfg->self_tgid = tgid;
	return true;
}

/* rw_skip for the current task of tgid `tgid` (a program that has the task in hand
 * passes its tgid: one helper call less). */
static __always_inline bool rw_skip_tgid(__u32 tgid)
{
	struct rw_config *cfg = rw_cfg();
	if (!cfg || (cfg->flags & RW_CONFIG_STOPPED))
		return true;
	if (cfg->self_tgid)
		return tgid == cfg->self_tgid;
	return rw_learn_self(cfg, tgid);
}

/* True when the program must not report: the daemon is stopping, or the current task
 * is the daemon itself (its own activity is never traced: no feedback loop). */
static __always_inline bool rw_skip(void)
{
	return rw_skip_tgid(bpf_get_current_pid_tgid() >> 32);
}

/* Only the first half of rw_skip: for the second half of a call whose first half passed
 * it (the task is not the daemon's; it may have stopped since). */
static __always_inline bool rw_stopped(void)
{
	struct rw_config *cfg = rw_cfg();
	return !cfg || (cfg->flags & RW_CONFIG_STOPPED);
}

/* x86: thread_info.status bit set for the duration of a 32-bit syscall (int 0x80,
 * sysenter, 32-bit syscall), including its sys_exit. arch/x86/include/asm/thread_info.h. */
#define RW_TS_COMPAT 0x0002

/* Whether the current syscall is a 32-bit compat one. Its id is an ia32 number, which
 * names another syscall in the 64-bit table (ia32 getpid 20 is x86_64 writev). */
static __always_inline bool is_compat_syscall(struct task_struct *task)
{
#if defined(__TARGET_ARCH_x86)
	if (!bpf_core_field_exists(task->thread_info.status))
		return false;
	return RW_LOAD(task, thread_info.status) & RW_TS_COMPAT;
#elif defined(__TARGET_ARCH_arm64)
	/* TIF_32BIT (arch/arm64/include/asm/thread_info.h): an AArch32 task, every syscall
	 * of which is a compat one with an arm32 number. */
	return BPF_CORE_READ(task, thread_info.flags) & (1UL << 22);
#else
	/* Other arches' compat syscalls are not told apart yet. */
	return false;
#endif
}

/* Whether the daemon keeps process context (see RW_CONFIG_CONTEXT). */
static __always_inline bool rw_context_on(void)
{
	struct rw_config *cfg = rw_cfg();
	return cfg && (cfg->flags & RW_CONFIG_CONTEXT);
}

/* Counts a drop, in the ring's books and against `*uid` (NULL: the current task's, read
 * only here: a helper call the reserves that succeed do not pay). */
static __always_inline void rw_count_drop_of(struct rw_counters *c, const __u32 *uid)
{
	__sync_fetch_and_add(&c->dropped, 1);
	struct rw_config *cfg = rw_cfg();
	if (cfg)
		rw_loss_count(cfg->family, uid ? *uid : (__u32)bpf_get_current_uid_gid(),
			      RW_LOSS_DROPPED);
}

/* The same against the current task's uid. */
static __always_inline void rw_count_drop(struct rw_counters *c)
{
	rw_count_drop_of(c, NULL);
}

/* Counts an event the filters rejected, in the ring's books and against `uid`. */
static __always_inline void rw_count_filtered(void *stats, __u32 uid)
{
	__u32 slot = rw_slot();
	struct rw_counters *c = rw_counters_of(stats, &slot);
	if (c)
		__sync_fetch_and_add(&c->filtered, 1);
	struct rw_config *cfg = rw_cfg();
	if (cfg)
		rw_loss_count(cfg->family, uid, RW_LOSS_FILTERED);
}

/* Whether the task rules apply to this family in `set`. */
static __always_inline bool rw_task_rules(struct rw_filter_set *set)
{
	struct rw_config *cfg = rw_cfg();
	return (set->bits & RW_F_TASK) && cfg && (set->families & (1U << (cfg->family & 31)));
}

/* Whether the current task's event is rejected by the task rules of `set` (which the
 * caller got from rw_fset with `gen`); counted when it is. */
static __always_inline bool rw_task_filtered_by(void *stats, struct rw_filter_set *set, __u8 gen)
{
	if (!rw_task_rules(set))
		return false;
	/* Read once for the judging and the count: each helper call costs ~20 ns here. */
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	if (!rw_task_verdict(gen, uid))
		return false;
	rw_count_filtered(stats, uid);
	return true;
}

/* Whether a rate limit of `set` refuses an event of `uid` (that passed the filters);
 * counted when it does. */
static __always_inline bool rw_rate_limited(void *stats, struct rw_filter_set *set, __u8 gen,
					    __u32 uid)
{
	struct rw_config *cfg = rw_cfg();
	if (!cfg || !rw_rate_set(set, cfg->family) || !rw_rate_refused(gen, cfg->family, uid))
		return false;
	__u32 slot = rw_slot();
	struct rw_counters *c = rw_counters_of(stats, &slot);
	if (c)
		__sync_fetch_and_add(&c->rate_limited, 1);
	rw_loss_count(cfg->family, uid, RW_LOSS_RATE_LIMITED);
	return true;
}

/* The same for the current task's event: its uid is read only when a rate limit may use
 * it. */
static __always_inline bool rw_rate_limited_current(void *stats, struct rw_filter_set *set,
						    __u8 gen)
{
	struct rw_config *cfg = rw_cfg();
	if (!cfg || !rw_rate_set(set, cfg->family))
		return false;
	return rw_rate_limited(stats, set, gen, (__u32)bpf_get_current_uid_gid());
}

/* The task rules and then the rate limits of the set in force, for the current task's
 * event: what a family calls right before it reserves. True: not to be reported (and
 * counted as filtered or rate limited). */
static __noinline bool rw_judged_out(void *stats)
{
	__u8 gen = 0;
	struct rw_filter_set *set = rw_fset(&gen);
	if (!set)
		return false;
	return rw_task_filtered_by(stats, set, gen) || rw_rate_limited_current(stats, set, gen);
}

/* Out of line: inlined, the judging's code made every family's hot path ~10 % slower
 * without a rule (measured: getppid events per second, one producer). */
#define RW_FILTERED(fam) (rw_rules_active() && rw_judged_out(&fam##_stats))

/* Counts an attempt: its seq is produced's old value (RW_SEQ_NONE in the 5.10 variant,
 * whose atomic add returns nothing: see kernel.h). */
static __always_inline __u64 rw_take_seq(struct rw_counters *c)
{
#if RW_HAS_FETCH
	return __sync_fetch_and_add(&c->produced, 1);
#else
	__sync_fetch_and_add(&c->produced, 1);
	return RW_SEQ_NONE;
#endif
}

/* Counts the attempt, takes its sequence number and reserves; counts a failure as a drop
 * of `*uid`'s (NULL: the current task's). Always inlined so that `size` stays a constant
 * for the verifier. */
static __always_inline void *rw_reserve_of(void *rings, void *stats, __u32 size, const __u32 *uid)
{
	__u32 slot = rw_slot();
	struct rw_counters *c = rw_counters_of(stats, &slot);
	if (!c)
		return NULL;
	__u64 seq = rw_take_seq(c);
	void *rb = bpf_map_lookup_elem(rings, &slot);
	struct rw_header *h = rb ? bpf_ringbuf_reserve(rb, size, 0) : NULL;
	if (!h) {
		rw_count_drop_of(c, uid);
		return NULL;
	}
	h->seq = seq;
	return h;
}

/* The current task's event. */
static __always_inline void *rw_reserve(void *rings, void *stats, __u32 size)
{
	return rw_reserve_of(rings, stats, size, NULL);
}

/* Counts one syscall that a family saw but could not follow from enter to exit (see
 * rw_counters.untracked), so the loss is on the books. */
#define RW_COUNT_UNTRACKED(fam)                                                                    \
	do {                                                                                       \
		__u32 __slot = rw_slot();                                                          \
		struct rw_counters *__c = rw_counters_of(&fam##_stats, &__slot);                   \
		if (__c)                                                                           \
			__sync_fetch_and_add(&__c->untracked, 1);                                  \
	} while (0)

#ifndef RW_KERNEL_510
/* The current task's parent's tgid, and its gid << 32 | uid: plain loads of the task's own
 * fields, where the helpers took ~45 ns (two probe reads) and ~30 ns. Global functions:
 * the verifier checks these pointer loads once per program rather than at every visit of
 * each caller (each costs it searches of the kernel's BTF by name: +170 ms of start when
 * inlined). */
RW_GLOBAL __u32 rw_task_ppid(void)
{
	return bpf_get_current_task_btf()->real_parent->tgid;
}

RW_GLOBAL __u64 rw_task_ugid(void)
{
	const struct cred *c = bpf_get_current_task_btf()->cred;
	return (__u64)c->gid.val << 32 | c->uid.val;
}
#endif

/* Fills the header from the current task, stamped `ts` (a program that already read the
 * clock passes its reading: one clock read less per event). */
static __always_inline void rw_fill_header(struct rw_header *h, __u32 type, __u64 ts)
{
	h->ts_ns = ts;
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->type = type;
#ifdef RW_KERNEL_510
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	h->uid = (__u32)ug;
	h->gid = ug >> 32;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
#else
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 ug = rw_task_ugid();
	h->pid = task->tgid;
	h->tid = task->pid;
	h->ppid = rw_task_ppid();
	h->uid = (__u32)ug;
	h->gid = ug >> 32;
	__builtin_memcpy(h->comm, task->comm, sizeof(h->comm));
#endif
}

#include "layout.h"

RW_LAYOUT(rw_header);
RW_LAYOUT(rw_counters);
RW_LAYOUT(rw_fill);
RW_LAYOUT(rw_config);
RW_ENUM(rw_config_flags);
RW_ENUM(rw_slots);
RW_ENUM(rw_loss_slots);

/* The wake-up rule (see rw_config.wakeup_bytes) for a record of `size` bytes, given the
 * ring's occupancy `avail` once the record is in it. */
static __always_inline __u64 rw_wake_flags(__u64 avail, __u64 size)
{
	struct rw_config *cfg = rw_cfg();
	if (!cfg || !cfg->wakeup_bytes)
		return 0;
	/* Only the record that crosses the threshold wakes the reader: once awake it
	 * drains to empty, and waking it per record would cost every producer the
	 * wake-up again. (With concurrent producers the crossing can be missed; the
	 * batching timer still drains within its latency.) */
	__u64 taken = (size + 8 + 7) & ~7ULL; /* record + ring header, 8-aligned */
	__u64 before = avail > taken ? avail - taken : 0;
	return (avail >= cfg->wakeup_bytes && before < cfg->wakeup_bytes) ? BPF_RB_FORCE_WAKEUP
									  : BPF_RB_NO_WAKEUP;
}

/* Records the ring's occupancy as a high-water mark. bpf has no atomic max: one
 * compare-and-swap, retried once, so a concurrent higher value is rarely overwritten by
 * a lower one (a mark, not a counter: close is good enough). */
static __always_inline void rw_mark(void *fill, __u64 avail, __u32 slot)
{
	struct rw_fill *f = bpf_map_lookup_elem(fill, &slot);
	if (!f)
		return;
#if RW_HAS_FETCH
	for (int i = 0; i < 2; i++) {
		__u64 old = f->high_water;
		if (avail <= old || __sync_val_compare_and_swap(&f->high_water, old, avail) == old)
			break;
	}
#else
	if (avail > f->high_water)
		f->high_water = avail;
#endif
}

/* Commits a record with the wake-up rule and records the ring's occupancy. The
 * occupancy is read once, before the commit: it already counts this record (reserved
 * space is part of it). */
static __always_inline void rw_commit(void *rec, __u64 size, void *rings, void *fill)
{
	__u32 slot = rw_slot();
	void *rb = bpf_map_lookup_elem(rings, &slot);
	__u64 avail = rb ? bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA) : 0;
	bpf_ringbuf_submit(rec, rw_wake_flags(avail, size));
	rw_mark(fill, avail, slot);
}

/* For records of varying size built elsewhere (a per-CPU buffer): counts the attempt,
 * stamps its seq into `h`, copies `size` bytes into the ring (bpf_ringbuf_output) with
 * the wake-up rule, and counts a failure as a drop, as rw_reserve + rw_commit do. */
static __always_inline void rw_output(void *rings, void *stats, void *fill, struct rw_header *h,
				      __u64 size, __u64 mask)
{
	/* Bounded by a mask on the very register the helper gets: the caller's own bound
	 * check is lost on older verifiers (6.1: "R3 unbounded memory access"), and the
	 * barrier keeps the compiler from dropping a mask it knows to be a no-op. */
	barrier_var(size);
	size &= mask;
	__u32 slot = rw_slot();
	struct rw_counters *c = rw_counters_of(stats, &slot);
	if (!c)
		return;
	h->seq = rw_take_seq(c);
	void *rb = bpf_map_lookup_elem(rings, &slot);
	if (!rb) {
		rw_count_drop(c);
		return;
	}
	/* The occupancy once this record is in: what rw_commit sees after a reserve. */
	__u64 avail = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA) + ((size + 8 + 7) & ~7ULL);
	if (bpf_ringbuf_output(rb, h, size, rw_wake_flags(avail, size))) {
		rw_count_drop(c);
		return;
	}
	rw_mark(fill, avail, slot);
}

/* Commit (with the wake-up rule) + high-water mark in one step. */
#define RW_SUBMIT(fam, e) rw_commit(e, sizeof(*(e)), &fam##_rings, &fam##_fill)

/* Records sent variable-size (a path at their end) are built per CPU in a buffer of
 * RW_OUT_MASK + 1 bytes and sent with only the bytes they use (RW_OUTPUT with this mask).
 * Tracing programs do not nest on a CPU (the kernel's recursion guard), so one is enough. */
#define RW_OUT_MASK 8191
struct rw_out_buf {
	char rec[RW_OUT_MASK + 1];
};

#define RW_DECLARE_OUT_BUF(fam)                                                                    \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                           \
		__uint(max_entries, 1);                                                            \
		__type(key, __u32);                                                                \
		__type(value, struct rw_out_buf);                                                  \
	} fam##_out SEC(".maps");                                                                  \
	static __always_inline struct rw_out_buf *fam##_out_buf(void)                              \
	{                                                                                          \
		__u32 zero = 0;                                                                    \
		return bpf_map_lookup_elem(&fam##_out, &zero);                                     \
	}

/* rw_output on the family's maps: `size` bytes from `h`, `size` <= `mask` (a power of two
 * minus one, with `h` + `mask` inside the buffer `h` is in). */
#define RW_OUTPUT(fam, h, size, mask)                                                              \
	rw_output(&fam##_rings, &fam##_stats, &fam##_fill, h, size, mask)

/* Reserve + header stamped `ts` in one step, for an event the caller has already judged
 * by the filters (or that is not the current task's). */
#define RW_RESERVE_JUDGED_AT(fam, type_struct, evtype, ts)                                         \
	({                                                                                         \
		type_struct *__e = rw_reserve(&fam##_rings, &fam##_stats, sizeof(type_struct));    \
		if (__e)                                                                           \
			rw_fill_header(&__e->hdr, evtype, ts);                                     \
		__e;                                                                               \
	})

/* The current task's event: judged by the task rules (NULL, counted as filtered, when
 * they reject it), then reserved with its header stamped `ts`. */
#define RW_RESERVE_AT(fam, type_struct, evtype, ts)                                                \
	(RW_FILTERED(fam) ? (type_struct *)NULL                                                    \
			  : RW_RESERVE_JUDGED_AT(fam, type_struct, evtype, ts))

#define RW_RESERVE_JUDGED(fam, type_struct, evtype)                                                \
	RW_RESERVE_JUDGED_AT(fam, type_struct, evtype, bpf_ktime_get_boot_ns())

/* Reserve + header in one step. */
#define RW_RESERVE(fam, type_struct, evtype)                                                       \
	RW_RESERVE_AT(fam, type_struct, evtype, bpf_ktime_get_boot_ns())

#endif /* __BPF__ */
#endif /* RW_COMMON_H */
