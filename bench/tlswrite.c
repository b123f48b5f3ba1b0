// Workload for the tls family's benchmark row (issue 13), printing ns per write:
//   tlswrite CERT KEY N   N SSL_write()s of 1 KiB from a client to a server (a child
//                         process) over a socketpair; timed from the first write to the
//                         server's acknowledgement of the last byte.
// Built against the host's libssl (libssl-dev), the library the family probes.
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 1024

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static SSL *tls(int fd, int server, const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx)
		return NULL;
	if (server && (SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
		       SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1))
		return NULL;
	SSL *s = SSL_new(ctx);
	if (!s || SSL_set_fd(s, fd) != 1)
		return NULL;
	if ((server ? SSL_accept(s) : SSL_connect(s)) != 1)
		return NULL;
	return s;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: tlswrite CERT KEY N\n");
		return 2;
	}
	long n = atol(argv[3]);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
		perror("socketpair");
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		SSL *s = tls(sv[1], 1, argv[1], argv[2]);
		if (!s)
			_exit(3);
		static char buf[16384];
		long total = 0;
		while (total < n * CHUNK) {
			int r = SSL_read(s, buf, sizeof(buf));
			if (r <= 0)
				_exit(4);
			total += r;
		}
		_exit(SSL_write(s, "k", 1) == 1 ? 0 : 5);
	}
	close(sv[1]);
	SSL *c = tls(sv[0], 0, NULL, NULL);
	if (!c) {
		fprintf(stderr, "tlswrite: handshake failed\n");
		return 1;
	}
	static char buf[CHUNK];
	double t0 = now();
	for (long i = 0; i < n; i++) {
		if (SSL_write(c, buf, CHUNK) != CHUNK) {
			fprintf(stderr, "tlswrite: SSL_write failed\n");
			return 1;
		}
	}
	char k;
	if (SSL_read(c, &k, 1) != 1) {
		fprintf(stderr, "tlswrite: no acknowledgement\n");
		return 1;
	}
	double t1 = now();
	int st = 0;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "tlswrite: server failed (%d)\n", st);
		return 1;
	}
	printf("%.1f\n", (t1 - t0) / n);
	return 0;
}
