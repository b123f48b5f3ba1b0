// SPDX-License-Identifier: GPL-2.0
/* TLS family: executable mappings of files (lib_load, from the exits of mmap and mprotect)
 * and the sessions of the host's libssl (uprobes: handshake, server name, bytes, end).
 *
 * The uprobe sections name the library as `uprobe/LIB:FUNCTION`: the loader finds every
 * LIB.* in the linker cache (src/family/loader.rs) and attaches to each file. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "tls.h"

char LICENSE[] SEC("license") = "GPL";

/* No 5.10 variant (build.rs builds none): the uprobes need bpf_get_attach_cookie (5.15),
 * the session end bpf_for_each_map_elem (5.13) and lib_load bpf_find_vma (5.17). */
#define RW_NO_VARIANT_510

RW_DECLARE_RING(tls);
RW_DECLARE_OUT_BUF(tls);
_Static_assert(sizeof(struct lib_load_event) + RW_RESOLVED_LEN <= RW_OUT_MASK,
	       "record under the mask");

#define RW_PROT_EXEC 0x4
#define RW_VM_EXEC 0x4
#define RW_MAX_ERRNO 4095
/* SSL_CTRL_SET_TLSEXT_HOSTNAME and TLSEXT_NAMETYPE_host_name (openssl/tls1.h). */
#define RW_SSL_CTRL_SET_TLSEXT_HOSTNAME 55
#define RW_TLSEXT_NAMETYPE_HOST_NAME 0
/* capture_into's answer when the buffer could not be read. */
#define RW_TLS_CAPTURE_STOPPED 0xffffffffU

/* ---- lib_load ---------------------------------------------------------------------- */

struct vma_seen {
	struct file *file;
	__u64 start;
	__u64 end;
	__u64 pgoff;
	__u64 flags;
};

static long lib_vma(struct task_struct *task, struct vm_area_struct *vma, struct vma_seen *v)
{
	v->file = vma->vm_file;
	v->start = vma->vm_start;
	v->end = vma->vm_end;
	v->pgoff = vma->vm_pgoff;
	v->flags = vma->vm_flags;
	return 0;
}

/* A call that succeeded and asked for PROT_EXEC (its arguments are the task's registers,
 * which no other thread can change): report the mapping the kernel now has at `addr`. */
static __always_inline void lib_load(__u64 addr, __u32 via)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!(PT_REGS_PARM3_CORE_SYSCALL(regs) & RW_PROT_EXEC))
		return;
	struct vma_seen v = {};
	long err = bpf_find_vma(task, addr, lib_vma, &v, 0);
	if (err) {
		/* -EBUSY: another thread holds the address space's lock. The mapping is not
		 * read, and the loss is on the books. */
		if (err != -2 /* ENOENT: unmapped again by another thread */)
			RW_COUNT_UNTRACKED(tls);
		return;
	}
	/* Anonymous executable memory (a JIT) is not a library; nor is a mapping that is
	 * not executable any more. */
	if (!v.file || !(v.flags & RW_VM_EXEC))
		return;
	if (RW_FILTERED(tls))
		return;
	struct rw_out_buf *b = tls_out_buf();
	struct rw_path_scratch *ps = rw_path_buf();
	if (!b || !ps) {
		RW_COUNT_UNTRACKED(tls);
		return;
	}
	struct lib_load_event *e = (struct lib_load_event *)b->rec;
	rw_fill_header(&e->hdr, RW_LIB_LOAD, bpf_ktime_get_boot_ns());
	e->addr = v.start;
	e->len = v.end - v.start;
	e->pgoff = v.pgoff;
	e->via = via;
	/* A local: BPF_CORE_READ(v.file, ...) would make vma_seen itself relocatable. */
	struct file *file = v.file;
	struct inode *ino = BPF_CORE_READ(file, f_inode);
	e->inode = BPF_CORE_READ(ino, i_ino);
	e->dev = BPF_CORE_READ(ino, i_sb, s_dev);
	e->path_flags = 0;
	__u32 path_len = rw_resolve_file(task, file, ps, e->path, &e->path_flags);
	e->path_len = path_len;
	RW_OUTPUT(tls, &e->hdr, sizeof(*e) + path_len, RW_OUT_MASK);
}

SEC("tracepoint/syscalls/sys_exit_mmap")
int lib_mmap_exit(struct trace_event_raw_sys_exit *ctx)
{
	long ret = ctx->ret;
	if (ret < 0 && ret >= -RW_MAX_ERRNO)
		return 0;
	if (rw_skip())
		return 0;
	lib_load(ret, RW_LIB_VIA_MMAP);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_mprotect")
int lib_mprotect_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret != 0)
		return 0;
	if (rw_skip())
		return 0;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	lib_load(PT_REGS_PARM1_CORE_SYSCALL(regs), RW_LIB_VIA_MPROTECT);
	return 0;
}

/* ---- TLS sessions ------------------------------------------------------------------ */

/* A session is one SSL object of one process. */
struct tls_key {
	__u32 tgid;
	__u32 pad;
	__u64 ssl;
};

/* Not preallocated: a host with few TLS sessions pays for few. A session that finds the
 * map full is not followed, and each of its calls is counted untracked. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tls_key);
	__type(value, struct tls_session);
} tls_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tls_settings);
} tls_settings SEC(".maps");

/* A zeroed session to insert from (it is larger than the stack allows). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tls_session);
} tls_blank SEC(".maps");

/* Sessions in tls_state, so that a process exit only walks the map when there are any. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
} tls_live SEC(".maps");

/* A thread inside a call whose return is probed: keyed by pid_tgid. LRU: a thread that
 * died inside a call leaves its entry to be evicted. */
struct tls_pending {
	__u64 ssl;
	__u64 buf; /* SSL_read, SSL_write: the data's buffer */
	__u64 out; /* SSL_read_ex, SSL_write_ex: where libssl writes the byte count */
	__u64 start_ns;
	__u32 call;  /* RW_TLS_CALL_* for handshakes; TLS_IO_* for reads and writes */
	__u32 depth; /* handshakes: SSL_connect runs SSL_do_handshake inside */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct tls_pending);
} tls_in_handshake SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct tls_pending);
} tls_in_io SEC(".maps");

/* SSL_get_servername runs inside a read's handshake (a server's name callback): its own
 * map, so it does not take the read's entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct tls_pending);
} tls_in_name SEC(".maps");

enum tls_io {
	TLS_IO_READ = 1,
	TLS_IO_WRITE = 2,
	TLS_IO_EX = 4,         /* the _ex variant: 1 on success, the count through `out` */
	TLS_IO_SERVERNAME = 8, /* SSL_get_servername */
};

static __always_inline void tls_live_add(__s64 n)
{
	__u32 zero = 0;
	__s64 *live = bpf_map_lookup_elem(&tls_live, &zero);
	if (live)
		__sync_fetch_and_add(live, n);
}

/* The session of `ssl`, made if `create` (then *made says so). */
static __always_inline struct tls_session *tls_session_made(__u64 ssl, bool create, bool *made)
{
	struct tls_key k = { .tgid = bpf_get_current_pid_tgid() >> 32, .ssl = ssl };
	struct tls_session *s = bpf_map_lookup_elem(&tls_state, &k);
	if (s || !create || !ssl)
		return s;
	__u32 zero = 0;
	struct tls_session *blank = bpf_map_lookup_elem(&tls_blank, &zero);
	if (!blank)
		return NULL;
	if (bpf_map_update_elem(&tls_state, &k, blank, BPF_NOEXIST) == 0)
		tls_live_add(1);
	s = bpf_map_lookup_elem(&tls_state, &k);
	if (!s) {
		RW_COUNT_UNTRACKED(tls);
		return NULL;
	}
	s->ssl = ssl;
	*made = true;
	return s;
}

static __always_inline struct tls_session *tls_session_of(__u64 ssl, bool create)
{
	bool made = false;
	return tls_session_made(ssl, create, &made);
}

/* Sends a handshake or close record of session `s` (`ended` 0: the handshake). */
static __always_inline void tls_send(struct tls_session *s, __u32 type, __u32 ended)
{
	struct tls_event *e = RW_RESERVE(tls, struct tls_event, type);
	if (!e)
		return;
	e->handshake_ns =
		s->start_ns && e->hdr.ts_ns > s->start_ns ? e->hdr.ts_ns - s->start_ns : 0;
	e->ended = ended;
	e->pad = 0;
	__builtin_memcpy(&e->s, s, sizeof(e->s));
	RW_SUBMIT(tls, e);
}

/* The handshake is over (done or given up): report it once. */
static __always_inline void tls_handshake_over(struct tls_session *s)
{
	if (s->flags & RW_TLS_REPORTED)
		return;
	s->flags |= RW_TLS_REPORTED;
	tls_send(s, RW_TLS_HANDSHAKE, 0);
}

static __always_inline int hs_enter(__u64 ssl)
{
	if (!ssl)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_pending *p = bpf_map_lookup_elem(&tls_in_handshake, &id);
	/* A handshake inside a handshake call is the same one (a callback's). An entry of
	 * another SSL object was left by a call whose return was never seen. */
	if (p && p->ssl == ssl) {
		p->depth++;
		return 0;
	}
	struct tls_session *s = tls_session_of(ssl, true);
	if (!s)
		return 0;
	if (!(s->flags & RW_TLS_HANDSHAKE_SEEN)) {
		s->flags |= RW_TLS_HANDSHAKE_SEEN;
		s->start_ns = bpf_ktime_get_boot_ns();
		s->call = RW_TLS_CALL_DO_HANDSHAKE;
	}
	struct tls_pending n = { .ssl = ssl, .call = RW_TLS_CALL_DO_HANDSHAKE, .depth = 1 };
	bpf_map_update_elem(&tls_in_handshake, &id, &n, BPF_ANY);
	return 0;
}

static __always_inline int hs_exit(int ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_pending *p = bpf_map_lookup_elem(&tls_in_handshake, &id);
	/* No entry: one the entry probe left out on purpose (no SSL object, the daemon's own
	 * call), or one evicted from the 4,096-thread table (a documented limit). */
	if (!p)
		return 0;
	if (p->depth > 1) {
		p->depth--;
		return 0;
	}
	__u64 ssl = p->ssl;
	bpf_map_delete_elem(&tls_in_handshake, &id);
	if (rw_skip())
		return 0;
	struct tls_session *s = tls_session_of(ssl, false);
	if (!s)
		return 0;
	/* A non-blocking handshake returns -1 (want read, want write) until it is done: the
	 * record waits for the 1, or for the session's end. A call after that changes
	 * nothing (renegotiation, TLS 1.3 key updates). */
	if (s->flags & RW_TLS_HANDSHAKE_DONE)
		return 0;
	s->result = ret;
	if (ret == 1) {
		s->flags |= RW_TLS_HANDSHAKE_DONE;
		tls_handshake_over(s);
	}
	return 0;
}

static __always_inline int set_role(__u64 ssl, __u32 role)
{
	struct tls_session *s = tls_session_of(ssl, true);
	if (s)
		s->role = role;
	return 0;
}

/* Copies the server name at the user address `name` into the session. */
static __always_inline void take_sni(struct tls_session *s, const void *name, __u32 from)
{
	long n = bpf_probe_read_user_str(s->sni, sizeof(s->sni), name);
	if (n < 1) {
		s->sni[0] = 0;
		n = 1;
	}
	s->sni_len = n - 1;
	s->sni_from = from;
	if (n == sizeof(s->sni))
		s->flags |= RW_TLS_SNI_TRUNCATED;
	else
		s->flags &= ~RW_TLS_SNI_TRUNCATED;
}

/* SSL_set_tlsext_host_name(ssl, name) is this call. libssl copies the name before it
 * returns; this reads it at the call, from the caller's memory. */
static __always_inline int tls_ctrl(__u64 ssl, long cmd, long larg, void *parg)
{
	if (cmd != RW_SSL_CTRL_SET_TLSEXT_HOSTNAME || larg != RW_TLSEXT_NAMETYPE_HOST_NAME)
		return 0;
	struct tls_session *s = tls_session_of(ssl, true);
	if (!s)
		return 0;
	if (!parg) {
		s->sni_len = 0;
		s->sni_from = RW_TLS_SNI_NONE;
		return 0;
	}
	take_sni(s, parg, RW_TLS_SNI_SET);
	return 0;
}

static __always_inline int io_enter(__u64 ssl, __u64 buf, __u64 out, __u32 call)
{
	if (!ssl)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_pending n = { .ssl = ssl, .buf = buf, .out = out, .call = call };
	bpf_map_update_elem(&tls_in_io, &id, &n, BPF_ANY);
	return 0;
}

/* Copies up to `want - have` of the `n` bytes at `from` to `dst + have`; the new length.
 * The size is in [1, RW_TLS_CAPTURE_MAX] and the offset below it by masks the verifier
 * reads, so the copy stays within the session (sni follows the captures). */
static __always_inline __u32 capture_into(char *dst, __u32 have, __u32 want, __u64 n, __u64 from)
{
	if (have >= want)
		return have;
	__u64 take = want - have;
	if (take > n)
		take = n;
	/* The mask on a copy the compiler cannot prove below the maximum (it knows have <
	 * want <= 256), which pre-6.8 verifiers need to bound dst + off. */
	__u32 off = have;
	barrier_var(off);
	off &= RW_TLS_CAPTURE_MAX - 1;
	__u32 size = take;
	barrier_var(size);
	size = ((size - 1) & (RW_TLS_CAPTURE_MAX - 1)) + 1;
	/* Unreadable: the capture stops there, so it stays the first bytes, and says so. */
	if (bpf_probe_read_user(dst + off, size, (const void *)from))
		return RW_TLS_CAPTURE_STOPPED;
	return have + size;
}

/* `[tls] capture_bytes`: the first bytes of each direction, from the call's buffer as it
 * returned (what libssl took from it or put in it; the process's own memory). */
static __always_inline void capture(struct tls_session *s, struct tls_pending *call, __u64 n)
{
	__u32 zero = 0;
	struct tls_settings *cfg = bpf_map_lookup_elem(&tls_settings, &zero);
	__u32 want = cfg ? cfg->capture_bytes : 0;
	if (!want || !call->buf)
		return;
	if (want > RW_TLS_CAPTURE_MAX)
		want = RW_TLS_CAPTURE_MAX;
	s->flags |= RW_TLS_CAPTURED;
	bool rd = call->call & TLS_IO_READ;
	if (s->flags & (rd ? RW_TLS_CAPTURE_CUT_RECV : RW_TLS_CAPTURE_CUT_SENT))
		return;
	__u32 len;
	if (rd)
		len = capture_into(s->cap_recv, s->cap_recv_len, want, n, call->buf);
	else
		len = capture_into(s->cap_sent, s->cap_sent_len, want, n, call->buf);
	if (len == RW_TLS_CAPTURE_STOPPED) {
		s->flags |= rd ? RW_TLS_CAPTURE_CUT_RECV : RW_TLS_CAPTURE_CUT_SENT;
		return;
	}
	if (rd)
		s->cap_recv_len = len;
	else
		s->cap_sent_len = len;
}

static __always_inline int name_enter(__u64 ssl)
{
	if (!ssl)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_pending n = { .ssl = ssl, .call = TLS_IO_SERVERNAME };
	bpf_map_update_elem(&tls_in_name, &id, &n, BPF_ANY);
	return 0;
}

/* The server asks what the client sent; the client gets what it set. */
static __always_inline int name_exit(__u64 ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_pending *p = bpf_map_lookup_elem(&tls_in_name, &id);
	/* No entry: one the entry probe left out on purpose (no SSL object, the daemon's own
	 * call, a name type other than host_name), or one evicted (a documented limit). */
	if (!p)
		return 0;
	__u64 ssl = p->ssl;
	bpf_map_delete_elem(&tls_in_name, &id);
	if (rw_skip())
		return 0;
	struct tls_session *s = tls_session_of(ssl, true);
	if (s && ret && s->sni_from != RW_TLS_SNI_SET)
		take_sni(s, (const void *)ret, RW_TLS_SNI_ASKED);
	return 0;
}

/* `ret`: the int these calls return (the upper half of the register is not theirs). */
static __always_inline int io_exit(int ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_pending *p = bpf_map_lookup_elem(&tls_in_io, &id);
	/* No entry: one the entry probe left out on purpose (no SSL object, the daemon's own
	 * call), or one evicted from the 4,096-thread table (a documented limit). */
	if (!p)
		return 0;
	struct tls_pending call = *p;
	bpf_map_delete_elem(&tls_in_io, &id);
	if (rw_skip())
		return 0;
	__u64 n = 0;
	if (call.call & TLS_IO_EX) {
		if (ret != 1 || bpf_probe_read_user(&n, sizeof(n), (void *)call.out))
			n = 0;
	} else if (ret > 0) {
		n = ret;
	}
	bool made = false;
	struct tls_session *s = tls_session_made(call.ssl, true, &made);
	if (!s)
		return 0;
	/* First seen at a read or write: it began before the daemon (or this program)
	 * started watching. Its handshake is not known; its bytes count from here. */
	if (made)
		s->flags |= RW_TLS_JOINED;
	s->flags |= RW_TLS_BYTES_COUNTED;
	if (!n)
		return 0;
	if (call.call & TLS_IO_READ) {
		s->bytes_read += n;
		s->reads++;
	} else {
		s->bytes_written += n;
		s->writes++;
	}
	capture(s, &call, n);
	/* Application data moved: the handshake is done, whichever call ran it. */
	if (!(s->flags & (RW_TLS_HANDSHAKE_DONE | RW_TLS_JOINED))) {
		s->flags |= RW_TLS_HANDSHAKE_DONE;
		s->result = 1;
		if (!(s->flags & RW_TLS_HANDSHAKE_SEEN)) {
			s->flags |= RW_TLS_HANDSHAKE_SEEN;
			s->call = RW_TLS_CALL_IMPLICIT;
		}
		tls_handshake_over(s);
	}
	return 0;
}

/* SSL_shutdown: the session is ending; its record waits for SSL_free, so that every
 * byte read after the close_notify is counted too. */
static __always_inline int tls_shutdown(__u64 ssl)
{
	struct tls_session *s = tls_session_of(ssl, false);
	if (s)
		s->flags |= RW_TLS_SHUTDOWN;
	return 0;
}

/* Ends a session whose key is `k`: only the caller whose delete succeeds reports it,
 * so racing ends report once. */
static __always_inline void tls_end(struct tls_key *k, struct tls_session *s, __u32 ended)
{
	if (bpf_map_delete_elem(&tls_state, k))
		return;
	tls_live_add(-1);
	/* A handshake that never completed is reported with its last result. */
	if (s->flags & RW_TLS_HANDSHAKE_SEEN)
		tls_handshake_over(s);
	if ((s->flags & RW_TLS_SHUTDOWN) && ended == RW_TLS_ENDED_FREE)
		ended = RW_TLS_ENDED_SHUTDOWN;
	tls_send(s, RW_TLS_CLOSE, ended);
}

static __always_inline int tls_free(__u64 ssl)
{
	if (!ssl)
		return 0;
	struct tls_key k = { .tgid = bpf_get_current_pid_tgid() >> 32, .ssl = ssl };
	struct tls_session *s = bpf_map_lookup_elem(&tls_state, &k);
	if (s)
		tls_end(&k, s, RW_TLS_ENDED_FREE);
	return 0;
}

/* The probed functions, in the order the sections list them: the probe's cookie is the
 * position + 1, and the functions whose return is probed come first, so both lists of a
 * group share the numbers. SSL_connect and SSL_accept are not probed: they set the role
 * and run SSL_do_handshake, whose probes see them.
 *
 * Two groups: the session's calls (a few per connection) and its reads and writes (one
 * per call: a probe costs ~2 us whatever the program does, so they are attached only
 * with `[tls] count_bytes`, src/family/tls.rs). */
enum tls_session_fn {
	FN_DO_HANDSHAKE = 1,
	FN_GET_SERVERNAME,
	FN_SET_CONNECT_STATE,
	FN_SET_ACCEPT_STATE,
	FN_CTRL,
	FN_SHUTDOWN,
	FN_FREE,
};
#define TLS_SESSION_ENTRIES                                                                        \
	"libssl.so:SSL_do_handshake,SSL_get_servername,SSL_set_connect_state,"                     \
	"SSL_set_accept_state,SSL_ctrl,SSL_shutdown,SSL_free"
#define TLS_SESSION_RETURNS "libssl.so:SSL_do_handshake,SSL_get_servername"

enum tls_io_fn {
	FN_READ = 1,
	FN_READ_EX,
	FN_WRITE,
	FN_WRITE_EX,
};
#define TLS_IO "libssl.so:SSL_read,SSL_read_ex,SSL_write,SSL_write_ex"

static __always_inline int tls_enter(struct pt_regs *ctx)
{
	if (rw_skip())
		return 0;
	__u64 ssl = PT_REGS_PARM1(ctx);
	switch (bpf_get_attach_cookie(ctx)) {
	case FN_DO_HANDSHAKE:
		return hs_enter(ssl);
	case FN_GET_SERVERNAME:
		if (PT_REGS_PARM2(ctx) != RW_TLSEXT_NAMETYPE_HOST_NAME)
			return 0;
		return name_enter(ssl);
	case FN_SET_CONNECT_STATE:
		return set_role(ssl, RW_TLS_ROLE_CLIENT);
	case FN_SET_ACCEPT_STATE:
		return set_role(ssl, RW_TLS_ROLE_SERVER);
	case FN_CTRL:
		return tls_ctrl(ssl, PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx),
				(void *)PT_REGS_PARM4(ctx));
	case FN_SHUTDOWN:
		return tls_shutdown(ssl);
	case FN_FREE:
		return tls_free(ssl);
	}
	return 0;
}

static __always_inline int tls_return(struct pt_regs *ctx)
{
	if (bpf_get_attach_cookie(ctx) == FN_DO_HANDSHAKE)
		return hs_exit(PT_REGS_RC(ctx));
	return name_exit(PT_REGS_RC(ctx));
}

static __always_inline int tls_io_enter(struct pt_regs *ctx)
{
	if (rw_skip())
		return 0;
	__u64 ssl = PT_REGS_PARM1(ctx);
	switch (bpf_get_attach_cookie(ctx)) {
	case FN_READ:
		return io_enter(ssl, PT_REGS_PARM2(ctx), 0, TLS_IO_READ);
	case FN_READ_EX:
		return io_enter(ssl, PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx),
				TLS_IO_READ | TLS_IO_EX);
	case FN_WRITE:
		return io_enter(ssl, PT_REGS_PARM2(ctx), 0, TLS_IO_WRITE);
	case FN_WRITE_EX:
		return io_enter(ssl, PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx),
				TLS_IO_WRITE | TLS_IO_EX);
	}
	return 0;
}

/* Where the kernel has uprobe_multi (6.6 on): one link per group and direction, so
 * stopping waits for one grace period each, not one per function (~120 ms each here). */
SEC("uprobe.multi/" TLS_SESSION_ENTRIES)
int tls_enter_multi(struct pt_regs *ctx)
{
	return tls_enter(ctx);
}

SEC("uretprobe.multi/" TLS_SESSION_RETURNS)
int tls_return_multi(struct pt_regs *ctx)
{
	return tls_return(ctx);
}

SEC("uprobe.multi/" TLS_IO)
int tls_io_enter_multi(struct pt_regs *ctx)
{
	return tls_io_enter(ctx);
}

SEC("uretprobe.multi/" TLS_IO)
int tls_io_return_multi(struct pt_regs *ctx)
{
	return io_exit(PT_REGS_RC(ctx));
}

/* Older kernels: one uprobe per function, each with its cookie. */
SEC("uprobe/" TLS_SESSION_ENTRIES)
int tls_enter_one(struct pt_regs *ctx)
{
	return tls_enter(ctx);
}

SEC("uretprobe/" TLS_SESSION_RETURNS)
int tls_return_one(struct pt_regs *ctx)
{
	return tls_return(ctx);
}

SEC("uprobe/" TLS_IO)
int tls_io_enter_one(struct pt_regs *ctx)
{
	return tls_io_enter(ctx);
}

SEC("uretprobe/" TLS_IO)
int tls_io_return_one(struct pt_regs *ctx)
{
	return io_exit(PT_REGS_RC(ctx));
}

struct exit_walk {
	__u32 tgid;
	__u32 ended;
};

static long end_of_process(struct bpf_map *map, struct tls_key *k, struct tls_session *s,
			   struct exit_walk *w)
{
	if (k->tgid == w->tgid)
		tls_end(k, s, w->ended);
	return 0;
}

/* Ends every session of process `tgid` (a walk of the map, only while any is open). */
static __always_inline void end_all(__u32 tgid, __u32 ended)
{
	__u32 zero = 0;
	__s64 *live = bpf_map_lookup_elem(&tls_live, &zero);
	if (!live || *live <= 0)
		return;
	if (rw_skip())
		return;
	struct exit_walk w = { .tgid = tgid, .ended = ended };
	bpf_for_each_map_elem(&tls_state, end_of_process, &w, 0);
}

/* A process that exits without SSL_free ends its sessions here. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(tls_process_exit, struct task_struct *p)
{
	if (p->signal->live.counter != 0)
		return 0;
	end_all(p->tgid, RW_TLS_ENDED_EXIT);
	return 0;
}

/* An exec replaces the program: its SSL objects are gone with the old memory (a new one
 * at the same address is another session). */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(tls_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	end_all(p->tgid, RW_TLS_ENDED_EXEC);
	return 0;
}

RW_LAYOUT(lib_load_event);
RW_LAYOUT(tls_session);
RW_LAYOUT(tls_event);
RW_ENUM(rw_tls_type);
RW_ENUM(rw_lib_via);
RW_ENUM(rw_tls_call);
RW_ENUM(rw_tls_role);
RW_ENUM(rw_tls_sni_from);
RW_ENUM(rw_tls_flags);
RW_ENUM(rw_tls_ended);
RW_LAYOUT(tls_settings);
RW_ENUM(rw_resolve_flags);
