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
// Usage: fd_race ROUNDS bind|bind_noport|listen|connect
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

/* The socket's port; with noport, 1 when it is bound to an address. */
static int port_of(int s)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	if (getsockname(s, (struct sockaddr *)&a, &l))
		return -1;
	if (noport)
		return a.sin_addr.s_addr != 0;
	return ntohs(a.sin_port);
}

int main(int argc, char **argv)
{
	int n = atoi(argv[1]);
	int listen_call = !strcmp(argv[2], "listen"), connect_call = !strcmp(argv[2], "connect");
	noport = !strcmp(argv[2], "bind_noport");
	int type = listen_call || connect_call ? SOCK_STREAM : SOCK_DGRAM;
	struct sockaddr_in lo = { .sin_family = AF_INET, .sin_port = 0 };
	lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t lol = sizeof(lo);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (connect_call && (bind(l, (struct sockaddr *)&lo, sizeof(lo)) || listen(l, 64) ||
			     getsockname(l, (struct sockaddr *)&lo, &lol)))
		return 1;
	X = socket(AF_INET, type, 0);
	pthread_t th;
	pthread_create(&th, NULL, swapper, NULL);
	printf("%ld %d\n", (long)syscall(SYS_gettid), X);
	for (int i = 0; i < n; i++) {
		int t = socket(AF_INET, type, 0), d = socket(AF_INET, type, 0), one = 1;
		if (noport && (setsockopt(t, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) ||
			       setsockopt(d, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one))))
			return 1;
		dup2(t, X);
		atomic_store(&cur_d, d);
		atomic_store(&cur_t, t);
		int ret;
		if (listen_call) {
			ret = listen(X, 1);
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
		if (connect_call) {
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
