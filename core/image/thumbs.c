/*
 * thumbs: the thumbnail service (see thumbs.h; scheduling in
 * thumbs_sched.c, as thumbs_int.h describes).
 *
 * A request looks in the SQLite cache first; on a miss it takes over the
 * bytes of an eager request still waiting, if any, and one caller per
 * (source key, ETag) becomes the producer while the others wait for it
 * and then look again. The producer reuses the thumbnail object in the
 * bucket when its source-etag metadata matches (unless it holds the
 * source's bytes), else reads the source (If-Match the ETag it was asked
 * for) or uses the bytes held, has a worker decode every size at once,
 * and stores each in the cache and the bucket. A source that cannot be
 * thumbnailed is remembered in the cache for its ETag and logged once.
 *
 * Network requests run on the calling thread (or a producer thread for
 * background work). At most twice as many sources as decode slots are
 * read into memory at once for read-ahead and eager work, and as many
 * again as there are slots for readers (who so never wait for a guess to
 * make room), so memory stays bounded however many readers ask for new
 * thumbnails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "image/thumbs_int.h"

/* Where thumbs_fetch() found a thumbnail. */
enum thumbs_origin {
	ORIGIN_CACHE,     /* SQLite */
	ORIGIN_BUCKET,    /* the thumbnail object in S3 */
	ORIGIN_GENERATED, /* decoded now and stored in the bucket */
	ORIGIN_UNSTORED,  /* decoded now; storing it in the bucket failed */
};

static void thumbs_count(struct thumbs *t, enum metrics_counter c)
{
	if (t->m)
		metrics_add(t->m, c, 1);
}

static const char *thumbs_leaf(const char *key)
{
	const char *slash = strrchr(key, '/');

	return slash ? slash + 1 : key;
}

static struct cache_key thumbs_ck(const struct thumbs *t, unsigned idx,
				  const char *key, const char *etag)
{
	struct cache_key ck = {key, etag, thumb_engine_spec_n(t->engine, idx)};

	return ck;
}

/* ---- names --------------------------------------------------------- */

int thumbs_is_image(const char *name)
{
	enum thumb_format fmt;

	return thumb_format_of_name(name, &fmt) == 0;
}

int thumbs_name_for(const char *src_name, struct buf *out)
{
	return thumb_output_name(src_name, out);
}

int thumbs_source_for(const char *thumb_name, struct buf *out)
{
	return thumb_source_name(thumb_name, out);
}

unsigned thumbs_nsizes(const struct thumbs *t)
{
	return t->nsizes;
}

unsigned thumbs_size(const struct thumbs *t, unsigned idx)
{
	return thumb_engine_size(t->engine, idx);
}

int thumbs_key_for_n(struct thumbs *t, unsigned idx, const char *src_key,
		     struct buf *out)
{
	size_t plen = strlen(t->uploads_prefix);
	const char *rel, *leaf = thumbs_leaf(src_key);

	if (idx >= t->nsizes || strncmp(src_key, t->uploads_prefix, plen) != 0)
		return EINVAL;
	rel = src_key + plen;
	if (leaf < rel || !*leaf)
		return EINVAL;
	if (buf_adds(out, t->thumbs_prefix) ||
	    (idx && buf_addf(out, "@%u/", thumbs_size(t, idx))) ||
	    buf_add(out, rel, (size_t)(leaf - rel)))
		return ENOMEM;
	return thumb_output_name(leaf, out);
}

int thumbs_key_for(struct thumbs *t, const char *src_key, struct buf *out)
{
	return thumbs_key_for_n(t, 0, src_key, out);
}

/* ---- producing a thumbnail ----------------------------------------- */

struct thumbs_sink {
	struct buf *b;   /* into memory, or */
	int fd;          /* into this file (a memfd for a worker) when b is
			    NULL */
	size_t len;      /* bytes written to fd */
	size_t max;
	int too_big; /* stopped at max, not for lack of memory */
};

static int thumbs_sink_fd(struct thumbs_sink *s, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t k = write(s->fd, p, len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return 1;
		p += k;
		len -= (size_t)k;
		s->len += (size_t)k;
	}
	return 0;
}

static int thumbs_sink_add(void *arg, const void *data, size_t len)
{
	struct thumbs_sink *s = arg;
	size_t have = s->b ? s->b->len : s->len;

	if (len > s->max - have) {
		s->too_big = 1;
		return 1;
	}
	if (!s->b)
		return thumbs_sink_fd(s, data, len);
	return buf_add(s->b, data, len) ? 1 : 0;
}

/* The source-etag metadata a stored thumbnail carries: the source's ETag
 * and the thumbnail spec, so that an instance with another thumb_size or
 * crop never takes it for its own. */
static void thumbs_stamp(const struct thumbs *t, unsigned idx,
			 const char *etag, char out[STORE_ETAG_MAX])
{
	snprintf(out, STORE_ETAG_MAX, "%s;%s", etag,
		 thumb_engine_spec_n(t->engine, idx));
}

/* The thumbnail object, if its source-etag says it is of this source:
 * 0 (bytes in out) or ENOENT. */
static int thumbs_from_bucket(struct thumbs *t, unsigned idx,
			      const char *tkey, const char *etag,
			      struct buf *out)
{
	struct buf b = BUF_INIT;
	struct thumbs_sink sink = {&b, -1, 0, THUMBS_OBJECT_MAX, 0};
	struct store_object info;
	char stamp[STORE_ETAG_MAX];
	int rc;

	memset(&info, 0, sizeof(info));
	thumbs_stamp(t, idx, etag, stamp);
	rc = store_get(t->store, tkey, 0, 0, NULL, thumbs_sink_add, &sink, &info);
	if (rc == 0 && (b.len == 0 || b.len != info.size ||
			strcmp(info.source_etag, stamp) != 0))
		rc = ENOENT;
	if (rc == 0)
		rc = buf_add(out, b.data, b.len) ? ENOMEM : 0;
	buf_release(&b);
	return rc == 0 || rc == ENOMEM ? rc : ENOENT;
}

/* Remember a source that cannot be thumbnailed, with one log line. */
static int thumbs_failed(struct thumbs *t, const char *key, const char *etag,
			 const char *why)
{
	struct log_key k, e, w;

	log_warn("thumbnail of %s (etag %s) failed: %s", log_key(&k, key),
		 log_key(&e, etag),
		 why && *why ? log_key(&w, why) : "unknown error");
	thumbs_count(t, MC_THUMB_ERRORS);
	metrics_error(t->m, ME_DECODE);
	for (unsigned i = 0; i < t->nsizes; i++) {
		struct cache_key ck = thumbs_ck(t, i, key, etag);

		cache_put_failure(t->cache, &ck, why);
	}
	return EIO;
}

/* What a generation works on. */
struct thumbs_gen {
	const char *key;
	const char *etag;
	struct thumbs_src *src; /* the bytes, or NULL: read the source */
	enum thumbs_prio prio;  /* how urgent the decode is */
	struct buf *outs;       /* one per size */
	enum thumb_format fmt;
	struct thumb_source_info info; /* the source's size, once decoded */
};

/* Read the source (it must still have the ETag) into fd, a memfd that
 * goes to a worker as it is: the daemon holds no other copy. *len gets
 * its length. */
static int thumbs_read_source(struct thumbs *t, const struct thumbs_gen *g,
			      int fd, size_t *len, struct buf *err)
{
	struct thumbs_sink sink = {NULL, fd, 0, THUMBS_SOURCE_MAX, 0};
	struct store_object info;
	int rc;

	memset(&info, 0, sizeof(info));
	rc = store_get(t->store, g->key, 0, 0, g->etag, thumbs_sink_add, &sink,
		       &info);
	*len = sink.len;
	/* A body cut short must not be remembered as a broken image. */
	if (rc == 0 && info.size != sink.len)
		rc = EIO;
	if (rc == EAGAIN || rc == ENOENT)
		return ENOENT; /* replaced or deleted: the caller re-stats */
	if (rc == ECANCELED && sink.too_big) {
		buf_addf(err, "source larger than %u bytes", THUMBS_SOURCE_MAX);
		return thumbs_failed(t, g->key, g->etag, err->data);
	}
	if (rc == ECANCELED)
		return ENOMEM;
	return rc ? EIO : 0; /* a failed request is not remembered */
}

/* Get the source's bytes into a memfd (the bytes held, or read from the
 * bucket) and decode every size into g->outs. */
static int thumbs_read_decode(struct thumbs *t, struct thumbs_gen *g)
{
	struct buf err = BUF_INIT;
	struct thumbs_job job;
	int rc;

	memset(&job, 0, sizeof(job));
	job.fd = -1;
	if (g->src) {
		rc = thumbs_src_memfd(g->src);
		job.fd = rc ? -1 : g->src->fd; /* still g->src's */
		job.len = (size_t)g->src->len;
	} else {
		job.fd = pool_memfd();
		rc = job.fd < 0 ? ENOMEM
				: thumbs_read_source(t, g, job.fd, &job.len,
						     &err);
	}
	if (!rc) {
		job.name = thumbs_leaf(g->key);
		job.res.outs = g->outs;
		job.res.err = &err;
		rc = thumbs_decode(t, &job, g->prio, g->key, g->etag);
		g->fmt = job.res.fmt;
		g->info = job.res.shown;
		if (rc == EIO)
			rc = thumbs_failed(t, g->key, g->etag, err.data);
	}
	if (!g->src && job.fd >= 0)
		close(job.fd);
	buf_release(&err);
	return rc;
}

static int thumbs_store(struct thumbs *t, unsigned idx, const char *tkey,
			const char *etag, const struct buf *thumb,
			enum thumb_format fmt)
{
	char stamp[STORE_ETAG_MAX];
	struct store_put_opts opts = {
		.content_type = thumb_format_mime(fmt),
		.source_etag = stamp,
	};
	int rc;

	thumbs_stamp(t, idx, etag, stamp);
	rc = store_put(t->store, tkey, thumb->data, thumb->len, &opts, NULL);

	if (rc) {
		struct log_key k;

		log_warn("thumbnail %s: cannot store it in the bucket: %s",
			 log_key(&k, tkey), strerror(rc));
	}
	return rc;
}

/* Cache and store every size of g; 1 when storing size want failed. */
static int thumbs_keep(struct thumbs *t, struct thumbs_gen *g, unsigned want)
{
	struct buf tkey = BUF_INIT;
	int unstored = 0;

	if (g->info.width && g->info.height)
		cache_put_dims(t->cache, g->key, g->etag, g->info.width,
			       g->info.height);
	for (unsigned i = 0; i < t->nsizes; i++) {
		struct cache_key ck = thumbs_ck(t, i, g->key, g->etag);

		cache_put(t->cache, &ck, g->outs[i].data, g->outs[i].len,
			  thumb_format_name(g->fmt));
		buf_reset(&tkey);
		if (thumbs_key_for_n(t, i, g->key, &tkey) ||
		    thumbs_store(t, i, tkey.data, g->etag, &g->outs[i],
				 g->fmt))
			unstored |= i == want;
	}
	buf_release(&tkey);
	return unstored;
}

/* Decode g's source and keep the results, unless it was forgotten. */
static int thumbs_generate(struct thumbs *t, struct thumbs_gen *g,
			   unsigned want, enum thumbs_origin *origin)
{
	int rc;

	thumbs_source_slot(t, g->prio);
	rc = thumbs_read_decode(t, g);
	thumbs_source_done(t);
	if (rc)
		return rc;
	thumbs_count(t, MC_THUMBS_GENERATED);
	if (thumbs_flight_forgotten(t, g->key, g->etag))
		return ENOENT; /* replaced meanwhile: keep nothing */
	*origin = thumbs_keep(t, g, want) ? ORIGIN_UNSTORED : ORIGIN_GENERATED;
	if (g->src) /* counted once kept: a test may wait for it */
		thumbs_count(t, MC_THUMBS_EAGER);
	return 0;
}

/* Make size want of g from the bucket or the source (all sizes then);
 * append it to out (may be NULL). */
static int thumbs_produce(struct thumbs *t, struct thumbs_gen *g,
			  unsigned want, struct buf *out,
			  enum thumbs_origin *origin)
{
	struct buf tkey = BUF_INIT, outs[THUMB_SIZES_MAX];
	struct cache_key ck = thumbs_ck(t, want, g->key, g->etag);
	int rc = thumbs_key_for_n(t, want, g->key, &tkey);

	memset(outs, 0, sizeof(outs));
	g->outs = outs;
	if (!rc && !g->src)
		rc = thumbs_from_bucket(t, want, tkey.data, g->etag, &outs[want]);
	else if (!rc)
		rc = ENOENT;
	if (rc == 0) {
		*origin = ORIGIN_BUCKET;
		thumbs_count(t, MC_THUMB_S3_HITS);
		cache_put(t->cache, &ck, outs[want].data, outs[want].len,
			  thumb_format_of_name(tkey.data, &g->fmt)
				  ? "jpeg" : thumb_format_name(g->fmt));
	} else if (rc == ENOENT) {
		rc = thumbs_generate(t, g, want, origin);
	}
	if (rc == 0 && out)
		rc = buf_add(out, outs[want].data, outs[want].len) ? ENOMEM : 0;
	for (unsigned i = 0; i < THUMB_SIZES_MAX; i++)
		buf_release(&outs[i]);
	buf_release(&tkey);
	return rc;
}

static int thumbs_fetch(struct thumbs *t, unsigned idx, const char *src_key,
			const char *src_etag, struct buf *out,
			enum thumbs_origin *origin)
{
	struct cache_key ck = thumbs_ck(t, idx, src_key, src_etag);
	struct thumbs_gen g = {src_key, src_etag, NULL, PRIO_READ, NULL,
			       THUMB_FMT_JPEG, {0, 0}};
	int cached = 0, rc;

	if (!src_etag || !*src_etag || idx >= t->nsizes)
		return EINVAL;
	for (;;) {
		rc = cache_get(t->cache, &ck, out, NULL, NULL);
		if (rc != ENOENT) {
			*origin = ORIGIN_CACHE;
			cached = 1;
			break;
		}
		if (!g.src)
			g.src = thumbs_req_steal(t, src_key, src_etag);
		rc = thumbs_flight_join(t, src_key, src_etag, 0);
		if (rc != EAGAIN)
			break;
	}
	if (rc == 0 && !cached) {
		rc = thumbs_produce(t, &g, idx, out, origin);
		thumbs_flight_land(t, src_key, src_etag);
	}
	thumbs_src_free(g.src);
	return rc;
}

void thumbs_run_request(struct thumbs *t, struct thumbs_req *r)
{
	struct cache_key ck = thumbs_ck(t, r->idx, r->key, r->etag);
	/* (r is off the queue: r->urgent is ours alone) */
	struct thumbs_gen g = {r->key, r->etag, r->src,
			       r->urgent ? PRIO_AHEAD : PRIO_EAGER, NULL,
			       THUMB_FMT_JPEG, {0, 0}};
	enum thumbs_origin origin;
	uint64_t size;

	/* Nothing to do when it is known, or known to fail. */
	if (cache_peek(t->cache, &ck, &size) == ENOENT)
		thumbs_produce(t, &g, r->idx, NULL, &origin);
	thumbs_flight_land(t, r->key, r->etag);
}

/* ---- the contract -------------------------------------------------- */

int thumbs_get_n(struct thumbs *t, unsigned idx, const char *src_key,
		 const char *src_etag, struct buf *out)
{
	enum thumbs_origin origin = ORIGIN_GENERATED;

	return thumbs_fetch(t, idx, src_key, src_etag, out, &origin);
}

int thumbs_get(struct thumbs *t, const char *src_key, const char *src_etag,
	       struct buf *out)
{
	return thumbs_get_n(t, 0, src_key, src_etag, out);
}

int thumbs_peek_size_n(struct thumbs *t, unsigned idx, const char *src_key,
		       const char *src_etag, uint64_t *size)
{
	struct cache_key ck;

	if (!src_etag || idx >= t->nsizes)
		return ENOENT;
	ck = thumbs_ck(t, idx, src_key, src_etag);
	return cache_peek(t->cache, &ck, size) == 0 ? 0 : ENOENT;
}

int thumbs_source_dims(struct thumbs *t, const char *src_key,
		       const char *src_etag, unsigned *width, unsigned *height)
{
	if (!src_etag || !*src_etag)
		return ENOENT;
	return cache_get_dims(t->cache, src_key, src_etag, width, height) == 0
		       ? 0 : ENOENT;
}

int thumbs_known_failed_n(struct thumbs *t, unsigned idx,
			  const char *src_key, const char *src_etag)
{
	struct cache_key ck;
	uint64_t size;

	if (!src_etag || idx >= t->nsizes)
		return 0;
	ck = thumbs_ck(t, idx, src_key, src_etag);
	return cache_peek(t->cache, &ck, &size) == EIO;
}

int thumbs_peek_size(struct thumbs *t, const char *src_key,
		     const char *src_etag, uint64_t *size)
{
	return thumbs_peek_size_n(t, 0, src_key, src_etag, size);
}

int thumbs_ensure_stored_n(struct thumbs *t, unsigned idx,
			   const char *src_key, const char *src_etag)
{
	struct buf tkey = BUF_INIT, thumb = BUF_INIT;
	enum thumbs_origin origin = ORIGIN_CACHE;
	enum thumb_format fmt;
	struct store_object obj;
	char stamp[STORE_ETAG_MAX];
	int rc = thumbs_key_for_n(t, idx, src_key, &tkey);

	memset(&obj, 0, sizeof(obj));
	if (!rc)
		thumbs_stamp(t, idx, src_etag, stamp);
	if (!rc)
		rc = store_head(t->store, tkey.data, &obj);
	if (rc == 0 && strcmp(obj.source_etag, stamp) == 0)
		goto out_release;
	if (rc == 0 || rc == ENOENT)
		rc = thumbs_fetch(t, idx, src_key, src_etag, &thumb, &origin);
	if (rc == 0 && (origin == ORIGIN_CACHE || origin == ORIGIN_UNSTORED)) {
		if (thumb_format_of_name(tkey.data, &fmt))
			fmt = THUMB_FMT_JPEG;
		rc = thumbs_store(t, idx, tkey.data, src_etag, &thumb, fmt);
	}
out_release:
	buf_release(&tkey);
	buf_release(&thumb);
	return rc;
}

int thumbs_ensure_stored(struct thumbs *t, const char *src_key,
			 const char *src_etag)
{
	return thumbs_ensure_stored_n(t, 0, src_key, src_etag);
}

int thumbs_eager(struct thumbs *t, const char *src_key, const char *src_etag,
		 struct thumbs_src *src)
{
	if (!src)
		return EINVAL;
	if (!src_etag || !*src_etag || src->failed || src->len != src->size) {
		thumbs_src_free(src);
		return EINVAL;
	}
	return thumbs_req_push(t, src_key, src_etag, 0, src);
}

void thumbs_ahead(struct thumbs *t, unsigned idx, const char *src_key,
		  const char *src_etag)
{
	uint64_t size;

	if (!src_etag || !*src_etag || idx >= t->nsizes ||
	    thumbs_peek_size_n(t, idx, src_key, src_etag, &size) == 0)
		return;
	if (thumbs_req_push(t, src_key, src_etag, idx, NULL) == 0)
		thumbs_count(t, MC_THUMBS_AHEAD);
}

int thumbs_forget(struct thumbs *t, const char *src_key)
{
	struct buf tkey = BUF_INIT;
	int rc, rc2 = 0;

	thumbs_sched_forget(t, src_key);
	rc = cache_forget_source(t->cache, src_key);
	for (unsigned i = 0; i < t->nsizes; i++) {
		int err;

		buf_reset(&tkey);
		err = thumbs_key_for_n(t, i, src_key, &tkey);
		if (!err)
			err = store_delete(t->store, tkey.data);
		if (err && !rc2)
			rc2 = err;
	}
	buf_release(&tkey);
	return rc ? rc : rc2;
}

/* ---- life cycle ---------------------------------------------------- */

static int thumbs_init_locks(struct thumbs *t)
{
	int rc = pthread_mutex_init(&t->lock, NULL);

	if (!rc && (rc = pthread_cond_init(&t->work, NULL)))
		pthread_mutex_destroy(&t->lock);
	if (!rc && (rc = pthread_cond_init(&t->done, NULL))) {
		pthread_cond_destroy(&t->work);
		pthread_mutex_destroy(&t->lock);
	}
	return rc;
}

static int thumbs_setup(struct thumbs *t, const struct thumb_conf *tconf,
			const struct cache_conf *cconf,
			const struct fs_conf *fconf)
{
	unsigned n, timeout_ms;

	t->uploads_prefix = strdup(fconf->uploads_prefix);
	t->thumbs_prefix = strdup(fconf->thumbs_prefix);
	t->spool_dir = strdup(cconf->dir);
	if (!t->uploads_prefix || !t->thumbs_prefix || !t->spool_dir)
		return ENOMEM;
	t->engine = thumb_engine_create(tconf);
	if (!t->engine)
		return errno ? errno : EIO;
	t->nsizes = thumb_engine_nsizes(t->engine);
	t->conf = *tconf;
	t->conf.sizes_text = NULL;
	if (t->conf.nsizes == 0) {
		t->conf.nsizes = 1;
		t->conf.sizes[0] = tconf->size;
	}
	t->cache = cache_open(cconf, t->m);
	if (!t->cache)
		return errno ? errno : EIO;
	n = tconf->concurrency ? tconf->concurrency : 1;
	t->sources_max = 2 * n;
	timeout_ms = (tconf->timeout ? tconf->timeout : 10) * 1000u;
	t->pool = pool_create(n, timeout_ms, 0, t->m);
	if (!t->pool)
		return errno ? errno : EIO;
	/* eager thumbnails' decodes: behind an upload, not in its way */
	if (tconf->eager && !(t->bpool = pool_create(n, timeout_ms, 1, t->m)))
		return errno ? errno : EIO;
	return thumbs_sched_start(t, n);
}

struct thumbs *thumbs_create(const struct thumb_conf *tconf,
			     const struct cache_conf *cconf,
			     const struct fs_conf *fconf, struct store *store,
			     struct metrics *m)
{
	struct thumbs *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return NULL;
	t->store = store;
	t->m = m;
	rc = thumbs_init_locks(t);
	if (rc) {
		free(t);
		errno = rc;
		return NULL;
	}
	rc = thumbs_setup(t, tconf, cconf, fconf);
	if (rc) {
		thumbs_destroy(t);
		errno = rc;
		return NULL;
	}
	return t;
}

void thumbs_destroy(struct thumbs *t)
{
	if (!t)
		return;
	thumbs_sched_stop(t);
	pool_destroy(t->pool);
	pool_destroy(t->bpool);
	cache_close(t->cache);
	thumb_engine_destroy(t->engine);
	free(t->uploads_prefix);
	free(t->thumbs_prefix);
	free(t->spool_dir);
	pthread_cond_destroy(&t->done);
	pthread_cond_destroy(&t->work);
	pthread_mutex_destroy(&t->lock);
	free(t);
}
