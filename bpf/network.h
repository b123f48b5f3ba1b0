/* SPDX-License-Identifier: GPL-2.0 */
/* Network family records: TCP connect, accept, close; TCP and UDP bind, TCP listen.
 * Mirrored in src/family/network.rs. */
#ifndef RW_NETWORK_H
#define RW_NETWORK_H
#include "common.h"

/* rw_header.type of this family's records */
enum rw_network_type {
	RW_CONNECT = 5,
	RW_ACCEPT = 6,
	RW_CLOSE = 7,
	RW_BIND = 23,
	RW_LISTEN = 24,
	RW_UDP_FLOW = 25,
	RW_UDP_CLOSE = 26,
	RW_DNS = 27,
	RW_DNS_MALFORMED = 28,
};

/* net_event.family */
enum rw_net_family {
	RW_AF_INET = 2,
	RW_AF_INET6 = 10,
};

/* net_event.flags */
enum rw_net_flags {
	/* close: the header names the task that connected or accepted the socket (owner
	 * map); without it the header is whatever task was current, often not the owner
	 * (softirq). */
	RW_NET_OWNER_KNOWN = 1,
	/* connect: daddr/dport come from the syscall's sockaddr, or for Fast Open from the
	 * socket as the SYN left (a failed connect clears them in the socket). */
	RW_NET_DADDR_FROM_ARGS = 2,
	/* close: the peer's FIN was received (an orderly close by the peer, not a reset) */
	RW_NET_PEER_FIN = 4,
	/* bind: saddr/sport are the caller's sockaddr (a failed bind leaves the socket
	 * unbound); otherwise they are the socket's own, as the kernel bound it. */
	RW_NET_SADDR_FROM_ARGS = 8,
	/* udp_close: the socket's flow table was full and this flow, the least recently
	 * used, made room for a new one; a datagram of it later is a new udp_flow. */
	RW_NET_FLOW_EVICTED = 16,
	/* udp_flow, udp_close: the flow's first datagram was received, not sent. */
	RW_NET_FLOW_INBOUND = 32,
};

/* net_event.via: how a connect was made */
enum rw_net_via {
	RW_NET_VIA_CONNECT = 0,  /* connect() */
	RW_NET_VIA_FASTOPEN = 1, /* sendto/sendmsg/sendmmsg with MSG_FASTOPEN (TCP Fast Open) */
};

/* One record for every type; fields a type does not use are zero.
 * Addresses are in network byte order (4 bytes for IPv4, 16 for IPv6), ports in host
 * order; saddr/sport are the local end, daddr/dport the peer. */
struct net_event {
	struct rw_header hdr;
	__s64 ret; /* connect: 0, -EINPROGRESS or -errno; Fast Open: the send's return;
		    * bind, listen: 0 or -errno */
	/* close, from struct tcp_sock; udp_flow, udp_close: UDP payload bytes */
	__u64 bytes_sent;     /* payload bytes sent, retransmissions included */
	__u64 bytes_received; /* payload bytes received in order (the kernel's count less
			       * the FIN's sequence number) */
	__u64 bytes_acked;    /* sequence space acked by the peer: SYN and FIN count one */
	__u64 bytes_retrans;  /* payload bytes retransmitted */
	/* udp_flow (its first datagram), udp_close (all): datagrams of the flow */
	__u64 packets_sent;
	__u64 packets_received;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;   /* AF_INET or AF_INET6 */
	__u16 protocol; /* IPPROTO_TCP, or IPPROTO_UDP (bind) */
	__s32 fd;       /* connect, bind, listen: the socket; accept: the new socket; close: -1 */
	__u8 oldstate;  /* close: the TCP state the socket left */
	__u8 flags;
	__u8 via; /* connect: enum rw_net_via */
	__u8 pad;
	__u32 backlog; /* listen: the queue length the kernel kept (capped at somaxconn) */
	__u32 pad2;
};

/* dns_event.reason: why a datagram to or from port 53 is no DNS message this reads */
enum rw_dns_malformed {
	RW_DNS_SHORT = 1,              /* shorter than the 12-byte header */
	RW_DNS_QDCOUNT = 2,            /* not exactly one question */
	RW_DNS_BAD_LABEL = 3,          /* a label over 63 bytes, or a pointer in the question */
	RW_DNS_NAME_TOO_LONG = 4,      /* the question's name over 255 bytes */
	RW_DNS_TRUNCATED_NAME = 5,     /* the name runs past the datagram */
	RW_DNS_TRUNCATED_QUESTION = 6, /* no room for the question's type and class */
	RW_DNS_TRUNCATED_ANSWER = 7,   /* an answer runs past the datagram */
	RW_DNS_BAD_ANSWER_NAME = 8,    /* an answer's name has a label over 63 bytes */
};

/* dns_event.flags */
enum rw_dns_flags {
	RW_DNS_OWNER_KNOWN = 1, /* the header names the socket's creator */
	RW_DNS_OUTBOUND = 2,    /* the datagram was sent (else received) */
	/* a response whose answers were not all read (over 16, or a name of over 32 labels
	 * that is no pointer): addrs has those before */
	RW_DNS_ANSWERS_PARTIAL = 4,
};

#define RW_DNS_NAME_MAX 255
#define RW_DNS_ADDRS 8

/* A DNS message over UDP, to or from port 53, read from the datagram itself; or, with
 * `reason` set, one that is malformed (its fields read so far are kept, never trusted
 * further). */
struct dns_event {
	struct rw_header hdr;
	__u8 saddr[16]; /* the datagram's local end */
	__u8 daddr[16]; /* its peer */
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 id;
	__u16 dns_flags; /* the header's second word: QR, opcode, AA, TC, RD, RA, Z, rcode */
	__u16 qtype;
	__u16 qclass;
	__u16 ancount;   /* the header's answer count */
	__u16 qname_len; /* bytes of qname */
	__u16 naddrs;    /* addresses in addrs */
	__u16 reason;    /* dns_malformed: enum rw_dns_malformed */
	__u16 flags;     /* enum rw_dns_flags */
	__u32 length;    /* the message's length (the UDP payload) */
	__u32 pad;
	__u8 addr_family[RW_DNS_ADDRS]; /* AF_INET (A) or AF_INET6 (AAAA) per address */
	__u8 addrs[RW_DNS_ADDRS][16];
	/* The question's name in wire format: length-prefixed labels, without the root's
	 * terminating 0 (userspace writes it dotted, escaped). Room past 255 for the copy of
	 * a last label. */
	__u8 qname[RW_DNS_NAME_MAX + 1 + 64];
};

#endif
