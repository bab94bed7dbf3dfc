/*
 * credsprobe: resolve AWS credentials the way imgfs does and watch them.
 *
 * usage: credsprobe [-n SECONDS] [-i MILLISECONDS] [-t THREADS] [IMGFS-OPTION...]
 *
 * Parses the configuration like the daemon (environment, and any imgfs
 * options given, e.g. -o profile=x or --config FILE), creates the provider
 * chain, then calls creds_get() every interval for the given time (default:
 * once) and prints one line per call:
 *
 *     ok TIME ACCESS_KEY_ID EXPIRES_IN TOKEN_LEN SOURCE
 *     fail TIME ERROR
 *
 * With -t, that many more threads call creds_get() in a tight loop at the
 * same time; the last line is "summary calls=N failures=N". The secret key
 * and the session token are never printed. Exit status: 0 when every call
 * succeeded, 1 on a failed call, 2 when the provider cannot be created.
 * Logs (level debug) go to stderr.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/cfg.h"
#include "aws/creds.h"
#include "base/log.h"

extern char **environ;

struct probe {
	struct creds *creds;
	atomic_int stop;
	atomic_long calls;
	atomic_long failures;
};

struct probe_args {
	long seconds, interval_ms, threads;
	int first_imgfs_arg;
};

static void *hammer(void *arg)
{
	struct probe *p = arg;
	struct aws_creds a;
	const struct timespec pause = {0, 10 * 1000 * 1000};

	while (!atomic_load(&p->stop)) {
		atomic_fetch_add(&p->calls, 1);
		if (creds_get(p->creds, &a) != 0)
			atomic_fetch_add(&p->failures, 1);
		nanosleep(&pause, NULL);
	}
	return NULL;
}

static int parse_long(const char *s, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	return errno || *end || *out < 0 ? EINVAL : 0;
}

static int parse_probe_args(int argc, char **argv, struct probe_args *pa)
{
	int i;

	*pa = (struct probe_args){0, 200, 0, 0};
	for (i = 1; i + 1 < argc; i += 2) {
		long *dst = strcmp(argv[i], "-n") == 0   ? &pa->seconds
			    : strcmp(argv[i], "-i") == 0 ? &pa->interval_ms
			    : strcmp(argv[i], "-t") == 0 ? &pa->threads
							 : NULL;
		if (!dst)
			break;
		if (parse_long(argv[i + 1], dst))
			return EINVAL;
	}
	pa->first_imgfs_arg = i;
	return 0;
}

/* The daemon's configuration for a dummy bucket mounted on "/". */
static int load_cfg(struct cfg *c, int argc, char **argv, int first)
{
	char *args[256], err[512], *out = NULL;
	char prog[] = "imgfs", bucket[] = "credsprobe", mnt[] = "/";
	int n = 0;

	args[n++] = prog;
	for (int i = first; i < argc && n < 253; i++)
		args[n++] = argv[i];
	args[n++] = bucket;
	args[n++] = mnt;
	args[n] = NULL;
	if (cfg_parse(c, n, args, environ, err, sizeof(err), &out) != CFG_OK) {
		fprintf(stderr, "credsprobe: %s\n", out ? out : err);
		free(out);
		return EINVAL;
	}
	return 0;
}

static int probe_once(struct probe *p)
{
	struct aws_creds a;
	time_t now = time(NULL);
	int rc = creds_get(p->creds, &a);

	atomic_fetch_add(&p->calls, 1);
	if (rc) {
		atomic_fetch_add(&p->failures, 1);
		printf("fail %lld %s\n", (long long)now, strerror(rc));
	} else {
		printf("ok %lld %s %lld %zu %s\n", (long long)now, a.access_key,
		       a.expiry ? (long long)(a.expiry - now) : -1LL,
		       strlen(a.token), creds_source(p->creds));
	}
	fflush(stdout);
	return rc;
}

static void run_probe(struct probe *p, const struct probe_args *pa)
{
	struct timespec start, now;
	struct timespec pause = {pa->interval_ms / 1000,
				 (pa->interval_ms % 1000) * 1000000L};

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		probe_once(p);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= pa->seconds)
			break;
		nanosleep(&pause, NULL);
	}
}

int main(int argc, char **argv)
{
	struct probe p = {0};
	struct probe_args pa;
	pthread_t tids[64];
	struct cfg c;
	char err[1024];
	long started = 0;

	if (parse_probe_args(argc, argv, &pa) || pa.threads > 64) {
		fprintf(stderr, "usage: credsprobe [-n SECONDS] [-i MS] "
			"[-t THREADS<=64] [IMGFS-OPTION...]\n");
		return 2;
	}
	log_setup(LOG_LVL_DEBUG, 0);
	if (load_cfg(&c, argc, argv, pa.first_imgfs_arg)) {
		cfg_release(&c);
		return 2;
	}
	p.creds = creds_create(&c.creds, environ, err, sizeof(err));
	cfg_release(&c);
	if (!p.creds) {
		fprintf(stderr, "credsprobe: %s\n", err);
		return 2;
	}
	for (; started < pa.threads; started++)
		if (pthread_create(&tids[started], NULL, hammer, &p) != 0)
			break;
	run_probe(&p, &pa);
	atomic_store(&p.stop, 1);
	for (long i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	printf("summary calls=%ld failures=%ld\n", atomic_load(&p.calls),
	       atomic_load(&p.failures));
	creds_destroy(p.creds);
	return atomic_load(&p.failures) ? 1 : 0;
}
