/*
 * test_cache: the SQLite thumbnail cache on a real database file.
 *
 * put/get, an ETag change misses, remembered failures, LRU eviction to a
 * byte bound, persistence across close and reopen, concurrent threads,
 * a writer killed with SIGKILL, a garbage database file, integrity_check,
 * source dimensions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "image/cache.h"
#include "base/metrics.h"
#include "tests/unit/check.h"

#define SPEC "128/none/v1"

static char root[] = "/tmp/imgfs-test-cache-XXXXXX";

static struct cache *open_at(const char *sub, uint64_t max, struct metrics *m)
{
	struct buf dir = BUF_INIT;
	struct cache_conf conf;
	struct cache *c;

	buf_addf(&dir, "%s/%s", root, sub);
	conf.dir = dir.data;
	conf.max_bytes = max;
	c = cache_open(&conf, m);
	buf_release(&dir);
	return c;
}

static struct cache_key key(const char *k, const char *etag)
{
	struct cache_key ck = {k, etag, SPEC};

	return ck;
}

static void fill(char *p, size_t n, char ch)
{
	memset(p, ch, n);
}

static void test_put_get(struct metrics *m)
{
	struct cache *c = open_at("a/b/c", 1 << 20, m);
	struct cache_key k1 = key("uploads/x.png", "\"e1\"");
	struct cache_key k2 = key("uploads/x.png", "\"e2\"");
	struct buf out = BUF_INIT, err = BUF_INIT;
	char fmt[CACHE_FORMAT_MAX];
	uint64_t size = 0, bytes, entries;
	struct stat st;
	struct buf dir = BUF_INIT;

	CHECK(c != NULL);
	if (!c)
		return;
	buf_addf(&dir, "%s/a/b/c", root);
	CHECK(stat(dir.data, &st) == 0 && (st.st_mode & 0777) == 0700);
	buf_release(&dir);
	CHECK_INT(cache_get(c, &k1, &out, fmt, &err), ENOENT);
	CHECK_INT(metrics_get(m, MC_CACHE_MISSES), 1);
	CHECK_INT(cache_put(c, &k1, "\x89PNG-bytes", 10, "png"), 0);
	CHECK_INT(cache_get(c, &k1, &out, fmt, &err), 0);
	CHECK_INT(out.len, 10);
	CHECK(memcmp(out.data, "\x89PNG-bytes", 10) == 0);
	CHECK_STR(fmt, "png");
	CHECK_INT(metrics_get(m, MC_CACHE_HITS), 1);
	CHECK_INT(cache_peek(c, &k1, &size), 0);
	CHECK_INT(size, 10);
	CHECK_INT(metrics_get(m, MC_CACHE_HITS), 1);

	/* A new ETag misses; storing it drops the old one. */
	buf_reset(&out);
	CHECK_INT(cache_get(c, &k2, &out, fmt, &err), ENOENT);
	CHECK_INT(cache_peek(c, &k2, &size), ENOENT);
	CHECK_INT(cache_put(c, &k2, "new", 3, "png"), 0);
	CHECK_INT(cache_peek(c, &k1, &size), ENOENT);
	cache_totals(c, &bytes, &entries);
	CHECK_INT(bytes, 3);
	CHECK_INT(entries, 1);

	/* Another spec of the same source is a separate entry. */
	struct cache_key k3 = {"uploads/x.png", "\"e2\"", "256/none/v1"};
	CHECK_INT(cache_put(c, &k3, "bigger", 6, "png"), 0);
	CHECK_INT(cache_peek(c, &k2, &size), 0);
	CHECK_INT(cache_forget_source(c, "uploads/x.png"), 0);
	CHECK_INT(cache_peek(c, &k2, &size), ENOENT);
	CHECK_INT(cache_peek(c, &k3, &size), ENOENT);
	cache_totals(c, &bytes, &entries);
	CHECK_INT(bytes, 0);
	CHECK_INT(entries, 0);
	CHECK_INT(cache_check(c), 0);
	cache_close(c);
	buf_release(&out);
	buf_release(&err);
}

static void test_failures(void)
{
	struct cache *c = open_at("neg", 1 << 20, NULL);
	struct cache_key bad = key("uploads/bad.jpg", "\"b1\"");
	struct cache_key bad2 = key("uploads/bad.jpg", "\"b2\"");
	struct buf out = BUF_INIT, err = BUF_INIT;
	uint64_t size;

	if (!c)
		return;
	CHECK_INT(cache_put_failure(c, &bad, "VipsJpeg: premature end"), 0);
	CHECK_INT(cache_get(c, &bad, &out, NULL, &err), EIO);
	CHECK_STR(err.data, "VipsJpeg: premature end");
	CHECK_INT(out.len, 0);
	CHECK_INT(cache_peek(c, &bad, &size), EIO);
	CHECK_INT(cache_get(c, &bad2, &out, NULL, NULL), ENOENT);
	/* The source was fixed: its new ETag's thumbnail replaces it. */
	CHECK_INT(cache_put(c, &bad2, "ok", 2, "jpeg"), 0);
	CHECK_INT(cache_get(c, &bad, &out, NULL, NULL), ENOENT);
	CHECK_INT(cache_get(c, &bad2, &out, NULL, NULL), 0);
	cache_close(c);
	buf_release(&out);
	buf_release(&err);
}

static void test_lru(struct metrics *m)
{
	struct cache *c = open_at("lru", 1000, m);
	struct cache_key a = key("uploads/a.jpg", "\"1\"");
	struct cache_key b = key("uploads/b.jpg", "\"1\"");
	struct cache_key d = key("uploads/d.jpg", "\"1\"");
	struct buf out = BUF_INIT;
	char blob[400];
	uint64_t size, bytes, entries, ev0 = metrics_get(m, MC_CACHE_EVICTIONS);

	if (!c)
		return;
	fill(blob, sizeof(blob), 'a');
	CHECK_INT(cache_put(c, &a, blob, sizeof(blob), "jpeg"), 0);
	CHECK_INT(cache_put(c, &b, blob, sizeof(blob), "jpeg"), 0);
	usleep(1100 * 1000);
	CHECK_INT(cache_get(c, &a, &out, NULL, NULL), 0); /* a is now newer */
	CHECK_INT(cache_put(c, &d, blob, sizeof(blob), "jpeg"), 0);
	CHECK_INT(cache_peek(c, &a, &size), 0);
	CHECK_INT(cache_peek(c, &b, &size), ENOENT);
	CHECK_INT(cache_peek(c, &d, &size), 0);
	cache_totals(c, &bytes, &entries);
	CHECK_INT(bytes, 800);
	CHECK_INT(entries, 2);
	CHECK_INT(metrics_get(m, MC_CACHE_EVICTIONS) - ev0, 1);
	cache_close(c);

	/* Reopened: the same entries, the same totals, the same order. */
	c = open_at("lru", 1000, NULL);
	CHECK(c != NULL);
	if (!c)
		return;
	cache_totals(c, &bytes, &entries);
	CHECK_INT(bytes, 800);
	CHECK_INT(entries, 2);
	buf_reset(&out);
	usleep(1100 * 1000); /* accesses are recorded once a second */
	CHECK_INT(cache_get(c, &a, &out, NULL, NULL), 0);
	CHECK_INT(out.len, 400);
	CHECK_INT(cache_put(c, &b, blob, 300, "jpeg"), 0);
	CHECK_INT(cache_peek(c, &d, &size), ENOENT);
	CHECK_INT(cache_peek(c, &a, &size), 0);
	CHECK_INT(cache_check(c), 0);
	cache_close(c);
	buf_release(&out);
}

struct worker {
	struct cache *c;
	int id;
	int bad;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct buf out = BUF_INIT, name = BUF_INIT;
	char blob[300];

	for (int i = 0; i < 300; i++) {
		struct cache_key k;
		int shared = i % 3 == 0;
		char ch = shared ? 's' : (char)('a' + w->id);

		buf_reset(&name);
		buf_addf(&name, "uploads/%s/%d.jpg", shared ? "shared" : "own",
			 shared ? i % 17 : w->id * 1000 + i);
		k = key(name.data, "\"etag\"");
		fill(blob, sizeof(blob), ch);
		if (cache_put(w->c, &k, blob, sizeof(blob),
			      "jpeg"))
			w->bad++;
		buf_reset(&out);
		int rc = cache_get(w->c, &k, &out, NULL, NULL);
		/* Another thread's eviction may remove it, never corrupt it. */
		if (rc == 0 && (out.len != sizeof(blob) || out.data[0] != ch ||
				out.data[out.len - 1] != ch))
			w->bad++;
		if (rc != 0 && rc != ENOENT)
			w->bad++;
	}
	buf_release(&out);
	buf_release(&name);
	return NULL;
}

static void test_threads(void)
{
	struct cache *c = open_at("threads", 64 * 300, NULL);
	struct worker w[8];
	pthread_t th[8];
	uint64_t bytes, entries, bytes2, entries2;
	int bad = 0;

	if (!c)
		return;
	for (int i = 0; i < 8; i++) {
		w[i] = (struct worker){c, i, 0};
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		bad += w[i].bad;
	}
	CHECK_INT(bad, 0);
	cache_totals(c, &bytes, &entries);
	CHECK(bytes <= 64 * 300);
	CHECK_INT(bytes, entries * 300);
	CHECK_INT(cache_check(c), 0);
	cache_close(c);
	c = open_at("threads", 64 * 300, NULL);
	if (!c)
		return;
	cache_totals(c, &bytes2, &entries2);
	CHECK_INT(bytes2, bytes);
	CHECK_INT(entries2, entries);
	cache_close(c);
}

/* A writer killed in the middle of its work leaves a sound database. */
static void test_killed_writer(void)
{
	pid_t pid = fork();
	struct cache *c;
	int status;

	if (pid == 0) {
		struct cache *w = open_at("killed", 1 << 20, NULL);
		struct buf name = BUF_INIT;
		char blob[4096];

		fill(blob, sizeof(blob), 'k');
		for (int i = 0; w; i++) {
			struct cache_key k;

			buf_reset(&name);
			buf_addf(&name, "uploads/k%d.jpg", i % 500);
			k = key(name.data, i % 2 ? "\"odd\"" : "\"even\"");
			cache_put(w, &k, blob, sizeof(blob), "jpeg");
		}
		_exit(1);
	}
	usleep(700 * 1000);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status));
	c = open_at("killed", 1 << 20, NULL);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_INT(cache_check(c), 0);
	uint64_t bytes, entries;
	cache_totals(c, &bytes, &entries);
	printf("after kill -9: %llu entries, %llu bytes\n",
	       (unsigned long long)entries, (unsigned long long)bytes);
	CHECK(entries > 0 && bytes <= 1 << 20);
	cache_close(c);
}

/* A file that is not a database is replaced, not fatal. */
static void test_garbage_file(void)
{
	struct buf dir = BUF_INIT, path = BUF_INIT;
	struct cache *c;
	int fd;

	buf_addf(&dir, "%s/garbage", root);
	mkdir(dir.data, 0700);
	buf_addf(&path, "%s/%s", dir.data, CACHE_DB_NAME);
	fd = open(path.data, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, "this is no database, just words\n"
				   "repeated to fill a page or so ........\n",
			       72) == 72);
	if (fd >= 0)
		close(fd);
	c = open_at("garbage", 1 << 20, NULL);
	CHECK(c != NULL);
	if (c) {
		struct cache_key k = key("uploads/g.png", "\"g\"");

		CHECK_INT(cache_put(c, &k, "x", 1, "png"), 0);
		CHECK_INT(cache_check(c), 0);
		cache_close(c);
	}
	buf_release(&dir);
	buf_release(&path);
}

static void remove_tree(void)
{
	struct buf cmd = BUF_INIT;

	buf_addf(&cmd, "rm -rf '%s'", root);
	if (system(cmd.data) != 0)
		fprintf(stderr, "could not remove %s\n", root);
	buf_release(&cmd);
}

/* Source dimensions: per key and ETag, replaced by a new ETag, kept
 * across a reopen, dropped with the source. */
static void test_dims(void)
{
	struct cache *c = open_at("dims", 1 << 20, NULL);
	unsigned w = 0, h = 0;

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_INT(cache_get_dims(c, "uploads/d.jpg", "\"e1\"", &w, &h), ENOENT);
	CHECK_INT(cache_put_dims(c, "uploads/d.jpg", "\"e1\"", 4000, 3000), 0);
	CHECK_INT(cache_get_dims(c, "uploads/d.jpg", "\"e1\"", &w, &h), 0);
	CHECK_INT(w, 4000);
	CHECK_INT(h, 3000);
	CHECK_INT(cache_get_dims(c, "uploads/d.jpg", "\"e2\"", &w, &h), ENOENT);
	CHECK_INT(cache_put_dims(c, "uploads/d.jpg", "\"e2\"", 640, 480), 0);
	CHECK_INT(cache_get_dims(c, "uploads/d.jpg", "\"e1\"", &w, &h), ENOENT);
	cache_close(c);
	c = open_at("dims", 1 << 20, NULL);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_INT(cache_get_dims(c, "uploads/d.jpg", "\"e2\"", &w, &h), 0);
	CHECK_INT(w, 640);
	CHECK_INT(h, 480);
	CHECK_INT(cache_forget_source(c, "uploads/d.jpg"), 0);
	CHECK_INT(cache_get_dims(c, "uploads/d.jpg", "\"e2\"", &w, &h), ENOENT);
	cache_close(c);
}

int main(void)
{
	struct metrics *m = metrics_create();

	if (!mkdtemp(root) || !m) {
		perror("setup");
		return 1;
	}
	test_put_get(m);
	test_failures();
	test_lru(m);
	test_threads();
	test_killed_writer();
	test_garbage_file();
	test_dims();
	remove_tree();
	metrics_destroy(m);
	return check_done("cache");
}
