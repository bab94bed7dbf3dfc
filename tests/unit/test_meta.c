/* Unit tests: hash map and metadata cache (core/hmap.h, core/meta.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "base/hmap.h"
#include "ns/meta.h"

static int count_entry(void *arg, const char *key, void *value)
{
	(*(int *)arg)++;
	return 0;
}

static void test_hmap(void)
{
	struct hmap *h = hmap_create();
	char key[32];
	void *old;
	int n = 0, failed = 0;

	for (long i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%ld", i);
		failed += hmap_put(h, key, (void *)(i + 1), NULL) != 0;
	}
	CHECK_INT(failed, 0);
	CHECK_INT(hmap_count(h), 5000);
	CHECK(hmap_get(h, "k4999") == (void *)5000);
	CHECK(hmap_get(h, "nope") == NULL);
	CHECK_INT(hmap_put(h, "k1", (void *)99, &old), 0);
	CHECK(old == (void *)2);
	CHECK(hmap_remove(h, "k1") == (void *)99);
	CHECK(hmap_get(h, "k1") == NULL);
	hmap_each(h, count_entry, &n);
	CHECK_INT(n, 4999);
	hmap_destroy(h, NULL);
}

static int count_attr(void *arg, const char *name, const struct meta_attr *a)
{
	(*(int *)arg)++;
	return 0;
}

static void test_listing(void)
{
	struct meta *m = meta_create(60);
	struct meta_listing *l = meta_listing_new();
	struct meta_attr a = {.size = 10, .etag = "\"e\""}, out;
	int n = 0;

	CHECK_INT(meta_lookup(m, "uploads/", "a.jpg", &out), META_MISS);
	CHECK_INT(meta_dir_each(m, "uploads/", count_attr, &n), ENOENT);
	meta_listing_add(l, "a.jpg", &a);
	a.is_dir = 1;
	meta_listing_add(l, "sub", &a);
	meta_dir_store(m, "uploads/", l);
	CHECK_INT(meta_lookup(m, "uploads/", "a.jpg", &out), META_FOUND);
	CHECK_INT(out.size, 10);
	CHECK_INT(meta_lookup(m, "uploads/", "sub", &out), META_FOUND);
	CHECK(out.is_dir);
	CHECK_INT(meta_lookup(m, "uploads/", "b.jpg", &out), META_ABSENT);
	CHECK_INT(meta_dir_each(m, "uploads/", count_attr, &n), 0);
	CHECK_INT(n, 2);
	meta_destroy(m);
}

static void test_own_writes(void)
{
	struct meta *m = meta_create(60);
	struct meta_listing *l = meta_listing_new();
	struct meta_attr a = {.size = 5}, out;
	int n = 0;

	meta_dir_store(m, "uploads/", l);
	meta_set(m, "uploads/", "new.png", &a);
	CHECK_INT(meta_lookup(m, "uploads/", "new.png", &out), META_FOUND);
	meta_dir_each(m, "uploads/", count_attr, &n);
	CHECK_INT(n, 1); /* the cached listing learnt it too */
	meta_set_absent(m, "uploads/", "new.png");
	CHECK_INT(meta_lookup(m, "uploads/", "new.png", &out), META_ABSENT);
	meta_set(m, "uploads/d/", "x", &a);
	meta_forget_dir(m, "uploads/d/");
	CHECK_INT(meta_lookup(m, "uploads/d/", "x", &out), META_MISS);
	meta_destroy(m);
}

static void test_expiry(void)
{
	struct meta *m = meta_create(0.05);
	struct meta_attr a = {.size = 1}, out;

	meta_set(m, "uploads/", "x", &a);
	CHECK_INT(meta_lookup(m, "uploads/", "x", &out), META_FOUND);
	usleep(100000);
	CHECK_INT(meta_lookup(m, "uploads/", "x", &out), META_MISS);
	meta_destroy(m);
}

/* A listing under way while the daemon changes its folder is not kept
 * (it may miss the change); one under way while another folder changes is.
 * Stored attributes of an unchanged object survive a new listing. */
static void test_listing_generation(void)
{
	struct meta *m = meta_create(60);
	struct meta_listing *l = meta_listing_new();
	struct meta_attr a = {.size = 1, .etag = "\"x\""}, out;
	uint64_t gen = meta_gen(m);
	int n = 0;

	meta_listing_add(l, "old", &a);
	meta_set(m, "uploads/", "new", &a); /* the daemon's own write */
	meta_dir_store_since(m, "uploads/", l, gen);
	CHECK_INT(meta_dir_each(m, "uploads/", count_attr, &n), ENOENT);
	l = meta_listing_new();
	gen = meta_gen(m);
	meta_listing_add(l, "new", &a);
	meta_set(m, "uploads/other/", "x", &a);
	meta_dir_store_since(m, "uploads/", l, gen);
	CHECK_INT(meta_dir_each(m, "uploads/", count_attr, &n), 0);
	CHECK_INT(n, 1);
	a.posix_known = 1;
	a.posix.have = STORE_ATTR_MTIME;
	a.posix.mtime_sec = 77;
	meta_set(m, "uploads/", "new", &a);
	l = meta_listing_new();
	a.posix_known = 0;
	meta_listing_add(l, "new", &a);
	meta_dir_store(m, "uploads/", l);
	CHECK_INT(meta_lookup(m, "uploads/", "new", &out), META_FOUND);
	CHECK(out.posix_known && out.posix.mtime_sec == 77);
	meta_destroy(m);
}

/* The cache stays bounded: a long ttl and more distinct entries and
 * listings than it keeps; the newest are still found. */
static void test_bounded(void)
{
	struct meta *m = meta_create(3600);
	struct meta_attr a = {0}, out;
	char name[32], dir[40];
	size_t most = 0;

	CHECK(m != NULL);
	a.size = 1;
	for (unsigned i = 0; i < 300000; i++) {
		snprintf(name, sizeof(name), "f%u", i);
		meta_set(m, "uploads/big/", name, &a);
		if (i % 20 == 0) {
			struct meta_listing *l = meta_listing_new();

			snprintf(dir, sizeof(dir), "uploads/d%u/", i);
			meta_listing_add(l, "x", &a);
			meta_dir_store(m, dir, l);
		}
		if (meta_held(m) > most)
			most = meta_held(m);
	}
	CHECK(most < 200000);
	CHECK_INT(meta_lookup(m, "uploads/big/", "f299999", &out), META_FOUND);
	CHECK_INT(meta_dir_each(m, "uploads/d299980/", count_attr, &(int){0}),
		  0);
	meta_destroy(m);

	/* ttl 0 keeps nothing worth keeping: entries go at the next sweep */
	m = meta_create(0);
	most = 0;
	for (unsigned i = 0; i < 100000; i++) {
		snprintf(name, sizeof(name), "f%u", i);
		meta_set(m, "uploads/", name, &a);
		if (meta_held(m) > most)
			most = meta_held(m);
	}
	CHECK(most < 5000);
	meta_destroy(m);
}

int main(void)
{
	test_bounded();
	test_listing_generation();
	test_hmap();
	test_listing();
	test_own_writes();
	test_expiry();
	return check_done("test_meta");
}
