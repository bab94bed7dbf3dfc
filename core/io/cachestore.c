/*
 * cachestore: the data cache as a store layer (see cachestore.h).
 *
 * Multipart uploads in progress are a list of struct mpu, by upload id,
 * protected by cs->lock; a part's stage write happens outside the lock
 * (a stage is thread-safe).
 */
#include "io/cachestore.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define B ((uint64_t)DATACACHE_BLOCK)

struct mpu {
	struct mpu *next;
	char *upload_id;
	struct datacache_stage *stage;
	uint64_t *lens;           /* lens[n - 1]: bytes of part n, 0 unseen */
	size_t nlens;
};

struct cachestore {
	struct store base;        /* first: a struct store * is a cachestore */
	struct store *inner;
	struct datacache *dc;
	uint64_t part_size;
	pthread_mutex_t lock;
	struct mpu *mpus;         /* protected by lock */
};

static struct cachestore *cs_of(struct store *st)
{
	return (struct cachestore *)st;
}

/* --- reads ---------------------------------------------------------- */

/* Passes bytes on and caches them by block from block `block` on. */
struct tee {
	store_sink_fn sink;
	void *arg;
	struct cachestore *cs;
	const char *key, *etag;
	uint64_t block;
	struct buf cur;
	int off;                  /* caching stopped (ENOMEM) */
};

static int tee_sink(void *arg, const void *data, size_t len)
{
	struct tee *t = arg;
	const char *p = data;
	size_t left = len;

	while (left && !t->off) {
		size_t n = B - t->cur.len < left ? (size_t)(B - t->cur.len) : left;

		if (buf_add(&t->cur, p, n)) {
			t->off = 1;
			break;
		}
		p += n;
		left -= n;
		if (t->cur.len == B) {
			datacache_put(t->cs->dc, t->key, t->etag, t->block++,
				      t->cur.data, t->cur.len);
			buf_reset(&t->cur);
		}
	}
	return t->sink(t->arg, data, len);
}

/* Fetch from block `from` to the end through a tee. */
static int get_rest(struct cachestore *cs, const char *key, const char *etag,
		    uint64_t from, store_sink_fn sink, void *arg,
		    struct store_object *info)
{
	struct tee t = {sink, arg, cs, key, etag, from, BUF_INIT, 0};
	int rc = store_get(cs->inner, key, from * B, 0, etag, tee_sink, &t, info);

	if (!rc && !t.off && t.cur.len)
		datacache_put(cs->dc, key, etag, t.block, t.cur.data, t.cur.len);
	if (!rc && !t.off)
		datacache_put_size(cs->dc, key, etag, t.block * B + t.cur.len);
	buf_release(&t.cur);
	return rc;
}

/* A whole object at etag: cached blocks first, then the rest. */
static int get_whole(struct cachestore *cs, const char *key, const char *etag,
		     store_sink_fn sink, void *arg, struct store_object *info)
{
	struct buf b = BUF_INIT;
	uint64_t size, block = 0;
	int rc = 0;

	if (datacache_get_size(cs->dc, key, etag, &size))
		return get_rest(cs, key, etag, 0, sink, arg, info);
	for (; block * B < size; block++) {
		uint64_t len = size - block * B < B ? size - block * B : B;

		if (datacache_get(cs->dc, key, etag, block, (size_t)len, &b))
			break;
		if (sink(arg, b.data, (size_t)len)) {
			rc = ECANCELED;
			break;
		}
	}
	buf_release(&b);
	if (!rc && block * B < size)
		rc = get_rest(cs, key, etag, block, sink, arg, info);
	if (!rc && info) {
		info->size = size;
		snprintf(info->etag, sizeof(info->etag), "%s", etag);
	}
	return rc;
}

static int cs_get(struct store *st, const char *key, uint64_t off,
		  uint64_t len, const char *if_match, store_sink_fn sink,
		  void *arg, struct store_object *info)
{
	struct cachestore *cs = cs_of(st);

	if (off || len || !if_match || !if_match[0])
		return store_get(cs->inner, key, off, len, if_match, sink, arg,
				 info);
	if (info)
		memset(info, 0, sizeof(*info));
	return get_whole(cs, key, if_match, sink, arg, info);
}

/* --- writes --------------------------------------------------------- */

static void cache_body(struct cachestore *cs, const char *key,
		       const char *etag, const void *data, size_t len)
{
	const char *p = data;

	for (uint64_t off = 0; off < len; off += B) {
		size_t n = len - off < B ? (size_t)(len - off) : (size_t)B;

		datacache_put(cs->dc, key, etag, off / B, p + off, n);
	}
	datacache_put_size(cs->dc, key, etag, len);
}

static int cs_put(struct store *st, const char *key, const void *data,
		  size_t len, const struct store_put_opts *opts,
		  char etag_out[STORE_ETAG_MAX])
{
	struct cachestore *cs = cs_of(st);
	char etag[STORE_ETAG_MAX] = "";
	int rc = store_put(cs->inner, key, data, len, opts, etag);

	if (!rc && etag[0] && len)
		cache_body(cs, key, etag, data, len);
	if (!rc && etag_out)
		memcpy(etag_out, etag, STORE_ETAG_MAX);
	return rc;
}

/* The mpu for upload_id, unlinked from the list when take. Lock held. */
static struct mpu *find_mpu(struct cachestore *cs, const char *upload_id,
			    int take)
{
	for (struct mpu **pp = &cs->mpus; *pp; pp = &(*pp)->next) {
		struct mpu *m = *pp;

		if (strcmp(m->upload_id, upload_id))
			continue;
		if (take)
			*pp = m->next;
		return m;
	}
	return NULL;
}

static void mpu_free(struct mpu *m, int abort_stage)
{
	if (!m)
		return;
	if (abort_stage)
		datacache_stage_abort(m->stage);
	free(m->lens);
	free(m->upload_id);
	free(m);
}

static int cs_mpu_create(struct store *st, const char *key,
			 const struct store_put_opts *opts, char **upload_id)
{
	struct cachestore *cs = cs_of(st);
	int rc = store_mpu_create(cs->inner, key, opts, upload_id);
	struct mpu *m;

	if (rc || !cs->dc)
		return rc;
	m = calloc(1, sizeof(*m));
	if (!m)
		return 0;
	m->upload_id = strdup(*upload_id);
	m->stage = datacache_stage_begin(cs->dc, key);
	if (!m->upload_id || !m->stage) {
		mpu_free(m, 1);
		return 0;
	}
	pthread_mutex_lock(&cs->lock);
	m->next = cs->mpus;
	cs->mpus = m;
	pthread_mutex_unlock(&cs->lock);
	return 0;
}

/* Note part n's length; its stage, or NULL when it is not to be staged. */
static struct datacache_stage *note_part(struct cachestore *cs,
					 const char *upload_id, unsigned n,
					 size_t len)
{
	struct datacache_stage *stage = NULL;
	struct mpu *m;

	pthread_mutex_lock(&cs->lock);
	m = find_mpu(cs, upload_id, 0);
	if (m && n >= 1 && len && len <= cs->part_size && n > m->nlens) {
		size_t cap = n + 16;
		uint64_t *p = realloc(m->lens, cap * sizeof(*p));

		if (p) {
			memset(p + m->nlens, 0, (cap - m->nlens) * sizeof(*p));
			m->lens = p;
			m->nlens = cap;
		}
	}
	if (m && n >= 1 && n <= m->nlens && len <= cs->part_size) {
		m->lens[n - 1] = len;
		stage = m->stage;
	}
	pthread_mutex_unlock(&cs->lock);
	return stage;
}

static int cs_mpu_part(struct store *st, const char *key,
		       const char *upload_id, unsigned part_number,
		       const void *data, size_t len,
		       char etag_out[STORE_ETAG_MAX])
{
	struct cachestore *cs = cs_of(st);
	int rc = store_mpu_part(cs->inner, key, upload_id, part_number, data,
				len, etag_out);
	struct datacache_stage *stage;

	if (rc || !cs->dc)
		return rc;
	stage = note_part(cs, upload_id, part_number, len);
	if (stage)
		datacache_stage_write(stage, (uint64_t)(part_number - 1) *
						     cs->part_size, data, len);
	return 0;
}

/* The object's size if parts are 1..n, all but the last part_size. */
static int parts_fit(const struct cachestore *cs, const struct mpu *m,
		     const struct store_part *parts, size_t nparts,
		     uint64_t *size)
{
	*size = 0;
	if (!nparts || nparts > m->nlens || cs->part_size % B)
		return 0;
	for (size_t i = 0; i < nparts; i++) {
		uint64_t len = m->lens[i];

		if (parts[i].number != i + 1 || !len)
			return 0;
		if (i + 1 < nparts && len != cs->part_size)
			return 0;
		*size += len;
	}
	return 1;
}

static int cs_mpu_complete(struct store *st, const char *key,
			   const char *upload_id,
			   const struct store_part *parts, size_t nparts,
			   char etag_out[STORE_ETAG_MAX])
{
	struct cachestore *cs = cs_of(st);
	char etag[STORE_ETAG_MAX] = "";
	int rc = store_mpu_complete(cs->inner, key, upload_id, parts, nparts,
				    etag);
	struct mpu *m;
	uint64_t size;

	if (!rc && etag_out)
		memcpy(etag_out, etag, STORE_ETAG_MAX);
	pthread_mutex_lock(&cs->lock);
	m = rc ? NULL : find_mpu(cs, upload_id, 1);
	pthread_mutex_unlock(&cs->lock);
	if (!m)
		return rc;
	if (etag[0] && parts_fit(cs, m, parts, nparts, &size))
		datacache_stage_commit(m->stage, etag, size);
	else
		datacache_stage_abort(m->stage);
	mpu_free(m, 0);
	return rc;
}

static int cs_mpu_abort(struct store *st, const char *key,
			const char *upload_id)
{
	struct cachestore *cs = cs_of(st);
	struct mpu *m;

	pthread_mutex_lock(&cs->lock);
	m = find_mpu(cs, upload_id, 1);
	pthread_mutex_unlock(&cs->lock);
	mpu_free(m, 1);
	return store_mpu_abort(cs->inner, key, upload_id);
}

/* --- pass-through --------------------------------------------------- */

static int cs_head(struct store *st, const char *key, struct store_object *out)
{
	return store_head(cs_of(st)->inner, key, out);
}

static int cs_del(struct store *st, const char *key)
{
	return store_delete(cs_of(st)->inner, key);
}

/* A copy is a new object under its own ETag: nothing cached is reused. */
static int cs_copy(struct store *st, const char *src_key, const char *dst_key,
		   const struct store_put_opts *replace, uint64_t src_size,
		   char etag_out[STORE_ETAG_MAX])
{
	return store_copy(cs_of(st)->inner, src_key, dst_key, replace,
			  src_size, etag_out);
}

static int cs_list(struct store *st, const char *prefix, const char *delimiter,
		   const char *token, unsigned max_keys,
		   struct store_list_page *out)
{
	return store_list(cs_of(st)->inner, prefix, delimiter, token, max_keys,
			  out);
}

static int cs_mpu_list(struct store *st, const char *prefix, store_mpu_fn fn,
		       void *arg)
{
	return store_mpu_list(cs_of(st)->inner, prefix, fn, arg);
}

static const struct store_ops cachestore_ops = {
	.head = cs_head,
	.get = cs_get,
	.put = cs_put,
	.del = cs_del,
	.copy = cs_copy,
	.list = cs_list,
	.mpu_create = cs_mpu_create,
	.mpu_part = cs_mpu_part,
	.mpu_complete = cs_mpu_complete,
	.mpu_abort = cs_mpu_abort,
	.mpu_list = cs_mpu_list,
};

struct store *cachestore_create(struct store *inner, struct datacache *dc,
				uint64_t part_size)
{
	struct cachestore *cs = calloc(1, sizeof(*cs));

	if (!cs)
		return NULL;
	if (pthread_mutex_init(&cs->lock, NULL)) {
		free(cs);
		errno = ENOMEM;
		return NULL;
	}
	cs->base.ops = &cachestore_ops;
	cs->inner = inner;
	cs->dc = dc;
	cs->part_size = part_size;
	return &cs->base;
}

void cachestore_destroy(struct store *st)
{
	struct cachestore *cs;

	if (!st)
		return;
	cs = cs_of(st);
	while (cs->mpus) {
		struct mpu *m = cs->mpus;

		cs->mpus = m->next;
		mpu_free(m, 1);
	}
	pthread_mutex_destroy(&cs->lock);
	free(cs);
}
