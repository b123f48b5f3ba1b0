// Workload for the tls family's benchmark rows (issue 13), printing ns per write:
//   tlswrite CERT KEY N   N SSL_write()s of 1 KiB from a client to a server, each read
//                         back by the server with SSL_read().
// Both ends run in this one thread over an in-memory BIO pair: no socket and no other
// process, so the time is libssl's and the probes' only (over a socketpair the scheduler
// made runs 5 or 11 us a write at random). Built against the host's libssl
// (libssl-dev), the library the family probes.
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHUNK 1024

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static SSL *end_of(int server, const char *cert, const char *key, BIO *bio)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx)
		return NULL;
	if (server && (SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
		       SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1))
		return NULL;
	SSL *s = SSL_new(ctx);
	if (!s)
		return NULL;
	SSL_set_bio(s, bio, bio);
	if (server)
		SSL_set_accept_state(s);
	else
		SSL_set_connect_state(s);
	return s;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: tlswrite CERT KEY N\n");
		return 2;
	}
	long n = atol(argv[3]);
	BIO *bc, *bs;
	if (BIO_new_bio_pair(&bc, 1 << 17, &bs, 1 << 17) != 1) {
		fprintf(stderr, "tlswrite: no BIO pair\n");
		return 1;
	}
	SSL *c = end_of(0, NULL, NULL, bc);
	SSL *s = end_of(1, argv[1], argv[2], bs);
	if (!c || !s) {
		fprintf(stderr, "tlswrite: setting up the ends failed\n");
		return 1;
	}
	int done_c = 0, done_s = 0;
	for (int i = 0; i < 100 && !(done_c && done_s); i++) {
		if (!done_c)
			done_c = SSL_do_handshake(c) == 1;
		if (!done_s)
			done_s = SSL_do_handshake(s) == 1;
	}
	if (!done_c || !done_s) {
		fprintf(stderr, "tlswrite: handshake failed\n");
		return 1;
	}
	static char buf[CHUNK], in[16384];
	double t0 = now();
	for (long i = 0; i < n; i++) {
		if (SSL_write(c, buf, CHUNK) != CHUNK || SSL_read(s, in, sizeof(in)) != CHUNK) {
			fprintf(stderr, "tlswrite: write or read %ld failed\n", i);
			return 1;
		}
	}
	double t1 = now();
	printf("%.1f\n", (t1 - t0) / n);
	return 0;
}
