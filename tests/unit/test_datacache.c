/*
 * test_datacache: the local data cache on a real directory.
 *
 * put/get, prefixes (a short block misses a longer need), an ETag change
 * misses, a flipped byte is dropped and never served, truncated and
 * leftover temporary files, LRU eviction to a byte bound, persistence and
 * LRU order across close and reopen, stages (commit under the ETag, abort,
 * a partial block kept only at the end), claim/release between threads,
 * and a writer killed with SIGKILL in the middle of puts.
 */
#define _GNU_SOURCE
#include <dirent.h>
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
#include "io/datacache.h"
#include "tests/unit/check.h"

#define B DATACACHE_BLOCK

static char root[] = "/tmp/imgfs-test-datacache-XXXXXX";
static char *pattern; /* 4 blocks of bytes that differ by position */

static struct datacache *open_at(const char *sub, uint64_t max)
{
	char dir[256];

	snprintf(dir, sizeof(dir), "%s/%s", root, sub);
	return datacache_open(dir, max, NULL);
}

/* Does block of (key, etag) read back as pattern's bytes from off? */
static int holds(struct datacache *dc, const char *key, const char *etag,
		 uint64_t block, size_t len, size_t off)
{
	struct buf b = BUF_INIT;
	int ok = datacache_get(dc, key, etag, block, len, &b) == 0 &&
		 b.len >= len && !memcmp(b.data, pattern + off, len);

	buf_release(&b);
	return ok;
}

/* Path of the one block file under dir/sub (the first found). */
static int find_block(const char *sub, char *out, int size)
{
	char dir[256];
	struct dirent *de, *fe;
	DIR *d, *f;

	snprintf(dir, sizeof(dir), "%s/%s", root, sub);
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		char path[300];

		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%.250s/%.2s", dir, de->d_name);
		f = opendir(path);
		while (f && (fe = readdir(f))) {
			if (fe->d_name[0] == '.')
				continue;
			snprintf(out, (size_t)size, "%.300s/%.200s", path, fe->d_name);
			closedir(f);
			closedir(d);
			return 0;
		}
		if (f)
			closedir(f);
	}
	if (d)
		closedir(d);
	return ENOENT;
}

static void test_put_get(void)
{
	struct datacache *dc = open_at("basic", 64ull * B);
	struct buf b = BUF_INIT;

	CHECK(dc != NULL);
	CHECK_INT(datacache_get(dc, "k", "e1", 0, 1, &b), ENOENT);
	datacache_put(dc, "k", "e1", 0, pattern, B);
	datacache_put(dc, "k", "e1", 1, pattern + B, 1000);
	CHECK(holds(dc, "k", "e1", 0, B, 0));
	CHECK(holds(dc, "k", "e1", 1, 1000, B));
	CHECK_INT(datacache_get(dc, "k", "e2", 0, 1, &b), ENOENT);
	CHECK_INT(datacache_get(dc, "other", "e1", 0, 1, &b), ENOENT);
	CHECK_INT(datacache_get(dc, "k", "e1", 2, 1, &b), ENOENT);
	/* a prefix serves what it holds, and misses a longer need */
	datacache_put(dc, "p", "e", 0, pattern, 4096);
	CHECK(holds(dc, "p", "e", 0, 4096, 0));
	CHECK_INT(datacache_get(dc, "p", "e", 0, 4097, &b), ENOENT);
	datacache_put(dc, "p", "e", 0, pattern, B);
	CHECK(holds(dc, "p", "e", 0, B, 0));
	CHECK_INT(datacache_get(NULL, "k", "e1", 0, 1, &b), ENOENT);
	datacache_put(NULL, "k", "e1", 0, pattern, 10);
	buf_release(&b);
	datacache_close(dc);
}

static void flip_byte(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	unsigned char c = 0;

	CHECK(fd >= 0);
	CHECK(pread(fd, &c, 1, at) == 1);
	c ^= 0x40;
	CHECK(pwrite(fd, &c, 1, at) == 1);
	close(fd);
}

static void test_corruption(void)
{
	struct datacache *dc = open_at("corrupt", 64ull * B);
	struct buf b = BUF_INIT;
	char path[512];
	struct stat st;

	datacache_put(dc, "k", "e", 0, pattern, B);
	CHECK_INT(find_block("corrupt", path, (int)sizeof(path)), 0);
	flip_byte(path, 40 + 12345);
	CHECK_INT(datacache_get(dc, "k", "e", 0, 1, &b), ENOENT);
	CHECK(stat(path, &st) != 0); /* dropped */
	datacache_put(dc, "k", "e", 0, pattern, B);
	CHECK(holds(dc, "k", "e", 0, B, 0));
	flip_byte(path, 30); /* the header's length */
	CHECK_INT(datacache_get(dc, "k", "e", 0, 1, &b), ENOENT);
	datacache_put(dc, "k", "e", 0, pattern, B);
	CHECK(truncate(path, 40 + B / 2) == 0);
	CHECK_INT(datacache_get(dc, "k", "e", 0, 1, &b), ENOENT);
	CHECK_INT(datacache_bytes(dc), 0);
	buf_release(&b);
	datacache_close(dc);
}

static void test_eviction_and_reopen(void)
{
	struct datacache *dc = open_at("lru", 3ull * (B + 40));

	datacache_put(dc, "k", "e", 0, pattern, B);
	datacache_put(dc, "k", "e", 1, pattern + B, B);
	datacache_put(dc, "k", "e", 2, pattern + 2 * B, B);
	CHECK(holds(dc, "k", "e", 0, B, 0)); /* 0 is now the most recent */
	datacache_put(dc, "k", "e", 3, pattern + 3 * B, B);
	CHECK(datacache_bytes(dc) <= 3ull * (B + 40));
	CHECK(!holds(dc, "k", "e", 1, 1, B)); /* the least recent went */
	CHECK(holds(dc, "k", "e", 0, B, 0));
	CHECK(holds(dc, "k", "e", 3, B, 3 * B));
	datacache_close(dc);
	dc = open_at("lru", 3ull * (B + 40));
	CHECK_INT(datacache_bytes(dc), 3ull * (B + 40));
	CHECK(holds(dc, "k", "e", 2, B, 2 * B));
	CHECK(holds(dc, "k", "e", 3, B, 3 * B));
	datacache_close(dc);
	/* reopening with a smaller bound evicts the oldest (block 0) */
	dc = open_at("lru", 2ull * (B + 40));
	CHECK_INT(datacache_bytes(dc), 2ull * (B + 40));
	CHECK(!holds(dc, "k", "e", 0, 1, 0));
	CHECK(holds(dc, "k", "e", 2, B, 2 * B));
	datacache_close(dc);
}

static void test_stage(void)
{
	struct datacache *dc = open_at("stage", 64ull * B);
	struct datacache_stage *st = datacache_stage_begin(dc, "up");
	uint64_t size = 2 * B + 5000;
	char path[512];

	CHECK(st != NULL);
	/* parts out of order, like parallel part uploads */
	datacache_stage_write(st, 2 * B, pattern + 2 * B, 5000);
	datacache_stage_write(st, 0, pattern, 2 * B);
	CHECK_INT(datacache_bytes(dc), 0);
	datacache_stage_commit(st, "etag1", size);
	CHECK(holds(dc, "up", "etag1", 0, B, 0));
	CHECK(holds(dc, "up", "etag1", 1, B, B));
	CHECK(holds(dc, "up", "etag1", 2, 5000, 2 * B));
	CHECK(!holds(dc, "up", "etag2", 0, 1, 0));
	/* a partial block that is not the end is not kept */
	st = datacache_stage_begin(dc, "short");
	datacache_stage_write(st, 0, pattern, 1000);
	datacache_stage_commit(st, "e", 3000);
	CHECK(!holds(dc, "short", "e", 0, 1, 0));
	/* an unaligned write is ignored; abort leaves nothing */
	st = datacache_stage_begin(dc, "ab");
	datacache_stage_write(st, 7, pattern, 100);
	datacache_stage_write(st, 0, pattern, B);
	datacache_stage_abort(st);
	CHECK(!holds(dc, "ab", "e", 0, 1, 0));
	snprintf(path, sizeof(path), "%s/stage/stage-3.0.tmp", root);
	CHECK(access(path, F_OK) != 0);
	datacache_close(dc);
}

/* A stage keeps the head of a large file, up to its bound. */
static void test_stage_bound(void)
{
	uint64_t bound = DATACACHE_STAGE_MAX / B;
	struct datacache *dc = open_at("bound", 4 * DATACACHE_STAGE_MAX);
	struct datacache_stage *st = datacache_stage_begin(dc, "big");

	CHECK_INT(datacache_stage_bound(4 * DATACACHE_STAGE_MAX),
		  DATACACHE_STAGE_MAX);
	CHECK_INT(datacache_stage_bound(64 * B), 32 * B);
	for (uint64_t i = 0; i < bound + 3; i++)
		datacache_stage_write(st, i * B, pattern, B);
	datacache_stage_commit(st, "e", (bound + 3) * B);
	CHECK(holds(dc, "big", "e", 0, B, 0));
	CHECK(holds(dc, "big", "e", bound - 1, B, 0));
	CHECK(!holds(dc, "big", "e", bound, 1, 0));
	CHECK(!holds(dc, "big", "e", bound + 2, 1, 0));
	CHECK_INT(datacache_bytes(dc) <= DATACACHE_STAGE_MAX + bound * 4096, 1);
	datacache_close(dc);
}

/* Reads keep every block of an object up to a quarter of the cache, and
 * of a larger one only the head a stage would keep. */
static void test_keeps(void)
{
	struct datacache *dc = open_at("keeps", 8 * B);
	uint64_t head = datacache_stage_bound(8 * B) / B; /* 4 blocks */

	CHECK_INT(head, 4);
	CHECK(datacache_keeps(dc, 2 * B, 1));
	CHECK(datacache_keeps(dc, 5 * B, head - 1));
	CHECK(!datacache_keeps(dc, 5 * B, head));
	CHECK(!datacache_keeps(NULL, B, 0));
	datacache_close(dc);
	dc = open_at("keeps-big", 1ull << 40);
	CHECK(datacache_keeps(dc, 1ull << 30, 1000));
	CHECK(!datacache_keeps(dc, 1ull << 39, DATACACHE_STAGE_MAX / B));
	datacache_close(dc);
}

struct claimer {
	struct datacache *dc;
	int mine;
};

static void *claim_thread(void *arg)
{
	struct claimer *c = arg;

	c->mine = datacache_claim(c->dc, "k", "e", 9);
	return NULL;
}

static void test_claim(void)
{
	struct datacache *dc = open_at("claim", 64ull * B);
	struct claimer c = {dc, -1};
	pthread_t t;

	CHECK_INT(datacache_claim(dc, "k", "e", 9), 1);
	CHECK_INT(pthread_create(&t, NULL, claim_thread, &c), 0);
	datacache_put(dc, "k", "e", 9, pattern, 10);
	datacache_release(dc, "k", "e", 9);
	pthread_join(t, NULL);
	/* the waiter either waited (0) or came after the release (1) */
	CHECK(c.mine == 0 || c.mine == 1);
	if (c.mine)
		datacache_release(dc, "k", "e", 9);
	CHECK_INT(datacache_claim(dc, "k", "e", 9), 1);
	datacache_release(dc, "k", "e", 9);
	CHECK_INT(datacache_claim(NULL, "k", "e", 9), 1);
	datacache_close(dc);
}

/* A child puts blocks forever; SIGKILL it; reopen and check all served
 * blocks are whole and temporary files are gone. */
static void test_sigkill(void)
{
	struct datacache *dc;
	struct buf b = BUF_INIT;
	pid_t pid = fork();
	int served = 0, status;

	if (pid == 0) {
		struct datacache *c = open_at("kill", 16ull * B);

		for (uint64_t i = 0;; i++)
			datacache_put(c, "k", "e", i % 64, pattern + (i % 4) * B, B);
	}
	CHECK(pid > 0);
	usleep(300 * 1000);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	dc = open_at("kill", 16ull * B);
	CHECK(dc != NULL);
	for (uint64_t i = 0; i < 64; i++) {
		if (datacache_get(dc, "k", "e", i, B, &b))
			continue;
		served++;
		CHECK(!memcmp(b.data, pattern + (i % 4) * B, B));
	}
	CHECK(served > 0);
	CHECK(datacache_bytes(dc) <= 16ull * B);
	buf_release(&b);
	datacache_close(dc);
}

int main(void)
{
	CHECK(mkdtemp(root) != NULL);
	pattern = malloc(4 * B);
	for (size_t i = 0; i < 4 * B; i++)
		pattern[i] = (char)(i * 7 + i / 4093);
	test_put_get();
	test_corruption();
	test_eviction_and_reopen();
	test_stage();
	test_stage_bound();
	test_keeps();
	test_claim();
	test_sigkill();
	free(pattern);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
		CHECK(system(cmd) == 0);
	}
	return check_done("datacache");
}
