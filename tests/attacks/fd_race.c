// The fd race on bind, listen and connect (tests/network_bind.rs): one thread binds fd X
// (a fresh UDP socket T, port 0), listens on it (a fresh unbound TCP socket T, which
// listen binds) or connects it (T unbound TCP, to a listener of this program's, which
// binds it) while another dup2()s a fresh decoy D and T over X in turn, each for a few
// hundred ns. The kernel works on whichever X names at its own fd lookup, a moment after
// the syscall's entry ran. Prints "TID X", then a line a round: "ret T's-port D's-port"
// (an unbound socket's port is 0). C, not Python: two Python threads take turns on the
// interpreter's lock and almost never race.
// bind_noport binds to 127.0.0.1 with IP_BIND_ADDRESS_NO_PORT: no port yet, so the line
// says 1 for the socket bound to the address and 0 for the other, instead of ports.
// connect_v6only: T and D are IPv6 sockets bound to [::] port 0 (so each has a port),
// T with IPV6_V6ONLY; X is connected to the listener as ::ffff:127.0.0.1, which T refuses
// before any SYN (ENETUNREACH) and D connects: the result says whose X it was.
// The sockaddr race, with no dup2(): the other thread rewrites the caller's sockaddr
// while the call runs, between values with different outcomes, and the result says which
// one the kernel copied. bind_addr binds a fresh UDP socket X to 127.0.0.1 port 0 or port
// A, which another socket holds (EADDRINUSE); connect_addr connects a fresh TCP socket X
// to 127.0.0.1 at the listener (0), at a closed port B (ECONNREFUSED, after the SYN) or
// to 224.0.0.1 port B (ENETUNREACH: no SYN to a multicast address). Each prints
// "TID A B X" (B is 0 for bind_addr; X, the fd every round's socket gets), then
// "ret X's-port" a round. connect_unspec connects a fresh TCP socket X to the listener
// or with AF_UNSPEC (a disconnect, no connection; "ret 1" when X got a peer, "ret 0"
// when not).
// Usage: fd_race ROUNDS bind|bind_noport|listen|connect|connect_v6only|bind_addr|
//                       connect_addr|connect_unspec
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>

static int X;
static _Atomic int cur_t = -1, cur_d = -1, stop;

static void *swapper(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		int t = atomic_load(&cur_t), d = atomic_load(&cur_d);
		if (t < 0) {
			sched_yield(); /* between rounds: leave the CPU to the daemon */
			continue;
		}
		/* X names each about half the time, swapped every few hundred ns. */
		dup2(d, X);
		for (int k = 0; k < 64; k++)
			__asm__ volatile("" ::: "memory");
		dup2(t, X);
		for (int k = 0; k < 64; k++)
			__asm__ volatile("" ::: "memory");
	}
	return NULL;
}

static int noport;

/* The socket's port (IPv4 or IPv6: the port sits at the same place); with noport, 1 when
 * it is bound to an address. */
static int port_of(int s)
{
	struct sockaddr_in6 a;
	socklen_t l = sizeof(a);
	if (getsockname(s, (struct sockaddr *)&a, &l))
		return -1;
	if (noport)
		return ((struct sockaddr_in *)&a)->sin_addr.s_addr != 0;
	return ntohs(a.sin6_port);
}

/* The sockaddr race: the caller's sockaddr, rewritten in one 8-byte store (family, port,
 * IPv4 address) between the values of `heads` while `flipping`. */
static _Alignas(8) struct sockaddr_in shared;
static uint64_t heads[3];
static int nheads;
static _Atomic int flipping;

static void *flipper(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		if (!atomic_load(&flipping)) {
			sched_yield();
			continue;
		}
		for (int k = 0; k < nheads; k++) {
			__atomic_store_n((uint64_t *)&shared, heads[k], __ATOMIC_RELAXED);
			for (int j = 0; j < 16; j++)
				__asm__ volatile("" ::: "memory");
		}
	}
	return NULL;
}

static uint64_t head_of(const char *ip, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, ip, &a.sin_addr);
	uint64_t h;
	memcpy(&h, &a, sizeof(h));
	return h;
}

/* An IPv6 TCP socket bound to [::] port 0, IPV6_V6ONLY as `v6only`. */
static int v6_socket(int v6only)
{
	int s = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 any = { .sin6_family = AF_INET6 };
	if (s < 0 || setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) ||
	    bind(s, (struct sockaddr *)&any, sizeof(any)))
		exit(1);
	return s;
}

/* The sockaddr race (bind_addr, connect_addr, connect_unspec). */
static int addr_race(int n, int connect_call, int unspec)
{
	struct sockaddr_in lo = { .sin_family = AF_INET, .sin_port = 0 };
	lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t lol = sizeof(lo);
	/* connect: the listener (A) and a closed port (B, bound and never listened on);
	 * bind: the port held (A). */
	int a = socket(AF_INET, connect_call ? SOCK_STREAM : SOCK_DGRAM, 0);
	int b = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(a, (struct sockaddr *)&lo, sizeof(lo)) || (connect_call && listen(a, 64)) ||
	    getsockname(a, (struct sockaddr *)&lo, &lol))
		return 1;
	int port_a = ntohs(lo.sin_port), port_b = 0;
	lo.sin_port = 0;
	lol = sizeof(lo);
	if (unspec) {
		/* connect(AF_UNSPEC) disconnects (here: nothing to undo), whatever follows. */
		heads[0] = head_of("127.0.0.1", port_a);
		heads[1] = heads[0] & ~(uint64_t)0xffff;
		nheads = 2;
	} else if (connect_call) {
		if (bind(b, (struct sockaddr *)&lo, sizeof(lo)) ||
		    getsockname(b, (struct sockaddr *)&lo, &lol))
			return 1;
		port_b = ntohs(lo.sin_port);
		heads[0] = head_of("127.0.0.1", port_a);
		heads[1] = head_of("127.0.0.1", port_b);
		heads[2] = head_of("224.0.0.1", port_b);
		nheads = 3;
	} else {
		heads[0] = head_of("127.0.0.1", 0);
		heads[1] = head_of("127.0.0.1", port_a);
		nheads = 2;
	}
	memcpy(&shared, &heads[0], sizeof(heads[0]));
	pthread_t th;
	pthread_create(&th, NULL, flipper, NULL);
	/* Every round's socket gets the same fd, the lowest free one: the events are told
	 * from the binds above by it. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	close(fd);
	printf("%ld %d %d %d\n", (long)syscall(SYS_gettid), port_a, port_b, fd);
	for (int i = 0; i < n; i++) {
		int x = socket(AF_INET, connect_call ? SOCK_STREAM : SOCK_DGRAM, 0);
		if (x != fd)
			return 1;
		atomic_store(&flipping, 1);
		int ret = connect_call ? connect(x, (struct sockaddr *)&shared, sizeof(shared))
				       : bind(x, (struct sockaddr *)&shared, sizeof(shared));
		if (ret)
			ret = -errno;
		atomic_store(&flipping, 0);
		struct sockaddr_in6 peer;
		socklen_t pl = sizeof(peer);
		int connected = !getpeername(x, (struct sockaddr *)&peer, &pl);
		printf("%d %d\n", ret, unspec ? connected : port_of(x));
		if (connected) {
			int c = accept(a, NULL, NULL);
			if (c >= 0)
				close(c);
		}
		close(x);
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	int n = atoi(argv[1]);
	if (!strcmp(argv[2], "bind_addr") || !strcmp(argv[2], "connect_addr") ||
	    !strcmp(argv[2], "connect_unspec"))
		return addr_race(n, strcmp(argv[2], "bind_addr"),
				 !strcmp(argv[2], "connect_unspec"));
	int listen_call = !strcmp(argv[2], "listen");
	int v6only = !strcmp(argv[2], "connect_v6only");
	int connect_call = v6only || !strcmp(argv[2], "connect");
	noport = !strcmp(argv[2], "bind_noport");
	int type = listen_call || connect_call ? SOCK_STREAM : SOCK_DGRAM;
	struct sockaddr_in lo = { .sin_family = AF_INET, .sin_port = 0 };
	lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t lol = sizeof(lo);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (connect_call && (bind(l, (struct sockaddr *)&lo, sizeof(lo)) || listen(l, 64) ||
			     getsockname(l, (struct sockaddr *)&lo, &lol)))
		return 1;
	/* The listener as an IPv4-mapped IPv6 address, for connect_v6only. */
	struct sockaddr_in6 mapped = { .sin6_family = AF_INET6, .sin6_port = lo.sin_port };
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr);
	X = v6only ? socket(AF_INET6, type, 0) : socket(AF_INET, type, 0);
	pthread_t th;
	pthread_create(&th, NULL, swapper, NULL);
	printf("%ld %d\n", (long)syscall(SYS_gettid), X);
	for (int i = 0; i < n; i++) {
		int t, d, one = 1;
		if (v6only) {
			t = v6_socket(1);
			d = v6_socket(0);
		} else {
			t = socket(AF_INET, type, 0);
			d = socket(AF_INET, type, 0);
		}
		if (noport &&
		    (setsockopt(t, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) ||
		     setsockopt(d, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one))))
			return 1;
		dup2(t, X);
		atomic_store(&cur_d, d);
		atomic_store(&cur_t, t);
		int ret;
		if (listen_call) {
			ret = listen(X, 1);
		} else if (v6only) {
			ret = connect(X, (struct sockaddr *)&mapped, sizeof(mapped));
		} else if (connect_call) {
			ret = connect(X, (struct sockaddr *)&lo, sizeof(lo));
		} else {
			struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			ret = bind(X, (struct sockaddr *)&a, sizeof(a));
		}
		if (ret)
			ret = -errno;
		atomic_store(&cur_t, -1);
		printf("%d %d %d\n", ret, port_of(t), port_of(d));
		if (connect_call && ret == 0) {
			int c = accept(l, NULL, NULL);
			if (c >= 0)
				close(c);
		}
		close(t);
		close(d);
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	return 0;
}
