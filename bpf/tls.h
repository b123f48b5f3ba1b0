/* SPDX-License-Identifier: GPL-2.0 */
/* TLS family records: executable library mappings and the TLS sessions of the host's
 * libssl. Mirrored in src/family/tls.rs. */
#ifndef RW_TLS_H
#define RW_TLS_H
#include "common.h"
#include "path.h"

/* A server name: the SNI extension's host_name holds at most 255 bytes. */
#define RW_SNI_LEN 256
/* The most plaintext `[tls] capture_bytes` keeps per direction (a power of two). */
#define RW_TLS_CAPTURE_MAX 256

/* rw_header.type of this family's records */
enum rw_tls_type {
	RW_LIB_LOAD = 29,
	RW_TLS_HANDSHAKE = 30,
	RW_TLS_CLOSE = 31,
};

/* lib_load_event.via: the call that made the file's pages executable. */
enum rw_lib_via {
	RW_LIB_VIA_MMAP = 1,
	RW_LIB_VIA_MPROTECT = 2,
};

/* Sent variable-size: the record ends after path_len bytes of path. Everything comes
 * from the mapping (the kernel's vm_area_struct) the call left at its address, not from
 * the call's arguments. */
struct lib_load_event {
	struct rw_header hdr;
	__u64 addr;       /* start of the executable mapping */
	__u64 len;        /* its length in bytes */
	__u64 pgoff;      /* where in the file it starts, in pages (vm_pgoff) */
	__u64 inode;      /* the mapped file's inode number */
	__u32 dev;        /* and its file system's device (the kernel's dev_t encoding) */
	__u32 via;        /* RW_LIB_VIA_* */
	__u32 path_len;   /* bytes in path (no NUL); 0 when the file could not be named */
	__u32 path_flags; /* RW_RESOLVE_* (path.h) */
	char path[];      /* the mapped file, named from its dentry and mounts */
};

/* Which libssl call a handshake went through. */
enum rw_tls_call {
	/* SSL_do_handshake, also when SSL_connect or SSL_accept ran it */
	RW_TLS_CALL_DO_HANDSHAKE = 1,
	/* None: the first SSL_read or SSL_write ran the handshake inside libssl. */
	RW_TLS_CALL_IMPLICIT = 2,
};

/* The side of the connection, as the process set it (SSL_set_connect_state,
 * SSL_set_accept_state; SSL_connect and SSL_accept call them). */
enum rw_tls_role {
	RW_TLS_ROLE_UNKNOWN = 0,
	RW_TLS_ROLE_CLIENT = 1,
	RW_TLS_ROLE_SERVER = 2,
};

/* Where the server name came from. */
enum rw_tls_sni_from {
	RW_TLS_SNI_NONE = 0,
	RW_TLS_SNI_SET = 1,   /* the client set it: SSL_ctrl(SSL_CTRL_SET_TLSEXT_HOSTNAME) */
	RW_TLS_SNI_ASKED = 2, /* the server asked libssl what the client sent: SSL_get_servername */
};

/* tls_event.flags */
enum rw_tls_flags {
	RW_TLS_SNI_TRUNCATED = 1,  /* longer than RW_SNI_LEN - 1 bytes */
	RW_TLS_HANDSHAKE_DONE = 2, /* a handshake call returned 1 (or data moved) */
	RW_TLS_HANDSHAKE_SEEN = 4, /* a handshake call was made */
	RW_TLS_REPORTED = 8,       /* the tls_handshake record was sent */
	RW_TLS_SHUTDOWN = 16,      /* SSL_shutdown was called */
	/* Its reads and writes were counted (`[tls] count_bytes`, and it made one). */
	RW_TLS_BYTES_COUNTED = 32,
	/* First seen at a read or write: begun before it was watched; no handshake record. */
	RW_TLS_JOINED = 64,
	/* Plaintext is captured (`[tls] capture_bytes`): cap_sent and cap_recv are set. */
	RW_TLS_CAPTURED = 128,
	/* A buffer could not be read: that direction's capture stopped before N bytes. */
	RW_TLS_CAPTURE_CUT_SENT = 256,
	RW_TLS_CAPTURE_CUT_RECV = 512,
};

/* tls_close_event.ended */
enum rw_tls_ended {
	RW_TLS_ENDED_SHUTDOWN = 1, /* SSL_shutdown */
	RW_TLS_ENDED_FREE = 2,     /* SSL_free without SSL_shutdown before it */
	RW_TLS_ENDED_EXIT = 3,     /* the process exited without SSL_free */
	RW_TLS_ENDED_EXEC = 4,     /* the process exec'd another program without SSL_free */
};

/* What the family keeps per SSL object (tls_state map) and sends in both records. */
struct tls_session {
	__u64 ssl;      /* the SSL object's address in the process: pairs the records */
	__u64 start_ns; /* the first handshake call's start */
	__u64 bytes_read;
	__u64 bytes_written;
	__u64 reads;    /* SSL_read/SSL_read_ex calls that returned data */
	__u64 writes;   /* SSL_write/SSL_write_ex calls that wrote */
	__s32 result;   /* the handshake call's return: 1 done; the last failure otherwise */
	__u32 call;     /* RW_TLS_CALL_* */
	__u32 role;     /* RW_TLS_ROLE_* */
	__u32 flags;    /* RW_TLS_* */
	__u32 sni_from; /* RW_TLS_SNI_* */
	__u32 sni_len;  /* bytes in sni (no NUL) */
	/* The first bytes written and read (`[tls] capture_bytes`), from the process's
	 * buffers as each call returned. sni follows them: a capture's bounds stay within
	 * the struct for the verifier. */
	__u32 cap_sent_len;
	__u32 cap_recv_len;
	char cap_sent[RW_TLS_CAPTURE_MAX];
	char cap_recv[RW_TLS_CAPTURE_MAX];
	char sni[RW_SNI_LEN];
};

/* tls_handshake: when a handshake call returns 1 (or data first moves), or when the
 * session ends without one (result then holds the last failure). tls_close: at SSL_free,
 * or at the process's exit or exec for an object never freed. */
struct tls_event {
	struct rw_header hdr;
	__u64 handshake_ns; /* from the first handshake call to this record (handshake) */
	__u32 ended;        /* RW_TLS_ENDED_* (close), 0 for a handshake */
	__u32 pad;
	struct tls_session s;
};

/* What userspace sets for the family's programs (map tls_settings, key 0). */
struct tls_settings {
	__u32 capture_bytes; /* 0 (off) to RW_TLS_CAPTURE_MAX */
	__u32 pad;
};

#endif
