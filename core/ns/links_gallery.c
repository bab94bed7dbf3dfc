/*
 * links_gallery: one page of the gallery of a folder (see links.h).
 *
 * The caller hands over the folder's listing; this file finds which
 * thumbnails are in the bucket (a delimited listing of the thumbnail
 * folder of each size shown), signs, and streams the figures of the page
 * into the caller's buffer through gallery_page.c. Nothing is decoded or
 * fetched per image: a missing thumbnail is queued for the scheduler.
 */
#include "ns/links_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "ns/gallery_page.h"

#define GALLERY_SIZES 2 /* the first size, and the next one for srcset */

/* Thumbnail objects of one folder and size, in S3's (byte) order. */
struct thumb_index {
	char **keys;
	time_t *mtimes;
	size_t n, cap;
};

/* What rendering one page needs. */
struct page_run {
	struct links *l;
	const struct links_gallery_req *r;
	time_t now;
	unsigned expires;
	unsigned nsizes;                       /* 1 or GALLERY_SIZES */
	struct thumb_index idx[GALLERY_SIZES];
	struct buf key, tkey, href, src[GALLERY_SIZES];
};

static void index_release(struct thumb_index *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->keys[i]);
	free(t->keys);
	free(t->mtimes);
	memset(t, 0, sizeof(*t));
}

static int index_add(struct thumb_index *t, const struct store_list_entry *e)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		char **keys = reallocarray(t->keys, cap, sizeof(*keys));
		time_t *mtimes;

		if (!keys)
			return ENOMEM;
		t->keys = keys;
		mtimes = reallocarray(t->mtimes, cap, sizeof(*mtimes));
		if (!mtimes)
			return ENOMEM;
		t->mtimes = mtimes;
		t->cap = cap;
	}
	t->keys[t->n] = strdup(e->key);
	if (!t->keys[t->n])
		return ENOMEM;
	t->mtimes[t->n++] = e->mtime;
	return 0;
}

/* The thumbnail folder of size idx for the uploads folder prefix: the
 * folder part of the thumbnail key of a file in it. */
static int thumb_folder(struct links *l, unsigned idx, const char *prefix,
			struct buf *out)
{
	struct buf probe = BUF_INIT;
	char *slash;
	int err = buf_addf(&probe, "%sx.jpg", prefix);

	if (!err)
		err = thumbs_key_for_n(l->thumbs, idx, probe.data, out);
	if (!err) {
		slash = strrchr(out->data, '/');
		out->len = slash ? (size_t)(slash - out->data) + 1 : 0;
		out->data[out->len] = '\0';
	}
	buf_release(&probe);
	return err;
}

/* Every thumbnail object of size idx in the folder, one request per 1000. */
static int index_folder(struct links *l, unsigned idx, const char *prefix,
			struct thumb_index *t)
{
	struct buf tprefix = BUF_INIT;
	char *token = NULL;
	int err = thumb_folder(l, idx, prefix, &tprefix);

	while (!err) {
		struct store_list_page page = {0};

		err = store_list(l->store, tprefix.data, "/", token, 1000, &page);
		free(token);
		token = NULL;
		for (size_t i = 0; !err && i < page.nentries; i++)
			err = index_add(t, &page.entries[i]);
		if (!err && page.next_token) {
			token = strdup(page.next_token);
			err = token ? 0 : ENOMEM;
		}
		store_list_page_release(&page);
		if (!token)
			break;
	}
	free(token);
	buf_release(&tprefix);
	return err;
}

/* Is the thumbnail object key in t, and not older than its source? */
static int index_ready(const struct thumb_index *t, const char *key,
		       time_t src_modified)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->keys[mid], key);

		if (c == 0)
			return t->mtimes[mid] >= src_modified;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* Size s of im: 1 and its signed URL in run->src[s] when its object is
 * there; else 0, and the scheduler is asked for it (want_ahead). */
static int thumb_url(struct page_run *run, unsigned s,
		     const struct links_gallery_image *im, int want_ahead,
		     int *ready)
{
	struct links *l = run->l;
	int err;

	*ready = 0;
	buf_reset(&run->tkey);
	buf_reset(&run->src[s]);
	err = thumbs_key_for_n(l->thumbs, s, run->key.data, &run->tkey);
	if (err)
		return err == EINVAL ? 0 : err;
	*ready = index_ready(&run->idx[s], run->tkey.data, im->modified);
	if (*ready)
		return links_sign(l, run->tkey.data, run->now, run->expires, 0,
				  &run->src[s]);
	if (want_ahead)
		thumbs_ahead(l->thumbs, s, run->key.data, im->etag);
	return 0;
}

static int render_image(struct page_run *run, const struct gallery_view *v,
			const struct links_gallery_image *im, struct buf *out)
{
	struct gallery_image gi = {.name = im->name, .size = im->size,
				   .mtime = im->mtime};
	int ready[GALLERY_SIZES] = {0};
	int err;

	buf_reset(&run->key);
	buf_reset(&run->href);
	err = buf_addf(&run->key, "%s%s", run->r->prefix, im->name);
	if (!err)
		err = links_sign(run->l, run->key.data, run->now, run->expires,
				 run->l->conf->attachment, &run->href);
	gi.failed = !err && thumbs_known_failed_n(run->l->thumbs, 0,
						  run->key.data, im->etag);
	if (!err && thumbs_source_dims(run->l->thumbs, run->key.data, im->etag,
				       &gi.width, &gi.height) != 0)
		gi.width = gi.height = 0;
	if (!err)
		err = thumb_url(run, 0, im, !gi.failed, &ready[0]);
	if (!err && ready[0] && run->nsizes > 1)
		err = thumb_url(run, 1, im, 1, &ready[1]);
	if (err)
		return err;
	gi.href = run->href.data;
	gi.src = ready[0] ? run->src[0].data : NULL;
	gi.src2x = ready[0] && ready[1] ? run->src[1].data : NULL;
	return gallery_page_image(v, &gi, out);
}

static int render(struct page_run *run, size_t from, size_t to,
		  struct buf *out)
{
	const struct links_gallery_req *r = run->r;
	struct gallery_view v = {
		.bucket = run->l->conf->bucket, .folder = r->folder,
		.root = r->root, .page = r->page,
		.npages = gallery_npages(r->nimages), .nimages = r->nimages,
		.subdirs = r->subdirs, .nsubdirs = r->nsubdirs,
		.expires_at = run->now + (time_t)run->expires,
		.box = thumbs_size(run->l->thumbs, 0),
	};
	int err = gallery_page_head(&v, out);

	for (size_t i = from; i < to && !err; i++)
		err = render_image(run, &v, &r->images[i], out);
	if (!err)
		err = gallery_page_tail(&v, out);
	return err;
}

static void run_release(struct page_run *run)
{
	for (unsigned s = 0; s < GALLERY_SIZES; s++) {
		index_release(&run->idx[s]);
		buf_release(&run->src[s]);
	}
	buf_release(&run->key);
	buf_release(&run->tkey);
	buf_release(&run->href);
}

/* The images of the page: [from, to). ENOENT past the last page. */
static int page_range(const struct links_gallery_req *r, size_t *from,
		      size_t *to)
{
	if (r->page < 1 || r->page > gallery_npages(r->nimages))
		return ENOENT;
	*from = (r->page - 1) * GALLERY_PER_PAGE;
	*to = *from + GALLERY_PER_PAGE < r->nimages ? *from + GALLERY_PER_PAGE
						    : r->nimages;
	return 0;
}

int links_gallery_page(struct links *l, const struct links_gallery_req *r,
		       time_t now, struct buf *out)
{
	struct page_run run = {.l = l, .r = r, .now = now};
	size_t mark = out->len, from = 0, to = 0;
	int err = page_range(r, &from, &to);

	run.nsizes = thumbs_nsizes(l->thumbs) > 1 ? GALLERY_SIZES : 1;
	for (unsigned s = 0; s < run.nsizes && !err && from < to; s++)
		err = index_folder(l, s, r->prefix, &run.idx[s]);
	if (!err)
		err = links_sign_expiry(l, now, &run.expires);
	if (!err)
		err = render(&run, from, to, out);
	if (err && err != ENOENT) {
		struct log_key k;

		log_error("links: gallery of %s: %s", log_key(&k, r->prefix),
			  strerror(err));
	}
	if (err) {
		out->len = mark;
		if (out->data)
			out->data[mark] = '\0';
	}
	run_release(&run);
	return err;
}
