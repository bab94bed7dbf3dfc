/*
 * Unit tests: every call of the namespace (core/ns/ns.h) over the
 * in-memory store, with faults. Links are signed by a real S3 client whose
 * endpoint nothing listens on: signing makes no request.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "image/worker.h"
#include "check.h"
#include "aws/creds.h"
#include "base/metrics.h"
#include "ns/ns.h"
#include "store/mem.h"
#include "store/s3.h"

#include "ns_rig.h"

/* ---- helpers ------------------------------------------------------------ */

struct names {
	char list[512];
};

static int add_name(void *arg, const char *name, const struct ns_attr *a)
{
	struct names *n = arg;
	size_t len = strlen(n->list);

	snprintf(n->list + len, sizeof(n->list) - len, "%s%s ", name,
		 a->is_dir ? "/" : "");
	return 0;
}

static const char *list(struct rig *r, const char *path, struct names *n)
{
	n->list[0] = '\0';
	if (ns_readdir(r->ns, path, add_name, n))
		snprintf(n->list, sizeof(n->list), "(error)");
	return n->list;
}

/* Open path, read it all into out. 0 or errno. */
static int slurp(struct rig *r, const char *path, struct buf *out)
{
	struct ns_file *f = NULL;
	char chunk[65536];
	size_t got;
	uint64_t off = 0;
	int rc = ns_open(r->ns, path, O_RDONLY, &f);

	while (!rc && (rc = ns_read(f, chunk, sizeof(chunk), off, &got)) == 0 &&
	       got) {
		buf_add(out, chunk, got);
		off += got;
	}
	if (f && !rc)
		rc = ns_flush(f);
	if (f)
		ns_release(f);
	return rc;
}

/* Create path holding data, through create, write, flush, release. */
static int put_file(struct rig *r, const char *path, const void *data,
		    size_t len)
{
	struct ns_file *f;
	int rc = ns_create(r->ns, path, O_WRONLY | O_CREAT, NULL, &f);

	if (rc)
		return rc;
	for (size_t off = 0; !rc && off < len; off += 1 << 16)
		rc = ns_write(f, (const char *)data + off,
			      len - off < (1 << 16) ? len - off : 1 << 16, off);
	if (!rc)
		rc = ns_flush(f);
	ns_release(f);
	return rc;
}

static int holds(struct rig *r, const char *key, const char *text)
{
	struct buf b = BUF_INIT;
	int ok = mem_peek(r->m, key, &b, NULL) == 0 && b.len == strlen(text) &&
		 memcmp(b.data ? b.data : "", text, b.len) == 0;

	buf_release(&b);
	return ok;
}

/* ---- tests -------------------------------------------------------------- */

static void test_getattr(struct rig *r)
{
	struct ns_attr a;

	mem_set(r->m, "uploads/a.txt", "hello", 5, NULL, NULL);
	mem_set(r->m, "uploads/sub/b.txt", "bee", 3, NULL, NULL);
	CHECK_INT(ns_getattr(r->ns, "/", &a), 0);
	CHECK(a.is_dir);
	CHECK_INT(ns_getattr(r->ns, "/uploads", &a), 0);
	CHECK(a.is_dir && a.writable);
	CHECK_INT(ns_getattr(r->ns, "/thumbnails", &a), 0);
	CHECK(a.is_dir && !a.writable);
	CHECK_INT(ns_getattr(r->ns, "/.links", &a), 0);
	CHECK(a.is_dir);
	CHECK_INT(ns_getattr(r->ns, "/.metrics", &a), 0);
	CHECK(!a.is_dir);
	CHECK_INT(ns_getattr(r->ns, "/uploads/a.txt", &a), 0);
	CHECK(!a.is_dir && a.writable);
	CHECK_INT(a.size, 5);
	CHECK_INT(ns_getattr(r->ns, "/uploads/sub", &a), 0);
	CHECK(a.is_dir);
	CHECK_INT(ns_getattr(r->ns, "/uploads/none", &a), ENOENT);
	CHECK_INT(ns_getattr(r->ns, "/elsewhere", &a), ENOENT);
	/* a link's size is its URL's length, with no request */
	mem_reset_counters(r->m);
	CHECK_INT(ns_getattr(r->ns, "/.links/uploads/sub", &a), 0);
	CHECK(a.is_dir);
	CHECK_INT(mem_calls(r->m, MEM_ANY), 0);
}

static void test_readdir(struct rig *r)
{
	struct names n;

	CHECK_STR(list(r, "/", &n), "uploads/ thumbnails/ .links/ .metrics ");
	CHECK_STR(list(r, "/uploads", &n), "a.txt sub/ ");
	CHECK_STR(list(r, "/uploads/sub", &n), "b.txt ");
	CHECK_STR(list(r, "/.links", &n),
		  "uploads/ thumbnails/ index.html upload/ gallery/ ");
	CHECK_STR(list(r, "/.links/uploads", &n), "a.txt sub/ ");
	CHECK_INT(ns_readdir(r->ns, "/.metrics", add_name, &n), ENOTDIR);
	CHECK_INT(ns_readdir(r->ns, "/elsewhere", add_name, &n), ENOENT);
}

static void test_files(struct rig *r)
{
	struct buf b = BUF_INIT;
	struct ns_file *f, *g;
	struct ns_attr a;

	/* create: nothing in the bucket before flush; stat sees the writer */
	CHECK_INT(ns_create(r->ns, "/uploads/new.txt", O_WRONLY | O_CREAT, NULL, &f), 0);
	CHECK_INT(ns_write(f, "fresh", 5, 0), 0);
	CHECK_INT(ns_getattr(r->ns, "/uploads/new.txt", &a), 0);
	CHECK_INT(a.size, 5);
	CHECK_INT(mem_peek(r->m, "uploads/new.txt", NULL, NULL), ENOENT);
	CHECK_INT(ns_flush(f), 0);
	CHECK(holds(r, "uploads/new.txt", "fresh"));
	ns_release(f);
	CHECK_INT(ns_create(r->ns, "/uploads/new.txt", O_WRONLY | O_CREAT | O_EXCL,
			    NULL, &f), EEXIST);
	/* read */
	mem_reset_counters(r->m);
	CHECK_INT(slurp(r, "/uploads/a.txt", &b), 0);
	CHECK_STR(b.data, "hello");
	CHECK_INT(mem_calls(r->m, MEM_GET), 1);
	/* write without O_TRUNC: the old content is the start */
	CHECK_INT(ns_open(r->ns, "/uploads/a.txt", O_WRONLY, &f), 0);
	CHECK_INT(ns_write(f, " world", 6, 5), 0);
	CHECK_INT(ns_flush(f), 0);
	ns_release(f);
	CHECK(holds(r, "uploads/a.txt", "hello world"));
	/* O_TRUNC */
	CHECK_INT(ns_open(r->ns, "/uploads/a.txt", O_WRONLY | O_TRUNC, &f), 0);
	CHECK(ns_file_size_changed(f));
	CHECK_INT(ns_write(f, "hi", 2, 0), 0);
	CHECK_INT(ns_flush(f), 0);
	ns_release(f);
	CHECK(holds(r, "uploads/a.txt", "hi"));
	/* truncate by path, and ftruncate of an open file */
	CHECK_INT(ns_truncate(r->ns, "/uploads/new.txt", NULL, 3), 0);
	CHECK(holds(r, "uploads/new.txt", "fre"));
	CHECK_INT(ns_open(r->ns, "/uploads/new.txt", O_RDWR, &g), 0);
	CHECK_INT(ns_truncate(r->ns, NULL, g, 1), 0);
	CHECK_INT(ns_flush(g), 0);
	ns_release(g);
	CHECK(holds(r, "uploads/new.txt", "f"));
	/* the read-only areas */
	CHECK_INT(ns_open(r->ns, "/.metrics", O_WRONLY, &f), EROFS);
	CHECK_INT(ns_create(r->ns, "/thumbnails/x.png", O_WRONLY, NULL, &f), EROFS);
	CHECK_INT(ns_truncate(r->ns, "/.metrics", NULL, 0), EROFS);
	CHECK_INT(ns_open(r->ns, "/uploads/sub", O_RDONLY, &f), EISDIR);
	buf_release(&b);
}

static void test_metrics_file(struct rig *r)
{
	struct buf b = BUF_INIT;

	CHECK_INT(slurp(r, "/.metrics", &b), 0);
	CHECK(b.data && strstr(b.data, "imgfs_uploads_total") != NULL);
	buf_release(&b);
}

static void test_folders(struct rig *r)
{
	struct ns_attr a;
	struct names n;

	CHECK_INT(ns_mkdir(r->ns, "/uploads/empty"), 0);
	CHECK_INT(ns_getattr(r->ns, "/uploads/empty", &a), 0);
	CHECK(a.is_dir);
	CHECK_INT(ns_mkdir(r->ns, "/uploads/empty"), EEXIST);
	CHECK_INT(ns_mkdir(r->ns, "/thumbnails/x"), EROFS);
	/* hard links: no object has two names */
	CHECK_INT(ns_link(r->ns, "/uploads/node"), EPERM);
	CHECK_INT(ns_link(r->ns, "/uploads/sub/node"), EPERM);
	CHECK_INT(ns_link(r->ns, "/thumbnails/node"), EROFS);
	CHECK_INT(ns_link(r->ns, "/.links/node"), EROFS);
	CHECK_INT(ns_link(r->ns, "/node"), EROFS);
	CHECK_INT(mem_object_count(r->m), 3); /* a folder is no object */
	CHECK_INT(ns_rmdir(r->ns, "/uploads/sub"), ENOTEMPTY);
	CHECK_INT(ns_rmdir(r->ns, "/uploads/a.txt"), ENOTDIR);
	CHECK_INT(ns_rmdir(r->ns, "/uploads/empty"), 0);
	CHECK_INT(ns_getattr(r->ns, "/uploads/empty", &a), ENOENT);
	/* unlink */
	CHECK_INT(ns_unlink(r->ns, "/uploads/sub"), EISDIR);
	CHECK_INT(ns_unlink(r->ns, "/uploads/none"), ENOENT);
	CHECK_INT(ns_unlink(r->ns, "/uploads/new.txt"), 0);
	CHECK_INT(mem_peek(r->m, "uploads/new.txt", NULL, NULL), ENOENT);
	CHECK_INT(ns_getattr(r->ns, "/uploads/new.txt", &a), ENOENT);
	CHECK_STR(list(r, "/uploads", &n), "a.txt sub/ ");
	/* setattr: stored in uploads/ (a copy onto itself), refused elsewhere */
	struct store_attrs set = {.have = STORE_ATTR_MTIME | STORE_ATTR_MODE,
				  .mtime_sec = 1500000000, .mtime_nsec = 5,
				  .mode = 0100600};
	struct store_object obj;

	CHECK_INT(ns_setattr(r->ns, "/uploads/a.txt", &set), 0);
	CHECK_INT(mem_peek(r->m, "uploads/a.txt", NULL, &obj), 0);
	CHECK_INT(obj.attrs.mtime_sec, 1500000000);
	CHECK_INT(obj.attrs.mode, 0100600);
	CHECK_INT(ns_getattr(r->ns, "/uploads/a.txt", &a), 0);
	CHECK_INT(a.mtime, 1500000000);
	CHECK_INT(a.mtime_nsec, 5);
	CHECK_INT(ns_setattr(r->ns, "/.metrics", &set), EROFS);
}

static void test_rename(struct rig *r)
{
	struct ns_attr a;

	CHECK_INT(ns_rename(r->ns, "/uploads/a.txt", "/uploads/b.txt", 0), 0);
	CHECK(holds(r, "uploads/b.txt", "hi"));
	CHECK_INT(mem_peek(r->m, "uploads/a.txt", NULL, NULL), ENOENT);
	CHECK_INT(ns_getattr(r->ns, "/uploads/a.txt", &a), ENOENT);
	CHECK_INT(put_file(r, "/uploads/c.txt", "sea", 3), 0);
	CHECK_INT(ns_rename(r->ns, "/uploads/b.txt", "/uploads/c.txt", 1),
		  EEXIST);
	CHECK_INT(ns_rename(r->ns, "/uploads/b.txt", "/uploads/sub", 0), EISDIR);
	CHECK_INT(ns_rename(r->ns, "/uploads/b.txt", "/.metrics", 0), EROFS);
	/* a folder moves with everything below it */
	mem_set(r->m, "uploads/sub/deep/d.txt", "dee", 3, NULL, NULL);
	CHECK_INT(ns_rename(r->ns, "/uploads/sub", "/uploads/moved", 0), 0);
	CHECK(holds(r, "uploads/moved/b.txt", "bee"));
	CHECK(holds(r, "uploads/moved/deep/d.txt", "dee"));
	CHECK_INT(mem_peek(r->m, "uploads/sub/b.txt", NULL, NULL), ENOENT);
	CHECK_INT(ns_getattr(r->ns, "/uploads/moved/deep", &a), 0);
	CHECK(a.is_dir);
	CHECK_INT(ns_rename(r->ns, "/uploads/moved", "/uploads/moved/in", 0),
		  EINVAL);
}

/* The size stat reports for path equals what a read returns. */
static void check_sized(struct rig *r, const char *path, struct buf *b)
{
	struct ns_attr a;

	CHECK_INT(ns_getattr(r->ns, path, &a), 0);
	CHECK(!a.is_dir && !a.writable);
	CHECK_INT(slurp(r, path, b), 0);
	CHECK_INT(a.size, b->len);
}

/* .links/upload/: folders of uploads/ with post.json and index.html,
 * signed with no request once the folders are listed. */
static void test_upload_links(struct rig *r)
{
	struct buf b = BUF_INIT;
	struct names n;
	struct ns_attr a;
	struct ns_file *f;

	CHECK_STR(list(r, "/.links/upload", &n), "sub/ post.json index.html ");
	mem_reset_counters(r->m);
	CHECK_STR(list(r, "/.links/upload/sub", &n), "post.json index.html ");
	CHECK_INT(ns_getattr(r->ns, "/.links/upload/sub", &a), 0);
	CHECK(a.is_dir);
	check_sized(r, "/.links/upload/sub/post.json", &b);
	CHECK(strstr(b.data, "\"url\": \"http://127.0.0.1:9/imgfs-test\"") != NULL);
	CHECK(strstr(b.data, "\"key\": \"uploads/sub/${filename}\"") != NULL);
	CHECK(strstr(b.data, "\"x-amz-signature\": \"") != NULL);
	buf_release(&b);
	check_sized(r, "/.links/upload/index.html", &b);
	CHECK(strstr(b.data, "value=\"uploads/${filename}\"") != NULL);
	CHECK(strstr(b.data, "<b id=\"limit\">1 MiB</b>") != NULL);
	buf_release(&b);
	CHECK_INT(mem_calls(r->m, MEM_ANY), 0);
	CHECK_INT(ns_getattr(r->ns, "/.links/upload/a.txt", &a), ENOENT);
	CHECK_INT(ns_getattr(r->ns, "/.links/upload/nope/post.json", &a), ENOENT);
	CHECK_INT(ns_open(r->ns, "/.links/upload/sub", O_RDONLY, &f), EISDIR);
	CHECK_INT(ns_open(r->ns, "/.links/upload/post.json", O_WRONLY, &f),
		  EROFS);
	CHECK_INT(ns_mkdir(r->ns, "/.links/upload/new"), EROFS);
}

static void test_links(struct rig *r)
{
	struct buf b = BUF_INIT;

	mem_reset_counters(r->m);
	CHECK_INT(slurp(r, "/.links/uploads/b.txt", &b), 0);
	CHECK(b.data && strncmp(b.data, "http://127.0.0.1:9/imgfs-test/"
				"uploads/b.txt?", 39) == 0);
	CHECK(b.data && strstr(b.data, "X-Amz-Signature=") != NULL);
	CHECK(b.len && b.data[b.len - 1] == '\n');
	CHECK_INT(mem_calls(r->m, MEM_GET), 0);
	CHECK_INT(mem_calls(r->m, MEM_PUT), 0);
	buf_release(&b);
}

/* A PNG of w x h, grey. */
static int make_png(int w, int h, struct buf *out)
{
	VipsImage *black = NULL, *grey = NULL;
	void *data = NULL;
	size_t len = 0;
	int rc = vips_black(&black, w, h, NULL) ||
		 vips_linear1(black, &grey, 1.0, 128.0, NULL) ||
		 vips_pngsave_buffer(grey, &data, &len, NULL);

	if (!rc)
		rc = buf_add(out, data, len);
	g_free(data);
	if (grey)
		g_object_unref(grey);
	if (black)
		g_object_unref(black);
	return rc ? EIO : 0;
}

static void test_thumbnails(struct rig *r)
{
	struct buf png = BUF_INIT, t = BUF_INIT, again = BUF_INIT;
	struct store_list_page pg;
	struct names n;

	CHECK_INT(make_png(80, 40, &png), 0);
	CHECK_INT(put_file(r, "/uploads/pic.png", png.data, png.len), 0);
	CHECK(strstr(list(r, "/thumbnails", &n), "pic.png") != NULL);
	CHECK_INT(slurp(r, "/thumbnails/pic.png", &t), 0);
	CHECK(t.len > 8 && memcmp(t.data, "\x89PNG", 4) == 0);
	/* a second read comes from the cache: no GET of the source */
	mem_reset_counters(r->m);
	CHECK_INT(slurp(r, "/thumbnails/pic.png", &again), 0);
	CHECK(again.len == t.len && memcmp(again.data, t.data, t.len) == 0);
	CHECK_INT(mem_calls(r->m, MEM_GET), 0);
	CHECK_INT(ns_open(r->ns, "/thumbnails/b.txt", O_RDONLY,
			  &(struct ns_file *){NULL}), ENOENT);
	/* a thumbnail's link: the thumbnail is stored in the bucket first */
	buf_reset(&t);
	CHECK_INT(slurp(r, "/.links/thumbnails/pic.png", &t), 0);
	CHECK(t.data && strstr(t.data, "/imgfs-test/thumbnails/") != NULL);
	CHECK(t.data && strstr(t.data, "X-Amz-Signature=") != NULL);
	CHECK_INT(store_list(mem_store(r->m), "thumbnails/", NULL, NULL, 0, &pg),
		  0);
	CHECK_INT(pg.nentries, 1);
	store_list_page_release(&pg);
	/* the gallery names the image and links its thumbnail */
	buf_reset(&t);
	CHECK_INT(slurp(r, "/.links/index.html", &t), 0);
	CHECK(t.data && strstr(t.data, "pic.png") != NULL);
	CHECK(t.data && strstr(t.data, "/imgfs-test/thumbnails/") != NULL);
	buf_release(&png);
	buf_release(&t);
	buf_release(&again);
}

/* Wait up to 20 s for key to be in the bucket. */
static int wait_key(struct rig *r, const char *key)
{
	for (int i = 0; i < 2000; i++) {
		if (mem_peek(r->m, key, NULL, NULL) == 0)
			return 1;
		usleep(10000);
	}
	return 0;
}

/* .links/gallery/: a folder per folder of uploads/, its pages; a
 * thumbnail not made yet is a placeholder, made in the background. */
static void test_gallery_area(struct rig *r)
{
	struct buf png = BUF_INIT, page = BUF_INIT;
	struct ns_attr a;
	struct names n;

	CHECK_INT(ns_mkdir(r->ns, "/uploads/index.html"), 0);
	CHECK_INT(ns_mkdir(r->ns, "/uploads/gal"), 0);
	/* the folder named like a page is hidden; the page file is there */
	CHECK_STR(list(r, "/.links/gallery", &n), "gal/ moved/ index.html ");
	CHECK_STR(list(r, "/.links/gallery/gal", &n), "index.html ");
	CHECK_INT(ns_getattr(r->ns, "/.links/gallery/gal", &a), 0);
	CHECK(a.is_dir);
	CHECK_INT(ns_getattr(r->ns, "/.links/gallery/gal/index.html", &a), 0);
	CHECK(!a.is_dir);
	CHECK_INT(ns_getattr(r->ns, "/.links/gallery/nope", &a), ENOENT);
	CHECK_INT(ns_getattr(r->ns, "/.links/gallery/index.html/index.html", &a),
		  ENOENT);
	CHECK_INT(ns_open(r->ns, "/.links/gallery/index-2.html", O_RDONLY,
			  &(struct ns_file *){NULL}), ENOENT);
	/* stat's size is the page's: it builds it, the open takes it over */
	CHECK_INT(ns_getattr(r->ns, "/.links/gallery/gal/index.html", &a), 0);
	CHECK_INT(slurp(r, "/.links/gallery/gal/index.html", &page), 0);
	CHECK_INT(a.size, page.len);
	CHECK(page.data && strstr(page.data, "No images in this folder") != NULL);
	CHECK_INT(ns_getattr(r->ns, "/.links/gallery/index-2.html", &a), ENOENT);
	CHECK(page.data && strstr(page.data, "href=\"../index.html\">imgfs-test<") != NULL);
	/* a new image (no eager thumbnails here): no thumbnail yet */
	CHECK_INT(make_png(60, 30, &png), 0);
	CHECK_INT(put_file(r, "/uploads/gal/q.png", png.data, png.len), 0);
	buf_reset(&page);
	CHECK_INT(slurp(r, "/.links/gallery/gal/index.html", &page), 0);
	CHECK(page.data && strstr(page.data, "<span class=\"name\">q.png<") != NULL);
	CHECK(page.data && strstr(page.data, "thumbnail being made") != NULL);
	CHECK(wait_key(r, "thumbnails/gal/q.png"));
	buf_reset(&page);
	CHECK_INT(slurp(r, "/.links/gallery/gal/index.html", &page), 0);
	CHECK(page.data && strstr(page.data, "thumbnail being made") == NULL);
	CHECK(page.data && strstr(page.data, "/imgfs-test/thumbnails/gal/q.png?") != NULL);
	/* the source's size, recorded when the thumbnail was made */
	CHECK(page.data && strstr(page.data, "<span class=\"dims\">60&times;30</span>") != NULL);
	buf_release(&png);
	buf_release(&page);
}

/* The width x height of a thumbnail read through path. */
static void thumb_dims(struct rig *r, const char *path, int *w, int *h)
{
	struct buf t = BUF_INIT;
	VipsImage *im = NULL;

	*w = *h = 0;
	if (slurp(r, path, &t) == 0)
		im = vips_image_new_from_buffer(t.data, t.len, "", NULL);
	if (im) {
		*w = vips_image_get_width(im);
		*h = vips_image_get_height(im);
		g_object_unref(im);
	}
	buf_release(&t);
}

/* thumb_sizes=32,64 with eager thumbnails: a file written makes both
 * sizes in the bucket without one GET; thumbnails-64/ lists and serves
 * it; replacing and deleting it follow through both sizes. */
static void test_eager_sizes(void)
{
	struct rig r;
	struct buf png = BUF_INIT;
	struct names n;
	int w, h;

	if (rig_up(&r, 1) != 0) {
		CHECK(!"rig with sizes");
		return;
	}
	CHECK_STR(list(&r, "/", &n),
		  "uploads/ thumbnails/ thumbnails-64/ .links/ .metrics ");
	CHECK_INT(make_png(200, 100, &png), 0);
	mem_reset_counters(r.m);
	CHECK_INT(put_file(&r, "/uploads/e.png", png.data, png.len), 0);
	CHECK(wait_key(&r, "thumbnails/e.png"));
	CHECK(wait_key(&r, "thumbnails/@64/e.png"));
	CHECK_INT(mem_calls(r.m, MEM_GET), 0);
	CHECK(strstr(list(&r, "/thumbnails-64", &n), "e.png") != NULL);
	thumb_dims(&r, "/thumbnails-64/e.png", &w, &h);
	CHECK(w == 64 && h == 32);
	thumb_dims(&r, "/thumbnails/e.png", &w, &h);
	CHECK(w == 32 && h == 16);
	CHECK_INT(mem_calls(r.m, MEM_GET), 0);
	CHECK_INT(ns_open(r.ns, "/thumbnails-128/e.png", O_RDONLY,
			  &(struct ns_file *){NULL}), ENOENT);
	/* the gallery: srcset names the second size for 2x screens */
	{
		struct buf page = BUF_INIT;

		CHECK_INT(slurp(&r, "/.links/index.html", &page), 0);
		CHECK(page.data && strstr(page.data, " 1x, http://127.0.0.1:9/"
					  "imgfs-test/thumbnails/%4064/e.png?") != NULL);
		CHECK(page.data && strstr(page.data, "200&times;100") != NULL);
		buf_release(&page);
	}
	/* replaced: both sizes follow */
	buf_reset(&png);
	CHECK_INT(make_png(100, 200, &png), 0);
	CHECK_INT(put_file(&r, "/uploads/e.png", png.data, png.len), 0);
	thumb_dims(&r, "/thumbnails-64/e.png", &w, &h);
	CHECK(w == 32 && h == 64);
	thumb_dims(&r, "/thumbnails/e.png", &w, &h);
	CHECK(w == 16 && h == 32);
	/* deleted: both objects go */
	CHECK_INT(ns_unlink(r.ns, "/uploads/e.png"), 0);
	CHECK(mem_peek(r.m, "thumbnails/e.png", NULL, NULL) == ENOENT);
	CHECK(mem_peek(r.m, "thumbnails/@64/e.png", NULL, NULL) == ENOENT);
	buf_release(&png);
	rig_down(&r);
}

/* A failing PUT: flush is EIO and nothing is left in the bucket. */
static void test_put_failure(struct rig *r)
{
	struct mem_fault fail = {.op = MEM_PUT, .times = MEM_FOREVER};
	struct ns_attr a;
	size_t before = mem_object_count(r->m);
	struct ns_file *f;

	mem_inject(r->m, &fail);
	CHECK_INT(ns_create(r->ns, "/uploads/doomed.txt", O_WRONLY | O_CREAT,
			    NULL, &f), 0);
	CHECK_INT(ns_write(f, "lost", 4, 0), 0);
	CHECK_INT(ns_flush(f), EIO);
	ns_release(f);
	mem_clear_faults(r->m);
	CHECK_INT(mem_peek(r->m, "uploads/doomed.txt", NULL, NULL), ENOENT);
	CHECK_INT(mem_object_count(r->m), before);
	CHECK_INT(ns_getattr(r->ns, "/uploads/doomed.txt", &a), ENOENT);
}

/* A large file whose parts fail: EIO, no object, no upload left. */
static void test_part_failure(struct rig *r)
{
	struct mem_fault fail = {.op = MEM_MPU_PART, .times = MEM_FOREVER};
	size_t len = 11 * MIB;
	char *data = calloc(1, len);

	mem_inject(r->m, &fail);
	CHECK_INT(put_file(r, "/uploads/big.bin", data, len), EIO);
	mem_clear_faults(r->m);
	CHECK_INT(mem_peek(r->m, "uploads/big.bin", NULL, NULL), ENOENT);
	CHECK_INT(mem_upload_count(r->m), 0);
	free(data);
}

/* fstat of an open file shows the mode and owner it is created with or
 * was stored with (libfuse answers a create with it; the kernel caches
 * that), not the defaults of an object without attributes. */
static void test_fgetattr_of_open_files(struct rig *r)
{
	struct store_attrs init = {
		.have = STORE_ATTR_MODE | STORE_ATTR_UID | STORE_ATTR_GID,
		.mode = 0100751, .uid = 123, .gid = 456};
	struct ns_file *f;
	struct ns_attr a;

	CHECK_INT(ns_create(r->ns, "/uploads/modes.bin", O_WRONLY | O_CREAT,
			    &init, &f), 0);
	CHECK_INT(ns_fgetattr(f, &a), 0);
	CHECK(a.have & STORE_ATTR_MODE);
	CHECK_INT(a.mode, 0100751);
	CHECK_INT(a.uid, 123);
	CHECK_INT(a.gid, 456);
	CHECK_INT(ns_flush(f), 0);
	ns_release(f);
	CHECK_INT(ns_open(r->ns, "/uploads/modes.bin", O_RDONLY, &f), 0);
	CHECK_INT(ns_fgetattr(f, &a), 0);
	CHECK(a.have & STORE_ATTR_GID);
	CHECK_INT(a.mode, 0100751);
	CHECK_INT(a.gid, 456);
	ns_release(f);
}

int main(int argc, char **argv)
{
	struct rig r;

	/* The thumbnail workers this test starts are this binary. */
	if (worker_dispatch(argc, argv) >= 0)
		return 1;

	if (rig_up(&r, 0) != 0) {
		fprintf(stderr, "test_ns: cannot set up\n");
		return 1;
	}
	test_getattr(&r);
	test_readdir(&r);
	test_upload_links(&r);
	test_files(&r);
	test_metrics_file(&r);
	test_folders(&r);
	test_rename(&r);
	test_links(&r);
	test_thumbnails(&r);
	test_gallery_area(&r);
	test_put_failure(&r);
	test_part_failure(&r);
	test_fgetattr_of_open_files(&r);
	rig_down(&r);
	test_eager_sizes();
	return check_done("ns");
}
