/*
 * Unit tests: the in-memory store behaves as S3 does (core/store/mem.h),
 * and the shared ETag helpers (core/store/store.h, core/base/hex.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "base/clock.h"
#include "base/hex.h"
#include "store/mem.h"

/* The fixed vectors below were computed with Python's hashlib. */
#define HELLO_ETAG "\"5d41402abc4b2a76b9719d911017c592\""
#define P1_ETAG "\"4c28640dc8df1933aaea192100d50ae0\""
#define P2_ETAG "\"6f175b18df60a8bee9d7f1fd5eb58742\""
#define MPU_ETAG "\"54420c9bd0a43e64ad20b221d497393b-2\""
#define JOINED_ETAG "\"a4efd5f9de62c9e14f97b998032237d3\""
#define P1_SIZE (5u << 20)
#define P2 "the last part"

static unsigned char *part1(void)
{
	unsigned char *p = malloc(P1_SIZE);

	for (size_t i = 0; p && i < P1_SIZE; i++)
		p[i] = (unsigned char)(i % 251);
	return p;
}

static void test_hex(void)
{
	unsigned char b[3];
	char s[7];

	CHECK_INT(hex_digit('f'), 15);
	CHECK_INT(hex_digit('A'), 10);
	CHECK_INT(hex_digit('g'), -1);
	CHECK_INT(hex_decode("0aFf10", 6, b, 3), 0);
	CHECK(b[0] == 0x0a && b[1] == 0xff && b[2] == 0x10);
	CHECK_INT(hex_decode("0aFf1", 5, b, 3), EINVAL);
	CHECK_INT(hex_decode("0aFx10", 6, b, 3), EINVAL);
	hex_encode(b, 3, s);
	CHECK_STR(s, "0aff10");
}

static void test_etags(void)
{
	struct store_part parts[2] = {{1, P1_ETAG}, {2, P2_ETAG}};
	char etag[STORE_ETAG_MAX];
	unsigned char md5[16];

	CHECK_INT(store_md5_etag("hello", 5, etag), 0);
	CHECK_STR(etag, HELLO_ETAG);
	CHECK_INT(store_mpu_etag(parts, 2, etag), 0);
	CHECK_STR(etag, MPU_ETAG);
	/* quotes are optional in a part's ETag */
	snprintf(parts[0].etag, sizeof(parts[0].etag), "%s",
		 "4c28640dc8df1933aaea192100d50ae0");
	CHECK_INT(store_mpu_etag(parts, 2, etag), 0);
	CHECK_STR(etag, MPU_ETAG);
	CHECK_INT(store_etag_md5(MPU_ETAG, md5), EINVAL);
	CHECK_INT(store_mpu_etag(parts, 0, etag), EINVAL);
}

static int count_sink(void *arg, const void *data, size_t len)
{
	return buf_add(arg, data, len);
}

static void test_objects(void)
{
	struct mem_store *m = mem_create();
	struct store *st = mem_store(m);
	struct store_put_opts opts = {.content_type = "image/png",
				      .source_etag = "\"src\""};
	struct store_object o;
	struct buf b = BUF_INIT;
	char etag[STORE_ETAG_MAX];

	CHECK_INT(store_head(st, "k", &o), ENOENT);
	CHECK_INT(store_put(st, "k", "hello", 5, &opts, etag), 0);
	CHECK_STR(etag, HELLO_ETAG);
	CHECK_INT(store_head(st, "k", &o), 0);
	CHECK_INT(o.size, 5);
	CHECK_STR(o.content_type, "image/png");
	CHECK_STR(o.source_etag, "\"src\"");
	CHECK(o.mtime >= time(NULL) - 5 && o.mtime <= time(NULL));
	opts.if_none_match = "*";
	CHECK_INT(store_put(st, "k", "x", 1, &opts, NULL), EEXIST);
	CHECK_INT(store_put(st, "new", "x", 1, &opts, NULL), 0);
	/* ranges */
	CHECK_INT(store_get(st, "k", 1, 3, NULL, count_sink, &b, &o), 0);
	CHECK_STR(b.data, "ell");
	CHECK_INT(o.size, 5);
	buf_reset(&b);
	CHECK_INT(store_get(st, "k", 3, 100, NULL, count_sink, &b, NULL), 0);
	CHECK_STR(b.data, "lo");
	CHECK_INT(store_get(st, "k", 5, 0, NULL, count_sink, &b, NULL), ERANGE);
	CHECK_INT(store_put(st, "empty", "", 0, NULL, NULL), 0);
	buf_reset(&b);
	CHECK_INT(store_get(st, "empty", 0, 0, NULL, count_sink, &b, &o), 0);
	CHECK_INT(b.len, 0);
	CHECK_STR(o.content_type, "application/octet-stream");
	/* ETag pinning, quotes optional */
	CHECK_INT(store_get(st, "k", 0, 0, "\"other\"", count_sink, &b, NULL),
		  EAGAIN);
	CHECK_INT(store_get(st, "k", 0, 0, "5d41402abc4b2a76b9719d911017c592",
			    count_sink, &b, NULL), 0);
	CHECK_INT(store_get(st, "nope", 0, 0, NULL, count_sink, &b, NULL),
		  ENOENT);
	/* copy keeps Content-Type and source ETag */
	char cetag[STORE_ETAG_MAX] = "";
	struct store_attrs at = {.have = STORE_ATTR_MTIME | STORE_ATTR_UID,
				 .mtime_sec = 42, .uid = 7};
	struct store_put_opts rep = {.content_type = "text/plain", .attrs = &at};

	CHECK_INT(store_copy(st, "k", "k2", NULL, 5, cetag), 0);
	CHECK_STR(cetag, HELLO_ETAG);
	CHECK_INT(store_head(st, "k2", &o), 0);
	CHECK_STR(o.etag, HELLO_ETAG);
	CHECK_STR(o.content_type, "image/png");
	CHECK_STR(o.source_etag, "\"src\"");
	/* a copy onto itself with metadata replaced */
	CHECK_INT(store_copy(st, "k2", "k2", &rep, 5, NULL), 0);
	CHECK_INT(store_head(st, "k2", &o), 0);
	CHECK_STR(o.content_type, "text/plain");
	CHECK_INT(o.attrs.have, STORE_ATTR_MTIME | STORE_ATTR_UID);
	CHECK_INT(o.attrs.mtime_sec, 42);
	CHECK_INT(o.attrs.uid, 7);
	CHECK_INT(store_copy(st, "nope", "k3", NULL, 0, NULL), ENOENT);
	CHECK_INT(store_delete(st, "k2"), 0);
	CHECK_INT(store_delete(st, "k2"), 0);
	CHECK_INT(store_head(st, "k2", NULL), ENOENT);
	CHECK_INT(mem_object_count(m), 3);
	buf_release(&b);
	mem_destroy(m);
}

static int stop_sink(void *arg, const void *data, size_t len)
{
	(*(size_t *)arg) += len;
	return 1;
}

static void test_sink_pieces(void)
{
	struct mem_store *m = mem_create();
	unsigned char *p = part1();
	struct buf b = BUF_INIT;
	size_t got = 0;

	CHECK_INT(mem_set(m, "big", p, P1_SIZE, NULL, NULL), 0);
	CHECK_INT(store_get(mem_store(m), "big", 0, 0, NULL, stop_sink, &got,
			    NULL), ECANCELED);
	CHECK_INT(got, MEM_SINK_PIECE);
	CHECK_INT(store_get_buf(mem_store(m), "big", &b, NULL), 0);
	CHECK(b.len == P1_SIZE && memcmp(b.data, p, P1_SIZE) == 0);
	CHECK_INT(mem_bytes_read(m), MEM_SINK_PIECE + P1_SIZE);
	buf_release(&b);
	free(p);
	mem_destroy(m);
}

/* ---- listings ----------------------------------------------------------- */

/* Every page of a listing, as "k:KEY" and "p:PREFIX" lines; pages >= 1. */
static int list_all(struct store *st, const char *prefix, const char *delim,
		    unsigned max, struct buf *out, int *pages)
{
	char *token = NULL;
	int rc;

	*pages = 0;
	do {
		struct store_list_page pg;

		rc = store_list(st, prefix, delim, token, max, &pg);
		free(token);
		token = NULL;
		if (rc)
			return rc;
		++*pages;
		for (size_t i = 0; i < pg.nentries; i++)
			buf_addf(out, "k:%s ", pg.entries[i].key);
		for (size_t i = 0; i < pg.nprefixes; i++)
			buf_addf(out, "p:%s ", pg.prefixes[i]);
		CHECK(pg.nentries + pg.nprefixes <= (max ? max : 1000));
		token = pg.next_token ? strdup(pg.next_token) : NULL;
		store_list_page_release(&pg);
	} while (token);
	return 0;
}

static void test_listing(void)
{
	static const char *const keys[] = {
		"u/b.jpg", "u/a/1", "u/a/2", "u/a/3", "u/a.jpg", "u/c/x/y",
		"u/\xc3\xa9", "u/Z", "v/other", "u/d/", "u/a-b"};
	struct mem_store *m = mem_create();
	struct store *st = mem_store(m);
	struct store_list_page pg;
	struct buf b = BUF_INIT;
	int pages;

	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		mem_set(m, keys[i], "x", 1, NULL, NULL);
	/* flat, byte order (uppercase first, UTF-8 last) */
	CHECK_INT(list_all(st, "u/", NULL, 0, &b, &pages), 0);
	CHECK_STR(b.data, "k:u/Z k:u/a-b k:u/a.jpg k:u/a/1 k:u/a/2 k:u/a/3 "
			  "k:u/b.jpg k:u/c/x/y k:u/d/ k:u/\xc3\xa9 ");
	CHECK_INT(pages, 1);
	/* the same, a key per page */
	buf_reset(&b);
	CHECK_INT(list_all(st, "u/", NULL, 1, &b, &pages), 0);
	CHECK_STR(b.data, "k:u/Z k:u/a-b k:u/a.jpg k:u/a/1 k:u/a/2 k:u/a/3 "
			  "k:u/b.jpg k:u/c/x/y k:u/d/ k:u/\xc3\xa9 ");
	CHECK_INT(pages, 10);
	/* with a delimiter: one page */
	buf_reset(&b);
	CHECK_INT(list_all(st, "u/", "/", 0, &b, &pages), 0);
	CHECK_STR(b.data, "k:u/Z k:u/a-b k:u/a.jpg k:u/b.jpg k:u/\xc3\xa9 "
			  "p:u/a/ p:u/c/ p:u/d/ ");
	/* with a delimiter, two items a page: a prefix is never repeated */
	buf_reset(&b);
	CHECK_INT(list_all(st, "u/", "/", 2, &b, &pages), 0);
	CHECK_STR(b.data, "k:u/Z k:u/a-b k:u/a.jpg p:u/a/ k:u/b.jpg p:u/c/ "
			  "k:u/\xc3\xa9 p:u/d/ ");
	CHECK_INT(pages, 4);
	/* a prefix that is not a folder */
	buf_reset(&b);
	CHECK_INT(list_all(st, "u/a", "/", 0, &b, &pages), 0);
	CHECK_STR(b.data, "k:u/a-b k:u/a.jpg p:u/a/ ");
	/* the last page carries no token; a foreign token is refused */
	CHECK_INT(store_list(st, "u/a/", "/", NULL, 3, &pg), 0);
	CHECK_INT(pg.nentries, 3);
	CHECK(pg.next_token == NULL);
	store_list_page_release(&pg);
	CHECK_INT(store_list(st, "u/", "/", "garbage", 3, &pg), EIO);
	CHECK_INT(store_list(st, "none/", "/", NULL, 0, &pg), 0);
	CHECK_INT(pg.nentries + pg.nprefixes, 0);
	store_list_page_release(&pg);
	buf_release(&b);
	mem_destroy(m);
}

static void test_listing_thousand(void)
{
	struct mem_store *m = mem_create();
	struct store_list_page pg;
	char key[32];

	for (int i = 0; i < 1500; i++) {
		snprintf(key, sizeof(key), "k/%04d", i);
		mem_set(m, key, "", 0, NULL, NULL);
	}
	CHECK_INT(store_list(mem_store(m), "k/", "/", NULL, 5000, &pg), 0);
	CHECK_INT(pg.nentries, 1000);
	CHECK(pg.next_token != NULL);
	CHECK_STR(pg.entries[999].key, "k/0999");
	store_list_page_release(&pg);
	mem_destroy(m);
}

/* ---- multipart ---------------------------------------------------------- */

struct ids {
	char list[256];
};

static void note_upload(void *arg, const char *key, const char *id,
			time_t initiated)
{
	struct ids *s = arg;
	size_t n = strlen(s->list);

	snprintf(s->list + n, sizeof(s->list) - n, "%s=%s ", key, id);
}

static void test_multipart(void)
{
	struct mem_store *m = mem_create();
	struct store *st = mem_store(m);
	struct store_put_opts opts = {.content_type = "image/jpeg"};
	unsigned char *p1 = part1();
	struct store_part parts[2] = {{1, ""}, {2, ""}};
	char *id = NULL, *id2 = NULL, etag[STORE_ETAG_MAX];
	struct store_object o;
	struct ids ids = {""};
	struct buf b = BUF_INIT;

	CHECK_INT(store_mpu_create(st, "u/big", &opts, &id), 0);
	CHECK_STR(id, "mem-upload-1");
	CHECK_INT(store_mpu_create(st, "u/other", NULL, &id2), 0);
	CHECK_INT(store_mpu_part(st, "u/big", id, 2, "junk", 4, etag), 0);
	CHECK_INT(store_mpu_part(st, "u/big", id, 2, P2, strlen(P2),
				 parts[1].etag), 0);
	CHECK_STR(parts[1].etag, P2_ETAG);
	CHECK_INT(store_mpu_part(st, "u/big", id, 1, p1, P1_SIZE,
				 parts[0].etag), 0);
	CHECK_STR(parts[0].etag, P1_ETAG);
	CHECK_INT(store_mpu_part(st, "u/big", "mem-upload-99", 1, "x", 1, NULL),
		  ENOENT);
	CHECK_INT(store_mpu_part(st, "u/big", id, 10001, "x", 1, NULL), EIO);
	/* listing by prefix */
	CHECK_INT(store_mpu_list(st, "u/", note_upload, &ids), 0);
	CHECK_STR(ids.list, "u/big=mem-upload-1 u/other=mem-upload-2 ");
	/* a stale ETag, a missing part, out of order: InvalidPart and kin */
	snprintf(etag, sizeof(etag), "%s", parts[1].etag);
	snprintf(parts[1].etag, sizeof(parts[1].etag), "\"%032d\"", 0);
	CHECK_INT(store_mpu_complete(st, "u/big", id, parts, 2, NULL), EIO);
	snprintf(parts[1].etag, sizeof(parts[1].etag), "%s", etag);
	parts[1].number = 3;
	CHECK_INT(store_mpu_complete(st, "u/big", id, parts, 2, NULL), EIO);
	parts[1].number = 2;
	{
		struct store_part rev[2] = {parts[1], parts[0]};

		CHECK_INT(store_mpu_complete(st, "u/big", id, rev, 2, NULL),
			  EIO);
	}
	CHECK_INT(store_head(st, "u/big", NULL), ENOENT);
	CHECK_INT(store_mpu_complete(st, "u/big", id, parts, 2, etag), 0);
	CHECK_STR(etag, MPU_ETAG);
	CHECK_INT(store_head(st, "u/big", &o), 0);
	CHECK_STR(o.etag, MPU_ETAG);
	CHECK_INT(o.size, P1_SIZE + strlen(P2));
	CHECK_STR(o.content_type, "image/jpeg");
	CHECK_INT(store_get_buf(st, "u/big", &b, NULL), 0);
	CHECK(b.len == P1_SIZE + strlen(P2) && memcmp(b.data, p1, P1_SIZE) == 0 &&
	      memcmp(b.data + P1_SIZE, P2, strlen(P2)) == 0);
	/* the upload is gone; a copy is a single-part object */
	CHECK_INT(store_mpu_complete(st, "u/big", id, parts, 2, NULL), ENOENT);
	CHECK_INT(store_copy(st, "u/big", "u/copy", NULL, 0, NULL), 0);
	CHECK_INT(store_head(st, "u/copy", &o), 0);
	CHECK_STR(o.etag, JOINED_ETAG);
	/* EntityTooSmall: a small part that is not the last */
	CHECK_INT(store_mpu_part(st, "u/other", id2, 1, "a", 1, parts[0].etag), 0);
	CHECK_INT(store_mpu_complete(st, "u/other", id2, parts, 2, NULL), EIO);
	CHECK_INT(store_mpu_abort(st, "u/other", id2), 0);
	CHECK_INT(store_mpu_abort(st, "u/other", id2), ENOENT);
	CHECK_INT(mem_upload_count(m), 0);
	buf_release(&b);
	free(p1);
	free(id);
	free(id2);
	mem_destroy(m);
}

/* ---- faults ------------------------------------------------------------- */

static void test_faults(void)
{
	struct mem_store *m = mem_create();
	struct store *st = mem_store(m);
	struct mem_fault third_head = {.op = MEM_HEAD, .nth = 3, .err = EACCES};
	struct mem_fault any = {.op = MEM_ANY, .nth = 2, .times = 2};
	struct mem_fault lost = {.op = MEM_PUT, .lose_reply = 1};
	struct mem_fault lost_create = {.op = MEM_MPU_CREATE, .lose_reply = 1};
	char etag[STORE_ETAG_MAX] = "untouched", *id = NULL;

	mem_set(m, "k", "hello", 5, NULL, NULL);
	CHECK_INT(mem_inject(m, &third_head), 0);
	CHECK_INT(store_head(st, "k", NULL), 0);
	CHECK_INT(store_head(st, "k", NULL), 0);
	CHECK_INT(store_head(st, "k", NULL), EACCES);
	CHECK_INT(store_head(st, "k", NULL), 0);
	CHECK_INT(mem_calls(m, MEM_HEAD), 4);
	/* the 2nd and 3rd calls of any op */
	CHECK_INT(mem_inject(m, &any), 0);
	CHECK_INT(store_delete(st, "none"), 0);
	CHECK_INT(store_head(st, "k", NULL), EIO);
	CHECK_INT(store_put(st, "k2", "x", 1, NULL, NULL), EIO);
	CHECK_INT(store_head(st, "k2", NULL), ENOENT);
	/* a lost reply: the PUT took effect, the caller saw EIO */
	CHECK_INT(mem_inject(m, &lost), 0);
	CHECK_INT(store_put(st, "k3", "hello", 5, NULL, etag), EIO);
	CHECK_STR(etag, "untouched");
	CHECK_INT(mem_peek(m, "k3", NULL, NULL), 0);
	/* a lost create: an upload nobody has the id of */
	CHECK_INT(mem_inject(m, &lost_create), 0);
	CHECK_INT(store_mpu_create(st, "k4", NULL, &id), EIO);
	CHECK(id == NULL);
	CHECK_INT(mem_upload_count(m), 1);
	/* for good, until cleared */
	any.nth = 1;
	any.times = MEM_FOREVER;
	any.op = MEM_GET;
	CHECK_INT(mem_inject(m, &any), 0);
	for (int i = 0; i < 5; i++)
		CHECK_INT(store_get(st, "k", 0, 0, NULL, count_sink, NULL, NULL),
			  EIO);
	CHECK_INT(mem_bytes_read(m), 0);
	mem_clear_faults(m);
	CHECK_INT(store_head(st, "k", NULL), 0);
	CHECK_INT(mem_calls(m, MEM_GET), 5);
	mem_reset_counters(m);
	CHECK_INT(mem_calls(m, MEM_ANY), 0);
	mem_destroy(m);
}

static void replace_on_second_get(void *arg, enum mem_op op, const char *key,
				  unsigned long call)
{
	if (op == MEM_GET && call == 2)
		mem_set(arg, key, "HELLO", 5, NULL, NULL);
}

static void test_hook_and_latency(void)
{
	struct mem_store *m = mem_create();
	struct store *st = mem_store(m);
	struct buf b = BUF_INIT;
	struct store_object o;
	double t0;

	mem_set(m, "k", "hello", 5, NULL, NULL);
	mem_set_hook(m, replace_on_second_get, m);
	CHECK_INT(store_get(st, "k", 0, 0, HELLO_ETAG, count_sink, &b, &o), 0);
	CHECK_INT(store_get(st, "k", 0, 0, HELLO_ETAG, count_sink, &b, &o),
		  EAGAIN);
	CHECK_STR(b.data, "hello");
	mem_set_hook(m, NULL, NULL);
	mem_latency(m, MEM_HEAD, 20000);
	t0 = mono_s();
	CHECK_INT(store_head(st, "k", NULL), 0);
	CHECK((mono_s() - t0) * 1e3 >= 20);
	CHECK_INT(mem_set_mtime(m, "k", 1000), 0);
	CHECK_INT(store_head(st, "k", &o), 0);
	CHECK_INT(o.mtime, 1000);
	CHECK_INT(mem_remove(m, "k"), 0);
	CHECK_INT(mem_remove(m, "k"), ENOENT);
	buf_release(&b);
	mem_destroy(m);
}

/* ---- threads ------------------------------------------------------------ */

struct hammer {
	struct mem_store *m;
	int id;
	int failures;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	struct store *st = mem_store(h->m);
	char key[32];

	for (int i = 0; i < 300; i++) {
		struct store_list_page pg;
		struct buf b = BUF_INIT;

		snprintf(key, sizeof(key), "t/%d/%d", h->id, i % 7);
		h->failures += store_put(st, key, key, strlen(key), NULL,
					 NULL) != 0;
		h->failures += store_get_buf(st, key, &b, NULL) != 0 ||
			       strcmp(b.data, key) != 0;
		h->failures += store_list(st, "t/", "/", NULL, 2, &pg) != 0;
		store_list_page_release(&pg);
		if (i % 3 == 0)
			h->failures += store_delete(st, key) != 0;
		buf_release(&b);
	}
	return NULL;
}

static void test_threads(void)
{
	struct mem_store *m = mem_create();
	struct hammer h[4];
	pthread_t t[4];
	int failures = 0;

	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){m, i, 0};
		pthread_create(&t[i], NULL, hammer_run, &h[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		failures += h[i].failures;
	}
	CHECK_INT(failures, 0);
	CHECK_INT(mem_calls(m, MEM_PUT), 1200);
	mem_destroy(m);
}

int main(void)
{
	test_hex();
	test_etags();
	test_objects();
	test_sink_pieces();
	test_listing();
	test_listing_thousand();
	test_multipart();
	test_faults();
	test_hook_and_latency();
	test_threads();
	return check_done("store_mem");
}
