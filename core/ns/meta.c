/*
 * meta: listing and attribute cache (see meta.h).
 *
 * dirs maps a prefix to its last complete listing (a map name -> attr);
 * attrs maps "prefix\nname" to a single entry learnt from HEAD or from the
 * daemon's own writes, positive or negative. Both expire after ttl.
 * walks maps a prefix that was ever listed to the misses counted since
 * (see meta_dir_walked()).
 *
 * Bounds: whenever the four maps together have doubled since the last
 * sweep, expired listings and entries are dropped; then, above
 * META_ATTRS_MAX entries or META_DIRS_MAX listings, the oldest are dropped
 * down to half of that, and above META_WALKS_MAX walks (or changes) those
 * of prefixes without a listing are forgotten. Forgetting is always safe:
 * a dropped change marks every listing under way as stale (untracked).
 */
#include "ns/meta.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/hmap.h"

struct meta_listing {
	struct hmap *names; /* name -> struct meta_attr * */
};

struct mdir {
	double stamp;
	struct meta_listing *l;
};

struct mattr {
	double stamp;
	int absent;
	struct meta_attr a;
};

struct mwalk {
	size_t entries;  /* in the last listing stored */
	unsigned misses; /* lookups that missed since it was stored */
};

#define META_SWEEP_MIN 1024   /* the maps' size at the first sweep */
#define META_ATTRS_MAX 65536  /* single entries kept at most */
#define META_DIRS_MAX 4096    /* listings kept at most */
#define META_WALKS_MAX 16384  /* walks and changes kept at most */

struct meta;
static void bound_locked(struct meta *m);

struct meta {
	double ttl;
	pthread_mutex_t lock;
	struct hmap *dirs;  /* protected by lock */
	struct hmap *attrs; /* protected by lock */
	struct hmap *walks; /* prefix -> struct mwalk *; protected by lock */
	struct hmap *changed; /* prefix -> uint64_t *: gen at its last change;
				 protected by lock */
	uint64_t gen;       /* counts changes; protected by lock */
	uint64_t untracked; /* gen of a change not recorded by dir; protected
			       by lock */
	size_t sweep_at;    /* sweep when the maps hold this many; protected
			       by lock */
};

struct meta_listing *meta_listing_new(void)
{
	struct meta_listing *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->names = hmap_create();
	if (!l->names) {
		free(l);
		return NULL;
	}
	return l;
}

int meta_listing_add(struct meta_listing *l, const char *name,
		     const struct meta_attr *a)
{
	struct meta_attr *copy = malloc(sizeof(*copy));
	void *old;

	if (!copy)
		return ENOMEM;
	*copy = *a;
	if (hmap_put(l->names, name, copy, &old)) {
		free(copy);
		return ENOMEM;
	}
	free(old);
	return 0;
}

void meta_listing_free(struct meta_listing *l)
{
	if (!l)
		return;
	hmap_destroy(l->names, free);
	free(l);
}

static void mdir_free(void *p)
{
	struct mdir *d = p;

	meta_listing_free(d->l);
	free(d);
}

struct meta *meta_create(double ttl)
{
	struct meta *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->ttl = ttl;
	m->sweep_at = META_SWEEP_MIN;
	m->dirs = hmap_create();
	m->attrs = hmap_create();
	m->walks = hmap_create();
	m->changed = hmap_create();
	if (!m->dirs || !m->attrs || !m->walks || !m->changed ||
	    pthread_mutex_init(&m->lock, NULL)) {
		hmap_destroy(m->dirs, NULL);
		hmap_destroy(m->attrs, NULL);
		hmap_destroy(m->walks, NULL);
		hmap_destroy(m->changed, NULL);
		free(m);
		errno = ENOMEM;
		return NULL;
	}
	return m;
}

void meta_destroy(struct meta *m)
{
	if (!m)
		return;
	hmap_destroy(m->dirs, mdir_free);
	hmap_destroy(m->attrs, free);
	hmap_destroy(m->walks, free);
	hmap_destroy(m->changed, free);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* The attrs map's key for dir/name; NULL on ENOMEM. */
static char *attr_key(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;

	if (buf_addf(&b, "%s\n%s", dir, name)) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

/* A fresh listing of dir, or NULL; drops a stale one. Lock held. */
static struct mdir *fresh_dir(struct meta *m, const char *dir, double now)
{
	struct mdir *d = hmap_get(m->dirs, dir);

	if (d && now - d->stamp > m->ttl) {
		mdir_free(hmap_remove(m->dirs, dir));
		d = NULL;
	}
	return d;
}

/* A fresh single entry for key, or NULL; drops a stale one. Lock held. */
static struct mattr *fresh_attr(struct meta *m, const char *key, double now)
{
	struct mattr *a = hmap_get(m->attrs, key);

	if (a && now - a->stamp > m->ttl) {
		free(hmap_remove(m->attrs, key));
		a = NULL;
	}
	return a;
}

static enum meta_hit lookup_locked(struct meta *m, const char *dir,
				   const char *name, const char *key,
				   struct meta_attr *out)
{
	double now = mono_s();
	struct mattr *a = fresh_attr(m, key, now);
	struct mdir *d;
	struct meta_attr *e;

	if (a) {
		if (a->absent)
			return META_ABSENT;
		*out = a->a;
		return META_FOUND;
	}
	d = fresh_dir(m, dir, now);
	if (!d)
		return META_MISS;
	e = hmap_get(d->l->names, name);
	if (!e)
		return META_ABSENT;
	*out = *e;
	return META_FOUND;
}

enum meta_hit meta_lookup(struct meta *m, const char *dir, const char *name,
			  struct meta_attr *out)
{
	char *key = attr_key(dir, name);
	enum meta_hit hit;

	if (!key)
		return META_MISS;
	pthread_mutex_lock(&m->lock);
	hit = lookup_locked(m, dir, name, key, out);
	pthread_mutex_unlock(&m->lock);
	free(key);
	return hit;
}

#define META_PAGE 1000 /* entries in one LIST page */

/* Restart the miss count of dir, which now has a listing of n entries.
 * Lock held. */
static void walk_reset(struct meta *m, const char *dir, size_t n)
{
	struct mwalk *w = hmap_get(m->walks, dir);
	void *old = NULL;

	if (!w) {
		w = malloc(sizeof(*w));
		if (!w)
			return;
		if (hmap_put(m->walks, dir, w, &old)) {
			free(w);
			return;
		}
	}
	w->entries = n;
	w->misses = 0;
}

/* A listing carries no stored attributes: keep those already known of an
 * entry whose object is the same (same ETag). */
static int carry_posix(void *arg, const char *name, void *value)
{
	struct meta_listing *l = arg;
	const struct meta_attr *old = value;
	struct meta_attr *now = hmap_get(l->names, name);

	if (now && old->posix_known && !now->posix_known && !now->is_dir &&
	    !strcmp(now->etag, old->etag)) {
		now->posix = old->posix;
		now->posix_known = 1;
	}
	return 0;
}

struct carry_ctx {
	struct meta *m;
	const char *dir;
};

/* The same from the single-entry map (HEADs, the daemon's own writes).
 * Lock held. */
static int carry_attr(void *arg, const char *name, void *value)
{
	struct carry_ctx *c = arg;
	struct meta_attr *now = value;
	char *key = now->posix_known || now->is_dir ? NULL
						    : attr_key(c->dir, name);
	struct mattr *a = key ? hmap_get(c->m->attrs, key) : NULL;

	if (a && !a->absent && a->a.posix_known && !strcmp(a->a.etag, now->etag)) {
		now->posix = a->a.posix;
		now->posix_known = 1;
	}
	free(key);
	return 0;
}

/* Both carries into l, from dir's listing now and from the single
 * entries. Lock held. */
static void carry_locked(struct meta *m, const char *dir,
			 struct meta_listing *l)
{
	struct carry_ctx cc = {m, dir};
	struct mdir *old = hmap_get(m->dirs, dir);

	if (old)
		hmap_each(old->l->names, carry_posix, l);
	hmap_each(l->names, carry_attr, &cc);
}

void meta_listing_carry(struct meta *m, const char *dir,
			struct meta_listing *l)
{
	pthread_mutex_lock(&m->lock);
	carry_locked(m, dir, l);
	pthread_mutex_unlock(&m->lock);
}

void meta_dir_store(struct meta *m, const char *dir, struct meta_listing *l)
{
	meta_dir_store_since(m, dir, l, UINT64_MAX);
}

void meta_dir_store_since(struct meta *m, const char *dir,
			  struct meta_listing *l, uint64_t since)
{
	uint64_t *changed;

	struct mdir *d = malloc(sizeof(*d));
	void *old = NULL;

	if (!d) {
		meta_listing_free(l);
		return;
	}
	d->stamp = mono_s();
	d->l = l;
	pthread_mutex_lock(&m->lock);
	changed = hmap_get(m->changed, dir);
	if (since != UINT64_MAX &&
	    ((changed && *changed > since) || m->untracked > since)) {
		/* the daemon changed dir while this listing was under way: it
		 * may miss that change, so it is not kept */
		pthread_mutex_unlock(&m->lock);
		mdir_free(d);
		return;
	}
	carry_locked(m, dir, l);
	old = NULL;
	if (hmap_put(m->dirs, dir, d, &old)) {
		mdir_free(d);
		old = NULL;
	} else {
		walk_reset(m, dir, hmap_count(l->names));
	}
	bound_locked(m);
	pthread_mutex_unlock(&m->lock);
	if (old)
		mdir_free(old);
}

struct each_ctx {
	int (*fn)(void *arg, const char *name, const struct meta_attr *a);
	void *arg;
};

static int each_entry(void *arg, const char *name, void *value)
{
	struct each_ctx *c = arg;

	return c->fn(c->arg, name, value);
}

void meta_listing_each(const struct meta_listing *l,
		       int (*fn)(void *arg, const char *name,
				 const struct meta_attr *a),
		       void *arg)
{
	struct each_ctx c = {fn, arg};

	hmap_each(l->names, each_entry, &c);
}

int meta_dir_each(struct meta *m, const char *dir,
		  int (*fn)(void *arg, const char *name,
			    const struct meta_attr *a),
		  void *arg)
{
	struct each_ctx c = {fn, arg};
	struct mdir *d;
	int r = ENOENT;

	pthread_mutex_lock(&m->lock);
	d = fresh_dir(m, dir, mono_s());
	if (d) {
		hmap_each(d->l->names, each_entry, &c);
		r = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

/* dir changed now. Lock held. */
static void note_change(struct meta *m, const char *dir)
{
	uint64_t *g = hmap_get(m->changed, dir);

	m->gen++;
	if (!g && (g = malloc(sizeof(*g))) && hmap_put(m->changed, dir, g, NULL)) {
		free(g);
		g = NULL;
	}
	if (g)
		*g = m->gen;
	else
		m->untracked = m->gen; /* out of memory: every dir counts as changed */
}

uint64_t meta_gen(struct meta *m)
{
	uint64_t g;

	pthread_mutex_lock(&m->lock);
	g = m->gen;
	pthread_mutex_unlock(&m->lock);
	return g;
}

/* Sweeping: the keys of the entries to drop, chosen under the lock. */
struct sweep_ctx {
	struct meta *m;
	double now;
	double cutoff;     /* drop entries stamped at or before it; -1: none */
	struct buf doomed; /* NUL-separated keys */
	double *stamps;    /* gathered by gather_*(), for the cutoff */
	size_t n;
};

static double attr_stamp(void *value)
{
	return ((struct mattr *)value)->stamp;
}

static double dir_stamp(void *value)
{
	return ((struct mdir *)value)->stamp;
}

static int doom(struct sweep_ctx *c, const char *key, double stamp)
{
	if (c->now - stamp > c->m->ttl || stamp <= c->cutoff)
		buf_add(&c->doomed, key, strlen(key) + 1);
	return 0;
}

static int doom_attr(void *arg, const char *key, void *value)
{
	return doom(arg, key, attr_stamp(value));
}

static int doom_dir(void *arg, const char *key, void *value)
{
	return doom(arg, key, dir_stamp(value));
}

static int gather_attr(void *arg, const char *key, void *value)
{
	struct sweep_ctx *c = arg;

	c->stamps[c->n++] = attr_stamp(value);
	return 0;
}

static int gather_dir(void *arg, const char *key, void *value)
{
	struct sweep_ctx *c = arg;

	c->stamps[c->n++] = dir_stamp(value);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The stamp at or below which entries go so that at most keep remain of
 * h (-1: none need to). */
static double cutoff_for(struct hmap *h, size_t keep,
			 int (*gather)(void *, const char *, void *))
{
	struct sweep_ctx c = {0};
	double cut;
	size_t n = hmap_count(h);

	if (n <= keep)
		return -1;
	c.stamps = malloc(n * sizeof(*c.stamps));
	if (!c.stamps)
		return 1e300; /* out of memory: drop them all */
	hmap_each(h, gather, &c);
	qsort(c.stamps, c.n, sizeof(*c.stamps), cmp_double);
	cut = c.stamps[n - keep - 1];
	free(c.stamps);
	return cut;
}

/* Drop from h what is stale or stamped at or before cutoff. Lock held. */
static void drop_from(struct meta *m, struct hmap *h, double cutoff,
		      int (*pick)(void *, const char *, void *),
		      void (*release)(void *))
{
	struct sweep_ctx c = {m, mono_s(), cutoff, BUF_INIT, NULL, 0};

	hmap_each(h, pick, &c);
	for (size_t off = 0; off < c.doomed.len;) {
		const char *k = c.doomed.data + off;

		release(hmap_remove(h, k));
		off += strlen(k) + 1;
	}
	buf_release(&c.doomed);
}

static int doom_any(void *arg, const char *key, void *value)
{
	struct sweep_ctx *c = arg;

	buf_add(&c->doomed, key, strlen(key) + 1);
	return 0;
}

static int doom_unlisted(void *arg, const char *key, void *value)
{
	struct sweep_ctx *c = arg;

	if (!hmap_get(c->m->dirs, key))
		buf_add(&c->doomed, key, strlen(key) + 1);
	return 0;
}

/* Forget the walks of prefixes without a listing. Lock held. */
static void drop_walks(struct meta *m)
{
	struct sweep_ctx c = {m, 0, -1, BUF_INIT, NULL, 0};

	hmap_each(m->walks, doom_unlisted, &c);
	for (size_t off = 0; off < c.doomed.len;) {
		const char *k = c.doomed.data + off;

		free(hmap_remove(m->walks, k));
		off += strlen(k) + 1;
	}
	buf_release(&c.doomed);
}

static size_t held(const struct meta *m)
{
	return hmap_count(m->attrs) + hmap_count(m->dirs) +
	       hmap_count(m->walks) + hmap_count(m->changed);
}

/* Keep the maps bounded (see the top of this file). Lock held. */
static void bound_locked(struct meta *m)
{
	if (held(m) < m->sweep_at)
		return;
	if (hmap_count(m->attrs) > META_ATTRS_MAX)
		drop_from(m, m->attrs,
			  cutoff_for(m->attrs, META_ATTRS_MAX / 2, gather_attr),
			  doom_attr, free);
	else
		drop_from(m, m->attrs, -1, doom_attr, free);
	if (hmap_count(m->dirs) > META_DIRS_MAX)
		drop_from(m, m->dirs,
			  cutoff_for(m->dirs, META_DIRS_MAX / 2, gather_dir),
			  doom_dir, mdir_free);
	else
		drop_from(m, m->dirs, -1, doom_dir, mdir_free);
	if (hmap_count(m->walks) > META_WALKS_MAX)
		drop_walks(m);
	if (hmap_count(m->changed) > META_WALKS_MAX) {
		m->untracked = m->gen; /* every listing under way is stale */
		drop_from(m, m->changed, 1e300, doom_any, free);
	}
	m->sweep_at = held(m) * 2 > META_SWEEP_MIN ? held(m) * 2
						   : META_SWEEP_MIN;
}

size_t meta_held(struct meta *m)
{
	size_t n;

	pthread_mutex_lock(&m->lock);
	n = held(m);
	pthread_mutex_unlock(&m->lock);
	return n;
}

/* Record one entry (a = NULL: absent) in both maps. Lock held. */
static void set_locked(struct meta *m, const char *dir, const char *name,
		       const char *key, const struct meta_attr *a)
{
	struct mattr *e = malloc(sizeof(*e));
	struct mdir *d = fresh_dir(m, dir, mono_s());
	void *old = NULL;

	note_change(m, dir);
	if (d && a)
		meta_listing_add(d->l, name, a);
	else if (d)
		free(hmap_remove(d->l->names, name));
	if (!e)
		return;
	e->stamp = mono_s();
	e->absent = !a;
	if (a)
		e->a = *a;
	if (hmap_put(m->attrs, key, e, &old))
		free(e);
	free(old);
	bound_locked(m);
}

void meta_set(struct meta *m, const char *dir, const char *name,
	      const struct meta_attr *a)
{
	char *key = attr_key(dir, name);

	if (!key)
		return;
	pthread_mutex_lock(&m->lock);
	set_locked(m, dir, name, key, a);
	pthread_mutex_unlock(&m->lock);
	free(key);
}

void meta_set_absent(struct meta *m, const char *dir, const char *name)
{
	char *key = attr_key(dir, name);

	if (!key)
		return;
	pthread_mutex_lock(&m->lock);
	set_locked(m, dir, name, key, NULL);
	pthread_mutex_unlock(&m->lock);
	free(key);
}

void meta_forget(struct meta *m, const char *dir, const char *name)
{
	char *key = attr_key(dir, name);
	struct mdir *d;

	pthread_mutex_lock(&m->lock);
	note_change(m, dir);
	if (key)
		free(hmap_remove(m->attrs, key));
	d = hmap_remove(m->dirs, dir);
	pthread_mutex_unlock(&m->lock);
	if (d)
		mdir_free(d);
	free(key);
}

int meta_dir_walked(struct meta *m, const char *dir)
{
	struct mwalk *w;
	int relist = 0;

	pthread_mutex_lock(&m->lock);
	w = m->ttl > 0 ? hmap_get(m->walks, dir) : NULL; /* ttl 0: no reuse */
	if (w && w->misses < UINT_MAX) {
		w->misses++;
		relist = w->misses == 8 + 4 * (w->entries / META_PAGE);
	}
	pthread_mutex_unlock(&m->lock);
	return relist;
}

int meta_dir_listable(struct meta *m, const char *dir)
{
	struct mwalk *w;
	int ok;

	pthread_mutex_lock(&m->lock);
	w = hmap_get(m->walks, dir);
	ok = m->ttl > 0 && (!w || w->entries <= META_PAGE);
	pthread_mutex_unlock(&m->lock);
	return ok;
}

void meta_dir_set_big(struct meta *m, const char *dir)
{
	pthread_mutex_lock(&m->lock);
	walk_reset(m, dir, META_PAGE + 1);
	pthread_mutex_unlock(&m->lock);
}

struct forget_ctx {
	const char *dir;
	size_t len;
	struct buf doomed; /* NUL-separated keys to remove */
};

static int collect_under(void *arg, const char *key, void *value)
{
	struct forget_ctx *c = arg;

	if (strncmp(key, c->dir, c->len) == 0 && key[c->len] == '\n')
		buf_add(&c->doomed, key, strlen(key) + 1);
	return 0;
}

void meta_forget_dir(struct meta *m, const char *dir)
{
	struct forget_ctx c = {dir, strlen(dir), BUF_INIT};
	struct mdir *d;

	pthread_mutex_lock(&m->lock);
	m->untracked = ++m->gen; /* dir and every folder below it changed */
	d = hmap_remove(m->dirs, dir);
	hmap_each(m->attrs, collect_under, &c);
	for (size_t off = 0; off < c.doomed.len;) {
		const char *k = c.doomed.data + off;

		free(hmap_remove(m->attrs, k));
		off += strlen(k) + 1;
	}
	pthread_mutex_unlock(&m->lock);
	if (d)
		mdir_free(d);
	buf_release(&c.doomed);
}
