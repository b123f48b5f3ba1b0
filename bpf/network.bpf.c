// SPDX-License-Identifier: GPL-2.0
/* Network family: TCP connect and accept, TCP and UDP bind, TCP listen from the syscall
 * tracepoints (the fd is resolved to its struct sock through the task's fd table, and the
 * kernel's own socket and sockaddr taken where a hook names them: pre-bind, pre-connect,
 * SYN_SENT, LISTEN), close from tp_btf/inet_sock_set_state.
 * No kprobes or fentry: they are not available everywhere ringwarden runs. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "network.h"

char LICENSE[] SEC("license") = "GPL";

RW_DECLARE_RING(network);

#define RW_S_IFMT 0170000
#define RW_S_IFSOCK 0140000
#define RW_EBADF 9
#define RW_ENOTSOCK 88
#define RW_EISCONN 106
#define RW_EALREADY 114
#define RW_EINPROGRESS 115

/* The syscalls followed from enter to exit. */
enum net_call {
	NET_CALL_CONNECT = 1,
	NET_CALL_BIND = 2,
	NET_CALL_LISTEN = 3,
};

/* A connect, bind or listen in flight on a thread, from its syscall's enter to its exit. */
struct net_inflight {
	/* The struct sock the fd named at entry. The exit reports this socket (unless the
	 * kernel named its own: kernel_sk, note_sk), not whatever the fd names by then:
	 * another thread may have dup2()ed a decoy over it while the call ran (the call
	 * holds its own reference to the real one). */
	__u64 sk;
	/* The socket the kernel itself worked on, when the call passed a hook that names it
	 * in this task: SYN_SENT for connect, LISTEN for listen (net_note_call_sk); 0 when
	 * none did. The entry's fd lookup comes a moment before the kernel's own, so another
	 * thread's dup2() in between makes `sk` a decoy; this one is the truth. */
	__u64 kernel_sk;
	/* The same from the pre-bind or pre-connect hook (call_note), taken at the exit; its
	 * sockaddr then replaces `addr`. */
	__u64 note_sk;
	__u64 ts; /* when the entry ran (boot clock): older notes are another call's */
	__s32 fd;
	__u32 addrlen; /* bytes of addr known */
	/* The caller's sockaddr: as the entry read it from the caller's memory, until the
	 * exit takes the kernel's own copy from the hook's note. sizeof(struct sockaddr_in6) */
	__u8 addr[28];
	__u8 busy;   /* the socket had an attempt under way or done before the call */
	__u8 active; /* between connect()'s enter and exit */
	/* A TCP Fast Open connect (sendto/sendmsg with MSG_FASTOPEN) entered SYN_SENT in this
	 * task; the exit of syscall tfo_nr reports it. */
	__u8 tfo;
	__u8 call; /* enum net_call: whose entry this is */
	__u64 tfo_sk;
	__s64 tfo_nr;
	__s32 tfo_fd;
	__u16 tfo_dport;
	__u16 pad2;
	__u8 tfo_daddr[16]; /* the peer when the SYN left: a failed attempt clears it */
};

/* Per thread (task local storage, RW_THREAD_MAP), not a table keyed by tid: a fixed-size
 * table could be filled by any user's threads blocked in connect(), blinding the family to
 * everyone else's; this lives and dies with the task, so each entry costs its owner a
 * thread. The 5.10 variant has no task storage: there it is such a table, of
 * RW_THREADS_510 threads, and has that limit: a call made while it is full is counted as
 * untracked. An entry there lives only for its call (each exit deletes its thread's:
 * RW_THREAD_DONE_AT_RETURN), so only threads inside a connect, bind, listen or Fast Open send
 * fill it; RW_THREAD_PROGS below delete whatever a thread still has when it ends. */
RW_THREAD_MAP(network_inflight, struct net_inflight);

#ifdef RW_KERNEL_510
static __always_inline void net_forget_taken(struct net_inflight **p)
{
	if (*p)
		rw_thread_forget(&network_inflight);
}

/* The variant deletes its thread's entry at every return of the function this is declared
 * in, when one was taken (a cleanup of the pointer to it, after its last use). Nothing in
 * the full object, whose entries go with their threads. */
#define NET_FORGET_IF_TAKEN __attribute__((cleanup(net_forget_taken)))
#else
#define NET_FORGET_IF_TAKEN
#endif

/* Who connected or accepted a socket: a close often runs in softirq context, where the
 * current task is unrelated. */
struct net_owner {
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u32 tree; /* bit g: in generation g's pid tree (filter.h) */
	char comm[RW_COMM_LEN];
};

#ifdef RW_KERNEL_510
/* The 5.10 variant: tracing programs have socket storage from 5.11 on, so the owners of
 * connecting sockets are a hash keyed by the socket's address, set when the socket enters
 * SYN_SENT in the connecting task and deleted when it enters TCP_CLOSE (every full TCP
 * socket does before it is freed, a failed connect's included: net_sk_owner_take), so
 * none is left for a later socket at that address. It holds the sockets between SYN_SENT
 * and TCP_CLOSE, RW_SK_OWNERS_510 at most: past them (any user's connections can fill it)
 * a connect's owner is counted as untracked and not kept, and its close says owner_known
 * false. */
#define RW_SK_OWNERS_510 16384
struct {
	/* Preallocated, as every hash before 6.1 (prealloc_hashes, src/family/kernel.rs):
	 * ~1.8 MB. */
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RW_SK_OWNERS_510);
	__type(key, __u64);
	__type(value, struct net_owner);
} network_sk_owner SEC(".maps");

/* The owner of `sk` into *o, its entry deleted; false when it has none. */
static __always_inline bool net_sk_owner_take(const struct sock *sk, struct net_owner *o)
{
	__u64 key = (__u64)sk;
	struct net_owner *op = bpf_map_lookup_elem(&network_sk_owner, &key);
	if (!op)
		return false;
	*o = *op;
	bpf_map_delete_elem(&network_sk_owner, &key);
	return true;
}
#else
/* Owners of connecting sockets: socket local storage, set when the socket enters
 * SYN_SENT in the connecting task. It lives and dies with the socket, so no other user's
 * sockets can push an entry out, and none is left behind. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct net_owner);
} network_sk_owner SEC(".maps");
#endif

/* Owners of accepted sockets, set at accept's exit, a classic tracepoint that only knows
 * the socket by address (socket storage needs the kernel's own pointer): an LRU, so
 * sockets whose close is never seen cannot fill it; past 16384 open accepted
 * connections the oldest owners are forgotten (the close says owner_known false).
 *
 * The ports are part of the key: a socket freed without a close we saw leaves an entry
 * behind, and a later socket at the same address must not inherit it. */
struct owner_key {
	__u64 sk;
	__u16 sport;
	__u16 dport;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct owner_key);
	__type(value, struct net_owner);
} network_owners SEC(".maps");

/* Whether a socket owned by `owner` must not be reported (see rw_skip). */
static __always_inline bool skip_owner(__u32 owner)
{
	struct rw_config *cfg = rw_cfg();
	return !cfg || (cfg->flags & RW_CONFIG_STOPPED) || owner == cfg->self_tgid;
}

/* fd of the current task -> struct socket, or NULL when the fd is no socket. */
static __always_inline struct socket *fd_to_socket(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & RW_S_IFMT) != RW_S_IFSOCK)
		return NULL;
	return BPF_CORE_READ(file, private_data);
}

/* fd of the current task -> struct sock, or NULL when the fd is no socket. */
static __always_inline struct sock *fd_to_sock(long fd)
{
	struct socket *sock = fd_to_socket(fd);
	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

/* AF_INET or AF_INET6 TCP stream socket: its family, else 0. */
static __always_inline __u16 tcp_family(const struct sock *sk)
{
	if (!sk || BPF_CORE_READ(sk, sk_type) != SOCK_STREAM ||
	    BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	return family == RW_AF_INET || family == RW_AF_INET6 ? family : 0;
}

/* AF_INET or AF_INET6 TCP stream or UDP datagram socket: its family, else 0; its
 * protocol in *proto. */
static __always_inline __u16 inet_family(const struct sock *sk, __u16 *proto)
{
	if (!sk)
		return 0;
	__u16 type = BPF_CORE_READ(sk, sk_type);
	__u16 p = BPF_CORE_READ(sk, sk_protocol);
	if (!(type == SOCK_STREAM && p == IPPROTO_TCP) && !(type == SOCK_DGRAM && p == IPPROTO_UDP))
		return 0;
	*proto = p;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	return family == RW_AF_INET || family == RW_AF_INET6 ? family : 0;
}

/* Zeroes the body (ring memory is not) and sets the endpoints from the socket. */
static __always_inline void fill_body(struct net_event *e, const struct sock *sk, __u16 family)
{
	__builtin_memset((char *)e + sizeof(e->hdr), 0, sizeof(*e) - sizeof(e->hdr));
	e->family = family;
	e->protocol = IPPROTO_TCP;
	/* inet_sport, not skc_num: entering TCP_CLOSE releases the port and zeroes skc_num
	 * before the tracepoint runs. */
	e->sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == RW_AF_INET) {
		__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(e->saddr, &s, 4);
		__builtin_memcpy(e->daddr, &d, 4);
	} else if (bpf_core_field_exists(sk->__sk_common.skc_v6_daddr)) {
		/* Kernels without IPv6 have no such fields (and no AF_INET6 sockets). */
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr);
	}
}

/* Keeps the current task as the owner of a socket it accepted, whether or not the accept
 * is reported: its close is judged by the same owner. */
static __always_inline void remember_owner(const struct sock *sk, const struct net_event *e)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct owner_key key = { .sk = (__u64)sk, .sport = e->sport, .dport = e->dport };
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();
	struct net_owner o = {
		.cgroup_id = bpf_get_current_cgroup_id(),
		.pid = id >> 32,
		.tid = (__u32)id,
		.ppid = BPF_CORE_READ(task, real_parent, tgid),
		.uid = (__u32)ug,
		.gid = ug >> 32,
		.tree = rw_current_tree_bits(),
	};
	bpf_get_current_comm(o.comm, sizeof(o.comm));
	bpf_map_update_elem(&network_owners, &key, &o, BPF_ANY);
}

/* Whether the port and address rules of `set` reject an event with these endpoints. A
 * port rule matches either end; an address rule, the peer's address (IPv4 is looked up
 * as ::ffff:a.b.c.d, as the configuration's IPv4 ranges are stored), when the event has
 * a peer (`peer`): a bind or listen has none, and no peer range may hide one. */
static __always_inline bool peer_rejected(struct rw_filter_set *set, __u8 gen, __u16 family,
					  const void *daddr, __u16 sport, __u16 dport, bool peer)
{
	__u32 bits = set->bits;
	if (bits & (RW_F_INCLUDE_PORT | RW_F_EXCLUDE_PORT)) {
		struct rw_fkey_port ks = { .gen = gen, .port = sport };
		struct rw_fkey_port kd = { .gen = gen, .port = dport };
		if (bits & RW_F_INCLUDE_PORT) {
			ks.list = kd.list = RW_FL_INCLUDE;
			if (!bpf_map_lookup_elem(&rw_filter_port, &ks) &&
			    !bpf_map_lookup_elem(&rw_filter_port, &kd))
				return true;
		}
		if (bits & RW_F_EXCLUDE_PORT) {
			ks.list = kd.list = RW_FL_EXCLUDE;
			if (bpf_map_lookup_elem(&rw_filter_port, &ks) ||
			    bpf_map_lookup_elem(&rw_filter_port, &kd))
				return true;
		}
	}
	if (peer && (bits & (RW_F_INCLUDE_CIDR | RW_F_EXCLUDE_CIDR))) {
		struct rw_fkey_addr k = { .prefixlen = 16 + 128, .gen = gen };
		if (family == RW_AF_INET) {
			k.addr[10] = 0xff;
			k.addr[11] = 0xff;
			__builtin_memcpy(&k.addr[12], daddr, 4);
		} else {
			__builtin_memcpy(k.addr, daddr, 16);
		}
		if (bits & RW_F_INCLUDE_CIDR) {
			k.list = RW_FL_INCLUDE;
			if (!bpf_map_lookup_elem(&rw_filter_cidr, &k))
				return true;
		}
		if (bits & RW_F_EXCLUDE_CIDR) {
			k.list = RW_FL_EXCLUDE;
			if (bpf_map_lookup_elem(&rw_filter_cidr, &k))
				return true;
		}
	}
	return false;
}

/* Whose event it is, for the task rules. */
enum net_who {
	NET_CURRENT, /* the current task's */
	NET_OWNER,   /* the socket's owner's (a close, often in softirq) */
	NET_UNKNOWN, /* nobody's known: only the port and address rules apply */
};

/* Whether the filters reject an event with these endpoints, or the rate limits refuse
 * it (judged by one set); counted when they do. */
static __always_inline bool net_judged(__u16 family, const void *daddr, __u16 sport, __u16 dport,
				       enum net_who who, const struct net_owner *o, bool peer)
{
	__u8 gen = 0;
	struct rw_filter_set *set = rw_fset(&gen);
	if (!set)
		return false;
	/* Whose losses these are: an unknown owner's are nobody's in particular (the current
	 * task of a softirq is unrelated): the catch-all uid, also for the per-uid limit. */
	__u32 uid = RW_LOSS_OTHER;
	if (who == NET_CURRENT) {
		uid = (__u32)bpf_get_current_uid_gid();
		if (rw_task_filtered_by(&network_stats, set, gen))
			return true;
	} else if (who == NET_OWNER) {
		uid = o->uid;
		if (rw_task_rules(set) && rw_task_rejected(set, gen, (o->tree >> gen) & 1, o->uid,
							   o->comm, o->cgroup_id, false))
			goto filtered;
	}
	if (!peer_rejected(set, gen, family, daddr, sport, dport, peer))
		return rw_rate_limited(&network_stats, set, gen, uid);
filtered:
	rw_count_filtered(&network_stats, uid);
	return true;
}

/* The same for an event built on the stack. */
static __always_inline bool net_filtered(const struct net_event *e, enum net_who who,
					 const struct net_owner *o, bool peer)
{
	return net_judged(e->family, e->daddr, e->sport, e->dport, who, o, peer);
}

/* Reserves a record for `ev` (built on the stack and judged) and copies its body in. */
static __always_inline struct net_event *net_reserve(const struct net_event *ev, __u32 type,
						     __u32 uid)
{
	struct net_event *e =
		rw_reserve_of(&network_rings, &network_stats, sizeof(struct net_event), &uid);
	if (e)
		rw_fill_header(&e->hdr, type, bpf_ktime_get_boot_ns());
	if (e)
		__builtin_memcpy((char *)e + sizeof(e->hdr), (const char *)ev + sizeof(ev->hdr),
				 sizeof(*e) - sizeof(e->hdr));
	return e;
}

/* Keeps the socket `fd` names, and for connect and bind the caller's sockaddr, for the
 * exit of syscall `call`. */
static __always_inline struct net_inflight *net_stash(__s32 fd, __u64 uaddr, __u64 len, __u8 call)
{
	if (rw_skip())
		return NULL;
	struct net_inflight *a = RW_THREAD_GET(&network_inflight, struct net_inflight, true);
	if (!a) {
		/* No memory for the entry (or storage busy in a nested program): on the books. */
		RW_COUNT_UNTRACKED(network);
		return NULL;
	}
	/* An entry still waiting: its exit's run was skipped. Counted, not overwritten
	 * silently. */
	if (a->active)
		RW_COUNT_UNTRACKED(network);
	a->fd = fd;
	if (len > sizeof(a->addr))
		len = sizeof(a->addr);
	a->addrlen = 0;
	if (uaddr && len >= 2 && !bpf_probe_read_user(a->addr, len, (const void *)uaddr))
		a->addrlen = len;
	struct socket *sock = fd_to_socket(fd);
	a->sk = sock ? (__u64)BPF_CORE_READ(sock, sk) : 0;
	a->kernel_sk = 0;
	a->note_sk = 0;
	a->ts = bpf_ktime_get_boot_ns();
	/* A connect on a socket past SS_UNCONNECTED starts no new attempt: it waits for or
	 * collects the outcome of the one under way (returning 0 once a non-blocking connect
	 * has completed, or its error), or fails (EALREADY, EISCONN). The call that started
	 * the attempt was reported. socket_state is UAPI (linux/net.h): no CO-RE needed. */
	a->busy = call == NET_CALL_CONNECT && sock && BPF_CORE_READ(sock, state) != SS_UNCONNECTED;
	a->call = call;
	a->active = 1;
	return a;
}

/* The socket and address a bind or connect works on, as the kernel has them: noted by
 * its pre-call hooks (cgroup/bind4, bind6, connect4, connect6) on the v2 root, which run
 * in the calling task with the very socket the kernel looked up and its own copy of the
 * caller's sockaddr. The bind hooks run for every bind of an inet socket (failed ones and
 * port 0 binds with IP_BIND_ADDRESS_NO_PORT included); the connect hooks for every new
 * attempt (a socket unconnected and closed, a sockaddr long enough), before a route or a
 * SYN. The entry's fd lookup and its read of the caller's memory come a moment before the
 * kernel's: another thread can dup2() a decoy over the fd, or rewrite the sockaddr, in
 * between.
 * A cgroup program has no task storage (not even on 6.18), so a table keyed by thread
 * id, written moments before that thread's exit takes it: every bind and connect exit
 * deletes its thread's note, and a thread's exit deletes the one a hook left that no such
 * exit followed (a Fast Open send, io_uring, a kernel_connect), so it holds at most one
 * note per live thread. A hash, not an LRU: nobody's burst of calls can push out another
 * call's note. When it is full (16,384 threads inside a bind or connect at once, say
 * blocked in connect()), the hook's note is counted as untracked and that call's exit
 * falls back to the entry's socket and sockaddr. */
struct call_note {
	__u64 sk;
	__u64 ts;
	__u8 call; /* enum net_call */
	__u8 pad[3];
	__u8 addr[28]; /* the sockaddr as the kernel copied it, in sockaddr_in6 layout */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct call_note);
} network_notes SEC(".maps");

/* Notes ctx->sk (the kernel's struct sock: its address is what the entry's fd lookup
 * gives, net_inflight.sk) and the sockaddr. `v6`: a bind6/connect6 hook (user_ip6 is
 * readable there, user_ip4 only in the IPv4 ones). 1: the call goes on. */
static __always_inline int note_call(struct bpf_sock_addr *ctx, __u8 call, bool v6)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call_note n = { .sk = (__u64)sk, .ts = bpf_ktime_get_boot_ns(), .call = call };
	/* A full 4-byte load: the verifier refuses a narrower one of user_family. */
	__u32 family = *(volatile __u32 *)&ctx->user_family;
	__u32 port = ctx->user_port; /* network order in its first two bytes, as in sockaddr */
	__builtin_memcpy(&n.addr[0], &family, 2);
	__builtin_memcpy(&n.addr[2], &port, 2);
	if (v6) {
		/* One by one: the verifier takes no pointer arithmetic on the context. */
		__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1];
		__u32 w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
		__builtin_memcpy(&n.addr[8], &w0, 4);
		__builtin_memcpy(&n.addr[12], &w1, 4);
		__builtin_memcpy(&n.addr[16], &w2, 4);
		__builtin_memcpy(&n.addr[20], &w3, 4);
	} else {
		__u32 ip = ctx->user_ip4;
		__builtin_memcpy(&n.addr[4], &ip, 4);
	}
	if (bpf_map_update_elem(&network_notes, &tid, &n, BPF_ANY))
		RW_COUNT_UNTRACKED(network);
	return 1;
}

SEC("cgroup/bind4")
int net_bind4(struct bpf_sock_addr *ctx)
{
	return note_call(ctx, NET_CALL_BIND, false);
}

SEC("cgroup/bind6")
int net_bind6(struct bpf_sock_addr *ctx)
{
	return note_call(ctx, NET_CALL_BIND, true);
}

SEC("cgroup/connect4")
int net_connect4(struct bpf_sock_addr *ctx)
{
	return note_call(ctx, NET_CALL_CONNECT, false);
}

SEC("cgroup/connect6")
int net_connect6(struct bpf_sock_addr *ctx)
{
	return note_call(ctx, NET_CALL_CONNECT, true);
}

/* A thread's note dies with it (see call_note). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(net_thread_exit, struct task_struct *t)
{
	__u32 tid = t->pid;
	bpf_map_delete_elem(&network_notes, &tid);
	return 0;
}

/* The socket the call worked on: the kernel's own when a hook named it during the call
 * (note_sk: the pre-bind or pre-connect hook; kernel_sk: SYN_SENT, LISTEN), else the one
 * the fd named at entry. A socket of the kernel's own (sk_kern_sock: the subflow of an
 * MPTCP socket, the TCP socket under an SMC one) is not the caller's: the call's own
 * socket is the entry's, which the protocol checks then judge as before. */
static __always_inline __u64 call_sk(const struct net_inflight *p)
{
	__u64 sk = p->note_sk ? p->note_sk : p->kernel_sk;
	if (sk && BPF_CORE_READ_BITFIELD_PROBED((struct sock *)sk, sk_kern_sock))
		sk = 0;
	return sk ? sk : p->sk;
}

/* The entry its exit pairs with, taken; NULL when there is none for this call. A bind's
 * or connect's note is taken with it, and deleted whoever's it is. */
static __always_inline struct net_inflight *net_take(__u8 call)
{
	struct net_inflight *p = RW_THREAD_GET(&network_inflight, struct net_inflight, false);
	if (call != NET_CALL_LISTEN) {
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		struct call_note *n = bpf_map_lookup_elem(&network_notes, &tid);
		if (n) {
			/* This call's, when written after its entry by its own kind of hook. */
			if (p && p->active && p->call == call && n->call == call &&
			    n->ts >= p->ts) {
				p->note_sk = n->sk;
				__builtin_memcpy(p->addr, n->addr, sizeof(p->addr));
				p->addrlen = sizeof(p->addr);
			}
			bpf_map_delete_elem(&network_notes, &tid);
		}
	}
	if (!p || !p->active)
		return NULL;
	p->active = 0;
	if (rw_skip())
		return NULL;
	/* Another call's entry: this call's enter run was skipped, that call's exit too. */
	if (p->call != call) {
		RW_COUNT_UNTRACKED(network);
		return NULL;
	}
	return p;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int net_connect_enter(struct trace_event_raw_sys_enter *ctx)
{
	net_stash(ctx->args[0], ctx->args[1], ctx->args[2], NET_CALL_CONNECT);
	return 0;
}

/* The caller's sockaddr (the kernel's copy where a hook noted it, see net_take), when it
 * is of the socket's family, as the peer (a failed connect may have cleared it in the
 * socket) or, `local`, the local end (a failed bind leaves the socket unbound). */
static __always_inline void addr_from_args(struct net_event *e, const struct net_inflight *a,
					   bool local)
{
	__u16 af = a->addr[0] | (a->addr[1] << 8); /* sa_family, host order (little endian) */
	if (af != e->family)
		return;
	__u8 *out = local ? e->saddr : e->daddr;
	if (af == RW_AF_INET && a->addrlen >= 8) {
		__builtin_memset(out, 0, 16);
		__builtin_memcpy(out, &a->addr[4], 4);
	} else if (af == RW_AF_INET6 && a->addrlen >= 24) {
		__builtin_memcpy(out, &a->addr[8], 16);
	} else {
		return;
	}
	__u16 port = (a->addr[2] << 8) | a->addr[3];
	if (local) {
		e->sport = port;
		e->flags |= RW_NET_SADDR_FROM_ARGS;
	} else {
		e->dport = port;
		e->flags |= RW_NET_DADDR_FROM_ARGS;
	}
}

SEC("tracepoint/syscalls/sys_exit_connect")
int net_connect_exit(struct trace_event_raw_sys_exit *ctx)
{
	RW_THREAD_DONE_AT_RETURN(network_inflight);
	struct net_inflight *p = net_take(NET_CALL_CONNECT);
	if (!p)
		return 0;
	long ret = ctx->ret;
	/* Not a connection attempt: no socket, or a repeated connect on one in progress. */
	if (ret == -RW_EBADF || ret == -RW_ENOTSOCK || ret == -RW_EALREADY || ret == -RW_EISCONN)
		return 0;
	/* A hook that named the kernel's socket says the call started a new attempt: the
	 * pre-connect hook runs for each (not for connect(AF_UNSPEC), which dissolves an
	 * association, nor on a socket past SS_UNCONNECTED), and a TCP connect that succeeds
	 * or goes on in the background entered SYN_SENT in this call. Without either (no
	 * hook attached, or no room for its note), the entry judges: a busy socket (see
	 * net_stash) or an AF_UNSPEC sockaddr starts nothing; and a success whose socket
	 * has no peer was none, whatever the entry read (an AF_UNSPEC disconnect whose
	 * sockaddr another thread rewrote after the entry read it). */
	bool named = p->note_sk || p->kernel_sk;
	if (!named && (p->busy || (p->addrlen >= 2 && p->addr[0] == 0 && p->addr[1] == 0)))
		return 0;
	/* The socket the call was made on, whatever the fd names now. */
	struct sock *sk = (struct sock *)call_sk(p);
	__u16 family = tcp_family(sk);
	if (!family)
		return 0;
	if (!named && (ret == 0 || ret == -RW_EINPROGRESS) &&
	    !BPF_CORE_READ(sk, __sk_common.skc_dport))
		return 0;
	struct net_event ev;
	fill_body(&ev, sk, family);
	ev.ret = ret;
	ev.fd = p->fd;
	ev.via = RW_NET_VIA_CONNECT;
	/* A failed connect's socket has already been through TCP_CLOSE. (The owner was kept
	 * when the socket entered SYN_SENT: net_syn_sent.) */
	if (ret != 0 && ret != -RW_EINPROGRESS)
		addr_from_args(&ev, p, false);
	if (net_filtered(&ev, NET_CURRENT, NULL, true))
		return 0;
	struct net_event *e = net_reserve(&ev, RW_CONNECT, (__u32)bpf_get_current_uid_gid());
	if (e)
		RW_SUBMIT(network, e);
	return 0;
}

/* bind and listen: the socket's local end as the kernel has it after the call (a port 0
 * bind reports the port chosen; a listen on an unbound socket, the one it bound), from
 * the socket the call worked on (call_sk). A failed bind reports the sockaddr asked for. */
static __always_inline int on_bind_listen_exit(long ret, __u8 call, __u32 type)
{
	RW_THREAD_DONE_AT_RETURN(network_inflight);
	struct net_inflight *p = net_take(call);
	if (!p)
		return 0;
	struct sock *sk = (struct sock *)call_sk(p);
	__u16 proto = 0;
	__u16 family = inet_family(sk, &proto);
	if (!family)
		return 0;
	struct net_event ev;
	fill_body(&ev, sk, family);
	ev.protocol = proto;
	ev.ret = ret;
	ev.fd = p->fd;
	if (type == RW_LISTEN)
		ev.backlog = BPF_CORE_READ(sk, sk_max_ack_backlog);
	else if (ret != 0)
		addr_from_args(&ev, p, true);
	if (net_filtered(&ev, NET_CURRENT, NULL, false))
		return 0;
	struct net_event *e = net_reserve(&ev, type, (__u32)bpf_get_current_uid_gid());
	if (e)
		RW_SUBMIT(network, e);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_bind")
int net_bind_enter(struct trace_event_raw_sys_enter *ctx)
{
	net_stash(ctx->args[0], ctx->args[1], ctx->args[2], NET_CALL_BIND);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_bind")
int net_bind_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_bind_listen_exit(ctx->ret, NET_CALL_BIND, RW_BIND);
}

SEC("tracepoint/syscalls/sys_enter_listen")
int net_listen_enter(struct trace_event_raw_sys_enter *ctx)
{
	net_stash(ctx->args[0], 0, 0, NET_CALL_LISTEN);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_listen")
int net_listen_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_bind_listen_exit(ctx->ret, NET_CALL_LISTEN, RW_LISTEN);
}

/* A TCP Fast Open connect: sendto/sendmsg(MSG_FASTOPEN) on an unconnected socket connects
 * it without connect(). Reported at the exit of the syscall that made it (the local port
 * is chosen only after SYN_SENT is entered), marked by net_syn_sent. */
static __always_inline int on_send_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct net_inflight *p NET_FORGET_IF_TAKEN =
		RW_THREAD_GET(&network_inflight, struct net_inflight, false);
	if (!p || !p->tfo)
		return 0;
	p->tfo = 0;
	/* A mark left by a send that is no syscall of these (io_uring) is not this one's. */
	if (p->tfo_nr != ctx->id || rw_skip())
		return 0;
	struct sock *sk = (struct sock *)p->tfo_sk;
	__u16 family = tcp_family(sk);
	if (!family)
		return 0;
	struct net_event ev;
	fill_body(&ev, sk, family);
	long ret = ctx->ret;
	ev.ret = ret;
	ev.fd = p->tfo_fd;
	ev.via = RW_NET_VIA_FASTOPEN;
	if (ret < 0 && ret != -RW_EINPROGRESS) {
		/* Failed: the socket may have forgotten its peer (as for connect). */
		__builtin_memcpy(ev.daddr, p->tfo_daddr, sizeof(ev.daddr));
		ev.dport = p->tfo_dport;
		ev.flags |= RW_NET_DADDR_FROM_ARGS;
	}
	if (net_filtered(&ev, NET_CURRENT, NULL, true))
		return 0;
	struct net_event *e = net_reserve(&ev, RW_CONNECT, (__u32)bpf_get_current_uid_gid());
	if (e)
		RW_SUBMIT(network, e);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int net_sendto_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_send_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int net_sendmsg_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_send_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int net_sendmmsg_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_send_exit(ctx);
}

#ifdef RW_KERNEL_510
#define RW_MSG_FASTOPEN 0x20000000

/* The 5.10 variant has no bpf_task_pt_regs (5.15) to read, at SYN_SENT, the number and fd
 * of the send that connects (current_syscall): a send with MSG_FASTOPEN in its flags (the
 * only syscall sends that net_syn_sent marks) keeps them at its enter in its thread's
 * entry, which its exit deletes. Not the user registers at task->stack + THREAD_SIZE:
 * THREAD_SIZE is a constant of the kernel's build (page size, KASAN) that CO-RE cannot
 * relocate, and these tracepoints are exact. */
static __always_inline int net_send_enter(struct trace_event_raw_sys_enter *ctx, __u64 flags)
{
	if (!(flags & RW_MSG_FASTOPEN) || rw_skip())
		return 0;
	struct net_inflight *p = RW_THREAD_GET(&network_inflight, struct net_inflight, true);
	if (!p) {
		RW_COUNT_UNTRACKED(network);
		return 0;
	}
	p->tfo_nr = ctx->id;
	p->tfo_fd = ctx->args[0];
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int net_sendto_enter(struct trace_event_raw_sys_enter *ctx)
{
	return net_send_enter(ctx, ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int net_sendmsg_enter(struct trace_event_raw_sys_enter *ctx)
{
	return net_send_enter(ctx, ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int net_sendmmsg_enter(struct trace_event_raw_sys_enter *ctx)
{
	return net_send_enter(ctx, ctx->args[3]);
}
#else
/* The syscall number and first argument (the fd) of the current task's syscall. */
static __always_inline void current_syscall(struct task_struct *task, __s64 *nr, __s32 *fd)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs) {
		*nr = -1;
		*fd = -1;
		return;
	}
#if defined(__TARGET_ARCH_x86)
	*nr = BPF_CORE_READ(regs, orig_ax);
#elif defined(__TARGET_ARCH_arm64)
	*nr = BPF_CORE_READ(regs, syscallno);
#else
	*nr = -1;
#endif
	*fd = PT_REGS_PARM1_CORE_SYSCALL(regs);
}
#endif

/* Keeps the current task as the owner of a socket it is connecting. Kept for the daemon
 * too, so that the close of its own socket is known to be its own (skip_owner). */
static __always_inline void keep_connect_owner(const struct sock *sk, struct task_struct *task)
{
#ifdef RW_KERNEL_510
	struct net_owner owner = {};
	struct net_owner *o = &owner;
#else
	struct net_owner *o = bpf_sk_storage_get(&network_sk_owner, (struct sock *)sk, 0,
						 BPF_SK_STORAGE_GET_F_CREATE);
	if (!o)
		return; /* no memory: its close will say owner_known false */
#endif
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();
	o->cgroup_id = bpf_get_current_cgroup_id();
	o->pid = id >> 32;
	o->tree = rw_current_tree_bits();
	o->tid = (__u32)id;
	o->ppid = BPF_CORE_READ(task, real_parent, tgid);
	o->uid = (__u32)ug;
	o->gid = ug >> 32;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
#ifdef RW_KERNEL_510
	__u64 key = (__u64)sk;
	/* The map is full: its close says owner_known false (the daemon's own, kept only to
	 * be told apart, is not counted). */
	if (bpf_map_update_elem(&network_sk_owner, &key, o, BPF_ANY) && !rw_skip())
		RW_COUNT_UNTRACKED(network);
#endif
}

/* A TCP socket entering SYN_SENT: always in the task that connects it (connect(), a Fast
 * Open send, io_uring, a kernel socket's worker), which becomes its owner. When the task
 * sends with MSG_FASTOPEN (tcp_sendmsg_fastopen holds fastopen_req for the length of the
 * connect), also marks the task for on_send_exit; connect() itself is followed from its
 * own syscall (net_connect_enter). */
static __always_inline void net_syn_sent(const struct sock *sk)
{
	struct rw_config *cfg = rw_cfg();
	if (!cfg || (cfg->flags & RW_CONFIG_STOPPED))
		return;
	struct task_struct *task = rw_current_task();
	keep_connect_owner(sk, task);
	if (!BPF_CORE_READ((const struct tcp_sock *)sk, fastopen_req) || rw_skip())
		return;
#ifdef RW_KERNEL_510
	/* Only a send whose enter kept its number and fd (net_send_enter) is followed: one
	 * that found the table full was counted there. */
	struct net_inflight *p = RW_THREAD_GET(&network_inflight, struct net_inflight, false);
	if (!p)
		return;
#else
	struct net_inflight *p =
		bpf_task_storage_get(&network_inflight, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!p) {
		RW_COUNT_UNTRACKED(network);
		return;
	}
	current_syscall(task, &p->tfo_nr, &p->tfo_fd);
#endif
	p->tfo_sk = (__u64)sk;
	p->tfo_dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	__builtin_memset(p->tfo_daddr, 0, sizeof(p->tfo_daddr));
	if (BPF_CORE_READ(sk, __sk_common.skc_family) == RW_AF_INET) {
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(p->tfo_daddr, &d, 4);
	} else if (bpf_core_field_exists(sk->__sk_common.skc_v6_daddr)) {
		BPF_CORE_READ_INTO(&p->tfo_daddr, sk, __sk_common.skc_v6_daddr);
	}
	p->tfo = 1;
}

/* The socket a connect (SYN_SENT) or listen (LISTEN) of this task's call in flight
 * works on: these transitions run in the calling task, on the socket the kernel looked
 * up (see net_inflight.kernel_sk). */
static __always_inline void net_note_call_sk(const struct sock *sk, __u8 call)
{
	struct net_inflight *p = RW_THREAD_GET(&network_inflight, struct net_inflight, false);
	if (p && p->active && p->call == call)
		p->kernel_sk = (__u64)sk;
}

static __always_inline int on_accept(long ret)
{
	if (ret < 0)
		return 0;
	struct sock *sk = fd_to_sock(ret);
	__u16 family = tcp_family(sk);
	if (!family)
		return 0;
	struct net_event ev;
	fill_body(&ev, sk, family);
	ev.fd = ret;
	remember_owner(sk, &ev);
	if (net_filtered(&ev, NET_CURRENT, NULL, true))
		return 0;
	struct net_event *e = net_reserve(&ev, RW_ACCEPT, (__u32)bpf_get_current_uid_gid());
	if (e)
		RW_SUBMIT(network, e);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int net_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (rw_skip())
		return 0;
	return on_accept(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int net_accept4_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (rw_skip())
		return 0;
	return on_accept(ctx->ret);
}

/* The end of a TCP connection: its full socket entering TCP_CLOSE (an active closer's
 * socket does so when it hands over to a TIME_WAIT mini socket). Listeners and failed
 * connects (SYN_SENT, reported by connect's ret) are no connections that ended. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(net_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (newstate == TCP_SYN_SENT) {
		if (BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP) {
			net_syn_sent(sk);
			net_note_call_sk(sk, NET_CALL_CONNECT);
		}
		return 0;
	}
	if (newstate == TCP_LISTEN) {
		net_note_call_sk(sk, NET_CALL_LISTEN);
		return 0;
	}
	if (newstate != TCP_CLOSE || oldstate == TCP_CLOSE || oldstate == TCP_LISTEN)
		return 0;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
#ifdef RW_KERNEL_510
	/* The variant's owner entry goes at every TCP_CLOSE, also where nothing is reported
	 * (a failed connect's): none is left behind for a later socket at this address. */
	struct net_owner kept;
	bool sk_owned = net_sk_owner_take(sk, &kept);
#endif
	struct owner_key key = {
		.sk = (__u64)sk,
		.sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport)),
		.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)),
	};
	if (oldstate == TCP_SYN_SENT)
		return 0;
	__u16 family = tcp_family(sk);
	if (!family)
		return 0;
	/* The self check goes by the owner: in softirq context the daemon may be current
	 * for someone else's close. A connected socket's owner is in its storage (kept, not
	 * deleted: it goes with the socket, and a new connect on it replaces it; in the 5.10
	 * variant, taken above); an accepted one's in the LRU. */
	struct net_owner o = {};
#ifdef RW_KERNEL_510
	struct net_owner *op = sk_owned ? &kept : NULL;
#else
	struct net_owner *op = bpf_sk_storage_get(&network_sk_owner, (struct sock *)sk, 0, 0);
#endif
	bool owned = op != NULL;
	if (op) {
		o = *op;
	} else {
		op = bpf_map_lookup_elem(&network_owners, &key);
		owned = op != NULL;
		if (op) {
			o = *op;
			bpf_map_delete_elem(&network_owners, &key);
		}
	}
	if (owned ? skip_owner(o.pid) : rw_skip())
		return 0;
	struct net_event ev;
	fill_body(&ev, sk, family);
	if (net_filtered(&ev, owned ? NET_OWNER : NET_UNKNOWN, &o, true))
		return 0;
	struct net_event *e = net_reserve(&ev, RW_CLOSE, owned ? o.uid : RW_LOSS_OTHER);
	if (!e)
		return 0;
	e->fd = -1;
	e->oldstate = oldstate;
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	e->bytes_sent = BPF_CORE_READ(tp, bytes_sent);
	/* bytes_received counts sequence space: a FIN received adds one. tcp_fin() is the
	 * only TCP code that sets SOCK_DONE, right after counting the FIN. */
	e->bytes_received = BPF_CORE_READ(tp, bytes_received);
	if (BPF_CORE_READ(sk, __sk_common.skc_flags) &
	    (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE))) {
		e->flags |= RW_NET_PEER_FIN;
		if (e->bytes_received)
			e->bytes_received--;
	}
	e->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	e->bytes_retrans = BPF_CORE_READ(tp, bytes_retrans);
	if (owned) {
		e->flags |= RW_NET_OWNER_KNOWN;
		e->hdr.pid = o.pid;
		e->hdr.tid = o.tid;
		e->hdr.ppid = o.ppid;
		e->hdr.uid = o.uid;
		e->hdr.gid = o.gid;
		e->hdr.cgroup_id = o.cgroup_id;
		__builtin_memcpy(e->hdr.comm, o.comm, sizeof(o.comm));
	}
	RW_SUBMIT(network, e);
	return 0;
}

/* ---- UDP flows: cgroup_skb on the cgroup v2 root ----
 *
 * Every UDP datagram a socket sends or receives passes the cgroup v2 hooks of its
 * socket's cgroup, whatever made it (send, sendmmsg, io_uring, splice): the programs
 * below see the datagram the kernel built or received, with its real addresses, not a
 * syscall's arguments. A flow is (socket, peer). Its first datagram gives a udp_flow;
 * its counts are kept in the socket's own storage and reported once, in a udp_close,
 * when the socket is released (cgroup/sock_release) or when the flow leaves the
 * socket's table (RW_UDP_SLOTS, least recently used first: RW_NET_FLOW_EVICTED). The
 * programs never refuse a packet or a socket: they return 1 on every path. */

/* A global function is verified once, whatever state its callers reach it in. 5.10 takes
 * no pointer but the context as a global's argument (5.12 does), so the 5.10 variant's
 * functions that take one are static ones, verified at each call. */
#ifdef RW_KERNEL_510
#define NET_GLOBAL static __noinline
#else
#define NET_GLOBAL __noinline
#endif

#define RW_ETH_P_IP 0x0800
#define RW_ETH_P_IPV6 0x86DD
#define RW_UDP_SLOTS 8

struct udp_slot {
	__u64 peer[2]; /* an address as it is in the datagram (IPv4: 4 bytes, then zeroes) */
	__u64 local[2];
	__u64 tx_bytes;
	__u64 tx_packets;
	__u64 rx_bytes;
	__u64 rx_packets;
	__u32 last; /* the socket's tick at the flow's last datagram */
	__u16 pport;
	__u16 lport;
	__u16 family; /* of the datagrams */
	__u8 used;
	__u8 inbound;
};

/* One per UDP socket: its owner (the task that created it, when the daemon saw that)
 * and its flows. */
struct udp_state {
	struct bpf_spin_lock lock;
	__u32 tick;
	struct net_owner owner;
	__u32 owner_known;
	__u32 released; /* set by cgroup/sock_release: no flow starts or counts after it */
	struct udp_slot flows[RW_UDP_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct udp_state);
} network_udp SEC(".maps");

/* The task creating a UDP socket is its owner: a datagram is often received in softirq
 * context, where the current task is someone else. */
SEC("cgroup/sock_create")
int net_udp_create(struct bpf_sock *ctx)
{
	if (ctx->protocol != IPPROTO_UDP || ctx->type != SOCK_DGRAM)
		return 1;
	struct rw_config *cfg = rw_cfg();
	if (!cfg || (cfg->flags & RW_CONFIG_STOPPED))
		return 1;
	struct udp_state *us =
		bpf_sk_storage_get(&network_udp, ctx, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!us)
		return 1; /* no memory: its flows say owner_known false */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();
	us->owner.cgroup_id = bpf_get_current_cgroup_id();
	us->owner.pid = id >> 32;
	us->owner.tid = (__u32)id;
	us->owner.ppid = BPF_CORE_READ(task, real_parent, tgid);
	us->owner.uid = (__u32)ug;
	us->owner.gid = ug >> 32;
	us->owner.tree = rw_current_tree_bits();
	bpf_get_current_comm(us->owner.comm, sizeof(us->owner.comm));
	us->owner_known = 1;
	return 1;
}

/* A record of `size` bytes for flow `f` of a socket whose owner is `o` (`owned`: known),
 * judged by that owner and reserved, zeroed, its header from the owner (zeroes when it is
 * not known); NULL when it is not to be sent (stopped, the daemon's own, filtered, or
 * dropped: each counted where it counts). Records are built in the ring, not on the
 * stack: the stack is the limit here (512 bytes for the whole chain of calls). Always
 * inlined: `size` stays a constant for the verifier. */
static __always_inline void *udp_reserve(const struct net_owner *o, bool owned,
					 const struct udp_slot *f, __u32 size, __u32 type)
{
	struct rw_config *cfg = rw_cfg();
	if (!cfg || (cfg->flags & RW_CONFIG_STOPPED) || (owned && o->pid == cfg->self_tgid))
		return NULL;
	if (net_judged(f->family, f->peer, f->lport, f->pport, owned ? NET_OWNER : NET_UNKNOWN, o,
		       true))
		return NULL;
	__u32 uid = owned ? o->uid : RW_LOSS_OTHER;
	struct rw_header *h = rw_reserve_of(&network_rings, &network_stats, size, &uid);
	if (!h)
		return NULL;
	__builtin_memset((char *)h + sizeof(__u64), 0, size - sizeof(__u64));
	h->ts_ns = bpf_ktime_get_boot_ns();
	h->type = type;
	if (owned) {
		h->cgroup_id = o->cgroup_id;
		h->pid = o->pid;
		h->tid = o->tid;
		h->ppid = o->ppid;
		h->uid = o->uid;
		h->gid = o->gid;
		__builtin_memcpy(h->comm, o->comm, sizeof(o->comm));
	}
	return h;
}

/* A udp_flow or udp_close record for flow `f` of a socket whose owner is `o` (in place
 * in its storage: written once, when the socket was created), `owned` when the daemon saw
 * that. Global, and so given the owner rather than the storage with its lock: verified
 * once, not once for each of the states its callers reach it in. */
NET_GLOBAL int rw_udp_emit(const struct net_owner *o, __u32 owned, const struct udp_slot *f,
			   __u32 type, __u32 flags)
{
	if (!o || !f)
		return 0;
	struct net_event *e = udp_reserve(o, owned, f, sizeof(struct net_event), type);
	if (!e)
		return 0;
	e->family = f->family;
	e->protocol = IPPROTO_UDP;
	__builtin_memcpy(e->saddr, f->local, 16);
	__builtin_memcpy(e->daddr, f->peer, 16);
	e->sport = f->lport;
	e->dport = f->pport;
	e->bytes_sent = f->tx_bytes;
	e->bytes_received = f->rx_bytes;
	e->packets_sent = f->tx_packets;
	e->packets_received = f->rx_packets;
	e->fd = -1;
	e->flags =
		flags | (f->inbound ? RW_NET_FLOW_INBOUND : 0) | (owned ? RW_NET_OWNER_KNOWN : 0);
	RW_SUBMIT(network, e);
	return 0;
}

/* ---- DNS: every datagram to or from port 53 of a UDP socket, parsed here ----
 *
 * From the datagram (bpf_skb_load_bytes: the kernel's copy, not the process's memory),
 * into the record in the ring: the header, the one question (its name in wire format,
 * checked label by label: at most 63 bytes each, 255 in all, no pointer), and for a
 * response the A and AAAA answers (up to RW_DNS_ADDRS of the first 16 answers). Anything
 * that does not hold up makes it a dns_malformed with the reason; nothing past the
 * failing point is read or trusted. DNS over TCP is not read. */

#define RW_DNS_MAX_ANSWERS 16
#define RW_DNS_TYPE_A 1
#define RW_DNS_TYPE_AAAA 28
#define RW_DNS_CLASS_IN 1

/* The position after the name at `pos` (labels or a pointer), or a negative
 * rw_dns_malformed; -RW_DNS_ANSWERS_PARTIAL << 8 (a name of over 32 labels): stop
 * reading. Global: verified once, not once per answer. */
__noinline int rw_dns_skip_name(struct __sk_buff *skb, __u32 pos, __u32 end)
{
	for (int i = 0; i < 32; i++) {
		__u8 l = 0;
		if (pos >= end || bpf_skb_load_bytes(skb, pos, &l, 1))
			return -RW_DNS_TRUNCATED_ANSWER;
		if ((l & 0xc0) == 0xc0)
			return pos + 2 <= end ? (int)(pos + 2) : -RW_DNS_TRUNCATED_ANSWER;
		if (l > 63)
			return -RW_DNS_BAD_ANSWER_NAME;
		pos += 1 + l;
		if (l == 0)
			return pos;
	}
	return -(RW_DNS_ANSWERS_PARTIAL << 8);
}

/* The answer's fixed part at `pos`: its type, class and rdata length packed as
 * type << 32 | class << 16 | rdlength (at most 2^48: never negative), or a negative
 * rw_dns_malformed. */
__noinline long rw_dns_rr(struct __sk_buff *skb, __u32 pos, __u32 end)
{
	__u8 rr[10] = {};
	if (pos + 10 > end || bpf_skb_load_bytes(skb, pos, rr, sizeof(rr)))
		return -RW_DNS_TRUNCATED_ANSWER;
	__u32 rdlen = rr[8] << 8 | rr[9];
	if (pos + 10 + rdlen > end)
		return -RW_DNS_TRUNCATED_ANSWER;
	/* Unsigned: a class of 0x8000 or more must not make the result negative. */
	__u64 type = rr[0] << 8 | rr[1], class = rr[2] << 8 | rr[3];
	return (long)(type << 32 | class << 16 | rdlen);
}

/* The answer at `pos`: an A or AAAA address goes to e->addrs[k] (the first
 * RW_DNS_ADDRS; past them the record says partial). Returns the next answer's position,
 * plus 1 << 32 when an address was kept; or a negative as rw_dns_skip_name's. Global,
 * as one call per answer: inline, the answers' count of kept addresses multiplied the
 * states the verifier walked (~70,000 instructions of 16 answers, against ~4,000). */
NET_GLOBAL long rw_dns_answer(struct __sk_buff *skb, __u32 pos, __u32 end, struct dns_event *e,
			      __u32 k)
{
	if (!e)
		return -RW_DNS_TRUNCATED_ANSWER;
	int p = rw_dns_skip_name(skb, pos, end);
	if (p < 0)
		return p;
	pos = p;
	long rr = rw_dns_rr(skb, pos, end);
	if (rr < 0)
		return rr;
	__u32 type = rr >> 32, class = (rr >> 16) & 0xffff, rdlen = rr & 0xffff;
	pos += 10;
	bool address = class == RW_DNS_CLASS_IN && ((type == RW_DNS_TYPE_A && rdlen == 4) ||
						    (type == RW_DNS_TYPE_AAAA && rdlen == 16));
	long kept = 0;
	if (address && k >= RW_DNS_ADDRS)
		e->flags |= RW_DNS_ANSWERS_PARTIAL;
	if (address && k < RW_DNS_ADDRS) {
		__u32 i = k & (RW_DNS_ADDRS - 1);
		e->addr_family[i] = rdlen == 4 ? RW_AF_INET : RW_AF_INET6;
		if (bpf_skb_load_bytes(skb, pos, e->addrs[i], rdlen == 4 ? 4 : 16))
			return -RW_DNS_TRUNCATED_ANSWER;
		e->naddrs = k + 1;
		kept = 1L << 32;
	}
	return (long)(pos + rdlen) | kept;
}

/* Parses the message at `off` (`len` bytes) into `e`; 0, or the rw_dns_malformed.
 * Global: verified once, whatever state its caller reaches it in. */
NET_GLOBAL __u32 rw_dns_parse(struct __sk_buff *skb, __u32 off, __u32 len, struct dns_event *e)
{
	if (!e)
		return 0;
	__u8 h[12] = {};
	if (len < sizeof(h) || bpf_skb_load_bytes(skb, off, h, sizeof(h)))
		return RW_DNS_SHORT;
	e->id = h[0] << 8 | h[1];
	e->dns_flags = h[2] << 8 | h[3];
	e->ancount = h[6] << 8 | h[7];
	if ((h[4] << 8 | h[5]) != 1)
		return RW_DNS_QDCOUNT;
	__u32 end = off + len;
	__u32 pos = off + sizeof(h);
	__u32 n = 0;
	bool done = false;
	/* 255 bytes in labels of at least 2 bytes: 128 labels at most. */
	for (int i = 0; i < 128 && !done; i++) {
		__u8 l = 0;
		if (pos >= end || bpf_skb_load_bytes(skb, pos, &l, 1))
			return RW_DNS_TRUNCATED_NAME;
		if (l == 0) {
			pos++;
			done = true;
			break;
		}
		if (l > 63)
			return RW_DNS_BAD_LABEL;
		/* 255 octets in all, the root's terminating zero included (RFC 1035 2.3.4). */
		if (n + 1 + l + 1 > RW_DNS_NAME_MAX)
			return RW_DNS_NAME_TOO_LONG;
		if (pos + 1 + l > end)
			return RW_DNS_TRUNCATED_NAME;
		__u32 at = n;
		barrier_var(at);
		if (at > RW_DNS_NAME_MAX)
			return RW_DNS_NAME_TOO_LONG;
		if (bpf_skb_load_bytes(skb, pos, &e->qname[at], (l & 63) + 1))
			return RW_DNS_TRUNCATED_NAME;
		n += 1 + l;
		pos += 1 + l;
	}
	if (!done)
		return RW_DNS_NAME_TOO_LONG;
	/* Set only now: a name not read to its end is not reported. */
	e->qname_len = n;
	__u8 q[4] = {};
	if (pos + 4 > end || bpf_skb_load_bytes(skb, pos, q, sizeof(q)))
		return RW_DNS_TRUNCATED_QUESTION;
	e->qtype = q[0] << 8 | q[1];
	e->qclass = q[2] << 8 | q[3];
	pos += 4;
	if (!(e->dns_flags & 0x8000))
		return 0; /* a query: nothing more is read */
	__u32 k = 0;
	for (int a = 0; a < RW_DNS_MAX_ANSWERS; a++) {
		if (a >= e->ancount)
			return 0;
		long r = rw_dns_answer(skb, pos, end, e, k);
		if (r == -(RW_DNS_ANSWERS_PARTIAL << 8)) {
			e->flags |= RW_DNS_ANSWERS_PARTIAL;
			return 0;
		}
		if (r < 0)
			return -r;
		pos = (__u32)r;
		k += r >> 32;
	}
	if (e->ancount > RW_DNS_MAX_ANSWERS)
		e->flags |= RW_DNS_ANSWERS_PARTIAL;
	return 0;
}

/* rw_dns_emit's `how`: the owner is known; the datagram was sent. */
#define DNS_EMIT_OWNED 1
#define DNS_EMIT_EGRESS 2

/* A dns (or dns_malformed) record for the datagram of `skb` whose payload is at `off`,
 * of flow `f`, judged by the socket's owner `o` (as rw_udp_emit's); `how` says whether
 * the owner is known and the datagram was sent (the five arguments a global allows). */
NET_GLOBAL int rw_dns_emit(struct __sk_buff *skb, const struct net_owner *o, __u32 how,
			   const struct udp_slot *f, __u32 off)
{
	if (!o || !f)
		return 0;
	bool owned = how & DNS_EMIT_OWNED, egress = how & DNS_EMIT_EGRESS;
	struct dns_event *e = udp_reserve(o, owned, f, sizeof(struct dns_event), RW_DNS);
	if (!e)
		return 0;
	__builtin_memcpy(e->saddr, f->local, 16);
	__builtin_memcpy(e->daddr, f->peer, 16);
	e->sport = f->lport;
	e->dport = f->pport;
	e->family = f->family;
	__u32 len = skb->len > off ? skb->len - off : 0;
	e->length = len;
	e->flags = (owned ? RW_DNS_OWNER_KNOWN : 0) | (egress ? RW_DNS_OUTBOUND : 0);
	__u32 reason = rw_dns_parse(skb, off, len, e);
	e->reason = reason;
	if (reason)
		e->hdr.type = RW_DNS_MALFORMED;
	RW_SUBMIT(network, e);
	return 0;
}

/* The flow of `skb`'s datagram as a new slot: peer and local end from the datagram's
 * headers, its UDP payload counted once; false when it is no UDP datagram this can read
 * (an IPv6 extension header before the UDP header). */
static __always_inline bool udp_parse(struct __sk_buff *skb, bool egress, struct udp_slot *f,
				      __u32 *payload_off)
{
	__u32 l4;
	__builtin_memset(f, 0, sizeof(*f));
	__u64 *src = egress ? f->local : f->peer;
	__u64 *dst = egress ? f->peer : f->local;
	if (skb->protocol == bpf_htons(RW_ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.protocol != IPPROTO_UDP)
			return false;
		l4 = ip.ihl * 4;
		src[0] = ip.saddr;
		dst[0] = ip.daddr;
		f->family = RW_AF_INET;
	} else if (skb->protocol == bpf_htons(RW_ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) || ip6.nexthdr != IPPROTO_UDP)
			return false;
		l4 = sizeof(ip6);
		__builtin_memcpy(src, &ip6.saddr, 16);
		__builtin_memcpy(dst, &ip6.daddr, 16);
		f->family = RW_AF_INET6;
	} else {
		return false;
	}
	struct udphdr uh;
	if (bpf_skb_load_bytes(skb, l4, &uh, sizeof(uh)))
		return false;
	__u16 sport = bpf_ntohs(uh.source), dport = bpf_ntohs(uh.dest);
	f->lport = egress ? sport : dport;
	f->pport = egress ? dport : sport;
	__u64 payload = skb->len > l4 + sizeof(uh) ? skb->len - l4 - sizeof(uh) : 0;
	*payload_off = l4 + sizeof(uh);
	/* A UDP_SEGMENT send (or a UDP_GRO receive) is several datagrams in one skb. */
	__u64 segs = skb->gso_segs > 1 ? skb->gso_segs : 1;
	if (egress) {
		f->tx_bytes = payload;
		f->tx_packets = segs;
	} else {
		f->rx_bytes = payload;
		f->rx_packets = segs;
		f->inbound = 1;
	}
	f->used = 1;
	return true;
}

/* Counts a datagram of `skb`'s UDP socket; a new flow is reported. */
static __always_inline int udp_count(struct __sk_buff *skb, bool egress)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_UDP || sk->type != SOCK_DGRAM)
		return 1;
	struct rw_config *cfg = rw_cfg();
	if (!cfg || (cfg->flags & RW_CONFIG_STOPPED))
		return 1;
	/* A socket of the kernel's own (WireGuard, VXLAN, NFS) passes no sock_create or
	 * sock_release hook: its flows are reported when they start and closed only when
	 * evicted. (Its sk_kern_sock bit cannot be read here: no arithmetic on a socket
	 * pointer, and bpf_cast_to_kern_ctx is 6.3+.) */
	struct udp_slot now;
	__u32 off = 0;
	if (!udp_parse(skb, egress, &now, &off)) {
		/* A datagram of a UDP socket not followed (an IPv6 extension header): on the
		 * books. */
		RW_COUNT_UNTRACKED(network);
		return 1;
	}
	/* A socket created before the daemon started has no storage yet: its owner is not
	 * known (zeroed). */
	struct udp_state *us = bpf_sk_storage_get(&network_udp, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!us) {
		RW_COUNT_UNTRACKED(network);
		return 1;
	}
	struct udp_slot old;
	int found = -1, slot = 0;
	__u32 oldest = 0xffffffff;
	bpf_spin_lock(&us->lock);
	if (us->released) {
		/* A datagram after the socket's release closed its flows (one in flight on
		 * another CPU): not followed, on the books. */
		bpf_spin_unlock(&us->lock);
		RW_COUNT_UNTRACKED(network);
		return 1;
	}
	__u32 tick = ++us->tick;
	now.last = tick;
	for (int i = 0; i < RW_UDP_SLOTS; i++) {
		struct udp_slot *f = &us->flows[i];
		if (f->used && f->family == now.family && f->pport == now.pport &&
		    f->peer[0] == now.peer[0] && f->peer[1] == now.peer[1]) {
			found = i;
			break;
		}
		__u32 age = f->used ? f->last : 0;
		if (age < oldest) {
			oldest = age;
			slot = i;
		}
	}
	if (found >= 0 && found < RW_UDP_SLOTS) {
		struct udp_slot *f = &us->flows[found];
		f->tx_bytes += now.tx_bytes;
		f->tx_packets += now.tx_packets;
		f->rx_bytes += now.rx_bytes;
		f->rx_packets += now.rx_packets;
		f->last = tick;
		bpf_spin_unlock(&us->lock);
	} else if (slot >= 0 && slot < RW_UDP_SLOTS) {
		old = us->flows[slot];
		us->flows[slot] = now;
		bpf_spin_unlock(&us->lock);
		if (old.used)
			rw_udp_emit(&us->owner, us->owner_known, &old, RW_UDP_CLOSE,
				    RW_NET_FLOW_EVICTED);
		rw_udp_emit(&us->owner, us->owner_known, &now, RW_UDP_FLOW, 0);
	} else {
		bpf_spin_unlock(&us->lock);
	}
	if (now.lport == 53 || now.pport == 53)
		rw_dns_emit(skb, &us->owner,
			    (us->owner_known ? DNS_EMIT_OWNED : 0) | (egress ? DNS_EMIT_EGRESS : 0),
			    &now, off);
	return 1;
}

SEC("cgroup_skb/egress")
int net_udp_egress(struct __sk_buff *skb)
{
	return udp_count(skb, true);
}

SEC("cgroup_skb/ingress")
int net_udp_ingress(struct __sk_buff *skb)
{
	return udp_count(skb, false);
}

/* A UDP socket released: one udp_close per flow it still has. */
SEC("cgroup/sock_release")
int net_udp_release(struct bpf_sock *ctx)
{
	if (ctx->protocol != IPPROTO_UDP || ctx->type != SOCK_DGRAM)
		return 1;
	/* Created if missing: a socket that never had a datagram yet must still refuse new
	 * flows from now on (a datagram may be on its way on another CPU). */
	struct udp_state *us =
		bpf_sk_storage_get(&network_udp, ctx, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!us)
		return 1;
	for (int i = 0; i < RW_UDP_SLOTS; i++) {
		struct udp_slot f;
		bpf_spin_lock(&us->lock);
		us->released = 1;
		f = us->flows[i];
		us->flows[i].used = 0;
		bpf_spin_unlock(&us->lock);
		if (f.used)
			rw_udp_emit(&us->owner, us->owner_known, &f, RW_UDP_CLOSE, 0);
	}
	return 1;
}

RW_THREAD_PROGS(network, RW_THREAD_FORGET(&network_inflight));

RW_LAYOUT(net_event);
RW_LAYOUT(dns_event);
RW_ENUM(rw_network_type);
RW_ENUM(rw_net_family);
RW_ENUM(rw_net_flags);
RW_ENUM(rw_net_via);
RW_ENUM(rw_dns_flags);
RW_ENUM(rw_dns_malformed);
