/* SPDX-License-Identifier: GPL-2.0 */
/* The 5.10 variant. build.rs compiles every family twice (unless its source says
 * `#define RW_NO_VARIANT_510`): FAMILY.bpf.o, and with
 * RW_KERNEL_510 FAMILY.510.bpf.o for kernels without atomic fetch-and-add and
 * compare-and-swap (5.12) or bpf_loop (5.17); the loader probes and loads the one the
 * kernel can run (src/family/kernel.rs). Only the object's loaded programs matter: a
 * bpf_loop callback makes 5.10's verifier refuse a program even on a path never taken
 * ("number of funcs in func_info doesn't match number of subprogs"), so the choice is
 * made per object, not by a branch in one.
 *
 * What the 5.10 variant gives up, and only there:
 * - the seq: a record carries RW_SEQ_NONE (produced is still counted, with an atomic add
 *   that returns nothing), and the daemon reports drops from the counters;
 * - exactness of a rate limit and a high-water mark under racing CPUs (plain stores);
 * - depth: walks are bounded loops of fewer steps (RW_LOOP): a deeper file path is cut
 *   short and flagged, a task in a deeper cgroup is not judged by cgroup rules (as past
 *   RW_CG_WALK levels on any kernel);
 * - task local storage and bpf_get_current_task_btf (5.11): per-thread state is a
 *   preallocated hash keyed by the task's address (RW_THREAD_MAP) that holds a thread for
 *   the length of its call, RW_THREADS_510 at once; a full map is counted like a failed
 *   storage get. The task's members are read with CO-RE reads (RW_LOAD). */
#ifndef RW_KERNEL_H
#define RW_KERNEL_H

/* rw_header.seq of a record from the 5.10 variant. */
#define RW_SEQ_NONE (~0ULL)

#ifdef RW_KERNEL_510
#define RW_HAS_FETCH 0
/* Calls `cb(i, ctx)` for i = 0.. until it returns non-zero, at most min(n, cap) times. */
#define RW_LOOP(n, cap, cb, ctx)                                                                   \
	do {                                                                                       \
		__u32 __n = (n);                                                                   \
		for (__u32 __i = 0; __i < (cap) && __i < __n; __i++)                               \
			if (cb(__i, ctx))                                                          \
				break;                                                             \
	} while (0)

/* Calls in flight in one RW_THREAD_MAP at once; more are counted as untracked. The map is
 * preallocated (see prealloc_hashes in src/family/kernel.rs: before 6.1 a tracepoint
 * program's run-time allocated hash taints the kernel) and holds a thread only for the
 * length of its call (RW_THREAD_DONE_AT_RETURN), so it is small: a change_start is over
 * 1 KiB. */
#define RW_THREADS_510 1024
#define RW_THREAD_MAP(name, vtype)                                                                  \
	struct name##_entry {                                                                       \
		vtype v; /* first: its address is the entry's, no arithmetic before a NULL check */ \
		__u64 tid; /* of the thread that made it, last: for tests and bpftool */            \
	};                                                                                          \
	struct {                                                                                    \
		__uint(type, BPF_MAP_TYPE_HASH);                                                    \
		__uint(max_entries, RW_THREADS_510);                                                \
		__type(key, __u64);                                                                 \
		__type(value, struct name##_entry);                                                 \
	} name SEC(".maps")

/* The entry of `key` (its `type` part), created zeroed if `create` (from a zeroed
 * constant: a value can be larger than the stack); NULL when it has none, or the map is
 * full. A thread's key is its task_struct's address, which, unlike its tid, an execve does
 * not change (a non-leader thread's takes its leader's tid). `task` is the full object's. */
#define RW_TASK_GET(map, type, task, key, create)                                                  \
	({                                                                                         \
		__u64 __key = (key);                                                               \
		typeof(*(map)->value) *__e = bpf_map_lookup_elem(map, &__key);                     \
		if (!__e && (create)) {                                                            \
			static const typeof(*(map)->value) __zero = {};                            \
			bpf_map_update_elem(map, &__key, &__zero, BPF_NOEXIST);                    \
			__e = bpf_map_lookup_elem(map, &__key);                                    \
			if (__e)                                                                   \
				__e->tid = (__u32)bpf_get_current_pid_tgid();                      \
		}                                                                                  \
		(type *)(__e ? &__e->v : NULL);                                                    \
	})
#define RW_THREAD_GET(map, type, create) RW_TASK_GET(map, type, , bpf_get_current_task(), create)

/* The current thread's entry is gone. */
static __always_inline void rw_thread_forget(void *map)
{
	__u64 key = bpf_get_current_task();
	bpf_map_delete_elem(map, &key);
}

#define RW_THREAD_FORGET(map) rw_thread_forget(map)

static __always_inline void rw_thread_done(void **map)
{
	rw_thread_forget(*map);
}

/* Deletes the current thread's entry of `map` at every return of the enclosing function
 * after this line: the call is over, its entry is not kept for the next. */
#define RW_THREAD_DONE_AT_RETURN(map)                                                              \
	void *__rw_done_##map __attribute__((unused, cleanup(rw_thread_done))) = &map

/* A family's program that deletes what a thread that ends inside a call still has (an
 * exit_group never returns): `forget` is statements of RW_THREAD_FORGET. */
#define RW_THREAD_PROGS(family, forget)                                                            \
	SEC("tp_btf/sched_process_exit")                                                           \
	int BPF_PROG(family##_thread_exit)                                                         \
	{                                                                                          \
		forget;                                                                            \
		return 0;                                                                          \
	}

#define rw_current_task() ((struct task_struct *)bpf_get_current_task())
/* 5.10's verifier takes only scalars and the context as a global function's arguments
 * (pointers came in 5.12): such a function is a static one, verified per call. */
#define RW_GLOBAL static __noinline
#define RW_LOAD(...) BPF_CORE_READ(__VA_ARGS__)
/* The tgid of the task rw_current_task() gave: the helper is cheaper than a probe read. */
#define RW_TASK_TGID(task) ((__u32)(bpf_get_current_pid_tgid() >> 32))
#else
#define RW_HAS_FETCH 1
#define RW_LOOP(n, cap, cb, ctx) bpf_loop((n), (cb), (ctx), 0)

/* Task local storage: cheaper than a hash (no hashing, no bucket lock) and gone with the
 * task by itself. */
#define RW_THREAD_MAP(name, vtype)                                                                 \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_TASK_STORAGE);                                           \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                              \
		__type(key, int);                                                                  \
		__type(value, vtype);                                                              \
	} name SEC(".maps")
#define RW_THREAD_GET(map, type, create)                                                           \
	((type *)bpf_task_storage_get(map, bpf_get_current_task_btf(), 0,                          \
				      (create) ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0))
#define RW_TASK_GET(map, type, task, key, create)                                                  \
	((type *)bpf_task_storage_get(map, task, 0, (create) ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0))
#define RW_THREAD_DONE_AT_RETURN(map)
#define RW_THREAD_PROGS(family, forget)

/* A BTF pointer: its members are plain loads. */
#define rw_current_task() bpf_get_current_task_btf()
#define RW_GLOBAL __noinline
#define RW_LOAD(...) ___arrow(__VA_ARGS__)
#define RW_TASK_TGID(task) ((__u32)(task)->tgid)
#endif

#endif /* RW_KERNEL_H */
