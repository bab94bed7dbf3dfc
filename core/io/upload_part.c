/*
 * upload_part: part buffers, the per-upload workers that send them, and
 * the multipart upload they belong to (see upload_int.h).
 */
#define _GNU_SOURCE /* O_TMPFILE, mkostemp */
#include "io/upload_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/membudget.h"
#include "io/journal.h"
#include "base/log.h"
#include "io/mime.h"


uint64_t up_part_size(const struct upload *u)
{
	return u->conf->part_size;
}

/* Start offset of the part being filled in MEM mode. */
uint64_t up_cur_start(const struct upload *u)
{
	return (uint64_t)(u->next - 1) * up_part_size(u);
}

/* ---- part buffers ---------------------------------------------------- */

/* Map a buffer of cap bytes after taking its header and charge bytes of
 * data room from the budget (which may wait for parts in flight). */
static struct upload_part *part_map(struct membudget *mb, size_t cap,
				    size_t charge)
{
	size_t map_len = sizeof(struct upload_part) + cap;
	size_t take = sizeof(struct upload_part) + (charge < cap ? charge : cap);
	struct upload_part *p;

	membudget_take(mb, take);
	p = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		membudget_give(mb, take);
		errno = ENOMEM;
		return NULL;
	}
	p->map_len = map_len;
	p->cap = cap;
	p->budget = mb;
	p->charged = take;
	return p;
}

void up_part_charge(struct upload_part *p, size_t upto)
{
	size_t want = sizeof(struct upload_part) + upto, take;

	if (want <= p->charged)
		return;
	take = want - p->charged;
	if (take < UPLOAD_CHARGE_STEP)
		take = UPLOAD_CHARGE_STEP;
	if (take > p->map_len - p->charged)
		take = p->map_len - p->charged;
	membudget_take(p->budget, take);
	p->charged += take;
}

void up_part_unmap(struct upload_part *p)
{
	struct membudget *mb;
	size_t len;

	if (!p)
		return;
	mb = p->budget;
	len = p->charged;
	munmap(p, p->map_len);
	membudget_give(mb, len);
}

/* A buffer with room for cap bytes, len 0; NULL with errno ENOMEM. */
struct upload_part *up_part_get(struct upload *u, size_t cap,
				    unsigned number, size_t charge)
{
	struct upload_part *p = NULL;

	pthread_mutex_lock(&u->lock);
	if (u->spare && u->spare->cap >= cap) {
		p = u->spare;
		u->spare = p->next;
		u->nspare--;
	}
	pthread_mutex_unlock(&u->lock);
	if (!p)
		p = part_map(u->conf->budget, cap, charge);
	else
		up_part_charge(p, charge < cap ? charge : cap);
	if (p) {
		p->next = NULL;
		p->len = 0;
		p->number = number;
		p->tee = 0;
	}
	return p;
}

/* Keep p for reuse (at most one spare per worker, none while the memory
 * budget is short) or free it. */
static void part_put_locked(struct upload *u, struct upload_part *p)
{
	if (u->nspare >= u->nthreads || membudget_short(u->conf->budget)) {
		up_part_unmap(p);
		return;
	}
	p->next = u->spare;
	u->spare = p;
	u->nspare++;
}

void up_part_put(struct upload *u, struct upload_part *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&u->lock);
	part_put_locked(u, p);
	pthread_mutex_unlock(&u->lock);
}

void up_spares_free(struct upload *u)
{
	struct upload_part *p;

	pthread_mutex_lock(&u->lock);
	while ((p = u->spare)) {
		u->spare = p->next;
		up_part_unmap(p);
	}
	u->nspare = 0;
	pthread_mutex_unlock(&u->lock);
}

/* ---- workers ---------------------------------------------------------- */

/* Record the outcome of sending p and recycle its buffer. */
static void part_done_locked(struct upload *u, struct upload_part *p, int rc,
			     const char *etag, int tee_rc)
{
	if (tee_rc && !u->tee_err) {
		log_warn("upload %s: spool copy stopped (%s): seeking back "
			 "into parts already sent will fail", u->lkey,
			 strerror(tee_rc));
		u->tee_err = tee_rc;
	}
	if (rc == 0)
		memcpy(u->parts[p->number - 1].etag, etag, STORE_ETAG_MAX);
	else if (!u->err)
		u->err = rc;
	part_put_locked(u, p);
	u->busy--;
	membudget_flight(u->conf->budget, -1);
	pthread_cond_broadcast(&u->cond);
}

static void *upload_worker(void *arg)
{
	struct upload *u = arg;
	struct upload_part *p;
	char etag[STORE_ETAG_MAX];
	int rc, tee_rc;

	pthread_mutex_lock(&u->lock);
	for (;;) {
		while (!u->queue && !u->stop)
			pthread_cond_wait(&u->cond, &u->lock);
		p = u->queue;
		if (!p)
			break;
		u->queue = p->next;
		if (!u->queue)
			u->queue_tail = &u->queue;
		rc = u->err ? ECANCELED : 0;
		tee_rc = 0;
		pthread_mutex_unlock(&u->lock);
		if (p->tee)
			tee_rc = up_spool_pwrite(u, p->data, p->len,
						 (uint64_t)(p->number - 1) *
						 up_part_size(u));
		if (!rc)
			rc = store_mpu_part(u->store, u->key, u->upload_id, p->number,
					 p->data, p->len, etag);
		if (rc && rc != ECANCELED)
			log_error("upload %s: part %u failed: %s", u->lkey,
				  p->number, strerror(rc));
		pthread_mutex_lock(&u->lock);
		part_done_locked(u, p, rc, etag, tee_rc);
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

/* Tell the workers to exit once the queue is empty, and join them. */
static void workers_stop(struct upload *u)
{
	pthread_mutex_lock(&u->lock);
	u->stop = 1;
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
	for (unsigned i = 0; i < u->nthreads; i++)
		pthread_join(u->threads[i], NULL);
	free(u->threads);
	u->threads = NULL;
	u->nthreads = 0;
	up_spares_free(u);
}

/* Start the worker threads with every signal blocked, so signals go to the
 * daemon's own threads. 0 or errno. */
static int workers_start(struct upload *u)
{
	unsigned n = u->conf->parts_in_flight ? u->conf->parts_in_flight : 1;
	sigset_t all, old;
	int rc = 0;

	u->threads = calloc(n, sizeof(*u->threads));
	if (!u->threads)
		return ENOMEM;
	pthread_mutex_lock(&u->lock);
	u->stop = 0;
	u->err = 0;
	u->nparts = 0;
	if (u->parts)
		memset(u->parts, 0, u->parts_cap * sizeof(*u->parts));
	pthread_mutex_unlock(&u->lock);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (u->nthreads = 0; u->nthreads < n; u->nthreads++) {
		rc = pthread_create(&u->threads[u->nthreads], NULL,
				    upload_worker, u);
		if (rc)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		log_error("upload %s: cannot start a worker: %s", u->lkey,
			  strerror(rc));
		workers_stop(u);
	}
	return rc;
}

/* Make room in the etag table for part number; lock held. */
static int parts_reserve_locked(struct upload *u, unsigned number)
{
	unsigned cap = u->parts_cap ? u->parts_cap : 64;
	struct store_part *parts;

	if (number <= u->parts_cap)
		return 0;
	while (cap < number)
		cap *= 2;
	parts = realloc(u->parts, cap * sizeof(*parts));
	if (!parts)
		return ENOMEM;
	memset(parts + u->parts_cap, 0,
	       (cap - u->parts_cap) * sizeof(*parts));
	u->parts = parts;
	u->parts_cap = cap;
	return 0;
}

/*
 * Queue p for sending, after waiting while every worker is busy. p belongs
 * to the workers afterwards, also on failure. 0, or EIO when a part has
 * failed already, or ENOMEM.
 */
int up_workers_submit(struct upload *u, struct upload_part *p)
{
	int rc;

	if (!u->nthreads) {
		up_part_put(u, p);
		return EIO; /* cannot happen: workers run with the upload */
	}
	pthread_mutex_lock(&u->lock);
	while (u->busy >= u->nthreads && !u->err)
		pthread_cond_wait(&u->cond, &u->lock);
	rc = u->err ? EIO : parts_reserve_locked(u, p->number);
	if (rc) {
		if (!u->err)
			u->err = rc;
		part_put_locked(u, p);
		pthread_mutex_unlock(&u->lock);
		return rc;
	}
	u->parts[p->number - 1].number = p->number;
	if (p->number > u->nparts)
		u->nparts = p->number;
	p->next = NULL;
	*u->queue_tail = p;
	u->queue_tail = &p->next;
	u->busy++;
	membudget_flight(u->conf->budget, 1);
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

/* Wait until nothing is queued or in flight. 0, or EIO after a failure. */
int up_workers_wait(struct upload *u)
{
	int rc;

	pthread_mutex_lock(&u->lock);
	while (u->busy)
		pthread_cond_wait(&u->cond, &u->lock);
	rc = u->err ? EIO : 0;
	pthread_mutex_unlock(&u->lock);
	return rc;
}

/* ---- the multipart upload -------------------------------------------- */

/* Create the multipart upload, typed from head, and start the workers. */
int up_mpu_begin(struct upload *u, const void *head, size_t head_len)
{
	char type[MIME_TYPE_MAX];
	struct store_put_opts opts = {.content_type = type};
	long long row;
	int rc;

	mime_sniff(u->conf->mime, head, head_len, u->key, type);
	snprintf(u->mpu_type, sizeof(u->mpu_type), "%s", type);
	u->mpu_attrs = u->attrs;
	opts.attrs = &u->mpu_attrs;
	row = journal_begin(u->conf->journal, u->key);
	if (u->conf->journal && !row) {
		log_error("upload %s: cannot record a multipart upload in the "
			  "journal; not starting one that a crash could leave "
			  "behind", u->key);
		return EIO;
	}
	rc = store_mpu_create(u->store, u->key, &opts, &u->upload_id);
	if (rc) {
		log_error("upload %s: cannot start a multipart upload: %s",
			  u->lkey, strerror(rc));
		journal_cancel(u->conf->journal, row);
		u->upload_id = NULL;
		return EIO;
	}
	rc = journal_bind(u->conf->journal, row, u->upload_id);
	if (rc) {
		log_error("upload %s: cannot record multipart upload %s in the "
			  "journal; aborting it", u->key, u->upload_id);
		rc = EIO;
		journal_cancel(u->conf->journal, row);
	}
	if (!rc)
		rc = workers_start(u);
	if (rc) {
		if (store_mpu_abort(u->store, u->key, u->upload_id))
			journal_orphan(u->conf->journal, u->upload_id);
		else
			journal_done(u->conf->journal, u->upload_id);
		free(u->upload_id);
		u->upload_id = NULL;
	}
	return rc;
}

/* Skip what is queued, wait for what is in flight, abort the upload. */
void up_mpu_abort(struct upload *u)
{
	int rc;

	if (!u->upload_id)
		return;
	pthread_mutex_lock(&u->lock);
	if (!u->err)
		u->err = ECANCELED;
	pthread_mutex_unlock(&u->lock);
	up_workers_wait(u);
	workers_stop(u);
	rc = store_mpu_abort(u->store, u->key, u->upload_id);
	if (rc && rc != ENOENT) {
		log_error("upload %s: cannot abort multipart upload: %s; "
			  "retrying later", u->lkey, strerror(rc));
		journal_orphan(u->conf->journal, u->upload_id);
	} else {
		journal_done(u->conf->journal, u->upload_id);
	}
	free(u->upload_id);
	u->upload_id = NULL;
}

/*
 * Completion failed with something other than "no such upload" (which the
 * store has checked already): did it land anyway (a lost reply), made of
 * exactly these parts?
 */
static int mpu_landed(struct upload *u, int rc)
{
	if (rc == ENOENT ||
	    !store_mpu_landed(u->store, u->key, u->parts, u->nparts, u->etag))
		return 0;
	log_warn("upload %s: completion reported a failure, but the object "
		 "is complete (%s)", u->lkey, u->etag);
	return 1;
}

/* Wait for every part and complete the upload; on failure it is aborted.
 * 0 or EIO. */
int up_mpu_complete(struct upload *u)
{
	int rc = up_workers_wait(u);

	for (unsigned i = 0; !rc && i < u->nparts; i++) {
		if (!u->parts[i].etag[0]) {
			log_error("upload %s: part %u was never sent", u->lkey,
				  i + 1);
			rc = EIO;
		}
	}
	if (!rc)
		rc = store_mpu_complete(u->store, u->key, u->upload_id, u->parts,
				     u->nparts, u->etag);
	if (rc && mpu_landed(u, rc)) {
		up_mpu_abort(u); /* normally gone already (ENOENT, not logged) */
		u->mpu_landed = 1;
		return 0;
	}
	if (rc) {
		log_error("upload %s: multipart upload failed: %s", u->lkey,
			  strerror(rc));
		up_mpu_abort(u);
		return EIO;
	}
	workers_stop(u);
	journal_done(u->conf->journal, u->upload_id);
	free(u->upload_id);
	u->upload_id = NULL;
	u->mpu_landed = 1;
	return 0;
}
