/*
 * thumbbench: thumbnail throughput in the daemon's process against the
 * sandboxed worker pool, on the same files and the same number of threads.
 *
 * usage: thumbbench [-j THREADS] [-r ROUNDS] FILE...
 *
 * Reads every file into memory, then makes the thumbnails (thumb_size
 * 128) of all files with THREADS threads, in process and through the pool
 * in turn, ROUNDS times (alternating, so that a change of the machine's
 * load hits both modes alike; the pool's workers are started before the
 * first round), and prints the totals of each mode and their ratio:
 *
 *     inprocess images=N seconds=S per_second=R failed=F
 *     pool      images=N seconds=S per_second=R failed=F
 *     pool/inprocess throughput 0.97
 *
 * Exit status 0, or 2 on bad usage.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "image/pool.h"
#include "image/thumb.h"
#include "image/worker.h"

struct bench {
	struct buf *files;
	char **names;
	size_t n;
	struct thumb_conf conf;
	struct thumb_engine *engine; /* in-process mode */
	struct pool *pool;           /* pool mode */
	atomic_size_t next;
	atomic_size_t failed;
};

static int one(struct bench *b, size_t i)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct pool_result res = {&out, &err, THUMB_FMT_JPEG, {0, 0}};
	const struct buf *src = &b->files[i % b->n];
	const char *name = b->names[i % b->n];
	int rc = b->pool ? pool_make(b->pool, &b->conf, src->data, src->len,
				     name, 1, &res)
			 : thumb_make_sizes(b->engine, src->data, src->len,
					    name, 1, &out, &res.fmt, &err);

	buf_release(&out);
	buf_release(&err);
	return rc;
}

static void *run(void *arg)
{
	struct bench *b = arg;
	size_t i;

	while ((i = atomic_fetch_add(&b->next, 1)) < b->n)
		if (one(b, i))
			atomic_fetch_add(&b->failed, 1);
	thumb_thread_done();
	return NULL;
}

static double measure(struct bench *b, unsigned threads)
{
	pthread_t tids[64];
	double t0 = mono_s(), secs;
	unsigned started = 0;

	atomic_store(&b->next, 0);
	atomic_store(&b->failed, 0);
	for (; started < threads; started++)
		if (pthread_create(&tids[started], NULL, run, b))
			break;
	for (unsigned t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	secs = mono_s() - t0;
	return secs;
}

static void report(const char *label, size_t images, double secs,
		   size_t failed)
{
	printf("%-9s images=%zu seconds=%.2f per_second=%.2f failed=%zu\n",
	       label, images, secs, (double)images / secs, failed);
}

static int load(struct bench *b, int argc, char **argv, int first)
{
	b->n = (size_t)(argc - first);
	b->files = calloc(b->n, sizeof(*b->files));
	b->names = argv + first;
	for (size_t i = 0; b->files && i < b->n; i++) {
		FILE *f = fopen(argv[first + (int)i], "rb");
		char chunk[65536];
		size_t got;

		if (!f)
			return errno;
		while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
			buf_add(&b->files[i], chunk, got);
		fclose(f);
	}
	return b->files ? 0 : ENOMEM;
}

int main(int argc, char **argv)
{
	struct bench b;
	struct pool *pool;
	unsigned threads = 2, rounds = 1;
	double in = 0, pooled = 0;
	size_t in_failed = 0, pool_failed = 0;
	int opt;

	if (worker_dispatch(argc, argv) >= 0)
		return 1;
	memset(&b, 0, sizeof(b));
	while ((opt = getopt(argc, argv, "j:r:")) != -1) {
		if (opt == 'j')
			threads = (unsigned)atoi(optarg);
		else if (opt == 'r')
			rounds = (unsigned)atoi(optarg);
		else
			return 2;
	}
	if (optind >= argc || threads < 1 || threads > 64 || rounds < 1) {
		fprintf(stderr, "usage: thumbbench [-j THREADS] [-r ROUNDS] FILE...\n");
		return 2;
	}
	if (load(&b, argc, argv, optind))
		return 2;
	b.conf = (struct thumb_conf){.size = 128, .max_pixels = 100000000,
				     .nsizes = 1, .sizes = {128}};
	b.engine = thumb_engine_create(&b.conf);
	pool = pool_create(threads, 60000, 0, NULL);
	if (!b.engine || !pool)
		return 2;
	for (unsigned r = 0; r < rounds; r++) {
		b.pool = NULL;
		in += measure(&b, threads);
		in_failed += atomic_load(&b.failed);
		b.pool = pool;
		pooled += measure(&b, threads);
		pool_failed += atomic_load(&b.failed);
	}
	report("inprocess", b.n * rounds, in, in_failed);
	report("pool", b.n * rounds, pooled, pool_failed);
	printf("pool/inprocess throughput %.3f\n", in / pooled);
	pool_destroy(pool);
	thumb_engine_destroy(b.engine);
	for (size_t i = 0; i < b.n; i++)
		buf_release(&b.files[i]);
	free(b.files);
	return 0;
}
