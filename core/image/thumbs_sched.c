/*
 * thumbs_sched: the thumbnail service's scheduling (see thumbs_int.h):
 * decode workers at two priorities sharing conf->concurrency slots,
 * single flight, background requests and the bytes they hold.
 */
#define _GNU_SOURCE /* SCHED_IDLE, O_TMPFILE */
#include "image/thumbs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "base/log.h"

/* What a thread of the service does. */
enum thumbs_role { ROLE_PRODUCER, ROLE_DEMAND, ROLE_BACKGROUND };

struct thumbs_thread_arg {
	struct thumbs *t;
	enum thumbs_role role;
};

/* ---- decode workers ------------------------------------------------ */

static void job_append(struct thumbs_job **head, struct thumbs_job **tail,
		       struct thumbs_job *job)
{
	job->next = NULL;
	if (*tail)
		(*tail)->next = job;
	else
		*head = job;
	*tail = job;
}

static struct thumbs_job *job_pop(struct thumbs_job **head,
				  struct thumbs_job **tail)
{
	struct thumbs_job *job = *head;

	*head = job->next;
	if (!*head)
		*tail = NULL;
	return job;
}

/* Queue job by its prio: EAGER at the end of the background queue, READ
 * after the READ jobs of the demand queue, AHEAD at its end. Locks held:
 * t->lock. */
static void job_queue(struct thumbs *t, struct thumbs_job *job)
{
	struct thumbs_job **pp = &t->queue;

	if (job->prio == PRIO_EAGER) {
		job_append(&t->bqueue, &t->bqueue_tail, job);
		return;
	}
	if (job->prio == PRIO_AHEAD) {
		job_append(&t->queue, &t->queue_tail, job);
		return;
	}
	while (*pp && (*pp)->prio == PRIO_READ)
		pp = &(*pp)->next;
	job->next = *pp;
	*pp = job;
	if (!job->next)
		t->queue_tail = job;
}

/* Take a queued job off its queue. Locks held: t->lock. */
static void job_unqueue(struct thumbs *t, struct thumbs_job *job)
{
	int bg = job->prio == PRIO_EAGER;
	struct thumbs_job **pp = bg ? &t->bqueue : &t->queue, *prev = NULL;

	while (*pp && *pp != job) {
		prev = *pp;
		pp = &prev->next;
	}
	if (!*pp)
		return;
	*pp = job->next;
	if (bg && t->bqueue_tail == job)
		t->bqueue_tail = prev;
	if (!bg && t->queue_tail == job)
		t->queue_tail = prev;
}

/* The job role may start now, or NULL. Locks held: t->lock. */
static struct thumbs_job *job_take(struct thumbs *t, enum thumbs_role role)
{
	if (t->decoding >= t->slots)
		return NULL;
	if (role == ROLE_DEMAND && t->queue)
		return job_pop(&t->queue, &t->queue_tail);
	if (role == ROLE_BACKGROUND && t->bqueue && !t->queue)
		return job_pop(&t->bqueue, &t->bqueue_tail);
	return NULL;
}

static void job_run(struct thumbs *t, struct thumbs_job *job,
		    enum thumbs_role role)
{
	/* In a sandboxed worker process: nothing of the source is parsed
	 * here. */
	struct pool *pool = role == ROLE_BACKGROUND && t->bpool ? t->bpool
							       : t->pool;

	job->rc = pool_make_fd(pool, &t->conf, job->fd, job->len, job->name,
			       t->nsizes, &job->res);
}

static void decode_loop(struct thumbs *t, enum thumbs_role role)
{
	struct thumbs_job *job;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		while (!(job = job_take(t, role))) {
			if (t->stopping && !(role == ROLE_DEMAND ? t->queue
								 : t->bqueue))
				goto out_unlock;
			pthread_cond_wait(&t->work, &t->lock);
		}
		job->started = 1;
		t->decoding++;
		pthread_mutex_unlock(&t->lock);
		job_run(t, job, role);
		pthread_mutex_lock(&t->lock);
		t->decoding--;
		job->done = 1;
		pthread_cond_broadcast(&t->done);
		pthread_cond_broadcast(&t->work);
	}
out_unlock:
	pthread_mutex_unlock(&t->lock);
	thumb_thread_done();
}

/* The flight of (key, etag). Locks held: t->lock. */
static struct thumbs_flight *flight_find(struct thumbs *t, const char *key,
					 const char *etag)
{
	for (struct thumbs_flight *f = t->flights; f; f = f->next)
		if (strcmp(f->key, key) == 0 && strcmp(f->etag, etag) == 0)
			return f;
	return NULL;
}

int thumbs_decode(struct thumbs *t, struct thumbs_job *job,
		  enum thumbs_prio prio, const char *key, const char *etag)
{
	struct thumbs_flight *f;

	pthread_mutex_lock(&t->lock);
	if (t->stopping) {
		pthread_mutex_unlock(&t->lock);
		return ECANCELED;
	}
	f = prio != PRIO_READ ? flight_find(t, key, etag) : NULL;
	if (f && f->want < prio)
		prio = f->want; /* someone waits for it already */
	job->prio = prio;
	job_queue(t, job);
	if (f)
		f->job = job;
	pthread_cond_broadcast(&t->work);
	while (!job->done)
		pthread_cond_wait(&t->done, &t->lock);
	if (f && f->job == job)
		f->job = NULL;
	pthread_mutex_unlock(&t->lock);
	return job->rc;
}

/* A reader (prio READ) or read-ahead (AHEAD) waits for job: if it has
 * not started, queue it again as that urgent. Locks held: t->lock. */
static void job_promote(struct thumbs *t, struct thumbs_job *job,
			enum thumbs_prio prio)
{
	if (job->started || job->prio <= prio)
		return;
	job_unqueue(t, job);
	job->prio = prio;
	job_queue(t, job);
	pthread_cond_broadcast(&t->work);
}

/* ---- single flight ------------------------------------------------- */

static int flight_new(struct thumbs *t, const char *key, const char *etag)
{
	struct thumbs_flight *f = calloc(1, sizeof(*f));

	if (!f || !(f->key = strdup(key)) || !(f->etag = strdup(etag))) {
		if (f)
			free(f->key);
		free(f);
		return ENOMEM;
	}
	f->want = PRIO_EAGER;
	f->next = t->flights;
	t->flights = f;
	return 0;
}

int thumbs_flight_join(struct thumbs *t, const char *key, const char *etag,
		       int nowait)
{
	struct thumbs_flight *f;
	int rc;

	pthread_mutex_lock(&t->lock);
	f = flight_find(t, key, etag);
	if (f && nowait) {
		rc = EBUSY;
	} else if (f) {
		f->waiters++;
		f->want = PRIO_READ;
		while (flight_find(t, key, etag) == f) {
			if (f->job)
				job_promote(t, f->job, PRIO_READ);
			pthread_cond_wait(&t->done, &t->lock);
		}
		rc = EAGAIN;
	} else {
		rc = flight_new(t, key, etag);
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int thumbs_flight_land(struct thumbs *t, const char *key, const char *etag)
{
	struct thumbs_flight **pp, *f;
	int forgotten = 0;

	pthread_mutex_lock(&t->lock);
	for (pp = &t->flights; (f = *pp); pp = &f->next) {
		if (strcmp(f->key, key) == 0 && strcmp(f->etag, etag) == 0) {
			*pp = f->next;
			forgotten = f->forgotten;
			free(f->key);
			free(f->etag);
			free(f);
			break;
		}
	}
	pthread_cond_broadcast(&t->done);
	pthread_mutex_unlock(&t->lock);
	return forgotten;
}

int thumbs_flight_forgotten(struct thumbs *t, const char *key,
			    const char *etag)
{
	struct thumbs_flight *f;
	int forgotten;

	pthread_mutex_lock(&t->lock);
	f = flight_find(t, key, etag);
	forgotten = f && f->forgotten;
	pthread_mutex_unlock(&t->lock);
	return forgotten;
}

/* ---- source slots -------------------------------------------------- */

void thumbs_source_slot(struct thumbs *t, enum thumbs_prio prio)
{
	unsigned max = t->sources_max + (prio == PRIO_READ ? t->slots : 0);

	pthread_mutex_lock(&t->lock);
	while (t->sources >= max)
		pthread_cond_wait(&t->done, &t->lock);
	t->sources++;
	pthread_mutex_unlock(&t->lock);
}

void thumbs_source_done(struct thumbs *t)
{
	pthread_mutex_lock(&t->lock);
	t->sources--;
	pthread_cond_broadcast(&t->done);
	pthread_mutex_unlock(&t->lock);
}

/* ---- bytes held ---------------------------------------------------- */

/* Reserve size bytes in memory, else on disk: 1 memory, 0 disk, -1 none.
 * Locks held: t->lock. */
static int src_reserve(struct thumbs *t, uint64_t size)
{
	if (t->held_mem + size <= THUMBS_HELD_MEM) {
		t->held_mem += size;
		return 1;
	}
	if (t->held_disk + size <= THUMBS_HELD_DISK) {
		t->held_disk += size;
		return 0;
	}
	return -1;
}

struct thumbs_src *thumbs_src_new(struct thumbs *t, uint64_t size)
{
	struct thumbs_src *s;
	int where;

	if (size == 0 || size > THUMBS_SOURCE_MAX)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->t = t;
	s->fd = -1;
	s->size = size;
	pthread_mutex_lock(&t->lock);
	where = t->stopping ? -1 : src_reserve(t, size);
	s->held = where;
	pthread_mutex_unlock(&t->lock);
	s->memfd = where == 1;
	if (where == 1)
		s->fd = pool_memfd();
	else if (where == 0)
		s->fd = open(t->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC,
			     0600);
	if (where < 0 || s->fd < 0) {
		if (where == 0 && s->fd < 0)
			log_warn("thumbnails: cannot hold a source in %s: %s",
				 t->spool_dir, strerror(errno));
		thumbs_src_free(s);
		return NULL;
	}
	return s;
}

int thumbs_src_add(void *arg, const void *data, size_t len)
{
	struct thumbs_src *s = arg;
	const char *p = data;

	if (s->failed || len > s->size - s->len)
		return s->failed = 1;
	while (len > 0) {
		ssize_t n = pwrite(s->fd, p, len, (off_t)s->len);

		if (n <= 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return s->failed = 1;
		p += n;
		len -= (size_t)n;
		s->len += (uint64_t)n;
	}
	return 0;
}

void thumbs_src_free(struct thumbs_src *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->t->lock);
	if (s->held == 1)
		s->t->held_mem -= s->size;
	else if (s->held == 0)
		s->t->held_disk -= s->size;
	pthread_mutex_unlock(&s->t->lock);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

int thumbs_src_memfd(struct thumbs_src *s)
{
	off_t off = 0;
	int fd;

	if (s->failed || s->len != s->size)
		return EIO;
	if (s->memfd)
		return 0;
	fd = pool_memfd();
	if (fd < 0)
		return ENOMEM;
	while ((uint64_t)off < s->len) {
		ssize_t n = sendfile(fd, s->fd, &off, (size_t)(s->len - off));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int rc = n < 0 ? errno : EIO;

			close(fd);
			return rc;
		}
	}
	close(s->fd);
	s->fd = fd;
	s->memfd = 1;
	return 0;
}

/* ---- background requests ------------------------------------------- */

static void req_free(struct thumbs_req *r)
{
	if (!r)
		return;
	thumbs_src_free(r->src);
	free(r->key);
	free(r->etag);
	free(r);
}

/* Is (key, etag) waiting or flying? With urgent, hurry it: a reader is
 * coming. Locks held: t->lock. */
static int req_known(struct thumbs *t, const char *key, const char *etag,
		     int urgent)
{
	struct thumbs_flight *f;

	for (struct thumbs_req *r = t->reqs; r; r = r->next) {
		if (strcmp(r->key, key) == 0 && strcmp(r->etag, etag) == 0) {
			r->urgent |= urgent;
			return 1;
		}
	}
	f = flight_find(t, key, etag);
	if (f && urgent) {
		f->waiters++;
		if (f->want > PRIO_AHEAD)
			f->want = PRIO_AHEAD;
		if (f->job)
			job_promote(t, f->job, PRIO_AHEAD);
	}
	return f != NULL;
}

int thumbs_req_push(struct thumbs *t, const char *key, const char *etag,
		    unsigned idx, struct thumbs_src *src)
{
	struct thumbs_req *r = calloc(1, sizeof(*r));
	int rc = 0;

	if (!r || !(r->key = strdup(key)) || !(r->etag = strdup(etag))) {
		req_free(r);
		thumbs_src_free(src);
		return ENOMEM;
	}
	r->idx = idx;
	r->src = src;
	r->urgent = !src;
	pthread_mutex_lock(&t->lock);
	if (t->stopping)
		rc = ECANCELED;
	else if (req_known(t, key, etag, r->urgent))
		rc = EEXIST;
	else if (t->nreqs >= THUMBS_PENDING_MAX)
		rc = ENOSPC;
	if (!rc) {
		if (t->reqs_tail)
			t->reqs_tail->next = r;
		else
			t->reqs = r;
		t->reqs_tail = r;
		t->nreqs++;
		pthread_cond_broadcast(&t->work);
	}
	pthread_mutex_unlock(&t->lock);
	if (rc)
		req_free(r);
	return rc;
}

/* Unlink the request after prev (NULL: the head). Locks held: t->lock. */
static struct thumbs_req *req_unlink(struct thumbs *t,
				     struct thumbs_req *prev)
{
	struct thumbs_req *r = prev ? prev->next : t->reqs;

	if (prev)
		prev->next = r->next;
	else
		t->reqs = r->next;
	if (t->reqs_tail == r)
		t->reqs_tail = prev;
	r->next = NULL;
	t->nreqs--;
	return r;
}

struct thumbs_src *thumbs_req_steal(struct thumbs *t, const char *key,
				    const char *etag)
{
	struct thumbs_req *r, *prev = NULL, *taken = NULL;
	struct thumbs_src *src = NULL;

	pthread_mutex_lock(&t->lock);
	for (r = t->reqs; r; prev = r, r = r->next) {
		if (r->src && strcmp(r->key, key) == 0 &&
		    strcmp(r->etag, etag) == 0) {
			taken = req_unlink(t, prev);
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (taken) {
		src = taken->src;
		taken->src = NULL;
		req_free(taken);
	}
	return src;
}

void thumbs_sched_forget(struct thumbs *t, const char *key)
{
	struct thumbs_req *r, *prev = NULL, *drop = NULL, *gone;

	pthread_mutex_lock(&t->lock);
	for (struct thumbs_flight *f = t->flights; f; f = f->next)
		if (strcmp(f->key, key) == 0)
			f->forgotten = 1;
	for (r = t->reqs; r;) {
		if (strcmp(r->key, key) != 0) {
			prev = r;
			r = r->next;
			continue;
		}
		r = r->next;
		gone = req_unlink(t, prev);
		gone->next = drop;
		drop = gone;
	}
	pthread_mutex_unlock(&t->lock);
	while (drop) {
		r = drop->next;
		req_free(drop);
		drop = r;
	}
}

static void producer_loop(struct thumbs *t)
{
	struct thumbs_req *r;
	int flying;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		while (!t->reqs && !t->stopping)
			pthread_cond_wait(&t->work, &t->lock);
		if (t->stopping)
			break;
		r = req_unlink(t, NULL);
		/* Take off while still holding the lock: a reader that misses
		 * the request on the queue finds the flight. */
		flying = flight_find(t, r->key, r->etag) ||
			 flight_new(t, r->key, r->etag);
		pthread_mutex_unlock(&t->lock);
		if (!flying)
			thumbs_run_request(t, r);
		req_free(r);
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	thumb_thread_done();
}

/* ---- threads ------------------------------------------------------- */

static void *thumbs_thread(void *arg)
{
	struct thumbs_thread_arg a = *(struct thumbs_thread_arg *)arg;
	struct sched_param sp = {0};
	int rc;

	free(arg);
	if (a.role == ROLE_BACKGROUND &&
	    (rc = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp)))
		log_debug("thumbnails: background decodes at normal "
			  "priority: %s", strerror(rc));
	if (a.role == ROLE_PRODUCER)
		producer_loop(a.t);
	else
		decode_loop(a.t, a.role);
	return NULL;
}

static int thread_start(struct thumbs *t, enum thumbs_role role)
{
	struct thumbs_thread_arg *a = malloc(sizeof(*a));
	int rc;

	if (!a)
		return ENOMEM;
	a->t = t;
	a->role = role;
	rc = pthread_create(&t->threads[t->nthreads], NULL, thumbs_thread, a);
	if (rc) {
		free(a);
		log_error("thumbnails: cannot start a thread: %s",
			  strerror(rc));
		return rc;
	}
	t->nthreads++;
	return 0;
}

int thumbs_sched_start(struct thumbs *t, unsigned n)
{
	int rc = 0;

	t->slots = n;
	t->threads = calloc(4 * (size_t)n, sizeof(*t->threads));
	if (!t->threads)
		return ENOMEM;
	for (unsigned i = 0; !rc && i < 2 * n; i++)
		rc = thread_start(t, ROLE_PRODUCER);
	t->nproducers = t->nthreads;
	for (unsigned i = 0; !rc && i < n; i++)
		rc = thread_start(t, ROLE_DEMAND);
	for (unsigned i = 0; !rc && i < n; i++)
		rc = thread_start(t, ROLE_BACKGROUND);
	return rc;
}

void thumbs_sched_stop(struct thumbs *t)
{
	struct thumbs_req *r;

	pthread_mutex_lock(&t->lock);
	t->stopping = 1;
	pthread_cond_broadcast(&t->work);
	pthread_mutex_unlock(&t->lock);
	for (unsigned i = 0; i < t->nthreads; i++)
		pthread_join(t->threads[i], NULL);
	t->nthreads = 0;
	free(t->threads);
	t->threads = NULL;
	while ((r = t->reqs)) {
		t->reqs = r->next;
		req_free(r);
	}
	t->reqs_tail = NULL;
	t->nreqs = 0;
}
