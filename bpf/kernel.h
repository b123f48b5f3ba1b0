/* SPDX-License-Identifier: GPL-2.0 */
/* The 5.10 variant. build.rs compiles every family twice: FAMILY.bpf.o, and with
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
 *   hash keyed by tid (RW_THREAD_MAP), whose entries the family's
 *   RW_THREAD_PROGS delete at thread exit and move when a thread's execve takes its
 *   leader's tid; a full map is counted like a failed storage get. The task's members are
 *   read with CO-RE reads (RW_LOAD) instead of plain loads. */
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

/* Threads with state in one RW_THREAD_MAP at once; more are counted as untracked. Not
 * preallocated: like task storage, memory only for the threads that use it (a change_start
 * is over 1 KiB), and as many entries as a user would need threads to fill it. */
#define RW_THREADS_510 65536
#define RW_THREAD_MAP(name, vtype)                                                                 \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_HASH);                                                   \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                              \
		__uint(max_entries, RW_THREADS_510);                                               \
		__type(key, __u32);                                                                \
		__type(value, vtype);                                                              \
	} name SEC(".maps")

/* The current thread's entry of `map` (of `type`), created zeroed if `create` (from a
 * zeroed constant: a value can be larger than the stack); NULL when it has none, or the map
 * is full. */
#define RW_THREAD_GET(map, type, create)                                                           \
	RW_TASK_GET(map, type, , (__u32)bpf_get_current_pid_tgid(), create)

/* The entry of `task`, whose tid is `tid` (the variant's key; `task` is not evaluated). */
#define RW_TASK_GET(map, type, task, tid, create)                                                  \
	({                                                                                         \
		__u32 __key = (tid);                                                               \
		type *__t = bpf_map_lookup_elem(map, &__key);                                      \
		if (!__t && (create)) {                                                            \
			static const type __zero = {};                                             \
			bpf_map_update_elem(map, &__key, &__zero, BPF_NOEXIST);                    \
			__t = bpf_map_lookup_elem(map, &__key);                                    \
		}                                                                                  \
		__t;                                                                               \
	})

/* The current thread's entry is gone with it. */
#define RW_THREAD_FORGET(map)                                                                      \
	({                                                                                         \
		__u32 __tid = (__u32)bpf_get_current_pid_tgid();                                   \
		bpf_map_delete_elem(map, &__tid);                                                  \
	})

/* After an execve by a non-leader thread, which now has its leader's tid (`old` was its
 * own): its entry follows it. The leader's own entry went at the leader's exit. */
#define RW_THREAD_MOVE(map, type, old)                                                             \
	({                                                                                         \
		__u32 __old = (old), __tid = (__u32)bpf_get_current_pid_tgid();                    \
		type *__v = __old != __tid ? bpf_map_lookup_elem(map, &__old) : NULL;              \
		if (__v) {                                                                         \
			bpf_map_update_elem(map, &__tid, __v, BPF_ANY);                            \
			bpf_map_delete_elem(map, &__old);                                          \
		}                                                                                  \
	})

/* A family's two programs that keep its RW_THREAD_MAPs true to the threads: `forget` and
 * `move` are statements of RW_THREAD_FORGET and RW_THREAD_MOVE(..., old_pid). */
#define RW_THREAD_PROGS(family, forget, move)                                                      \
	SEC("tp_btf/sched_process_exit")                                                           \
	int BPF_PROG(family##_thread_exit)                                                         \
	{                                                                                          \
		forget;                                                                            \
		return 0;                                                                          \
	}                                                                                          \
	SEC("tp_btf/sched_process_exec")                                                           \
	int BPF_PROG(family##_thread_exec, struct task_struct *p, pid_t old_pid)                   \
	{                                                                                          \
		move;                                                                              \
		return 0;                                                                          \
	}

#define rw_current_task() ((struct task_struct *)bpf_get_current_task())
/* 5.10's verifier takes only scalars and the context as a global function's arguments
 * (pointers came in 5.12): such a function is a static one, verified per call. */
#define RW_GLOBAL static __noinline
#define RW_LOAD(...) BPF_CORE_READ(__VA_ARGS__)
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
#define RW_TASK_GET(map, type, task, tid, create)                                                  \
	((type *)bpf_task_storage_get(map, task, 0, (create) ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0))
#define RW_THREAD_PROGS(family, forget, move)

/* A BTF pointer: its members are plain loads. */
#define rw_current_task() bpf_get_current_task_btf()
#define RW_GLOBAL __noinline
#define RW_LOAD(...) ___arrow(__VA_ARGS__)
#endif

#endif /* RW_KERNEL_H */
