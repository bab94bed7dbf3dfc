/*
 * ns: attributes, listings and folder operations of the namespace
 * (see ns.h). Its life cycle is in ns_life.c, open files in ns_file.c.
 */
#include "ns/ns_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "image/cache.h"

int ns_upload_key(const struct ns *ns, const char *rel, struct buf *out)
{
	return buf_addf(out, "%s%s", ns->cfg->fs.uploads_prefix, rel);
}

int ns_dir_prefix(const struct ns *ns, const char *rel, struct buf *out)
{
	return buf_addf(out, "%s%s%s", ns->cfg->fs.uploads_prefix, rel,
			*rel ? "/" : "");
}

const char *ns_split_key(const char *key, char *dir)
{
	const char *slash = strrchr(key, '/');
	size_t n = slash ? (size_t)(slash - key) + 1 : 0;

	memcpy(dir, key, n);
	dir[n] = '\0';
	return key + n;
}

/* --- attributes ---------------------------------------------------------- */

static int local_dir(struct ns *ns, const char *prefix)
{
	int found;

	pthread_mutex_lock(&ns->lock);
	found = hmap_get(ns->local_dirs, prefix) != NULL;
	pthread_mutex_unlock(&ns->lock);
	return found;
}

/* The attributes of an open writer of key, if there is one: its size and
 * the attributes its commit will store (the mtime now unless set). */
static int writer_attr(struct ns *ns, const char *key, struct meta_attr *out)
{
	struct ns_file *f;
	int found = 0;

	pthread_mutex_lock(&ns->lock);
	f = hmap_get(ns->writers, key);
	if (f) {
		memset(out, 0, sizeof(*out));
		out->size = __atomic_load_n(&f->size, __ATOMIC_RELAXED);
		out->mtime = time(NULL);
		out->posix = f->posix;
		out->posix_known = 1;
		found = 1;
	}
	pthread_mutex_unlock(&ns->lock);
	return found;
}

static int add_page(struct meta_listing *l, const char *prefix,
		    const struct store_list_page *page, time_t dir_mtime);

/* List dir into the cache when it fits in one page. Once one name in a
 * folder is missing, the next ones (cp or rsync of new files) are then
 * answered without a HEAD and a LIST each. 0, ENOSPC (more than a page:
 * remembered, not listed again) or an error. */
static int list_small_dir(struct ns *ns, const char *dir)
{
	struct store_list_page page = {0};
	struct meta_listing *l = NULL;
	uint64_t gen = meta_gen(ns->meta);
	int rc = meta_dir_listable(ns->meta, dir) ? 0 : ENOSPC;

	if (!rc)
		rc = store_list(ns->store, dir, "/", NULL, 1000, &page);
	if (!rc && page.next_token) {
		meta_dir_set_big(ns->meta, dir);
		rc = ENOSPC;
	}
	if (!rc) {
		l = meta_listing_new();
		rc = l ? add_page(l, dir, &page, ns->started) : ENOMEM;
	}
	if (!rc)
		meta_dir_store_since(ns->meta, dir, l, gen);
	else
		meta_listing_free(l);
	store_list_page_release(&page);
	return rc;
}

/* key has no object: is it a folder? From a listing of its parent dir
 * when that is small, else from a LIST of key + "/". */
static int probe_folder(struct ns *ns, const char *key, const char *dir,
			struct meta_attr *out)
{
	struct store_list_page page = {0};
	struct buf prefix = BUF_INIT;
	int rc;

	if (list_small_dir(ns, dir) == 0) {
		switch (meta_lookup(ns->meta, dir, key + strlen(dir), out)) {
		case META_FOUND:
			if (out->is_dir)
				out->mtime = ns->started;
			return 0;
		case META_ABSENT:
			return ENOENT;
		case META_MISS:
			break;
		}
	}
	rc = buf_addf(&prefix, "%s/", key);
	if (!rc)
		rc = store_list(ns->store, prefix.data, "/", NULL, 1, &page);
	if (!rc && page.nentries + page.nprefixes == 0)
		rc = ENOENT;
	if (!rc) {
		out->is_dir = 1;
		out->mtime = ns->started;
	}
	store_list_page_release(&page);
	buf_release(&prefix);
	return rc;
}

/* Does any key live below key + "/"? Errors count as no. */
static int has_children(struct ns *ns, const char *key)
{
	struct store_list_page page = {0};
	struct buf prefix = BUF_INIT;
	int found = 0;

	if (!buf_addf(&prefix, "%s/", key) &&
	    !store_list(ns->store, prefix.data, "/", NULL, 1, &page))
		found = page.nentries + page.nprefixes > 0;
	store_list_page_release(&page);
	buf_release(&prefix);
	return found;
}

/* Ask S3 about key (in dir): an object, or a folder (a key below
 * key + "/"). */
static int probe_key(struct ns *ns, const char *key, const char *dir,
		     struct meta_attr *out)
{
	struct store_object obj;
	int rc = store_head(ns->store, key, &obj);

	memset(out, 0, sizeof(*out));
	if (rc == 0 && has_children(ns, key)) {
		/* both an object key and keys below key/: the folder wins, as
		 * in listings (docs/SEMANTICS.md, promise 19) */
		out->is_dir = 1;
		out->mtime = ns->started;
		return 0;
	}
	if (rc == 0) {
		out->size = obj.size;
		out->mtime = obj.mtime;
		out->posix = obj.attrs;
		out->posix_known = 1;
		snprintf(out->etag, sizeof(out->etag), "%s", obj.etag);
		return 0;
	}
	if (rc != ENOENT)
		return rc;
	return probe_folder(ns, key, dir, out);
}

struct collect;
static int fetch_listing(struct ns *ns, const char *prefix, struct collect *c);

/* After dir's listing expired, a walk over its entries (ls -l, reading every
 * link) would cost a HEAD per entry: list it again once instead. */
static enum meta_hit relist(struct ns *ns, const char *dir, const char *name,
			    struct meta_attr *out)
{
	if (!meta_dir_walked(ns->meta, dir) || fetch_listing(ns, dir, NULL))
		return META_MISS;
	return meta_lookup(ns->meta, dir, name, out);
}

static int lookup_upload(struct ns *ns, const char *key, const char *prefix,
			 struct meta_attr *out)
{
	char *dir = malloc(strlen(key) + 1);
	const char *name;
	enum meta_hit hit;
	int rc = 0;

	if (!dir)
		return ENOMEM;
	name = ns_split_key(key, dir);
	hit = meta_lookup(ns->meta, dir, name, out);
	if (hit == META_MISS)
		hit = relist(ns, dir, name, out);
	switch (hit) {
	case META_FOUND:
		break;
	case META_ABSENT:
		rc = ENOENT;
		break;
	case META_MISS:
		rc = probe_key(ns, key, dir, out);
		if (rc == 0)
			meta_set(ns->meta, dir, name, out);
		else if (rc == ENOENT)
			meta_set_absent(ns->meta, dir, name);
		break;
	}
	if (rc == ENOENT && local_dir(ns, prefix)) {
		memset(out, 0, sizeof(*out));
		out->is_dir = 1;
		out->mtime = ns->started;
		rc = 0;
	}
	free(dir);
	return rc;
}

int ns_upload_attr(struct ns *ns, const char *rel, struct meta_attr *out)
{
	struct buf key = BUF_INIT, prefix = BUF_INIT;
	int rc;

	rc = ns_upload_key(ns, rel, &key);
	if (!rc)
		rc = buf_addf(&prefix, "%s/", key.data);
	if (!rc && writer_attr(ns, key.data, out)) {
		/* an open writer's attributes */
	} else if (!rc) {
		rc = lookup_upload(ns, key.data, prefix.data, out);
	}
	buf_release(&key);
	buf_release(&prefix);
	return rc;
}

int ns_upload_attr_posix(struct ns *ns, const char *rel, struct meta_attr *out)
{
	struct buf key = BUF_INIT;
	struct store_object obj;
	char *dir = NULL;
	int rc = ns_upload_attr(ns, rel, out);

	if (rc || out->is_dir || out->posix_known)
		return rc;
	rc = ns_upload_key(ns, rel, &key);
	if (!rc)
		rc = store_head(ns->store, key.data, &obj);
	if (!rc) {
		out->posix = obj.attrs;
		out->posix_known = 1;
		out->size = obj.size; /* the object now, as the HEAD says */
		out->mtime = obj.mtime;
		snprintf(out->etag, sizeof(out->etag), "%s", obj.etag);
		dir = malloc(key.len + 1);
	}
	if (dir)
		meta_set(ns->meta, dir, ns_split_key(key.data, dir), out);
	free(dir);
	buf_release(&key);
	return rc;
}

static void dir_attr(const struct ns *ns, struct ns_attr *a, int writable)
{
	memset(a, 0, sizeof(*a));
	a->is_dir = 1;
	a->writable = writable;
	a->mtime = ns->started;
}

/* The length of the link file for key, as a read would return it. */
static int link_size(struct ns *ns, const char *key, uint64_t *size)
{
	struct buf url = BUF_INIT;
	int rc = links_object(ns->links, key, time(NULL), &url);

	*size = url.len;
	buf_release(&url);
	return rc;
}

static void file_attr(struct ns_attr *a, const struct meta_attr *m)
{
	const struct store_attrs *p = &m->posix;

	memset(a, 0, sizeof(*a));
	a->is_dir = m->is_dir;
	a->size = m->size;
	a->mtime = m->mtime;
	if (!m->posix_known)
		return;
	if (p->have & STORE_ATTR_MTIME) {
		a->mtime = (time_t)p->mtime_sec;
		a->mtime_nsec = p->mtime_nsec;
	}
	a->have = p->have & (STORE_ATTR_MODE | STORE_ATTR_UID | STORE_ATTR_GID |
			     STORE_ATTR_RDEV);
	a->mode = p->mode;
	a->uid = p->uid;
	a->gid = p->gid;
	a->rdev = p->rdev;
}

static int thumb_attr(struct ns *ns, const char *rel, unsigned idx,
		      int as_link, struct ns_attr *out)
{
	struct buf src_key = BUF_INIT, tkey = BUF_INIT;
	struct meta_attr src;
	int rc = ns_thumb_source(ns, rel, &src_key, &src);

	if (rc == 0 && src.is_dir) {
		dir_attr(ns, out, 0);
	} else if (rc == 0) {
		file_attr(out, &src);
		out->size = 0;
		if (as_link) {
			rc = thumbs_key_for_n(ns->thumbs, idx, src_key.data,
					      &tkey);
			if (!rc)
				rc = link_size(ns, tkey.data, &out->size);
		} else if (thumbs_peek_size_n(ns->thumbs, idx, src_key.data,
					      src.etag, &out->size)) {
			/* Not made yet: the source's size, so readers that
			 * skip empty files (file(1)) still open it; open
			 * learns the true size and invalidates this one. */
			out->size = src.size;
		}
	}
	buf_release(&src_key);
	buf_release(&tkey);
	return rc;
}

static int upload_attr(struct ns *ns, const char *rel, int as_link,
		       struct ns_attr *out)
{
	struct buf key = BUF_INIT;
	struct meta_attr m;
	int rc = as_link ? ns_upload_attr(ns, rel, &m)
			 : ns_upload_attr_posix(ns, rel, &m);

	if (rc)
		return rc;
	file_attr(out, &m);
	out->writable = !as_link;
	if (as_link && !m.is_dir) {
		rc = ns_upload_key(ns, rel, &key);
		if (!rc)
			rc = link_size(ns, key.data, &out->size);
		buf_release(&key);
	}
	return rc;
}

static uint64_t locked_size(struct ns *ns, const uint64_t *field)
{
	uint64_t v;

	pthread_mutex_lock(&ns->lock);
	v = *field;
	pthread_mutex_unlock(&ns->lock);
	return v;
}

int ns_getattr(struct ns *ns, const char *path, struct ns_attr *out)
{
	struct path_info pi;
	unsigned idx = 0;
	int rc = path_parse(path, strlen(ns->cfg->fs.uploads_prefix), &pi);

	if (!rc && (pi.area == PA_THUMBS || pi.area == PA_LINKS_THUMBS))
		rc = ns_thumb_idx(ns, pi.thumb_size, &idx);
	if (rc)
		return rc;
	if (!path_utf8_ok(pi.rel))
		return ENOENT; /* S3 keys are UTF-8: no such object can exist */
	if (!*pi.rel && pi.area != PA_METRICS && pi.area != PA_LINKS_INDEX) {
		dir_attr(ns, out, pi.area == PA_UPLOADS);
		return 0;
	}
	switch (pi.area) {
	case PA_UPLOADS:
		return upload_attr(ns, pi.rel, 0, out);
	case PA_LINKS_UPLOADS:
		return upload_attr(ns, pi.rel, 1, out);
	case PA_THUMBS:
		return thumb_attr(ns, pi.rel, idx, 0, out);
	case PA_LINKS_THUMBS:
		return thumb_attr(ns, pi.rel, idx, 1, out);
	case PA_LINKS_UPLOAD:
		return ns_uplink_attr(ns, pi.rel, out);
	case PA_LINKS_GALLERY:
		return ns_gallery_attr(ns, pi.rel, 0, out);
	case PA_LINKS_INDEX:
		return ns_gallery_attr(ns, "", 1, out);
	case PA_METRICS:
		memset(out, 0, sizeof(*out));
		out->mtime = time(NULL);
		out->size = locked_size(ns, &ns->metrics_size);
		return 0;
	default:
		return ENOENT;
	}
}

/* --- listings ------------------------------------------------------------ */

struct collect {
	struct hmap *seen;       /* name -> struct meta_attr * */
	const char *prefix;
	size_t plen;
	time_t now;              /* the time shown for local entries */
	int err;
};

static int collect_entry(void *arg, const char *name,
			 const struct meta_attr *a);

/* Add one page of a listing of prefix to l. S3 keeps no time of a
 * folder: its folders get dir_mtime. */
static int add_page(struct meta_listing *l, const char *prefix,
		    const struct store_list_page *page, time_t dir_mtime)
{
	size_t plen = strlen(prefix);
	int rc = 0;

	for (size_t i = 0; i < page->nentries && !rc; i++) {
		const struct store_list_entry *e = &page->entries[i];
		const char *name = e->key + plen;
		struct meta_attr a = {.size = e->size, .mtime = e->mtime};

		if (!path_name_ok(name, strlen(name)))
			continue; /* the folder's own marker, or unshowable */
		snprintf(a.etag, sizeof(a.etag), "%s", e->etag);
		rc = meta_listing_add(l, name, &a);
	}
	for (size_t i = 0; i < page->nprefixes && !rc; i++) {
		char *name = page->prefixes[i] + plen;
		size_t len = strlen(name);
		struct meta_attr a = {.is_dir = 1, .mtime = dir_mtime};

		if (len && name[len - 1] == '/')
			len--;
		if (!path_name_ok(name, len))
			continue;
		name[len] = '\0';
		rc = meta_listing_add(l, name, &a);
	}
	return rc;
}

/* List prefix completely (one request per 1000 entries) into c (unless
 * NULL) and the cache (c gets it even when the cache would not keep it: metadata_ttl=0). */
static int fetch_listing(struct ns *ns, const char *prefix, struct collect *c)
{
	struct meta_listing *l = meta_listing_new();
	uint64_t gen = meta_gen(ns->meta);
	char *token = NULL;
	int rc = l ? 0 : ENOMEM;

	do {
		struct store_list_page page = {0};

		rc = store_list(ns->store, prefix, "/", token, 1000, &page);
		free(token);
		token = NULL;
		if (!rc)
			rc = add_page(l, prefix, &page, ns->started);
		if (!rc && page.next_token)
			token = strdup(page.next_token);
		store_list_page_release(&page);
	} while (!rc && token);
	free(token);
	if (rc) {
		meta_listing_free(l);
		return rc;
	}
	meta_listing_carry(ns->meta, prefix, l); /* show what a stat does */
	if (c)
		meta_listing_each(l, collect_entry, c);
	meta_dir_store_since(ns->meta, prefix, l, gen);
	return 0;
}


static int collect_entry(void *arg, const char *name, const struct meta_attr *a)
{
	struct collect *c = arg;
	struct meta_attr *copy = malloc(sizeof(*copy));
	void *old = NULL;

	if (!copy || hmap_put(c->seen, name, copy, &old)) {
		free(copy);
		c->err = ENOMEM;
		return 1;
	}
	*copy = *a;
	free(old);
	return 0;
}

/* Entries the bucket does not show yet: empty folders made with mkdir and
 * files being written. Locks held: ns->lock. */
static int collect_local(void *arg, const char *key, void *value)
{
	struct collect *c = arg;
	const char *rest;
	size_t len;
	struct meta_attr a = {0};
	char name[PATH_NAME_MAX + 1];

	if (strncmp(key, c->prefix, c->plen) != 0)
		return 0; /* not below the folder (key may be shorter) */
	rest = key + c->plen;
	len = strcspn(rest, "/");
	if (!len || len > PATH_NAME_MAX)
		return 0;
	if (rest[len] == '/' && rest[len + 1] != '\0')
		return 0; /* deeper than one level */
	a.is_dir = value == (void *)1 && rest[len] == '/';
	a.mtime = c->now;
	memcpy(name, rest, len);
	name[len] = '\0';
	if (!hmap_get(c->seen, name))
		collect_entry(c, name, &a);
	return 0;
}

/* Every entry of the uploads folder prefix, into c->seen. */
static int list_uploads(struct ns *ns, const char *prefix, struct collect *c)
{
	int rc = meta_dir_each(ns->meta, prefix, collect_entry, c);

	if (rc == ENOENT)
		rc = fetch_listing(ns, prefix, c);
	if (rc)
		return rc;
	pthread_mutex_lock(&ns->lock);
	hmap_each(ns->local_dirs, collect_local, c);
	hmap_each(ns->writers, collect_local, c);
	pthread_mutex_unlock(&ns->lock);
	return c->err;
}

int ns_list_folder(struct ns *ns, const char *prefix, struct hmap *seen)
{
	struct collect c = {seen, prefix, strlen(prefix), ns->started, 0};

	return list_uploads(ns, prefix, &c);
}

struct emit {
	struct ns *ns;
	enum path_area area;
	unsigned idx;        /* the thumbnail size, for the thumbnail areas */
	const char *prefix;  /* the uploads folder listed */
	ns_fill_fn fn;
	void *arg;
};

static int emit_thumb(struct emit *e, const char *name,
		      const struct meta_attr *m, struct ns_attr *a)
{
	struct buf tname = BUF_INIT, key = BUF_INIT, tkey = BUF_INIT;
	int rc;

	if (!thumbs_is_image(name) ||
	    (m->posix_known && ns_stored_type(&m->posix) != S_IFREG))
		return 0; /* a link named like an image has none */
	rc = thumbs_name_for(name, &tname);
	if (!rc)
		rc = buf_addf(&key, "%s%s", e->prefix, name);
	if (!rc && e->area == PA_THUMBS)
		thumbs_peek_size_n(e->ns->thumbs, e->idx, key.data, m->etag,
				   &a->size);
	else if (!rc)
		rc = thumbs_key_for_n(e->ns->thumbs, e->idx, key.data, &tkey);
	if (!rc && e->area == PA_LINKS_THUMBS)
		rc = link_size(e->ns, tkey.data, &a->size);
	if (!rc)
		rc = e->fn(e->arg, tname.data, a);
	buf_release(&tname);
	buf_release(&key);
	buf_release(&tkey);
	return rc;
}

static int emit_entry(void *arg, const char *name, void *value)
{
	struct emit *e = arg;
	const struct meta_attr *m = value;
	struct ns_attr a;
	struct buf key = BUF_INIT;
	int rc;

	file_attr(&a, m);
	if (e->area == PA_LINKS_UPLOAD &&
	    (!m->is_dir || ns_uplink_reserved(name)))
		return 0; /* only folders, and not those the files hide */
	if (e->area == PA_LINKS_GALLERY &&
	    (!m->is_dir || !ns_gallery_dir_shown(name)))
		return 0;
	if (m->is_dir) {
		dir_attr(e->ns, &a, e->area == PA_UPLOADS);
		return e->fn(e->arg, name, &a);
	}
	a.writable = e->area == PA_UPLOADS;
	if (e->area == PA_UPLOADS)
		return e->fn(e->arg, name, &a);
	if (e->area != PA_LINKS_UPLOADS)
		return emit_thumb(e, name, m, &a);
	a.size = 0;
	rc = buf_addf(&key, "%s%s", e->prefix, name);
	if (!rc)
		rc = link_size(e->ns, key.data, &a.size);
	if (!rc)
		rc = e->fn(e->arg, name, &a);
	buf_release(&key);
	return rc;
}

/* One entry of the root or .links/. */
static int top_entry(struct ns *ns, enum path_area area, const char *name,
		     ns_fill_fn fn, void *arg)
{
	struct ns_attr a;

	dir_attr(ns, &a, !strcmp(name, "uploads"));
	if (!strcmp(name, ".metrics") || !strcmp(name, "index.html")) {
		a.is_dir = 0;
		a.size = locked_size(ns, area == PA_ROOT ? &ns->metrics_size
							 : &ns->index_size);
	}
	return fn(arg, name, &a);
}

static int readdir_top(struct ns *ns, enum path_area area, ns_fill_fn fn,
		       void *arg)
{
	static const char *const root[] = {"uploads", "thumbnails", ".links",
					   ".metrics"};
	static const char *const links[] = {"uploads", "thumbnails",
					    "index.html", "upload",
					    "gallery"};
	const char *const *names = area == PA_ROOT ? root : links;
	size_t n = area == PA_ROOT ? sizeof(root) / sizeof(*root)
				   : sizeof(links) / sizeof(*links);
	const struct thumb_conf *tc = &ns->cfg->thumb;
	char sized[32];

	for (size_t i = 0; i < n; i++) {
		if (top_entry(ns, area, names[i], fn, arg))
			return 0;
		if (strcmp(names[i], "thumbnails") != 0)
			continue;
		for (unsigned s = 1; s < tc->nsizes; s++) {
			snprintf(sized, sizeof(sized), "thumbnails-%u",
				 tc->sizes[s]);
			if (top_entry(ns, area, sized, fn, arg))
				return 0;
		}
	}
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct sorted {
	const char **names;
	size_t n;
};

static int sorted_add(void *arg, const char *name, void *value)
{
	struct sorted *s = arg;

	(void)value;
	s->names[s->n++] = name;
	return 0;
}

/* Emit the entries of seen in name order, as S3 lists them, so that a
 * reader walking the listing walks it in the order read-ahead expects. */
static int emit_sorted(struct hmap *seen, struct emit *e)
{
	struct sorted s = {calloc(hmap_count(seen) + 1, sizeof(char *)), 0};

	if (!s.names)
		return ENOMEM;
	hmap_each(seen, sorted_add, &s);
	qsort(s.names, s.n, sizeof(*s.names), name_cmp);
	for (size_t i = 0; i < s.n; i++)
		if (emit_entry(e, s.names[i], hmap_get(seen, s.names[i])))
			break;
	free(s.names);
	return 0;
}

int ns_readdir(struct ns *ns, const char *path, ns_fill_fn fn, void *arg)
{
	struct path_info pi;
	struct buf prefix = BUF_INIT;
	struct collect c = {0};
	struct emit e = {ns, 0, 0, NULL, fn, arg};
	int rc = path_parse(path, strlen(ns->cfg->fs.uploads_prefix), &pi);

	if (!rc && (pi.area == PA_THUMBS || pi.area == PA_LINKS_THUMBS))
		rc = ns_thumb_idx(ns, pi.thumb_size, &e.idx);
	if (rc)
		return rc;
	if (pi.area == PA_ROOT || pi.area == PA_LINKS)
		return readdir_top(ns, pi.area, fn, arg);
	if (pi.area == PA_METRICS || pi.area == PA_LINKS_INDEX)
		return ENOTDIR;
	c.seen = hmap_create();
	rc = c.seen ? ns_dir_prefix(ns, pi.rel, &prefix) : ENOMEM;
	c.prefix = prefix.data;
	c.plen = prefix.len;
	c.now = ns->started;
	if (!rc)
		rc = list_uploads(ns, prefix.data, &c);
	e.area = pi.area;
	e.prefix = prefix.data;
	if (!rc)
		rc = emit_sorted(c.seen, &e);
	if (!rc && pi.area == PA_LINKS_UPLOAD)
		rc = ns_uplink_files(ns, pi.rel, fn, arg);
	if (!rc && pi.area == PA_LINKS_GALLERY)
		rc = ns_gallery_files(ns, c.seen, fn, arg);
	hmap_destroy(c.seen, free);
	buf_release(&prefix);
	return rc;
}
