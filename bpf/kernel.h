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
 *   RW_CG_WALK levels on any kernel). */
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
#else
#define RW_HAS_FETCH 1
#define RW_LOOP(n, cap, cb, ctx) bpf_loop((n), (cb), (ctx), 0)
#endif

#endif /* RW_KERNEL_H */
