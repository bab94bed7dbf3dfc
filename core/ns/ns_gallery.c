/*
 * ns_gallery: the .links/gallery/ area of the namespace, and
 * .links/index.html (see gallery_page.h for the tree of pages).
 *
 * .links/gallery/ mirrors the folders of uploads/ that a listing shows
 * and whose names the gallery shows (gallery_name_ok(): no control
 * characters, no folder named like a page file); each holds its pages,
 * index.html and index-2.html, ... as many as its images need. The
 * folder's entries come from the same listing (and cache) as uploads/;
 * links_gallery_page() signs them and finds the thumbnails.
 *
 * A page's size at stat is exact: stat builds the page and keeps it in
 * ns->gallery_made for GALLERY_MADE_TTL seconds, and the open that
 * follows takes it over (a browser reading a file trusts its size), so a
 * stat and its open cost one build. A kept page is dropped when any
 * listing or attribute changed since (meta_gen()); an open with no page
 * kept builds anew; the kept pages are bounded by GALLERY_MADE_MAX.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ns/gallery_page.h"
#include "ns/ns_int.h"

#define GALLERY_MADE_TTL 2  /* seconds a page built for a stat is kept */
#define GALLERY_MADE_MAX 64 /* pages kept at most */

/* A page built for a stat. */
struct made_page {
	struct buf content;
	time_t made;
	uint64_t gen;  /* meta_gen() before it was built */
};

static void made_free(void *p)
{
	struct made_page *mp = p;

	if (mp) {
		buf_release(&mp->content);
		free(mp);
	}
}

/* The sorted entries of a folder, split for the gallery. */
struct folder_view {
	struct links_gallery_image *images;
	size_t nimages;
	const char **subdirs;
	size_t nsubdirs;
	const char **names; /* every name of seen, sorted (points into it) */
	size_t nnames;
};

/* Does rel name a page ("a/b/index-2.html")? Then *page and the folder. */
static int classify(const char *rel, struct buf *folder, size_t *page)
{
	const char *slash = strrchr(rel, '/');
	const char *last = slash ? slash + 1 : rel;

	*page = 0;
	if (gallery_parse_page(last, page) != 0)
		return buf_adds(folder, rel);
	return buf_add(folder, rel, slash ? (size_t)(slash - rel) : 0);
}

/* Is folder ("" for the top) a folder of uploads/ the gallery shows? 0,
 * ENOENT, or an errno of the lookup. */
static int folder_shown(struct ns *ns, const char *folder)
{
	struct meta_attr m;
	const char *seg = folder;
	int rc;

	if (!*folder)
		return 0;
	while (*seg) {
		size_t len = strcspn(seg, "/");

		if (!gallery_name_ok(seg, len, 1))
			return ENOENT;
		seg += len;
		seg += *seg == '/';
	}
	rc = ns_upload_attr(ns, folder, &m);
	return !rc && !m.is_dir ? ENOENT : rc;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int add_name(void *arg, const char *name, void *value)
{
	struct folder_view *fv = arg;

	(void)value;
	fv->names[fv->nnames++] = name;
	return 0;
}

/* The upload date: the stored mtime where known, else LastModified. */
static time_t upload_date(const struct meta_attr *m)
{
	if (m->posix_known && (m->posix.have & STORE_ATTR_MTIME))
		return (time_t)m->posix.mtime_sec;
	return m->mtime;
}

static void view_add(struct folder_view *fv, const char *name,
		     const struct meta_attr *m)
{
	size_t len = strlen(name);

	if (m->is_dir) {
		if (gallery_name_ok(name, len, 1))
			fv->subdirs[fv->nsubdirs++] = name;
		return;
	}
	if (!thumbs_is_image(name) || !gallery_name_ok(name, len, 0))
		return;
	fv->images[fv->nimages++] = (struct links_gallery_image){
		.name = name, .size = m->size, .mtime = upload_date(m),
		.modified = m->mtime, .etag = m->etag,
	};
}

/* Split the entries of seen (name -> struct meta_attr *) in name order. */
static int view_build(struct hmap *seen, struct folder_view *fv)
{
	size_t n = hmap_count(seen) + 1;

	memset(fv, 0, sizeof(*fv));
	fv->names = calloc(n, sizeof(*fv->names));
	fv->subdirs = calloc(n, sizeof(*fv->subdirs));
	fv->images = calloc(n, sizeof(*fv->images));
	if (!fv->names || !fv->subdirs || !fv->images)
		return ENOMEM;
	hmap_each(seen, add_name, fv);
	qsort(fv->names, fv->nnames, sizeof(*fv->names), name_cmp);
	for (size_t i = 0; i < fv->nnames; i++)
		view_add(fv, fv->names[i], hmap_get(seen, fv->names[i]));
	return 0;
}

static void view_release(struct folder_view *fv)
{
	free(fv->names);
	free(fv->subdirs);
	free(fv->images);
}

/* The folder's entries: seen must be freed by the caller. */
static int folder_list(struct ns *ns, const char *folder, struct buf *prefix,
		       struct hmap **seen, struct folder_view *fv)
{
	int rc = ns_dir_prefix(ns, folder, prefix);

	memset(fv, 0, sizeof(*fv));
	*seen = hmap_create();
	if (!rc && !*seen)
		rc = ENOMEM;
	if (!rc)
		rc = ns_list_folder(ns, prefix->data, *seen);
	if (!rc)
		rc = view_build(*seen, fv);
	return rc;
}

/* From a page of folder to .links/gallery/: one "../" per folder level. */
static int root_path(const char *folder, struct buf *out)
{
	int rc = buf_adds(out, "");

	if (*folder && !rc)
		rc = buf_adds(out, "../");
	for (const char *p = folder; *p && !rc; p++)
		if (*p == '/')
			rc = buf_adds(out, "../");
	return rc;
}

static int make_page(struct ns *ns, const char *folder, size_t page,
		     const char *root, struct buf *out)
{
	struct buf prefix = BUF_INIT;
	struct hmap *seen = NULL;
	struct folder_view fv;
	int rc = folder_shown(ns, folder);

	if (!rc)
		rc = folder_list(ns, folder, &prefix, &seen, &fv);
	if (!rc) {
		struct links_gallery_req r = {
			.prefix = prefix.data, .folder = folder, .root = root,
			.page = page, .images = fv.images,
			.nimages = fv.nimages, .subdirs = fv.subdirs,
			.nsubdirs = fv.nsubdirs,
		};

		rc = links_gallery_page(ns->links, &r, time(NULL), out);
	}
	if (seen) {
		view_release(&fv);
		hmap_destroy(seen, free);
	}
	buf_release(&prefix);
	pthread_mutex_lock(&ns->lock);
	if (!rc)
		ns->index_size = out->len;
	pthread_mutex_unlock(&ns->lock);
	return rc;
}

/* The key a page is kept under, and its folder, page and root path. */
static int page_of(const char *rel, int top_index, struct buf *key,
		   struct buf *folder, size_t *page, struct buf *root)
{
	int rc;

	*page = 1;
	if (top_index)
		rc = buf_adds(folder, "") || buf_adds(root, "gallery/") ||
		     buf_adds(key, "index.html");
	else
		rc = classify(rel, folder, page) ||
		     buf_addf(key, "gallery/%s", rel);
	if (!rc && *page && !top_index)
		rc = root_path(folder->data, root);
	return rc ? ENOMEM : 0;
}

/* Keep content, built for a stat of the page at key. */
static void made_keep(struct ns *ns, const char *key, struct buf *content,
		      uint64_t gen)
{
	struct made_page *mp = calloc(1, sizeof(*mp));
	void *old = NULL;

	if (!mp)
		return;
	mp->content = *content;
	*content = (struct buf)BUF_INIT;
	mp->made = time(NULL);
	mp->gen = gen;
	pthread_mutex_lock(&ns->lock);
	if (hmap_count(ns->gallery_made) >= GALLERY_MADE_MAX) {
		struct hmap *fresh = hmap_create();

		if (fresh) {
			hmap_destroy(ns->gallery_made, made_free);
			ns->gallery_made = fresh;
		}
	}
	if (hmap_put(ns->gallery_made, key, mp, &old)) {
		old = mp;
		*content = mp->content; /* not kept: the caller frees it */
		mp->content = (struct buf)BUF_INIT;
	}
	pthread_mutex_unlock(&ns->lock);
	made_free(old);
}

/* Take the page kept for key, if it is fresh (made a moment ago, and no
 * listing or attribute changed since): 1 and its content in out. */
static int made_take(struct ns *ns, const char *key, struct buf *out)
{
	struct made_page *mp;
	int fresh, rc = 0;

	pthread_mutex_lock(&ns->lock);
	mp = hmap_remove(ns->gallery_made, key);
	pthread_mutex_unlock(&ns->lock);
	if (!mp)
		return 0;
	fresh = time(NULL) - mp->made <= GALLERY_MADE_TTL &&
		mp->gen == meta_gen(ns->meta);
	if (fresh)
		rc = buf_add(out, mp->content.data ? mp->content.data : "",
			     mp->content.len) == 0;
	made_free(mp);
	return rc;
}

void ns_gallery_free_made(struct ns *ns)
{
	if (ns->gallery_made)
		hmap_destroy(ns->gallery_made, made_free);
	ns->gallery_made = NULL;
}

int ns_gallery_make(struct ns *ns, const char *rel, int top_index,
		    struct buf *out)
{
	struct buf key = BUF_INIT, folder = BUF_INIT, root = BUF_INIT;
	size_t page = 1;
	int rc = page_of(rel, top_index, &key, &folder, &page, &root);

	if (!rc && !page)
		rc = EISDIR;
	if (!rc && !made_take(ns, key.data, out))
		rc = make_page(ns, folder.data, page, root.data, out);
	buf_release(&key);
	buf_release(&folder);
	buf_release(&root);
	return rc;
}

int ns_gallery_attr(struct ns *ns, const char *rel, int top_index,
		    struct ns_attr *out)
{
	struct buf key = BUF_INIT, folder = BUF_INIT, root = BUF_INIT;
	struct buf content = BUF_INIT;
	uint64_t gen = meta_gen(ns->meta);
	size_t page = 0;
	int rc = page_of(rel, top_index, &key, &folder, &page, &root);

	memset(out, 0, sizeof(*out));
	out->is_dir = !page;
	out->mtime = page ? time(NULL) : ns->started;
	if (!rc && !page)
		rc = folder_shown(ns, folder.data ? folder.data : "");
	if (!rc && page)
		rc = make_page(ns, folder.data, page, root.data, &content);
	if (!rc && page) {
		out->size = content.len;
		made_keep(ns, key.data, &content, gen);
	}
	buf_release(&content);
	buf_release(&key);
	buf_release(&folder);
	buf_release(&root);
	return rc;
}

static uint64_t page_size(struct ns *ns)
{
	uint64_t v;

	pthread_mutex_lock(&ns->lock);
	v = ns->index_size;
	pthread_mutex_unlock(&ns->lock);
	return v;
}

int ns_gallery_dir_shown(const char *name)
{
	return gallery_name_ok(name, strlen(name), 1);
}

struct count_images {
	size_t n;
};

static int count_image(void *arg, const char *name, void *value)
{
	struct count_images *c = arg;
	const struct meta_attr *m = value;

	if (!m->is_dir && thumbs_is_image(name) &&
	    gallery_name_ok(name, strlen(name), 0))
		c->n++;
	return 0;
}

int ns_gallery_files(struct ns *ns, struct hmap *seen, ns_fill_fn fn,
		     void *arg)
{
	struct count_images c = {0};
	struct buf name = BUF_INIT;
	struct ns_attr a;
	size_t pages;
	int rc = 0;

	hmap_each(seen, count_image, &c);
	pages = gallery_npages(c.n);
	memset(&a, 0, sizeof(a));
	a.mtime = time(NULL);
	a.size = page_size(ns);
	for (size_t p = 1; p <= pages && !rc; p++) {
		buf_reset(&name);
		rc = gallery_page_name(p, &name);
		if (!rc && fn(arg, name.data, &a))
			break;
	}
	buf_release(&name);
	return rc;
}
