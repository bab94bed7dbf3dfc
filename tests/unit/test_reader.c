/*
 * Unit tests: reads of one object by blocks with adaptive read-ahead
 * (core/io/reader.h) over the in-memory store, with faults, and blocks
 * shared through the data cache.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "check.h"
#include "base/membudget.h"
#include "io/reader.h"
#include "store/mem.h"

#define CHUNK DATACACHE_BLOCK
#define SIZE (5 * (size_t)CHUNK - 1234) /* five chunks, the last short */

struct fixture {
	struct mem_store *m;
	unsigned char *data;
	char etag[STORE_ETAG_MAX];
};

static void fx_init(struct fixture *fx)
{
	fx->m = mem_create();
	fx->data = malloc(SIZE);
	for (size_t i = 0; i < SIZE; i++)
		fx->data[i] = (unsigned char)((i * 7 + i / 4096) % 251);
	mem_set(fx->m, "k", fx->data, SIZE, NULL, fx->etag);
	mem_reset_counters(fx->m);
}

static void fx_release(struct fixture *fx)
{
	mem_destroy(fx->m);
	free(fx->data);
}

static struct reader *fx_reader(struct fixture *fx)
{
	return reader_create(mem_store(fx->m), NULL, NULL, "k", SIZE, fx->etag);
}

/* Read len bytes at off and compare with the object. */
static int read_ok(struct fixture *fx, struct reader *r, uint64_t off,
		   size_t len)
{
	unsigned char *out = malloc(len ? len : 1);
	size_t got = 0, want = off >= SIZE ? 0
				: len < SIZE - off ? len : SIZE - off;
	int ok = reader_read(r, out, len, off, &got) == 0 && got == want &&
		 memcmp(out, fx->data + off, got) == 0;

	free(out);
	return ok;
}

/* Wait (up to 10 s) until the store has seen at least n GETs. */
static int wait_gets(struct mem_store *m, unsigned long n)
{
	struct timespec nap = {0, 1000000};

	for (int i = 0; i < 10000; i++) {
		if (mem_calls(m, MEM_GET) >= n)
			return 1;
		nanosleep(&nap, NULL);
	}
	return 0;
}

static void test_ranges(void)
{
	struct fixture fx;
	struct reader *r;

	fx_init(&fx);
	r = fx_reader(&fx);
	/* a read across a chunk boundary: two ranged GETs of whole chunks
	 * (far from the start, so it does not look sequential) */
	CHECK(read_ok(&fx, r, 3 * (uint64_t)CHUNK - 50, 100));
	CHECK_INT(mem_calls(fx.m, MEM_GET), 2);
	CHECK_INT(mem_bytes_read(fx.m), 2 * (uint64_t)CHUNK);
	/* again: from the chunks held (no GET of them: the totals below
	 * count one more GET, of the last chunk, which read-ahead may fetch
	 * at any moment from here on) */
	CHECK(read_ok(&fx, r, 3 * (uint64_t)CHUNK - 10, 20));
	/* the end: a short read, then nothing */
	CHECK(read_ok(&fx, r, SIZE - 10, 4096));
	CHECK(read_ok(&fx, r, SIZE, 4096));
	CHECK(read_ok(&fx, r, SIZE + 100, 10));
	reader_destroy(r); /* waits for read-ahead: counters are final */
	CHECK_INT(mem_calls(fx.m, MEM_GET), 3);
	CHECK_INT(mem_bytes_read(fx.m), 2 * (uint64_t)CHUNK + (SIZE - 4 * CHUNK));
	/* scattered reads fetch only what they touch, nothing ahead; the
	 * first one only READER_FIRST bytes */
	mem_reset_counters(fx.m);
	r = fx_reader(&fx);
	CHECK(read_ok(&fx, r, 4 * (uint64_t)CHUNK + 5, 10));
	CHECK(read_ok(&fx, r, 10, 10));
	CHECK(read_ok(&fx, r, 2 * (uint64_t)CHUNK + 5, 10));
	reader_destroy(r);
	CHECK_INT(mem_calls(fx.m, MEM_GET), 3);
	fx_release(&fx);
}

static void test_read_ahead(void)
{
	struct fixture fx;
	struct reader *r;
	int ok = 1;

	fx_init(&fx);
	r = fx_reader(&fx);
	/* the first read fetches READER_FIRST bytes only */
	CHECK(read_ok(&fx, r, 0, 131072));
	CHECK_INT(mem_calls(fx.m, MEM_GET), 1);
	CHECK_INT(mem_bytes_read(fx.m), READER_FIRST);
	/* sequential reads: block 1 comes ahead, then the rest of block 0 */
	for (uint64_t off = 131072; off < 3 * 131072; off += 131072)
		ok &= read_ok(&fx, r, off, 131072);
	CHECK(ok);
	CHECK(wait_gets(fx.m, 3));
	/* the whole file sequentially: no byte fetched twice, blocks ahead
	 * fetched by runs (fewer GETs than blocks) */
	for (uint64_t off = 3 * 131072; off < SIZE; off += 131072)
		ok &= read_ok(&fx, r, off, 131072);
	CHECK(ok);
	reader_destroy(r);
	CHECK(mem_calls(fx.m, MEM_GET) <= 6);
	CHECK_INT(mem_bytes_read(fx.m), SIZE);
	/* a seek closes the window: nothing more ahead */
	mem_reset_counters(fx.m);
	r = fx_reader(&fx);
	CHECK(read_ok(&fx, r, 3 * (uint64_t)CHUNK, 16));
	CHECK(read_ok(&fx, r, 10, 16));
	reader_destroy(r);
	CHECK_INT(mem_calls(fx.m, MEM_GET), 2);
	fx_release(&fx);
}

/* The object is replaced behind the reader's back: chunks held still read,
 * a new chunk's GET is refused by If-Match, and the read is EIO. */
static void test_replaced(void)
{
	struct fixture fx;
	struct reader *r;
	unsigned char out[16];
	size_t got;

	fx_init(&fx);
	r = fx_reader(&fx);
	CHECK(read_ok(&fx, r, 0, 16));
	mem_set(fx.m, "k", "other bytes", 11, NULL, NULL);
	CHECK_INT(reader_read(r, out, 16, 3 * (uint64_t)CHUNK, &got), EIO);
	CHECK(read_ok(&fx, r, 100, 16));
	CHECK_INT(mem_calls(fx.m, MEM_GET), 2);
	reader_destroy(r);
	fx_release(&fx);
}

static void replace_after_first(void *arg, enum mem_op op, const char *key,
				unsigned long call)
{
	static const char v2[] = "version two";

	if (op == MEM_GET && call == 2)
		mem_set(arg, key, v2, sizeof(v2), NULL, NULL);
}

/* Replaced while reading ahead: never bytes of two versions. */
static void test_replaced_during_read_ahead(void)
{
	struct fixture fx;
	struct reader *r;
	unsigned char *out = malloc(SIZE);
	size_t got = 0, total = 0;
	int rc = 0;

	fx_init(&fx);
	mem_set_hook(fx.m, replace_after_first, fx.m);
	r = fx_reader(&fx);
	for (uint64_t off = 0; !rc && off < SIZE; off += got) {
		rc = reader_read(r, out + off, 131072, off, &got);
		total += got;
		if (!got)
			break;
	}
	/* The replacement lands at the second GET's start; a read-ahead GET
	 * already on its way may still get old bytes, so how much reads
	 * before the EIO depends on the threads' timing; what reads is of
	 * the first version only. */
	CHECK_INT(rc, EIO);
	CHECK(total >= READER_FIRST && total < SIZE);
	CHECK(memcmp(out, fx.data, total) == 0);
	reader_destroy(r);
	free(out);
	fx_release(&fx);
}

/* A failed GET fails that read; the next read fetches again. */
static void test_get_failure(void)
{
	struct fixture fx;
	struct mem_fault once = {.op = MEM_GET, .err = EIO};
	struct reader *r;
	unsigned char out[16];
	size_t got;

	fx_init(&fx);
	mem_inject(fx.m, &once);
	r = fx_reader(&fx);
	CHECK_INT(reader_read(r, out, 16, 4 * (uint64_t)CHUNK, &got), EIO);
	CHECK(read_ok(&fx, r, 4 * (uint64_t)CHUNK, 16));
	CHECK_INT(mem_calls(fx.m, MEM_GET), 2);
	reader_destroy(r);
	/* without an ETag the reads are not pinned: a new version reads */
	r = reader_create(mem_store(fx.m), NULL, NULL, "k", SIZE, NULL);
	fx.data[CHUNK] ^= 1;
	mem_set(fx.m, "k", fx.data, SIZE, NULL, NULL);
	CHECK(read_ok(&fx, r, CHUNK, 16));
	reader_destroy(r);
	fx_release(&fx);
}

struct racer {
	struct fixture *fx;
	struct reader *r;
	unsigned seed;
	int bad;
};

static void *race_reads(void *arg)
{
	struct racer *t = arg;

	for (int i = 0; i < 40; i++) {
		uint64_t off = (uint64_t)rand_r(&t->seed) % SIZE;
		size_t len = 1 + (size_t)rand_r(&t->seed) % (256 << 10);

		t->bad += !read_ok(t->fx, t->r, off, len);
	}
	return NULL;
}

/* Several threads reading one file at once, with a slow store. */
static void test_threads(void)
{
	struct fixture fx;
	struct racer t[4];
	pthread_t th[4];
	struct reader *r;
	int bad = 0;

	fx_init(&fx);
	mem_latency(fx.m, MEM_GET, 2000);
	r = fx_reader(&fx);
	for (int i = 0; i < 4; i++) {
		t[i] = (struct racer){&fx, r, (unsigned)i + 1, 0};
		pthread_create(&th[i], NULL, race_reads, &t[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		bad += t[i].bad;
	}
	CHECK_INT(bad, 0);
	reader_destroy(r);
	fx_release(&fx);
}

/* Readers of one version share blocks through the data cache: a second
 * reader, and one after the first is gone, make no GET; another ETag does. */
static void test_data_cache(void)
{
	char dir[] = "/tmp/imgfs-test-reader-XXXXXX", cmd[64];
	struct fixture fx;
	struct datacache *dc;
	struct reader *r, *r2;
	int ok = 1;

	fx_init(&fx);
	CHECK(mkdtemp(dir) != NULL);
	dc = datacache_open(dir, 64ull * CHUNK, NULL);
	CHECK(dc != NULL);
	r = reader_create(mem_store(fx.m), dc, NULL, "k", SIZE, fx.etag);
	r2 = reader_create(mem_store(fx.m), dc, NULL, "k", SIZE, fx.etag);
	for (uint64_t off = 0; off < SIZE; off += 131072)
		ok &= read_ok(&fx, r, off, 131072);
	CHECK(ok);
	reader_destroy(r);
	CHECK_INT(mem_bytes_read(fx.m), SIZE);
	for (uint64_t off = 0; off < SIZE; off += 131072)
		ok &= read_ok(&fx, r2, off, 131072);
	CHECK(ok);
	reader_destroy(r2);
	CHECK_INT(mem_bytes_read(fx.m), SIZE);
	r = reader_create(mem_store(fx.m), dc, NULL, "k", SIZE, fx.etag);
	CHECK(read_ok(&fx, r, 2 * (uint64_t)CHUNK + 7, 3 * 131072));
	reader_destroy(r);
	CHECK_INT(mem_bytes_read(fx.m), SIZE);
	fx.data[5] ^= 1;
	mem_set(fx.m, "k", fx.data, SIZE, NULL, fx.etag);
	r = reader_create(mem_store(fx.m), dc, NULL, "k", SIZE, fx.etag);
	CHECK(read_ok(&fx, r, 0, 16));
	reader_destroy(r);
	CHECK(mem_bytes_read(fx.m) > SIZE);
	datacache_close(dc);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	fx_release(&fx);
}

/* Of an object larger than a quarter of the cache (here five blocks, the
 * cache eight) a read keeps only the head: a second reader fetches the
 * rest again, and nothing of the head. */
static void test_data_cache_large(void)
{
	char dir[] = "/tmp/imgfs-test-reader-XXXXXX", cmd[64];
	struct fixture fx;
	struct datacache *dc;
	struct reader *r;
	uint64_t head;

	fx_init(&fx);
	CHECK(mkdtemp(dir) != NULL);
	dc = datacache_open(dir, 8ull * CHUNK, NULL);
	head = datacache_stage_bound(8ull * CHUNK);
	CHECK(head == 4ull * CHUNK && head < SIZE);
	for (int pass = 0; pass < 2; pass++) {
		r = reader_create(mem_store(fx.m), dc, NULL, "k", SIZE, fx.etag);
		CHECK(read_ok(&fx, r, 0, SIZE));
		reader_destroy(r);
	}
	CHECK_INT(mem_bytes_read(fx.m), SIZE + (SIZE - head));
	CHECK(datacache_bytes(dc) < head + CHUNK);
	datacache_close(dc);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	fx_release(&fx);
}

/* The kernel's read-ahead requests, served by several threads, arrive
 * out of order: block 2's before block 1's, and so on. The window stays
 * open (GETs of whole runs, not a block each), the passed blocks are not
 * dropped before the late reads, and no byte is fetched twice. */
static void test_reordered(void)
{
	enum { BLOCKS = 4 * READER_WINDOW_MAX };
	size_t n = BLOCKS * (size_t)CHUNK;
	unsigned char *data = malloc(n), *out = malloc(CHUNK);
	struct mem_store *m = mem_create();
	char etag[STORE_ETAG_MAX];
	struct reader *r;
	int ok = 1;

	for (size_t i = 0; i < n; i++)
		data[i] = (unsigned char)(i % 253);
	mem_set(m, "big", data, n, NULL, etag);
	mem_reset_counters(m);
	r = reader_create(mem_store(m), NULL, NULL, "big", n, etag);
	for (unsigned b = 0; b < BLOCKS; b++) {
		uint64_t block = b == 0 ? 0 : b % 2 ? b + 1 : b - 1;
		size_t got = 0;

		if (block >= BLOCKS)
			block = b;
		ok &= reader_read(r, out, CHUNK, block * CHUNK, &got) == 0 &&
		      got == CHUNK &&
		      memcmp(out, data + block * CHUNK, CHUNK) == 0;
	}
	CHECK(ok);
	reader_destroy(r);
	CHECK_INT(mem_bytes_read(m), n);
	CHECK(mem_calls(m, MEM_GET) <= BLOCKS / READER_RUN + 8);
	mem_destroy(m);
	free(out);
	free(data);
}

/* Blocks come from the shared budget: with room for two, a sequential read
 * of the whole object still reads right, read-ahead stays within the
 * budget (the read's own block may go over by one), and destroy gives
 * everything back. */
static void test_budget(void)
{
	struct fixture fx;
	struct membudget *mb = membudget_create(2 * (uint64_t)CHUNK, NULL);
	struct reader *r;
	int ok = 1;

	fx_init(&fx);
	r = reader_create(mem_store(fx.m), NULL, mb, "k", SIZE, fx.etag);
	for (uint64_t off = 0; off < SIZE; off += 128 << 10)
		ok &= read_ok(&fx, r, off, 128 << 10);
	CHECK(ok);
	CHECK(membudget_peak(mb) <= 3 * (uint64_t)CHUNK);
	CHECK(membudget_used(mb) <= 3 * (uint64_t)CHUNK);
	reader_destroy(r);
	CHECK_INT(membudget_used(mb), 0);
	membudget_destroy(mb);
	fx_release(&fx);
}

int main(void)
{
	test_ranges();
	test_read_ahead();
	test_replaced();
	test_replaced_during_read_ahead();
	test_get_failure();
	test_threads();
	test_data_cache();
	test_data_cache_large();
	test_reordered();
	test_budget();
	return check_done("reader");
}
