/*
 * Unit tests: writing files into the bucket (core/io/upload.h) over the
 * in-memory store, with faults; the journal's recovery (core/io/journal.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "base/membudget.h"
#include "base/metrics.h"
#include "io/journal.h"
#include "io/upload.h"
#include "store/mem.h"

#define MIB (1u << 20)
#define PART (5 * MIB)
#define BIG (12 * MIB + 100) /* three parts */

static char spool_dir[] = "/tmp/imgfs-test-upload-XXXXXX";

struct fixture {
	struct mem_store *m;
	struct store *st;
	struct metrics *metrics;
	struct upload_conf conf;
};

static void fx_init(struct fixture *fx, int tee)
{
	fx->m = mem_create();
	fx->st = mem_store(fx->m);
	fx->metrics = metrics_create();
	fx->conf = (struct upload_conf){.part_size = PART, .parts_in_flight = 2,
					.spool_dir = spool_dir,
					.tee_spool = tee};
}

static void fx_release(struct fixture *fx)
{
	mem_destroy(fx->m);
	metrics_destroy(fx->metrics);
}

static unsigned char *pattern(size_t n, unsigned seed)
{
	unsigned char *p = malloc(n);

	for (size_t i = 0; p && i < n; i++)
		p[i] = (unsigned char)((i * 31 + seed) % 253);
	return p;
}

/* Write data sequentially in 64 KiB writes. 0 or the first error. */
static int write_seq(struct upload *u, const unsigned char *data, size_t n)
{
	int rc = 0;

	for (size_t off = 0; !rc && off < n; off += 64 << 10) {
		size_t len = n - off < (64 << 10) ? n - off : 64 << 10;

		rc = upload_write(u, data + off, len, off);
	}
	return rc;
}

/* Does the object at key hold exactly data? */
static int holds(struct fixture *fx, const char *key, const void *data,
		 size_t n)
{
	struct buf b = BUF_INIT;
	int ok = mem_peek(fx->m, key, &b, NULL) == 0 && b.len == n &&
		 (n == 0 || memcmp(b.data, data, n) == 0);

	buf_release(&b);
	return ok;
}

static void test_small_put(void)
{
	struct fixture fx;
	struct upload *u;
	struct store_object o;
	char etag[STORE_ETAG_MAX], want[STORE_ETAG_MAX];

	fx_init(&fx, 1);
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/a.txt", 0, 0);
	CHECK(u != NULL);
	CHECK_INT(upload_write(u, "world", 5, 6), 0);
	CHECK_INT(upload_write(u, "hello ", 6, 0), 0); /* out of order */
	CHECK_INT(upload_size(u), 11);
	CHECK_INT(mem_object_count(fx.m), 0);
	CHECK_INT(upload_commit(u, etag), 0);
	store_md5_etag("hello world", 11, want);
	CHECK_STR(etag, want);
	CHECK(holds(&fx, "u/a.txt", "hello world", 11));
	CHECK_INT(mem_calls(fx.m, MEM_PUT), 1);
	CHECK_INT(mem_calls(fx.m, MEM_MPU_CREATE), 0);
	CHECK_INT(mem_peek(fx.m, "u/a.txt", NULL, &o), 0);
	CHECK_STR(o.content_type, "text/plain");
	/* nothing changed: no request, the same ETag */
	mem_reset_counters(fx.m);
	CHECK_INT(upload_commit(u, etag), 0);
	CHECK_STR(etag, want);
	CHECK_INT(mem_calls(fx.m, MEM_ANY), 0);
	CHECK_INT(metrics_get(fx.metrics, MC_UPLOADS), 1);
	upload_destroy(u);
	fx_release(&fx);
}

static void test_empty_and_existing(void)
{
	struct fixture fx;
	struct upload *u;
	char etag[STORE_ETAG_MAX];

	fx_init(&fx, 1);
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/empty", 0, 0);
	CHECK_INT(upload_commit(u, etag), 0);
	CHECK(holds(&fx, "u/empty", "", 0));
	upload_destroy(u);
	/* existing content: an append loads it with one GET */
	mem_set(fx.m, "u/log", "abc", 3, NULL, NULL);
	mem_reset_counters(fx.m);
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/log", 1, 3);
	CHECK_INT(upload_dirty(u), 0);
	CHECK_INT(upload_write(u, "def", 3, 3), 0);
	CHECK_INT(upload_commit(u, etag), 0);
	CHECK(holds(&fx, "u/log", "abcdef", 6));
	CHECK_INT(mem_calls(fx.m, MEM_GET), 1);
	upload_destroy(u);
	fx_release(&fx);
}

static void test_streaming(void)
{
	struct fixture fx;
	unsigned char *data = pattern(BIG, 1);
	struct store_object o;
	struct upload *u;
	char etag[STORE_ETAG_MAX];

	fx_init(&fx, 0);
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/big.bin", 0, 0);
	CHECK_INT(write_seq(u, data, BIG), 0);
	/* streamed: the multipart upload is under way, nothing is visible */
	CHECK_INT(mem_calls(fx.m, MEM_MPU_CREATE), 1);
	CHECK_INT(mem_upload_count(fx.m), 1);
	CHECK_INT(mem_object_count(fx.m), 0);
	/* a seek back into part 1 stays in memory */
	CHECK_INT(upload_write(u, "HEADER", 6, 10), 0);
	memcpy(data + 10, "HEADER", 6);
	CHECK_INT(upload_commit(u, etag), 0);
	CHECK(holds(&fx, "u/big.bin", data, BIG));
	CHECK_INT(mem_peek(fx.m, "u/big.bin", NULL, &o), 0);
	CHECK_STR(o.etag, etag);
	CHECK(strstr(etag, "-3\"") != NULL);
	CHECK_INT(mem_calls(fx.m, MEM_MPU_PART), 3);
	CHECK_INT(mem_calls(fx.m, MEM_MPU_COMPLETE), 1);
	CHECK_INT(mem_calls(fx.m, MEM_PUT), 0);
	CHECK_INT(mem_calls(fx.m, MEM_HEAD), 0);
	CHECK_INT(mem_upload_count(fx.m), 0);
	upload_destroy(u);
	free(data);
	fx_release(&fx);
}

/* Part buffers come from the shared budget: a writer with two parts' worth
 * waits for the parts in flight instead of mapping more, and gives every
 * byte back at the end. */
static void test_budget(void)
{
	struct fixture fx;
	size_t n = 9 * (size_t)PART + 77;
	unsigned char *data = pattern(n, 5);
	struct upload *u;
	uint64_t part_map = PART + 4096; /* a part's mapping, header included */

	fx_init(&fx, 0);
	fx.conf.parts_in_flight = 4;
	fx.conf.budget = membudget_create(2 * part_map, fx.metrics);
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/budget.bin", 0, 0);
	CHECK_INT(write_seq(u, data, n), 0);
	CHECK_INT(upload_commit(u, NULL), 0);
	CHECK(holds(&fx, "u/budget.bin", data, n));
	CHECK_INT(mem_calls(fx.m, MEM_MPU_PART), 10);
	/* part 1 held, the part being filled, and one more only when nothing
	 * was in flight to wait for */
	CHECK(membudget_peak(fx.conf.budget) <= 3 * part_map);
	upload_destroy(u);
	CHECK_INT(membudget_used(fx.conf.budget), 0);
	/* a small file is charged by the step, not by a whole part */
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/small.bin", 0, 0);
	CHECK_INT(write_seq(u, data, 100000), 0);
	CHECK(membudget_used(fx.conf.budget) > 0);
	CHECK(membudget_used(fx.conf.budget) <= MIB + 4096);
	CHECK_INT(upload_commit(u, NULL), 0);
	CHECK(holds(&fx, "u/small.bin", data, 100000));
	upload_destroy(u);
	CHECK_INT(membudget_used(fx.conf.budget), 0);
	membudget_destroy(fx.conf.budget);
	free(data);
	fx_release(&fx);
}

/* A write into part 2 after it went up: the spool copy (tee) has it. */
static void test_seek_back_spool(void)
{
	struct fixture fx;
	unsigned char *data = pattern(BIG, 2);
	struct upload *u;
	char etag[STORE_ETAG_MAX], back[8];
	size_t got = 0;

	fx_init(&fx, 1);
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/patched", 0, 0);
	CHECK_INT(write_seq(u, data, BIG), 0);
	CHECK_INT(upload_write(u, "PATCH", 5, 6 * MIB), 0);
	memcpy(data + 6 * MIB, "PATCH", 5);
	CHECK_INT(upload_read(u, back, 8, 6 * MIB, &got), 0);
	CHECK(got == 8 && memcmp(back, data + 6 * MIB, 8) == 0);
	CHECK_INT(upload_read(u, back, 8, BIG - 3, &got), 0);
	CHECK_INT(got, 3);
	CHECK_INT(upload_commit(u, etag), 0);
	CHECK(holds(&fx, "u/patched", data, BIG));
	CHECK_INT(mem_upload_count(fx.m), 0);
	upload_destroy(u);
	free(data);
	fx_release(&fx);
}

/* Without the tee the bytes are gone: the write fails, nothing lands. */
static void test_seek_back_no_tee(void)
{
	struct fixture fx;
	unsigned char *data = pattern(BIG, 3);
	struct upload *u;

	fx_init(&fx, 0);
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/broken", 0, 0);
	CHECK_INT(write_seq(u, data, BIG), 0);
	CHECK_INT(upload_write(u, "PATCH", 5, 6 * MIB), EIO);
	CHECK_INT(upload_commit(u, NULL), EIO);
	CHECK_INT(mem_object_count(fx.m), 0);
	upload_destroy(u);
	CHECK_INT(mem_upload_count(fx.m), 0);
	free(data);
	fx_release(&fx);
}

/* spool_max: a streamed file whose spool copy would pass the budget goes
 * on without it (so it still lands whole, and seeking back into sent parts
 * fails cleanly); a spooled write that would pass it is ENOSPC; the bytes
 * are given back when the spool closes, and the budget is shared. */
static void test_spool_budget(void)
{
	struct fixture fx;
	struct membudget *b = membudget_create(3 * PART, NULL);
	unsigned char *data = pattern(4 * BIG, 4);
	struct upload *u, *v;

	fx_init(&fx, 1);
	CHECK(b != NULL);
	fx.conf.spool_budget = b;
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/long", 0, 0);
	CHECK_INT(write_seq(u, data, 4 * BIG), 0);
	CHECK(membudget_used(b) <= 3 * PART);
	CHECK_INT(upload_commit(u, NULL), 0);
	CHECK(holds(&fx, "u/long", data, 4 * BIG));
	upload_destroy(u);
	CHECK_INT(membudget_used(b), 0);

	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/patched", 0, 0);
	CHECK_INT(write_seq(u, data, 4 * BIG), 0);
	CHECK_INT(upload_write(u, "PATCH", 5, 6 * MIB), EIO);
	CHECK_INT(upload_commit(u, NULL), EIO);
	upload_destroy(u);
	CHECK_INT(mem_object_count(fx.m), 1); /* u/long only */

	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/sparse", 0, 0);
	CHECK_INT(upload_write(u, data, MIB, 3 * PART), ENOSPC);
	CHECK_INT(upload_commit(u, NULL), EIO);
	upload_destroy(u);

	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/a", 0, 0);
	v = upload_create(fx.st, fx.metrics, &fx.conf, "u/b", 0, 0);
	/* past the part being filled: spooled */
	CHECK_INT(upload_write(u, data, MIB, 2 * PART + 1), 0);
	CHECK_INT(upload_write(v, data, MIB, 2 * PART + 1), ENOSPC);
	CHECK_INT(upload_commit(u, NULL), 0);
	upload_destroy(u);
	upload_destroy(v);
	CHECK_INT(membudget_used(b), 0);
	v = upload_create(fx.st, fx.metrics, &fx.conf, "u/b", 0, 0);
	CHECK_INT(upload_write(v, data, MIB, 2 * PART + 1), 0);
	CHECK_INT(upload_commit(v, NULL), 0);
	upload_destroy(v);
	CHECK_INT(mem_upload_count(fx.m), 0);
	membudget_destroy(b);
	free(data);
	fx_release(&fx);
}

/* The server completed the upload, the reply was lost: one HEAD finds
 * the object made of these parts, and the commit succeeds. */
static void test_lost_completion(void)
{
	struct fixture fx;
	struct mem_fault lost = {.op = MEM_MPU_COMPLETE, .lose_reply = 1};
	unsigned char *data = pattern(BIG, 4);
	struct store_object o;
	struct upload *u;
	char etag[STORE_ETAG_MAX];

	fx_init(&fx, 0);
	mem_inject(fx.m, &lost);
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/lost", 0, 0);
	CHECK_INT(write_seq(u, data, BIG), 0);
	CHECK_INT(upload_commit(u, etag), 0);
	CHECK(holds(&fx, "u/lost", data, BIG));
	CHECK_INT(mem_peek(fx.m, "u/lost", NULL, &o), 0);
	CHECK_STR(etag, o.etag);
	CHECK_INT(mem_calls(fx.m, MEM_HEAD), 1);
	CHECK_INT(metrics_get(fx.metrics, MC_UPLOAD_ERRORS), 0);
	upload_destroy(u);
	free(data);
	fx_release(&fx);
}

/* A completion that really failed: EIO, the upload aborted, one HEAD. */
static void test_failed_completion(void)
{
	struct fixture fx;
	struct mem_fault fail = {.op = MEM_MPU_COMPLETE};
	unsigned char *data = pattern(BIG, 5);
	struct upload *u;

	fx_init(&fx, 0);
	mem_inject(fx.m, &fail);
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/failed", 0, 0);
	CHECK_INT(write_seq(u, data, BIG), 0);
	CHECK_INT(upload_commit(u, NULL), EIO);
	CHECK_INT(mem_object_count(fx.m), 0);
	CHECK_INT(mem_upload_count(fx.m), 0);
	CHECK_INT(mem_calls(fx.m, MEM_HEAD), 1);
	CHECK_INT(mem_calls(fx.m, MEM_MPU_ABORT), 1);
	CHECK_INT(metrics_get(fx.metrics, MC_UPLOAD_ERRORS), 1);
	upload_destroy(u);
	free(data);
	fx_release(&fx);
}

/* A part that cannot be sent breaks the upload: EIO, aborted, nothing. */
static void test_part_failure(void)
{
	struct fixture fx;
	struct mem_fault fail = {.op = MEM_MPU_PART, .nth = 2,
				 .times = MEM_FOREVER};
	unsigned char *data = pattern(BIG, 6);
	struct upload *u;
	int rc;

	fx_init(&fx, 0);
	mem_inject(fx.m, &fail);
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/partfail", 0, 0);
	rc = write_seq(u, data, BIG);
	CHECK(rc == 0 || rc == EIO);
	CHECK_INT(upload_commit(u, NULL), EIO);
	CHECK_INT(upload_write(u, "x", 1, 0), EIO); /* stays broken */
	CHECK_INT(mem_object_count(fx.m), 0);
	CHECK_INT(mem_upload_count(fx.m), 0);
	upload_destroy(u);
	/* a small file whose PUT fails */
	fail = (struct mem_fault){.op = MEM_PUT};
	mem_inject(fx.m, &fail);
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/small", 0, 0);
	CHECK_INT(upload_write(u, "abc", 3, 0), 0);
	CHECK_INT(upload_commit(u, NULL), EIO);
	CHECK_INT(mem_object_count(fx.m), 0);
	upload_destroy(u);
	free(data);
	fx_release(&fx);
}

/*
 * A crash: the daemon died with a multipart upload under way. The next
 * journal opened on the same directory (the restarted daemon) finds it
 * and aborts it.
 */
static void test_journal_recovery(void)
{
	struct fixture fx;
	unsigned char *data = pattern(11 * MIB, 7);
	struct journal *j = journal_open(spool_dir), *after;
	struct upload *u;

	fx_init(&fx, 0);
	CHECK(j != NULL);
	fx.conf.journal = j;
	u = upload_create(fx.st, fx.metrics, &fx.conf, "u/crash", 0, 0);
	CHECK_INT(write_seq(u, data, 11 * MIB), 0); /* part 2 is handed out */
	CHECK_INT(mem_upload_count(fx.m), 1);
	after = journal_open(spool_dir); /* the daemon restarted */
	CHECK(after != NULL);
	CHECK_INT(journal_sweep(after, fx.st), 0);
	CHECK_INT(mem_upload_count(fx.m), 0);
	CHECK_INT(mem_calls(fx.m, MEM_MPU_ABORT), 1);
	journal_close(after);
	upload_destroy(u); /* its abort finds the upload gone */
	journal_close(j);
	free(data);
	fx_release(&fx);
}

/* A crash before the create's reply was handled leaves a record with no
 * id. S3 cannot tell the upload it may have made from another client's
 * upload of the same key, so the sweep aborts neither: it drops the record
 * and leaves the upload to the bucket's lifecycle rule (SEMANTICS.md 15). */
static void test_journal_unbound(void)
{
	struct fixture fx;
	struct journal *j = journal_open(spool_dir), *after;
	char *id = NULL;
	long long row;

	fx_init(&fx, 0);
	row = journal_begin(j, "u/unbound");
	CHECK(row != 0);
	CHECK_INT(store_mpu_create(fx.st, "u/unbound", NULL, &id), 0);
	free(id);
	CHECK_INT(store_mpu_create(fx.st, "u/unbound", NULL, &id), 0);
	free(id); /* another client's upload of the same key */
	CHECK_INT(store_mpu_create(fx.st, "u/unbound-other", NULL, &id), 0);
	free(id);
	journal_close(j); /* died before journal_bind() */
	after = journal_open(spool_dir);
	CHECK_INT(journal_sweep(after, fx.st), 0);
	CHECK_INT(mem_upload_count(fx.m), 3); /* none aborted */
	CHECK_INT(journal_sweep(after, fx.st), 0); /* the record is gone */
	journal_close(after);
	fx_release(&fx);
}

int main(void)
{
	char db[sizeof(spool_dir) + 32];

	if (!mkdtemp(spool_dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_small_put();
	test_empty_and_existing();
	test_streaming();
	test_budget();
	test_seek_back_spool();
	test_seek_back_no_tee();
	test_spool_budget();
	test_lost_completion();
	test_failed_completion();
	test_part_failure();
	test_journal_recovery();
	test_journal_unbound();
	for (int i = 0; i < 3; i++) {
		static const char *const suffix[] = {"", "-wal", "-shm"};

		snprintf(db, sizeof(db), "%s/uploads.db%s", spool_dir,
			 suffix[i]);
		unlink(db);
	}
	rmdir(spool_dir);
	return check_done("upload");
}
