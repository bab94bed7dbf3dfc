/*
 * upload: a file being written, streamed to S3 as it grows (see upload.h
 * and, for how, upload_int.h): commit and the public interface.
 */
#define _GNU_SOURCE /* O_TMPFILE, mkostemp */
#include "io/upload_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "io/journal.h"
#include "io/mime.h"

static void progress_start(struct upload *u);


/* ---- commit ----------------------------------------------------------- */

static int put_small(struct upload *u, const void *data, size_t len)
{
	char type[MIME_TYPE_MAX];
	struct store_put_opts opts = {.content_type = type, .attrs = &u->attrs};
	int rc;

	mime_sniff(u->conf->mime, data, len, u->key, type);
	rc = store_put(u->store, u->key, len ? data : "", len, &opts, u->etag);
	if (rc)
		log_error("upload %s: put failed: %s", u->lkey, strerror(rc));
	return rc ? EIO : 0;
}

/* Copy part 1 and the part being filled into the spool copy, so that the
 * spool holds the whole file; turns the tee off when that fails. */
static void mem_tee_held(struct upload *u)
{
	if (u->first)
		up_mem_tee(u, u->first, 0);
	if (u->cur)
		up_mem_tee(u, u->cur, up_cur_start(u));
	if (u->tee && u->spool_fd >= 0 &&
	    ftruncate(u->spool_fd, (off_t)u->size) != 0)
		u->tee = 0;
}

/* Commit a streamed file that went multipart: send the held parts, complete.
 * Afterwards the content lives in the spool copy, or in the bucket. */
static int mem_commit_multipart(struct upload *u)
{
	int rc = 0, spooled;

	mem_tee_held(u);
	if (u->cur && u->cur->len > 0) {
		rc = up_workers_submit(u, u->cur);
		u->cur = NULL;
	}
	if (!rc) {
		rc = up_workers_submit(u, u->first);
		u->first = NULL;
	}
	spooled = up_tee_complete(u);
	rc = rc ? EIO : up_mpu_complete(u);
	up_mem_drop(u);
	u->tee = 0;
	if (spooled)
		u->mode = UPLOAD_SPOOL;
	else if (rc)
		u->broken = 1;
	else
		u->mode = UPLOAD_REMOTE;
	if (!spooled)
		up_spool_close(u);
	return rc;
}

static int mem_commit(struct upload *u)
{
	if (!u->upload_id && !u->cur)
		return put_small(u, u->first ? u->first->data : "",
				 u->first ? u->first->len : 0);
	if (!u->upload_id) {
		int rc = up_mpu_begin(u, u->first->data, u->first->len);

		if (rc)
			return EIO;
	}
	return mem_commit_multipart(u);
}

/* Part size for a spooled file: the configured one, grown so that the
 * file fits in S3's 10,000 parts. */
static size_t spool_part_size(const struct upload *u)
{
	uint64_t ps = up_part_size(u);
	uint64_t need = (u->size + UPLOAD_MAX_PARTS - 1) / UPLOAD_MAX_PARTS;

	if (need > ps)
		ps = (need + (1ULL << 20) - 1) & ~((1ULL << 20) - 1);
	return (size_t)ps;
}

/* Read part number (from 1) of the spool into a fresh buffer and queue it. */
static int spool_send_part(struct upload *u, size_t ps, unsigned number,
			   struct upload_part **first_out)
{
	uint64_t off = (uint64_t)(number - 1) * ps;
	size_t len = u->size - off < ps ? (size_t)(u->size - off) : ps;
	struct upload_part *p = up_part_get(u, ps, number, ps);
	int rc;

	if (!p)
		return ENOMEM;
	rc = up_spool_pread(u->spool_fd, p->data, len, off);
	if (rc) {
		log_error("upload %s: cannot read the spool: %s", u->lkey,
			  strerror(rc));
		up_part_put(u, p);
		return rc;
	}
	p->len = len;
	if (first_out) {
		*first_out = p;
		return 0;
	}
	return up_workers_submit(u, p);
}

static int spool_commit_multipart(struct upload *u)
{
	size_t ps = spool_part_size(u);
	unsigned nparts = (unsigned)((u->size + ps - 1) / ps);
	struct upload_part *first = NULL;
	int rc;

	rc = spool_send_part(u, ps, 1, &first);
	if (!rc)
		rc = up_mpu_begin(u, first->data, first->len);
	if (rc) {
		up_part_put(u, first);
		up_spares_free(u);
		return EIO;
	}
	rc = up_workers_submit(u, first);
	for (unsigned n = 2; !rc && n <= nparts; n++)
		rc = spool_send_part(u, ps, n, NULL);
	if (rc) {
		up_mpu_abort(u);
		return EIO;
	}
	return up_mpu_complete(u);
}

static int spool_commit(struct upload *u)
{
	struct upload_part *p;
	int rc;

	if (u->size > up_part_size(u))
		return spool_commit_multipart(u);
	if (u->size == 0)
		return put_small(u, "", 0);
	p = up_part_get(u, (size_t)u->size, 1, (size_t)u->size);
	if (!p)
		return EIO;
	rc = up_spool_pread(u->spool_fd, p->data, (size_t)u->size, 0);
	if (rc)
		log_error("upload %s: cannot read the spool: %s", u->lkey,
			  strerror(rc));
	rc = rc ? EIO : put_small(u, p->data, (size_t)u->size);
	up_part_unmap(p);
	return rc;
}

/* ---- the public interface -------------------------------------------- */

struct upload *upload_create(struct store *store, struct metrics *m,
			     const struct upload_conf *conf, const char *key,
			     int existing, uint64_t existing_size)
{
	struct upload *u;
	int err = ENOMEM;

	if (conf->part_size < UPLOAD_MIN_PART ||
	    conf->part_size > UPLOAD_MAX_PART) {
		errno = EINVAL;
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->key = strdup(key);
	u->lkey = log_key_dup(key);
	if (!u->key || !u->lkey)
		goto out_key;
	err = pthread_mutex_init(&u->lock, NULL);
	if (err)
		goto out_key;
	err = pthread_cond_init(&u->cond, NULL);
	if (err)
		goto out_mutex;
	u->store = store;
	u->m = m;
	u->conf = conf;
	u->mode = existing ? UPLOAD_REMOTE : UPLOAD_MEM;
	u->size = existing ? existing_size : 0;
	u->dirty = !existing;
	u->next = 2;
	u->tee = conf->tee_spool;
	u->spool_fd = -1;
	u->spool_dfd = -1;
	u->queue_tail = &u->queue;
	if (u->dirty)
		progress_start(u);
	return u;

out_mutex:
	pthread_mutex_destroy(&u->lock);
out_key:
	free(u->key);
	free(u->lkey);
	free(u);
	errno = err;
	return NULL;
}

static double mib(uint64_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

/* A change starts an upload in progress: counted, timed. */
static void progress_start(struct upload *u)
{
	if (u->active)
		return;
	u->active = 1;
	u->started = u->noted = mono_s();
	u->written = 0;
	metrics_gauge_add(u->m, MG_UPLOADS_ACTIVE, 1);
}

/* len more bytes written; a line every UPLOAD_PROGRESS_SECONDS. */
static void progress_add(struct upload *u, size_t len)
{
	double now;

	u->written += len;
	metrics_gauge_add(u->m, MG_UPLOAD_BYTES_ACTIVE, (int64_t)len);
	now = mono_s();
	if (now - u->noted < UPLOAD_PROGRESS_SECONDS)
		return;
	u->noted = now;
	log_info("upload %s: %.1f MiB written so far in %.0f s (%.1f MiB/s)",
		 u->lkey, mib(u->written), now - u->started,
		 mib(u->written) / (now - u->started));
}

/* The upload is over (uploaded, failed or dropped): uncount it; on
 * success, its one line. */
static void progress_end(struct upload *u, int uploaded)
{
	double secs;

	if (!u->active)
		return;
	u->active = 0;
	metrics_gauge_add(u->m, MG_UPLOADS_ACTIVE, -1);
	metrics_gauge_add(u->m, MG_UPLOAD_BYTES_ACTIVE, -(int64_t)u->written);
	if (!uploaded)
		return;
	secs = mono_s() - u->started;
	log_info("upload %s: %llu bytes in %.2f s (%.1f MiB/s)", u->lkey,
		 (unsigned long long)u->size, secs,
		 secs > 0 ? mib(u->size) / secs : 0.0);
}

/*
 * A write or truncate failed: the file is not what its writer made, so it
 * must never reach the bucket (a cp that failed half-way would otherwise
 * leave a truncated object at close).
 */
static void upload_break(struct upload *u, const char *what, int rc)
{
	if (!u->broken)
		log_error("upload %s: %s failed (%s); the file will not be "
			  "uploaded", u->lkey, what, strerror(rc));
	u->broken = 1;
}

static int write_any(struct upload *u, const void *data, size_t len,
		     uint64_t off)
{
	uint64_t limit = (uint64_t)UPLOAD_MAX_PARTS * up_part_size(u);
	int rc;

	if (u->mode == UPLOAD_MEM && up_mem_fits(u, len, off)) {
		if (off + len <= limit)
			return up_mem_write(u, data, len, off);
		log_error("upload %s: a streamed file is limited to %u parts",
			  u->lkey, UPLOAD_MAX_PARTS);
		return EFBIG;
	}
	rc = up_to_spool(u, "a write that seeks back");
	if (!rc)
		rc = up_spool_pwrite(u, data, len, off);
	if (!rc && off + len > u->size)
		u->size = off + len;
	return rc;
}

int upload_write(struct upload *u, const void *data, size_t len, uint64_t off)
{
	int rc;

	if (u->broken)
		return EIO;
	if (len == 0)
		return 0;
	u->dirty = 1;
	progress_start(u);
	rc = write_any(u, data, len, off);
	if (rc)
		upload_break(u, "a write", rc);
	else
		progress_add(u, len);
	return rc;
}

/* Serve a read from part 1 while the whole file is there. */
static int mem_read_small(struct upload *u, void *data, size_t len,
			  uint64_t off, size_t *got)
{
	size_t n = 0;

	if (off < u->size) {
		n = u->size - off < len ? (size_t)(u->size - off) : len;
		memcpy(data, u->first->data + off, n);
	}
	*got = n;
	return 0;
}

int upload_read(struct upload *u, void *data, size_t len, uint64_t off,
		size_t *got)
{
	int rc;

	*got = 0;
	if (u->broken)
		return EIO;
	if (u->mode == UPLOAD_MEM && !u->upload_id && !u->cur && u->first)
		return mem_read_small(u, data, len, off, got);
	if (u->mode == UPLOAD_MEM && u->size == 0)
		return 0;
	rc = up_to_spool(u, "a read");
	if (rc)
		return rc;
	if (off >= u->size)
		return 0;
	if (u->size - off < len)
		len = (size_t)(u->size - off);
	rc = up_spool_pread(u->spool_fd, data, len, off);
	if (!rc)
		*got = len;
	return rc;
}

/* Forget everything: the file is empty and new (truncate to 0). */
static void upload_reset(struct upload *u)
{
	up_mem_drop(u);
	up_spool_close(u);
	u->mode = UPLOAD_MEM;
	u->size = 0;
	u->broken = 0;
	u->tee = u->conf->tee_spool;
}

/*
 * Shrink in memory: within the part being filled, or to within part 1
 * (what was streamed is not needed then: the multipart upload is aborted).
 * EAGAIN when the new end falls in a part already sent.
 */
static int mem_shrink(struct upload *u, uint64_t size)
{
	uint64_t ps = up_part_size(u);

	if (u->next > 2 && size < up_cur_start(u)) {
		if (size > ps)
			return EAGAIN;
		up_part_put(u, u->cur);
		u->cur = NULL;
		up_mpu_abort(u);
		up_spool_close(u);
		u->next = 2;
	}
	if (u->first && u->first->len > size)
		u->first->len = (size_t)size;
	if (u->cur && size <= up_cur_start(u)) {
		up_part_put(u, u->cur);
		u->cur = NULL;
	} else if (u->cur) {
		u->cur->len = (size_t)(size - up_cur_start(u));
	}
	u->size = size;
	return 0;
}

/* *intact = 1 when a failure left the content as it was. */
static int truncate_any(struct upload *u, uint64_t size, int *intact)
{
	int rc;

	if (u->mode == UPLOAD_MEM && size > u->size &&
	    size <= up_cur_start(u) + up_part_size(u))
		return up_mem_write(u, NULL, (size_t)(size - u->size), u->size);
	if (u->mode == UPLOAD_MEM && size < u->size && mem_shrink(u, size) == 0)
		return 0;
	rc = up_to_spool(u, "a truncate");
	if (rc)
		return rc;
	if (ftruncate(u->spool_fd, (off_t)size) != 0) {
		*intact = 1; /* the spool, and so the file, is unchanged */
		return errno;
	}
	u->size = size;
	return 0;
}

int upload_truncate(struct upload *u, uint64_t size)
{
	int intact = 0, rc;

	if (size == 0) {
		upload_reset(u);
		u->dirty = 1;
		progress_start(u);
		return 0;
	}
	if (u->broken)
		return EIO;
	if (size == u->size)
		return 0;
	if (size > UPLOAD_MAX_OBJECT)
		return EFBIG;
	u->dirty = 1;
	progress_start(u);
	rc = truncate_any(u, size, &intact);
	if (rc && intact)
		log_warn("upload %s: cannot truncate to %llu: %s", u->lkey,
			 (unsigned long long)size, strerror(rc));
	else if (rc)
		upload_break(u, "a truncate", rc);
	return rc;
}

int upload_rekey(struct upload *u, const char *key)
{
	char *copy = strdup(key);
	int rc = copy ? 0 : ENOMEM;

	if (!rc && u->mode == UPLOAD_MEM && u->upload_id)
		rc = up_to_spool(u, "a rename");
	if (rc) {
		free(copy);
		return rc == ENOMEM ? rc : EIO;
	}
	free(u->key);
	u->key = copy;
	return 0;
}

int upload_detach(struct upload *u)
{
	int rc;

	if (u->mode != UPLOAD_REMOTE || u->broken)
		return 0;
	rc = up_to_spool(u, "a removal of its name");
	if (rc)
		upload_break(u, "loading the content before its object goes",
			     rc);
	return rc;
}

uint64_t upload_size(const struct upload *u)
{
	return u->size;
}

int upload_dirty(const struct upload *u)
{
	return u->dirty;
}

/* A multipart upload takes its metadata when it is created: attributes
 * set while it streamed (cp -a sets the mtime just before close) are put
 * on the completed object by a copy onto itself. 0 or EIO. */
static int fix_late_attrs(struct upload *u)
{
	struct store_put_opts o = {.content_type = u->mpu_type,
				   .attrs = &u->attrs};
	const struct store_attrs *a = &u->attrs, *b = &u->mpu_attrs;

	if (a->have == b->have && a->mtime_sec == b->mtime_sec &&
	    a->mtime_nsec == b->mtime_nsec && a->mode == b->mode &&
	    a->uid == b->uid && a->gid == b->gid)
		return 0;
	int rc = store_copy(u->store, u->key, u->key, &o, u->size, u->etag);
	if (rc)
		log_error("upload %s: cannot set its attributes: %s", u->key,
			  strerror(rc));
	return rc ? EIO : 0;
}

void upload_set_attrs(struct upload *u, const struct store_attrs *a)
{
	u->attrs = *a;
}

int upload_commit(struct upload *u, char etag_out[STORE_ETAG_MAX])
{
	int rc;

	if (!u->dirty && !u->broken) {
		if (etag_out)
			memcpy(etag_out, u->etag, STORE_ETAG_MAX);
		return 0;
	}
	u->etag[0] = '\0';
	u->mpu_landed = 0;
	if (u->broken)
		rc = EIO;
	else if (u->mode == UPLOAD_MEM)
		rc = mem_commit(u);
	else if (u->mode == UPLOAD_SPOOL)
		rc = spool_commit(u);
	else
		rc = 0; /* REMOTE and unchanged since the last commit */
	if (rc) {
		if (u->broken)
			up_mem_drop(u); /* abort what was streamed */
		if (u->m)
			metrics_add(u->m, MC_UPLOAD_ERRORS, 1);
		progress_end(u, 0);
		return EIO;
	}
	if (u->mpu_landed)
		rc = fix_late_attrs(u);
	if (rc)
		return EIO;
	u->dirty = 0;
	progress_end(u, 1);
	if (u->m)
		metrics_add(u->m, MC_UPLOADS, 1);
	if (etag_out)
		memcpy(etag_out, u->etag, STORE_ETAG_MAX);
	return 0;
}

#define UPLOAD_CONTENT_CHUNK (1u << 20) /* bytes read from the spool at once */

/* The spool's content, in chunks. */
static int spool_content(struct upload *u,
			 int (*sink)(void *arg, const void *data, size_t len),
			 void *arg)
{
	char *chunk = malloc(UPLOAD_CONTENT_CHUNK);
	uint64_t off = 0;
	int rc = chunk ? 0 : ENOMEM;

	while (!rc && off < u->size) {
		size_t n = u->size - off < UPLOAD_CONTENT_CHUNK
				   ? (size_t)(u->size - off)
				   : UPLOAD_CONTENT_CHUNK;

		rc = up_spool_pread(u->spool_fd, chunk, n, off);
		if (!rc && sink(arg, chunk, n))
			rc = ECANCELED;
		off += n;
	}
	free(chunk);
	return rc == ECANCELED || rc == ENOMEM ? rc : rc ? EIO : 0;
}

int upload_content(struct upload *u,
		   int (*sink)(void *arg, const void *data, size_t len),
		   void *arg)
{
	if (u->broken || u->dirty || u->size == 0 || !u->etag[0])
		return ENOENT;
	if (u->mode == UPLOAD_MEM && !u->upload_id && !u->cur && u->first)
		return sink(arg, u->first->data, u->first->len) ? ECANCELED : 0;
	if (u->mode == UPLOAD_SPOOL && u->spool_fd >= 0)
		return spool_content(u, sink, arg);
	return ENOENT;
}

void upload_destroy(struct upload *u)
{
	if (!u)
		return;
	progress_end(u, 0);
	up_mem_drop(u);
	up_spool_close(u);
	free(u->parts);
	pthread_cond_destroy(&u->cond);
	pthread_mutex_destroy(&u->lock);
	free(u->key);
	free(u->lkey);
	free(u);
}
