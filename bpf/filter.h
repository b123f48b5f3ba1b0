/* SPDX-License-Identifier: GPL-2.0 */
/* In-kernel filters, shared by every family: which events are not wanted, judged before a
 * record is reserved, so that a filtered event costs no ring space, takes no seq and is
 * counted (rw_counters.filtered, and per uid in rw_uid_loss).
 *
 * The rules come in two generations: userspace writes a new set into the one not in use
 * and then flips rw_filter_gen, so that every event is judged by one whole set, never
 * half old and half new. The maps belong to the filter object (filter.bpf.c, which also
 * follows pid trees through fork); every family's object is handed the same maps at load.
 * Mirrored in src/family/filter.rs. */
#ifndef RW_FILTER_H
#define RW_FILTER_H

#include "kernel.h"

/* Bytes of a path (file, cgroup) that prefixes are compared against: the key (gen, list,
 * path) fills the 256 bytes an LPM trie's data may have. */
#define RW_FILTER_PATH_LEN 250
/* A mask that keeps an index below 256 (the scratch has room past the key for it). */
#define RW_FILTER_PATH_MASK 255

/* rw_filter_set.bits: which rules the set has. */
enum rw_filter_bits {
	RW_F_INCLUDE_COMM = 1 << 0,
	RW_F_EXCLUDE_COMM = 1 << 1,
	RW_F_INCLUDE_UID = 1 << 2,
	RW_F_EXCLUDE_UID = 1 << 3,
	RW_F_INCLUDE_CGROUP = 1 << 4,
	RW_F_EXCLUDE_CGROUP = 1 << 5,
	RW_F_INCLUDE_TREE = 1 << 6,
	RW_F_INCLUDE_PATH = 1 << 7,
	RW_F_EXCLUDE_PATH = 1 << 8,
	RW_F_ONLY_WRITES = 1 << 9,
	RW_F_INCLUDE_PORT = 1 << 10,
	RW_F_EXCLUDE_PORT = 1 << 11,
	RW_F_INCLUDE_CIDR = 1 << 12,
	RW_F_EXCLUDE_CIDR = 1 << 13,
	/* The rules about the task (the ones every family has). */
	RW_F_TASK = (1 << 7) - 1,
};

/* The second byte of every list's key: which list an entry belongs to. */
enum rw_filter_list {
	RW_FL_INCLUDE = 0,
	RW_FL_EXCLUDE = 1,
};

/* Room for the family indexes (rw_config.family). */
#define RW_FAMILIES 8

/* A rate limit as a token bucket, kept as GCRA: an event is let through when the bucket's
 * theoretical arrival time is at most tau_ns ahead of now, and pushes it interval_ns
 * further. A bucket holds tau_ns / interval_ns + 1 events (one period's worth). */
struct rw_rate {
	__u64 interval_ns; /* 0: no limit */
	__u64 tau_ns;
};

/* rw_filter_set.flags */
enum rw_set_flags {
	/* Being written: the fork program follows its pid trees although it is not current
	 * (only the current generation's are followed otherwise). */
	RW_SET_SEEDING = 1,
};

/* A pid tree entry seeded from /proc holds the process's start time in clock ticks (as
 * /proc/PID/stat gives it) under this bit; one the fork program adds holds the start time
 * in ns. Either tells a reused pid from the process that was in the tree. */
#define RW_TREE_TICKS (1ULL << 63)
#define RW_NS_PER_TICK 10000000ULL /* USER_HZ 100 */

/* One generation of rules: what is set (the lists are in the maps below, keyed by gen). */
struct rw_filter_set {
	__u32 bits;     /* RW_F_* */
	__u32 families; /* 1 << family index: the families the task rules apply to */
	__u32 epoch;    /* differs for every set written: what a cached verdict was made with */
	__u32 flags;    /* RW_SET_* */
	struct rw_rate family_rate[RW_FAMILIES]; /* by family index: the family's bucket */
	struct rw_rate uid_rate[RW_FAMILIES];    /* by family index: each uid's own bucket */
};

/* A token bucket's state (rw_rate_family by family index, rw_rate_uid by rw_loss_key). */
struct rw_bucket {
	__u64 tat;        /* GCRA's theoretical arrival time (boot ns) */
	__u64 suppressed; /* events refused, ever */
	__u64 since_ns;   /* when the refusals going on began */
	__u32 refusing;   /* whether the last decision was a refusal */
	__u32 pad;
};

/* LPM trie keys: gen, list, then the bytes compared (most significant first). */
struct rw_fkey_comm {
	__u32 prefixlen;
	__u8 gen;
	__u8 list;
	char comm[16];
};

struct rw_fkey_uid {
	__u32 prefixlen;
	__u8 gen;
	__u8 list;
	__u8 uid[4]; /* big endian: a uid range is a few prefixes */
};

struct rw_fkey_path {
	__u32 prefixlen;
	__u8 gen;
	__u8 list;
	char path[RW_FILTER_PATH_LEN];
};

struct rw_fkey_addr {
	__u32 prefixlen;
	__u8 gen;
	__u8 list;
	__u8 addr[16]; /* IPv6, or IPv4 as ::ffff:a.b.c.d */
};

struct rw_fkey_port {
	__u8 gen;
	__u8 list;
	__u16 port;
};

struct rw_fkey_tree {
	__u32 gen;
	__u32 tgid;
};

/* A cgroup's verdict, cached by its id (v2 cgroups are never renamed, ids never reused). */
struct rw_cg_verdict {
	__u32 epoch;
	__u32 verdict; /* RW_CG_* */
};

enum rw_cg_verdicts {
	RW_CG_INCLUDED = 1,
	RW_CG_EXCLUDED = 2,
};

/* Losses of one uid in one family (key: rw_loss_key). */
struct rw_loss_key {
	__u32 family;
	__u32 uid;
};

struct rw_loss {
	__u64 filtered;
	__u64 dropped;
	__u64 rate_limited;
};

/* The first uids counted in a family each take a slot of rw_uid_loss_slots (by a hash of
 * the uid): a count there is an inlined array access and one atomic add, where the hash
 * map's lookup costs ~80 ns (most of what an event left out by a filter costs). A uid
 * whose slot another uid holds is counted in rw_uid_loss. A slot is never given up, so a
 * uid's counts are each in one place and the sums stay exact. */
enum rw_loss_slots {
	RW_LOSS_SLOTS = 256, /* per family */
};
struct rw_loss_slot {
	__u64 tag; /* the uid + 1; 0: free */
	struct rw_loss loss;
};

/* The uid of the entry that takes what no room is left for in rw_uid_loss. */
#define RW_LOSS_OTHER 0xffffffffU

/* Counts of the filter object's own (rw_filter_stats). */
struct rw_filter_stats {
	__u64 tree_full; /* forks into a followed pid tree that found rw_filter_tree full */
};

#ifdef __BPF__

/* kernfs_node.parent before 6.15 (renamed __parent). */
struct kernfs_node___old {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} rw_filter_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rw_filter_stats);
} rw_filter_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct rw_filter_set);
} rw_filter_sets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct rw_fkey_comm);
	__type(value, __u8);
} rw_filter_comm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct rw_fkey_uid);
	__type(value, __u8);
} rw_filter_uid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct rw_fkey_path);
	__type(value, __u8);
} rw_filter_cgroup SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct rw_cg_verdict);
} rw_filter_cgcache SEC(".maps");

/* Value: the process's start time (see RW_TREE_TICKS). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct rw_fkey_tree);
	__type(value, __u64);
} rw_filter_tree SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct rw_fkey_path);
	__type(value, __u8);
} rw_filter_path SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct rw_fkey_port);
	__type(value, __u8);
} rw_filter_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct rw_fkey_addr);
	__type(value, __u8);
} rw_filter_cidr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, struct rw_loss_key);
	__type(value, struct rw_loss);
} rw_uid_loss SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RW_FAMILIES *RW_LOSS_SLOTS);
	__type(key, __u32);
	__type(value, struct rw_loss_slot);
} rw_uid_loss_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RW_FAMILIES);
	__type(key, __u32);
	__type(value, struct rw_bucket);
} rw_rate_family SEC(".maps");

/* Per (family, uid); a uid that finds no room shares the RW_LOSS_OTHER bucket. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, struct rw_loss_key);
	__type(value, struct rw_bucket);
} rw_rate_uid SEC(".maps");

/* A cgroup is judged by the names of its top RW_CG_DEPTH levels (a deeper one by a path
 * that ends in "/", which matches rules for what is above it, never the cgroup itself);
 * one more than RW_CG_WALK levels deep is not judged at all. */
#define RW_CG_DEPTH 16
#define RW_CG_WALK 8192
/* Levels the 5.10 variant walks up (a bounded loop: the verifier walks every step). */
#define RW_CG_WALK_510 32

/* The walk from the task's cgroup up to the root, then down again writing names. */
struct rw_cg_walk {
	__u64 kn;                 /* struct kernfs_node * where the walk up is */
	__u64 chain[RW_CG_DEPTH]; /* the last RW_CG_DEPTH levels passed: at the root, the top */
	__u32 depth;              /* levels below the root */
	__u32 done;               /* the root was reached */
	__u32 pos;                /* bytes of path written */
	__u32 cut;                /* the path stops short of the cgroup's own name */
};

/* Per CPU: the key a path is built in and the cgroup walk (tracing programs do not nest
 * on a CPU). */
struct rw_filter_scratch {
	struct rw_fkey_path key;
	char spill[512]; /* room for a name read at the last index the mask allows */
	struct rw_cg_walk walk;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rw_filter_scratch);
} rw_filter_scratch SEC(".maps");

/* rw_filter_gen: bit 0 the generation in force, RW_GEN_ACTIVE whether it has any rule. */
#define RW_GEN_ACTIVE 2

/* Whether the set in force has any rule: the one map read an event costs without. */
static __always_inline bool rw_rules_active(void)
{
	__u32 zero = 0;
	__u32 *g = bpf_map_lookup_elem(&rw_filter_gen, &zero);
	return g && (*g & RW_GEN_ACTIVE);
}

/* The set in force and its generation; NULL when it has no rule at all (one map read is
 * all an event costs then). */
static __always_inline struct rw_filter_set *rw_fset(__u8 *gen)
{
	__u32 zero = 0;
	__u32 *g = bpf_map_lookup_elem(&rw_filter_gen, &zero);
	if (!g || !(*g & RW_GEN_ACTIVE))
		return NULL;
	__u32 k = *g & 1;
	*gen = k;
	return bpf_map_lookup_elem(&rw_filter_sets, &k);
}

/* Which count of rw_loss an event goes to. */
enum rw_loss_kind {
	RW_LOSS_FILTERED,
	RW_LOSS_DROPPED,
	RW_LOSS_RATE_LIMITED,
};

/* The (family, uid) entry of a per-uid map, made if missing; a uid that finds no room
 * gets the RW_LOSS_OTHER entry (which userspace makes at load), so that the per-uid
 * counts always add up. */
static __always_inline void *rw_uid_entry(void *map, __u32 family, __u32 uid, void *zero)
{
	struct rw_loss_key k = { .family = family, .uid = uid };
	void *v = bpf_map_lookup_elem(map, &k);
	if (v)
		return v;
	bpf_map_update_elem(map, &k, zero, BPF_NOEXIST);
	v = bpf_map_lookup_elem(map, &k);
	if (v)
		return v;
	k.uid = RW_LOSS_OTHER;
	return bpf_map_lookup_elem(map, &k);
}

/* The judging below is in global functions: the verifier checks each once per program
 * (not once per call site), and the object holds one copy (inlined at every reserve, the
 * cgroup walk alone made the objects 2.3 times larger). Globals take only scalars. */

/* Adds one to the uid's count of `kind` (enum rw_loss_kind) in the family. */
__noinline int rw_loss_count(__u32 family, __u32 uid, __u32 kind)
{
	struct rw_loss *l = NULL;
#if RW_HAS_FETCH
	/* Fibonacci hashing: the top 8 bits of uid * 2^32/phi. */
	__u32 i = (family & (RW_FAMILIES - 1)) * RW_LOSS_SLOTS + ((uid * 2654435769U) >> 24);
	/* Without compare-and-swap two uids could claim one slot: 5.10 counts in the hash. */
	struct rw_loss_slot *slot = bpf_map_lookup_elem(&rw_uid_loss_slots, &i);
	if (slot) {
		__u64 tag = (__u64)uid + 1;
		__u64 held = slot->tag;
		if (!held)
			held = __sync_val_compare_and_swap(&slot->tag, 0, tag);
		if (!held || held == tag)
			l = &slot->loss;
	}
#endif
	if (!l) {
		struct rw_loss zero = {};
		l = rw_uid_entry(&rw_uid_loss, family, uid, &zero);
	}
	if (!l)
		return 0;
	if (kind == RW_LOSS_DROPPED)
		__sync_fetch_and_add(&l->dropped, 1);
	else if (kind == RW_LOSS_RATE_LIMITED)
		__sync_fetch_and_add(&l->rate_limited, 1);
	else
		__sync_fetch_and_add(&l->filtered, 1);
	return 0;
}

/* One event against a bucket: whether it is let through. Lock-free (tracing programs
 * cannot take a bpf_spin_lock): a compare-and-swap of the arrival time, retried; under
 * so much contention that it keeps failing the event is let through (it is still on the
 * books, as produced). */
static __always_inline bool rw_bucket_take(struct rw_bucket *b, const struct rw_rate *r, __u64 now)
{
	for (int i = 0; i < 4; i++) {
		__u64 old = b->tat;
		__u64 t = old > now ? old : now;
		if (t - now > r->tau_ns) {
			if (!b->refusing) {
				b->since_ns = now;
				b->refusing = 1;
			}
			__sync_fetch_and_add(&b->suppressed, 1);
			return false;
		}
#if RW_HAS_FETCH
		if (__sync_val_compare_and_swap(&b->tat, old, t + r->interval_ns) == old)
			break;
#else
		/* Racing CPUs may each let one event through. */
		b->tat = t + r->interval_ns;
		break;
#endif
	}
	if (b->refusing)
		b->refusing = 0;
	return true;
}

/* Whether generation `gen`'s rate limits for `family` apply at all (inlined: the common
 * case, no limit, costs no call). */
static __always_inline bool rw_rate_set(struct rw_filter_set *set, __u32 family)
{
	__u32 f = family & (RW_FAMILIES - 1);
	return set->uid_rate[f].interval_ns || set->family_rate[f].interval_ns;
}

/* Whether generation `gen`'s rate limits refuse an event of `uid` in `family`: its uid's
 * bucket first, then the family's. 1: refused. */
__noinline int rw_rate_refused(__u32 gen, __u32 family, __u32 uid)
{
	__u32 k = gen & 1;
	struct rw_filter_set *set = bpf_map_lookup_elem(&rw_filter_sets, &k);
	if (!set)
		return 0;
	__u32 f = family & (RW_FAMILIES - 1);
	const struct rw_rate *ur = &set->uid_rate[f];
	const struct rw_rate *fr = &set->family_rate[f];
	if (!ur->interval_ns && !fr->interval_ns)
		return 0;
	__u64 now = bpf_ktime_get_boot_ns();
	if (ur->interval_ns) {
		/* A uid that finds no room has no bucket of its own (only the family's limits
		 * it): sharing one would let whoever fills the table drain it for everyone. */
		struct rw_loss_key key = { .family = f, .uid = uid };
		struct rw_bucket *b = bpf_map_lookup_elem(&rw_rate_uid, &key);
		if (!b) {
			struct rw_bucket zero = {};
			bpf_map_update_elem(&rw_rate_uid, &key, &zero, BPF_NOEXIST);
			b = bpf_map_lookup_elem(&rw_rate_uid, &key);
		}
		if (b && !rw_bucket_take(b, ur, now))
			return 1;
	}
	if (fr->interval_ns) {
		struct rw_bucket *b = bpf_map_lookup_elem(&rw_rate_family, &f);
		if (b && !rw_bucket_take(b, fr, now))
			return 1;
	}
	return 0;
}

static __always_inline bool rw_uid_listed(__u8 gen, __u8 list, __u32 uid)
{
	struct rw_fkey_uid k = { .prefixlen = 16 + 32, .gen = gen, .list = list };
	k.uid[0] = uid >> 24;
	k.uid[1] = uid >> 16;
	k.uid[2] = uid >> 8;
	k.uid[3] = uid;
	return bpf_map_lookup_elem(&rw_filter_uid, &k) != NULL;
}

/* comm as bpf_get_current_comm() gives it (NUL-padded): an entry is a prefix, or a whole
 * name with its NUL. */
static __always_inline bool rw_comm_listed(__u8 gen, __u8 list, const char *comm)
{
	struct rw_fkey_comm k = { .prefixlen = 16 + 8 * 16, .gen = gen, .list = list };
	__builtin_memcpy(k.comm, comm, sizeof(k.comm));
	return bpf_map_lookup_elem(&rw_filter_comm, &k) != NULL;
}

/* Whether an entry's start time is the process's (`start`, ns; 0: not known). */
static __always_inline bool rw_tree_same(__u64 v, __u64 start)
{
	if (!start)
		return true;
	if (v & RW_TREE_TICKS)
		return (v & ~RW_TREE_TICKS) == start / RW_NS_PER_TICK;
	return v == start;
}

/* Whether the process `tgid` that started at `start` (ns, 0: not known) is in gen's tree. */
static __always_inline bool rw_in_tree(__u8 gen, __u32 tgid, __u64 start)
{
	struct rw_fkey_tree k = { .gen = gen, .tgid = tgid };
	__u64 *v = bpf_map_lookup_elem(&rw_filter_tree, &k);
	return v && rw_tree_same(*v, start);
}

/* The current process's start time (its group leader's), as the tree holds it. */
static __always_inline __u64 rw_current_start(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(task, group_leader, start_boottime);
}

static __always_inline struct rw_filter_scratch *rw_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&rw_filter_scratch, &zero);
}

/* One level up (a bpf_loop callback: verified once, not once per level). */
static long rw_cg_up(__u32 i, void *unused)
{
	struct rw_filter_scratch *s = rw_scratch();
	if (!s)
		return 1;
	struct rw_cg_walk *w = &s->walk;
	struct kernfs_node *kn = (struct kernfs_node *)w->kn;
	struct kernfs_node *up = NULL;
	if (bpf_core_field_exists(kn->__parent))
		up = BPF_CORE_READ(kn, __parent);
	else
		up = BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
	if (!up) {
		w->done = 1; /* kn is the root, which has no name */
		return 1;
	}
	w->chain[w->depth & (RW_CG_DEPTH - 1)] = (__u64)kn;
	w->depth++;
	w->kn = (__u64)up;
	return 0;
}

/* The i-th level from the top: "/" and its name. */
static long rw_cg_down(__u32 i, void *unused)
{
	struct rw_filter_scratch *s = rw_scratch();
	if (!s)
		return 1;
	struct rw_cg_walk *w = &s->walk;
	__u32 pos = w->pos;
	if (pos >= RW_FILTER_PATH_LEN - 1) {
		w->cut = 1;
		return 1;
	}
	s->key.path[pos & RW_FILTER_PATH_MASK] = '/';
	pos++;
	struct kernfs_node *kn =
		(struct kernfs_node *)w->chain[(w->depth - 1 - i) & (RW_CG_DEPTH - 1)];
	const char *name = BPF_CORE_READ(kn, name);
	/* Reads into the key and on into spill: the key keeps its first bytes. */
	long r = bpf_probe_read_kernel_str(&s->key.path[pos & RW_FILTER_PATH_MASK],
					   RW_FILTER_PATH_MASK + 1, name);
	if (r > 1)
		pos += r - 1;
	w->pos = pos;
	return 0;
}

/* The cgroup v2 path of the current task ("/system.slice/x.service"), built top-down from
 * the kernel's own names into the scratch key; returns the key's prefix length in bits
 * (with the NUL when the path is the cgroup's whole path), 0 when it cannot be judged. */
static __always_inline __u32 rw_cgroup_path(struct rw_filter_scratch *s)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct rw_cg_walk *w = &s->walk;
	w->kn = (__u64)BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	w->depth = 0;
	w->done = 0;
	w->pos = 0;
	w->cut = 0;
	if (!w->kn)
		return 0;
	RW_LOOP(RW_CG_WALK, RW_CG_WALK_510, rw_cg_up, NULL);
	if (!w->done)
		return 0;
	__u32 levels = w->depth < RW_CG_DEPTH ? w->depth : RW_CG_DEPTH;
	RW_LOOP(levels, RW_CG_DEPTH, rw_cg_down, NULL);
	__u32 pos = w->pos;
	bool whole = !w->cut && w->depth <= RW_CG_DEPTH;
	if (pos >= RW_FILTER_PATH_LEN - 1) {
		pos = RW_FILTER_PATH_LEN - 1;
		whole = false;
	} else if (w->depth > RW_CG_DEPTH && !w->cut) {
		/* Deeper than the levels named: below this path, not this path. */
		s->key.path[pos & RW_FILTER_PATH_MASK] = '/';
		pos++;
	}
	if (pos == 0) {
		s->key.path[0] = '/'; /* the root cgroup */
		pos = 1;
	}
	s->key.path[pos & RW_FILTER_PATH_MASK] = 0;
	return 16 + 8 * (pos + (whole ? 1 : 0));
}

/* RW_CG_INCLUDED and/or RW_CG_EXCLUDED for the current task's cgroup, from the cache when
 * it was judged by this set. */
static __always_inline __u32 rw_cgroup_verdict(struct rw_filter_set *set, __u8 gen, __u64 cgid)
{
	struct rw_cg_verdict *c = bpf_map_lookup_elem(&rw_filter_cgcache, &cgid);
	if (c && c->epoch == set->epoch)
		return c->verdict;
	struct rw_filter_scratch *s = rw_scratch();
	if (!s)
		return 0;
	/* An entry "/a\0" is the cgroup itself, "/a/" its descendants. */
	__u32 bits = rw_cgroup_path(s);
	struct rw_cg_verdict v = { .epoch = set->epoch };
	if (!bits) {
		/* Not judged (deeper than the walk goes): kept, as what cannot be seen is. */
		v.verdict = RW_CG_INCLUDED;
		bpf_map_update_elem(&rw_filter_cgcache, &cgid, &v, BPF_ANY);
		return v.verdict;
	}
	s->key.prefixlen = bits;
	s->key.gen = gen;
	if (set->bits & RW_F_INCLUDE_CGROUP) {
		s->key.list = RW_FL_INCLUDE;
		if (bpf_map_lookup_elem(&rw_filter_cgroup, &s->key))
			v.verdict |= RW_CG_INCLUDED;
	}
	if (set->bits & RW_F_EXCLUDE_CGROUP) {
		s->key.list = RW_FL_EXCLUDE;
		if (bpf_map_lookup_elem(&rw_filter_cgroup, &s->key))
			v.verdict |= RW_CG_EXCLUDED;
	}
	bpf_map_update_elem(&rw_filter_cgcache, &cgid, &v, BPF_ANY);
	return v.verdict;
}

/* Whether the task rules of `set` reject a task with these attributes (`in_tree`: in the
 * generation's pid tree, when it has one). `cgid` is judged
 * only when `own_cgroup` (it is the current task's: the path can be built) or when its
 * verdict is cached; otherwise it is not held against the event. */
static __always_inline bool rw_task_rejected(struct rw_filter_set *set, __u8 gen, bool in_tree,
					     __u32 uid, const char *comm, __u64 cgid,
					     bool own_cgroup)
{
	__u32 bits = set->bits;
	if ((bits & RW_F_INCLUDE_TREE) && !in_tree)
		return true;
	if ((bits & RW_F_INCLUDE_UID) && !rw_uid_listed(gen, RW_FL_INCLUDE, uid))
		return true;
	if ((bits & RW_F_EXCLUDE_UID) && rw_uid_listed(gen, RW_FL_EXCLUDE, uid))
		return true;
	if ((bits & RW_F_INCLUDE_COMM) && !rw_comm_listed(gen, RW_FL_INCLUDE, comm))
		return true;
	if ((bits & RW_F_EXCLUDE_COMM) && rw_comm_listed(gen, RW_FL_EXCLUDE, comm))
		return true;
	if (bits & (RW_F_INCLUDE_CGROUP | RW_F_EXCLUDE_CGROUP)) {
		__u32 v = 0;
		if (own_cgroup) {
			v = rw_cgroup_verdict(set, gen, cgid);
		} else {
			struct rw_cg_verdict *c = bpf_map_lookup_elem(&rw_filter_cgcache, &cgid);
			if (!c || c->epoch != set->epoch)
				return false;
			v = c->verdict;
		}
		if ((bits & RW_F_INCLUDE_CGROUP) && !(v & RW_CG_INCLUDED))
			return true;
		if (v & RW_CG_EXCLUDED)
			return true;
	}
	return false;
}

static __always_inline bool rw_set_has_tree(__u32 g)
{
	struct rw_filter_set *set = bpf_map_lookup_elem(&rw_filter_sets, &g);
	return set && (set->bits & RW_F_INCLUDE_TREE);
}

/* Bit g set: the current process is in generation g's pid tree (for an owner record, whose
 * close is judged later, maybe after the process is gone). Without a tree rule, the
 * process's start time is not read. */
static __always_inline __u32 rw_current_tree_bits(void)
{
	if (!rw_rules_active())
		return 0;
	bool t0 = rw_set_has_tree(0), t1 = rw_set_has_tree(1);
	if (!t0 && !t1)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 start = rw_current_start();
	return (t0 && rw_in_tree(0, tgid, start) ? 1 : 0) |
	       (t1 && rw_in_tree(1, tgid, start) ? 2 : 0);
}

/* Whether generation `gen`'s task rules reject the current task's event (`uid`: its
 * uid). 1: rejected. */
__noinline int rw_task_verdict(__u32 gen, __u32 uid)
{
	__u32 k = gen & 1;
	struct rw_filter_set *set = bpf_map_lookup_elem(&rw_filter_sets, &k);
	if (!set)
		return 0;
	char comm[16] = {};
	if (set->bits & (RW_F_INCLUDE_COMM | RW_F_EXCLUDE_COMM))
		bpf_get_current_comm(comm, sizeof(comm));
	bool in_tree = (set->bits & RW_F_INCLUDE_TREE) &&
		       rw_in_tree(k, bpf_get_current_pid_tgid() >> 32, rw_current_start());
	/* The cgroup id only for a cgroup rule: the helper takes the RCU lock. */
	__u64 cgid = (set->bits & (RW_F_INCLUDE_CGROUP | RW_F_EXCLUDE_CGROUP))
			     ? bpf_get_current_cgroup_id()
			     : 0;
	return rw_task_rejected(set, k, in_tree, uid, comm, cgid, true);
}

#endif /* __BPF__ */
#endif /* RW_FILTER_H */
