// The peers' workloads (bench/peers), besides ../shared/anchors' opener:
//   peerload paced RATE SECONDS  open()+close() of /etc/hostname at RATE per second; prints
//                                the count done
//   peerload exec N              N fork + exec of /bin/true, each waited for; prints execs/s
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int paced(long rate, double secs)
{
	long total = (long)(rate * secs), done = 0;
	double t0 = now();
	while (done < total) {
		double ahead = t0 + (double)done / rate - now();
		if (ahead > 50e-6) {
			struct timespec s = {0, (long)(ahead * 1e9)};
			nanosleep(&s, NULL);
			continue;
		}
		int fd = open("/etc/hostname", O_RDONLY);
		if (fd >= 0)
			close(fd);
		done++;
	}
	printf("%ld\n", done);
	return 0;
}

static int execs(long n)
{
	double t0 = now();
	for (long i = 0; i < n; i++) {
		pid_t p = fork();
		if (p == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		int st;
		if (p < 0 || waitpid(p, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "peerload: exec %ld failed\n", i);
			return 1;
		}
	}
	printf("%.0f\n", n / (now() - t0));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "paced"))
		return paced(atol(argv[2]), atof(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "exec"))
		return execs(atol(argv[2]));
	fprintf(stderr, "usage: peerload paced RATE SECONDS | peerload exec N\n");
	return 2;
}
