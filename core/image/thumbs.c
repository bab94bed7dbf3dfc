/*
 * thumbs: the thumbnail service (see thumbs.h).
 *
 * A request looks in the SQLite cache first; on a miss one caller per
 * (source key, ETag) becomes the producer while the others wait for it
 * and then look again. The producer reuses the thumbnail object in the
 * bucket when its source-etag metadata matches, else reads the source
 * (If-Match the ETag it was asked for), has a worker decode it, and
 * stores the result in the cache and the bucket. A source that cannot be
 * thumbnailed is remembered in the cache for its ETag and logged once.
 *
 * Decodes run on conf->concurrency worker threads owned by the service,
 * whatever the number of FUSE threads: libvips keeps per-thread state,
 * and these threads release it when they exit. Network requests run on
 * the calling thread. At most twice as many sources as workers are held
 * in memory at once (read while others decode), so memory stays bounded
 * however many readers ask for new thumbnails.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "image/cache.h"
#include "base/log.h"
#include "image/thumb.h"
#include "image/thumbs.h"

#define THUMBS_SOURCE_MAX (256u << 20) /* bytes of a source we decode */
#define THUMBS_OBJECT_MAX (16u << 20)  /* bytes of a stored thumbnail */

/* Where thumbs_fetch() found a thumbnail. */
enum thumbs_origin {
	ORIGIN_CACHE,     /* SQLite */
	ORIGIN_BUCKET,    /* the thumbnail object in S3 */
	ORIGIN_GENERATED, /* decoded now and stored in the bucket */
	ORIGIN_UNSTORED,  /* decoded now; storing it in the bucket failed */
};

/* One decode handed to the workers; lives on the requester's stack. */
struct thumbs_job {
	const void *src;
	size_t len;
	const char *name;
	struct buf *out;
	struct buf *err;
	enum thumb_format fmt;
	int rc;
	int done;                /* protected by thumbs.lock */
	struct thumbs_job *next; /* protected by thumbs.lock */
};

/* A generation in progress. */
struct thumbs_flight {
	char *key;
	char *etag;
	struct thumbs_flight *next;
};

struct thumbs {
	struct thumb_engine *engine;
	struct cache *cache;
	struct store *store;
	struct metrics *m;
	char *uploads_prefix;
	char *thumbs_prefix;

	pthread_mutex_t lock;
	pthread_cond_t work;           /* a job was queued, or stopping */
	pthread_cond_t done;           /* a job finished, or a flight landed */
	struct thumbs_job *queue;      /* protected by lock; FIFO head */
	struct thumbs_job *queue_tail; /* protected by lock */
	struct thumbs_flight *flights; /* protected by lock */
	int stopping;                  /* protected by lock */
	unsigned sources;              /* protected by lock; held in memory */
	unsigned sources_max;          /* bound on sources */

	pthread_t *workers;
	unsigned nworkers;
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

int thumbs_key_for(struct thumbs *t, const char *src_key, struct buf *out)
{
	size_t plen = strlen(t->uploads_prefix);
	const char *rel, *leaf = thumbs_leaf(src_key);

	if (strncmp(src_key, t->uploads_prefix, plen) != 0)
		return EINVAL;
	rel = src_key + plen;
	if (leaf < rel || !*leaf)
		return EINVAL;
	if (buf_adds(out, t->thumbs_prefix) ||
	    buf_add(out, rel, (size_t)(leaf - rel)))
		return ENOMEM;
	return thumb_output_name(leaf, out);
}

/* ---- decode workers ------------------------------------------------ */

static void *thumbs_worker(void *arg)
{
	struct thumbs *t = arg;
	struct thumbs_job *job;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		while (!t->queue && !t->stopping)
			pthread_cond_wait(&t->work, &t->lock);
		job = t->queue;
		if (!job)
			break;
		t->queue = job->next;
		if (!t->queue)
			t->queue_tail = NULL;
		pthread_mutex_unlock(&t->lock);
		job->rc = thumb_make(t->engine, job->src, job->len, job->name,
				     job->out, &job->fmt, job->err);
		/* A decode frees tens of megabytes in pieces (a progressive
		 * JPEG's coefficients); give the pages back to the system. */
		malloc_trim(0);
		pthread_mutex_lock(&t->lock);
		job->done = 1;
		pthread_cond_broadcast(&t->done);
	}
	pthread_mutex_unlock(&t->lock);
	thumb_thread_done();
	return NULL;
}

/* Run one decode on a worker and wait for it. */
static int thumbs_decode(struct thumbs *t, struct thumbs_job *job)
{
	pthread_mutex_lock(&t->lock);
	if (t->stopping) {
		pthread_mutex_unlock(&t->lock);
		return ECANCELED;
	}
	job->next = NULL;
	if (t->queue_tail)
		t->queue_tail->next = job;
	else
		t->queue = job;
	t->queue_tail = job;
	pthread_cond_signal(&t->work);
	while (!job->done)
		pthread_cond_wait(&t->done, &t->lock);
	pthread_mutex_unlock(&t->lock);
	return job->rc;
}

static int thumbs_start_workers(struct thumbs *t, unsigned n)
{
	t->workers = calloc(n, sizeof(*t->workers));
	if (!t->workers)
		return ENOMEM;
	for (; t->nworkers < n; t->nworkers++) {
		int rc = pthread_create(&t->workers[t->nworkers], NULL,
					thumbs_worker, t);
		if (rc) {
			log_error("thumbnails: cannot start a decode thread: %s",
				  strerror(rc));
			return rc;
		}
	}
	return 0;
}

static void thumbs_stop_workers(struct thumbs *t)
{
	pthread_mutex_lock(&t->lock);
	t->stopping = 1;
	pthread_cond_broadcast(&t->work);
	pthread_mutex_unlock(&t->lock);
	for (unsigned i = 0; i < t->nworkers; i++)
		pthread_join(t->workers[i], NULL);
	t->nworkers = 0;
	free(t->workers);
	t->workers = NULL;
}

/* ---- single flight ------------------------------------------------- */

static struct thumbs_flight *thumbs_flight_find(struct thumbs *t,
						const char *key,
						const char *etag)
{
	for (struct thumbs_flight *f = t->flights; f; f = f->next)
		if (strcmp(f->key, key) == 0 && strcmp(f->etag, etag) == 0)
			return f;
	return NULL;
}

/*
 * Take off, or wait for the flight already under way. 0: the caller now
 * produces (key, etag) and must land it; EAGAIN: another caller did and
 * has landed, look again; ENOMEM.
 */
static int thumbs_flight_join(struct thumbs *t, const char *key,
			      const char *etag)
{
	struct thumbs_flight *f;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	if (thumbs_flight_find(t, key, etag)) {
		while (thumbs_flight_find(t, key, etag))
			pthread_cond_wait(&t->done, &t->lock);
		rc = EAGAIN;
	} else if (!(f = calloc(1, sizeof(*f))) || !(f->key = strdup(key)) ||
		   !(f->etag = strdup(etag))) {
		if (f)
			free(f->key);
		free(f);
		rc = ENOMEM;
	} else {
		f->next = t->flights;
		t->flights = f;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

static void thumbs_flight_land(struct thumbs *t, const char *key,
			       const char *etag)
{
	struct thumbs_flight **pp, *f;

	pthread_mutex_lock(&t->lock);
	for (pp = &t->flights; (f = *pp); pp = &f->next) {
		if (strcmp(f->key, key) == 0 && strcmp(f->etag, etag) == 0) {
			*pp = f->next;
			free(f->key);
			free(f->etag);
			free(f);
			break;
		}
	}
	pthread_cond_broadcast(&t->done);
	pthread_mutex_unlock(&t->lock);
}

/* ---- producing a thumbnail ----------------------------------------- */

struct thumbs_sink {
	struct buf *b;
	size_t max;
	int too_big; /* stopped at max, not for lack of memory */
};

static int thumbs_sink_add(void *arg, const void *data, size_t len)
{
	struct thumbs_sink *s = arg;

	if (len > s->max - s->b->len) {
		s->too_big = 1;
		return 1;
	}
	return buf_add(s->b, data, len) ? 1 : 0;
}

/* The source-etag metadata a stored thumbnail carries: the source's ETag
 * and the thumbnail spec, so that an instance with another thumb_size or
 * crop never takes it for its own. */
static void thumbs_stamp(const struct thumbs *t, const char *etag,
			 char out[STORE_ETAG_MAX])
{
	snprintf(out, STORE_ETAG_MAX, "%s;%s", etag, thumb_engine_spec(t->engine));
}

/* The thumbnail object, if its source-etag says it is of this source:
 * 0 (bytes in out, *fmt set) or ENOENT. */
static int thumbs_from_bucket(struct thumbs *t, const char *tkey,
			      const char *etag, struct buf *out,
			      enum thumb_format *fmt)
{
	struct buf b = BUF_INIT;
	struct thumbs_sink sink = {&b, THUMBS_OBJECT_MAX, 0};
	struct store_object info;
	char stamp[STORE_ETAG_MAX];
	int rc;

	memset(&info, 0, sizeof(info));
	thumbs_stamp(t, etag, stamp);
	rc = store_get(t->store, tkey, 0, 0, NULL, thumbs_sink_add, &sink, &info);
	if (rc == 0 && (b.len == 0 || b.len != info.size ||
			strcmp(info.source_etag, stamp) != 0))
		rc = ENOENT;
	if (rc == 0 && thumb_format_of_name(tkey, fmt))
		*fmt = THUMB_FMT_JPEG;
	if (rc == 0)
		rc = buf_add(out, b.data, b.len) ? ENOMEM : 0;
	buf_release(&b);
	return rc == 0 || rc == ENOMEM ? rc : ENOENT;
}

/* Remember a source that cannot be thumbnailed, with one log line. */
static int thumbs_failed(struct thumbs *t, const struct cache_key *ck,
			 const char *why)
{
	struct log_key k, e, w;

	log_warn("thumbnail of %s (etag %s) failed: %s", log_key(&k, ck->key),
		 log_key(&e, ck->etag),
		 why && *why ? log_key(&w, why) : "unknown error");
	thumbs_count(t, MC_THUMB_ERRORS);
	metrics_error(t->m, ME_DECODE);
	cache_put_failure(t->cache, ck, why);
	return EIO;
}

/* Read the source (it must still have the ETag) and decode it. */
static int thumbs_read_decode(struct thumbs *t, const struct cache_key *ck,
			      struct buf *thumb, enum thumb_format *fmt)
{
	struct buf src = BUF_INIT, err = BUF_INIT;
	struct thumbs_sink sink = {&src, THUMBS_SOURCE_MAX, 0};
	struct thumbs_job job;
	struct store_object info;
	int rc;

	memset(&info, 0, sizeof(info));
	rc = store_get(t->store, ck->key, 0, 0, ck->etag, thumbs_sink_add, &sink,
		    &info);
	/* A body cut short must not be remembered as a broken image. */
	if (rc == 0 && info.size != src.len)
		rc = EIO;
	if (rc == EAGAIN || rc == ENOENT) {
		rc = ENOENT; /* replaced or deleted: the caller re-stats */
	} else if (rc == ECANCELED && sink.too_big) {
		buf_addf(&err, "source larger than %u bytes",
			 THUMBS_SOURCE_MAX);
		rc = thumbs_failed(t, ck, err.data);
	} else if (rc == ECANCELED) {
		rc = ENOMEM;
	} else if (rc) {
		rc = EIO; /* a failed request is not remembered */
	} else {
		memset(&job, 0, sizeof(job));
		job.src = src.data;
		job.len = src.len;
		job.name = thumbs_leaf(ck->key);
		job.out = thumb;
		job.err = &err;
		rc = thumbs_decode(t, &job);
		*fmt = job.fmt;
		if (rc == EIO)
			rc = thumbs_failed(t, ck, err.data);
	}
	buf_release(&src);
	buf_release(&err);
	return rc;
}

/* Wait for room to hold one more source in memory; release it with
 * thumbs_source_done(). */
static void thumbs_source_slot(struct thumbs *t)
{
	pthread_mutex_lock(&t->lock);
	while (t->sources >= t->sources_max)
		pthread_cond_wait(&t->done, &t->lock);
	t->sources++;
	pthread_mutex_unlock(&t->lock);
}

static void thumbs_source_done(struct thumbs *t)
{
	pthread_mutex_lock(&t->lock);
	t->sources--;
	pthread_cond_broadcast(&t->done);
	pthread_mutex_unlock(&t->lock);
}

/* thumbs_read_decode() with room for the source. */
static int thumbs_generate(struct thumbs *t, const struct cache_key *ck,
			   struct buf *thumb, enum thumb_format *fmt)
{
	int rc;

	thumbs_source_slot(t);
	rc = thumbs_read_decode(t, ck, thumb, fmt);
	thumbs_source_done(t);
	return rc;
}

static int thumbs_store(struct thumbs *t, const char *tkey, const char *etag,
			const struct buf *thumb, enum thumb_format fmt)
{
	char stamp[STORE_ETAG_MAX];
	struct store_put_opts opts = {
		.content_type = thumb_format_mime(fmt),
		.source_etag = stamp,
	};
	int rc;

	thumbs_stamp(t, etag, stamp);
	rc = store_put(t->store, tkey, thumb->data, thumb->len, &opts, NULL);

	if (rc) {
		struct log_key k;

		log_warn("thumbnail %s: cannot store it in the bucket: %s",
			 log_key(&k, tkey), strerror(rc));
	}
	return rc;
}

/* Make the thumbnail of ck from the bucket or the source; cache it. */
static int thumbs_produce(struct thumbs *t, const struct cache_key *ck,
			  struct buf *out, enum thumbs_origin *origin)
{
	struct buf tkey = BUF_INIT, thumb = BUF_INIT;
	enum thumb_format fmt = THUMB_FMT_JPEG;
	int rc = thumbs_key_for(t, ck->key, &tkey);

	if (rc)
		goto out_release;
	rc = thumbs_from_bucket(t, tkey.data, ck->etag, &thumb, &fmt);
	if (rc == 0) {
		*origin = ORIGIN_BUCKET;
		thumbs_count(t, MC_THUMB_S3_HITS);
	} else if (rc == ENOENT) {
		rc = thumbs_generate(t, ck, &thumb, &fmt);
		if (rc)
			goto out_release;
		thumbs_count(t, MC_THUMBS_GENERATED);
		*origin = thumbs_store(t, tkey.data, ck->etag, &thumb, fmt)
				  ? ORIGIN_UNSTORED
				  : ORIGIN_GENERATED;
	}
	if (rc)
		goto out_release;
	cache_put(t->cache, ck, thumb.data, thumb.len, thumb_format_name(fmt));
	rc = buf_add(out, thumb.data, thumb.len) ? ENOMEM : 0;
out_release:
	buf_release(&tkey);
	buf_release(&thumb);
	return rc;
}

static int thumbs_fetch(struct thumbs *t, const char *src_key,
			const char *src_etag, struct buf *out,
			enum thumbs_origin *origin)
{
	struct cache_key ck = {src_key, src_etag,
			       thumb_engine_spec(t->engine)};
	int rc;

	if (!src_etag || !*src_etag)
		return EINVAL;
	for (;;) {
		rc = cache_get(t->cache, &ck, out, NULL, NULL);
		if (rc != ENOENT) {
			*origin = ORIGIN_CACHE;
			return rc;
		}
		rc = thumbs_flight_join(t, src_key, src_etag);
		if (rc != EAGAIN)
			break;
	}
	if (rc)
		return rc;
	rc = thumbs_produce(t, &ck, out, origin);
	thumbs_flight_land(t, src_key, src_etag);
	return rc;
}

/* ---- the contract -------------------------------------------------- */

int thumbs_get(struct thumbs *t, const char *src_key, const char *src_etag,
	       struct buf *out)
{
	enum thumbs_origin origin;

	return thumbs_fetch(t, src_key, src_etag, out, &origin);
}

int thumbs_peek_size(struct thumbs *t, const char *src_key,
		     const char *src_etag, uint64_t *size)
{
	struct cache_key ck = {src_key, src_etag,
			       thumb_engine_spec(t->engine)};

	if (!src_etag)
		return ENOENT;
	return cache_peek(t->cache, &ck, size) == 0 ? 0 : ENOENT;
}

int thumbs_ensure_stored(struct thumbs *t, const char *src_key,
			 const char *src_etag)
{
	struct buf tkey = BUF_INIT, thumb = BUF_INIT;
	enum thumbs_origin origin = ORIGIN_CACHE;
	enum thumb_format fmt;
	struct store_object obj;
	char stamp[STORE_ETAG_MAX];
	int rc = thumbs_key_for(t, src_key, &tkey);

	memset(&obj, 0, sizeof(obj));
	thumbs_stamp(t, src_etag, stamp);
	if (!rc)
		rc = store_head(t->store, tkey.data, &obj);
	if (rc == 0 && strcmp(obj.source_etag, stamp) == 0)
		goto out_release;
	if (rc == 0 || rc == ENOENT)
		rc = thumbs_fetch(t, src_key, src_etag, &thumb, &origin);
	if (rc == 0 && (origin == ORIGIN_CACHE || origin == ORIGIN_UNSTORED)) {
		if (thumb_format_of_name(tkey.data, &fmt))
			fmt = THUMB_FMT_JPEG;
		rc = thumbs_store(t, tkey.data, src_etag, &thumb, fmt);
	}
out_release:
	buf_release(&tkey);
	buf_release(&thumb);
	return rc;
}

int thumbs_forget(struct thumbs *t, const char *src_key)
{
	struct buf tkey = BUF_INIT;
	int rc = cache_forget_source(t->cache, src_key);
	int rc2 = thumbs_key_for(t, src_key, &tkey);

	if (!rc2)
		rc2 = store_delete(t->store, tkey.data);
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
	unsigned n;

	t->uploads_prefix = strdup(fconf->uploads_prefix);
	t->thumbs_prefix = strdup(fconf->thumbs_prefix);
	if (!t->uploads_prefix || !t->thumbs_prefix)
		return ENOMEM;
	t->engine = thumb_engine_create(tconf);
	if (!t->engine)
		return errno ? errno : EIO;
	t->cache = cache_open(cconf, t->m);
	if (!t->cache)
		return errno ? errno : EIO;
	n = tconf->concurrency ? tconf->concurrency : 1;
	t->sources_max = 2 * n;
	return thumbs_start_workers(t, n);
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
	thumbs_stop_workers(t);
	cache_close(t->cache);
	thumb_engine_destroy(t->engine);
	free(t->uploads_prefix);
	free(t->thumbs_prefix);
	pthread_cond_destroy(&t->done);
	pthread_cond_destroy(&t->work);
	pthread_mutex_destroy(&t->lock);
	free(t);
}
