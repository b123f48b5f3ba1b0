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

#endif
