// Workloads for the benchmark rows of issue 13, each printing ns per operation:
//   changes unlink N DIR   N unlink()s of files made in DIR beforehand (not timed)
//   changes rename N DIR   N rename()s of one file in DIR, back and forth
//   changes udp N          N send()s of 64 bytes on a UDP socket connected to another on
//                          127.0.0.1 (never read: the kernel drops what the buffer cannot hold)
// Absolute paths, as a program usually gives them.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: changes unlink|rename N DIR | changes udp N\n");
		return 2;
	}
	long n = atol(argv[2]);
	char a[4096], b[4096];
	double t0, t1;
	if (!strcmp(argv[1], "unlink") && argc > 3) {
		for (long i = 0; i < n; i++) {
			snprintf(a, sizeof(a), "%s/u%ld", argv[3], i);
			int fd = open(a, O_CREAT | O_WRONLY, 0600);
			if (fd < 0) {
				perror(a);
				return 1;
			}
			close(fd);
		}
		/* The daemon drains the setup's N open events before the timing starts: on two
		 * cores its rendering would otherwise run against the unlinks. */
		sleep(2);
		t0 = now();
		for (long i = 0; i < n; i++) {
			snprintf(a, sizeof(a), "%s/u%ld", argv[3], i);
			if (unlink(a)) {
				perror(a);
				return 1;
			}
		}
		t1 = now();
	} else if (!strcmp(argv[1], "rename") && argc > 3) {
		snprintf(a, sizeof(a), "%s/ra", argv[3]);
		snprintf(b, sizeof(b), "%s/rb", argv[3]);
		int fd = open(a, O_CREAT | O_WRONLY, 0600);
		if (fd < 0) {
			perror(a);
			return 1;
		}
		close(fd);
		t0 = now();
		for (long i = 0; i < n; i++) {
			if (rename(i & 1 ? b : a, i & 1 ? a : b)) {
				perror("rename");
				return 1;
			}
		}
		t1 = now();
		unlink(n & 1 ? b : a);
	} else if (!strcmp(argv[1], "udp")) {
		int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET };
		socklen_t len = sizeof(sa);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(rx, (struct sockaddr *)&sa, sizeof(sa)) ||
		    getsockname(rx, (struct sockaddr *)&sa, &len) ||
		    connect(tx, (struct sockaddr *)&sa, sizeof(sa))) {
			perror("udp setup");
			return 1;
		}
		char msg[64] = { 0 };
		t0 = now();
		for (long i = 0; i < n; i++) {
			if (send(tx, msg, sizeof(msg), 0) != sizeof(msg)) {
				perror("send");
				return 1;
			}
		}
		t1 = now();
	} else {
		fprintf(stderr, "changes: unknown workload %s\n", argv[1]);
		return 2;
	}
	printf("%.0f\n", (t1 - t0) / n);
	return 0;
}
