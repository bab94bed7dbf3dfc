/*
 * reader: chunked ranged reads with read-ahead (see reader.h).
 *
 * Each slot holds one chunk: FREE, LOADING (a thread is fetching it; others
 * wait on cond), READY or FAILED. The thread that needs a chunk fetches it
 * itself; read-ahead chunks are fetched by detached threads counted in
 * inflight, which reader_destroy() waits for.
 */
#include "io/reader.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"

enum slot_state { SLOT_FREE, SLOT_LOADING, SLOT_READY, SLOT_FAILED };

struct slot {
	enum slot_state state;
	uint64_t index;   /* chunk number */
	uint64_t used;    /* LRU stamp */
	int err;
	struct buf data;
};

struct reader {
	struct store *store;
	char *key;
	char etag[STORE_ETAG_MAX];
	uint64_t size;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct slot slots[READER_SLOTS]; /* protected by lock */
	uint64_t clock;                  /* protected by lock */
	uint64_t next_off;               /* end of the last read; protected by lock */
	unsigned seq;                    /* sequential reads in a row; protected by lock */
	unsigned inflight;               /* read-ahead threads; protected by lock */
};

struct fetch_job {
	struct reader *r;
	struct slot *s;
};

struct reader *reader_create(struct store *store, const char *key,
			     uint64_t size, const char *etag)
{
	struct reader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->key = strdup(key);
	if (!r->key)
		goto out_free;
	if (pthread_mutex_init(&r->lock, NULL))
		goto out_free_key;
	if (pthread_cond_init(&r->cond, NULL))
		goto out_destroy_lock;
	r->store = store;
	r->size = size;
	snprintf(r->etag, sizeof(r->etag), "%s", etag ? etag : "");
	return r;

out_destroy_lock:
	pthread_mutex_destroy(&r->lock);
out_free_key:
	free(r->key);
out_free:
	free(r);
	errno = ENOMEM;
	return NULL;
}

void reader_destroy(struct reader *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	while (r->inflight)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < READER_SLOTS; i++)
		buf_release(&r->slots[i].data);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r->key);
	free(r);
}

static int sink_buf(void *arg, const void *data, size_t len)
{
	return buf_add(arg, data, len);
}

/* Fetch chunk s->index into s->data, without the lock held. */
static int fetch_chunk(struct reader *r, struct slot *s)
{
	uint64_t off = s->index * READER_CHUNK;
	uint64_t len = r->size - off < READER_CHUNK ? r->size - off : READER_CHUNK;
	int err;

	buf_reset(&s->data);
	err = buf_reserve(&s->data, len);
	if (!err)
		err = store_get(r->store, r->key, off, len, r->etag[0] ? r->etag : NULL,
			     sink_buf, &s->data, NULL);
	if (err == EAGAIN) {
		struct log_key k;

		log_error("read of %s: the object changed while open",
			  log_key(&k, r->key));
	}
	if (!err && s->data.len != len)
		err = EIO;
	return err ? EIO : 0;
}

/* Publish the result of a fetch. Lock held. */
static void finish_fetch(struct reader *r, struct slot *s, int err)
{
	s->state = err ? SLOT_FAILED : SLOT_READY;
	s->err = err;
	pthread_cond_broadcast(&r->cond);
}

static struct slot *find_slot(struct reader *r, uint64_t index)
{
	for (int i = 0; i < READER_SLOTS; i++)
		if (r->slots[i].state != SLOT_FREE && r->slots[i].index == index)
			return &r->slots[i];
	return NULL;
}

/* Claim the least recently used slot that is not loading, for index.
 * NULL when every slot is loading. Lock held. */
static struct slot *claim_slot(struct reader *r, uint64_t index)
{
	struct slot *best = NULL;

	for (int i = 0; i < READER_SLOTS; i++) {
		struct slot *s = &r->slots[i];

		if (s->state == SLOT_LOADING)
			continue;
		if (!best || s->state == SLOT_FREE || s->used < best->used)
			best = s;
		if (s->state == SLOT_FREE)
			break;
	}
	if (best) {
		best->state = SLOT_LOADING;
		best->index = index;
		best->used = ++r->clock;
	}
	return best;
}

static void *ahead_thread(void *arg)
{
	struct fetch_job *job = arg;
	struct reader *r = job->r;
	int err = fetch_chunk(r, job->s);

	pthread_mutex_lock(&r->lock);
	finish_fetch(r, job->s, err);
	r->inflight--;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	free(job);
	return NULL;
}

/* Start background fetches of the chunks after index. Lock held. */
static void read_ahead(struct reader *r, uint64_t index)
{
	uint64_t last = r->size ? (r->size - 1) / READER_CHUNK : 0;

	for (uint64_t i = index + 1; i <= index + READER_AHEAD && i <= last; i++) {
		struct fetch_job *job;
		pthread_t t;

		if (find_slot(r, i))
			continue;
		job = malloc(sizeof(*job));
		if (!job)
			return;
		job->r = r;
		job->s = claim_slot(r, i);
		if (!job->s) {
			free(job);
			return;
		}
		r->inflight++;
		if (pthread_create(&t, NULL, ahead_thread, job)) {
			r->inflight--;
			job->s->state = SLOT_FREE;
			free(job);
			return;
		}
		pthread_detach(t);
	}
}

/* Make chunk index READY and return its slot, fetching it if needed.
 * Lock held (released while fetching). NULL with *err set on failure. */
static struct slot *get_chunk(struct reader *r, uint64_t index, int *err)
{
	for (;;) {
		struct slot *s = find_slot(r, index);

		if (s && s->state == SLOT_READY) {
			s->used = ++r->clock;
			return s;
		}
		if (s && s->state == SLOT_LOADING) {
			pthread_cond_wait(&r->cond, &r->lock);
			continue;
		}
		if (!s || s->state == SLOT_FAILED)
			s = s ? s : claim_slot(r, index);
		if (!s) { /* every slot loading: wait for one */
			pthread_cond_wait(&r->cond, &r->lock);
			continue;
		}
		s->state = SLOT_LOADING;
		pthread_mutex_unlock(&r->lock);
		*err = fetch_chunk(r, s);
		pthread_mutex_lock(&r->lock);
		finish_fetch(r, s, *err);
		if (*err)
			return NULL;
	}
}

/* Sequential if this read starts near where the last one ended: the kernel
 * may hand us read-ahead requests slightly out of order. Lock held. */
static void note_offset(struct reader *r, uint64_t off, size_t len)
{
	uint64_t slack = 2 * READER_CHUNK;

	if (off + slack >= r->next_off && off <= r->next_off + slack)
		r->seq++;
	else
		r->seq = 0;
	if (off + len > r->next_off)
		r->next_off = off + len;
}

int reader_read(struct reader *r, void *out, size_t len, uint64_t off,
		size_t *got)
{
	int err = 0;

	*got = 0;
	if (off >= r->size)
		return 0;
	if (len > r->size - off)
		len = (size_t)(r->size - off);
	pthread_mutex_lock(&r->lock);
	note_offset(r, off, len);
	while (*got < len) {
		uint64_t pos = off + *got, index = pos / READER_CHUNK;
		struct slot *s = get_chunk(r, index, &err);
		size_t in = (size_t)(pos - index * READER_CHUNK);
		size_t n = s ? s->data.len - in : 0;

		if (!s)
			break;
		if (n > len - *got)
			n = len - *got;
		memcpy((char *)out + *got, s->data.data + in, n);
		*got += n;
		if (r->seq >= 2)
			read_ahead(r, index);
	}
	pthread_mutex_unlock(&r->lock);
	return err;
}
