/*
 * reader: block reads with adaptive read-ahead (see reader.h).
 *
 * Each slot holds one block, or a prefix of it: FREE, LOADING (a thread is
 * filling it; others wait on cond), READY or FAILED. The thread that needs
 * a block fills it itself; read-ahead blocks are filled by detached
 * threads counted in inflight, which reader_destroy() waits for.
 *
 * A slot is charged (one block taken from the budget) while it has a
 * buffer; a slot without one is FREE and uncharged.
 */
#include "io/reader.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/membudget.h"

#define B ((uint64_t)DATACACHE_BLOCK)

enum slot_state { SLOT_FREE, SLOT_LOADING, SLOT_READY, SLOT_FAILED };

struct slot {
	enum slot_state state;
	uint64_t index;   /* block number */
	uint64_t used;    /* LRU stamp */
	struct buf data;  /* the block's first data.len bytes */
	int charged;      /* B bytes of the budget are taken for data */
	unsigned waiters; /* reads waiting for it: not to be reused */
};

struct reader {
	struct store *store;
	struct datacache *dc;
	struct membudget *mb;
	char *key;
	char etag[STORE_ETAG_MAX];
	uint64_t size;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct slot slots[READER_SLOTS]; /* protected by lock */
	uint64_t clock;                  /* protected by lock */
	uint64_t next_off;               /* end of the last read; protected by lock */
	uint64_t last_block;             /* last block a sequential read entered;
					    protected by lock */
	unsigned window;                 /* blocks to fetch ahead; protected by lock */
	int sequential;                  /* the current read continues the last;
					    protected by lock */
	int fetched;                     /* a GET was made; protected by lock */
	int size_noted;                  /* the size is in the cache (__atomic) */
	unsigned inflight;               /* read-ahead threads; protected by lock */
};

/* A run of blocks filled by one read-ahead thread, in order. */
struct fetch_job {
	struct reader *r;
	struct slot *s[READER_RUN];
	unsigned n;               /* slots in the run */
	unsigned next;            /* the first not yet published */
};

struct reader *reader_create(struct store *store, struct datacache *dc,
			     struct membudget *mb, const char *key,
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
	r->dc = dc;
	r->mb = mb;
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

/* Free s's buffer and give its block back. s is not loading; lock held or
 * the reader idle. */
static void slot_release(struct reader *r, struct slot *s)
{
	buf_release(&s->data);
	if (s->charged)
		membudget_give(r->mb, B);
	s->charged = 0;
	s->state = SLOT_FREE;
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
		slot_release(r, &r->slots[i]);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r->key);
	free(r);
}

static int sink_buf(void *arg, const void *data, size_t len)
{
	return buf_add(arg, data, len);
}

static uint64_t block_len(const struct reader *r, uint64_t index)
{
	uint64_t off = index * B;

	return r->size - off < B ? r->size - off : B;
}

/* Append bytes [have, want) of block s->index from the store. */
static int fetch_range(struct reader *r, struct slot *s, uint64_t want)
{
	uint64_t have = s->data.len, off = s->index * B + have;
	int err = buf_reserve(&s->data, want - have);

	if (!err)
		err = store_get(r->store, r->key, off, want - have,
			     r->etag[0] ? r->etag : NULL, sink_buf, &s->data,
			     NULL);
	if (err == EAGAIN) {
		struct log_key k;

		log_error("read of %s: the object changed while open",
			  log_key(&k, r->key));
	}
	if (!err && s->data.len != want)
		err = EIO;
	if (err)
		s->data.len = have;
	return err ? EIO : 0;
}

/* Does the data cache keep block index of this object? */
static struct datacache *cache_of(struct reader *r, uint64_t index)
{
	return datacache_keeps(r->dc, r->size, index) ? r->dc : NULL;
}

/* Take what the cache holds of block s->index if it is more than s has. */
static void from_cache(struct reader *r, struct slot *s, struct buf *tmp)
{
	if (datacache_get(cache_of(r, s->index), r->key, r->etag, s->index,
			  s->data.len + 1, tmp))
		return;
	buf_reset(&s->data);
	if (!buf_reserve(&s->data, tmp->len))
		buf_add(&s->data, tmp->data, tmp->len);
}

/* Fill slot s (LOADING, lock not held) with at least need and up to want
 * bytes of its block: from the cache, else from the store (once among
 * every reader of this version). */
static int load_block(struct reader *r, struct slot *s, uint64_t need,
		      uint64_t want)
{
	struct datacache *dc = cache_of(r, s->index);
	struct buf tmp = BUF_INIT;
	int err = 0;

	for (;;) {
		from_cache(r, s, &tmp);
		if (s->data.len >= need)
			break;
		if (!datacache_claim(dc, r->key, r->etag, s->index))
			continue; /* another reader fetched it: look again */
		from_cache(r, s, &tmp);
		if (s->data.len < need)
			err = fetch_range(r, s, want > need ? want : need);
		if (!err && s->data.len > tmp.len)
			datacache_put(dc, r->key, r->etag, s->index,
				      s->data.data, s->data.len);
		if (!err && !__atomic_exchange_n(&r->size_noted, 1,
						 __ATOMIC_RELAXED))
			datacache_put_size(r->dc, r->key, r->etag, r->size);
		datacache_release(dc, r->key, r->etag, s->index);
		break;
	}
	buf_release(&tmp);
	return err;
}

static struct slot *find_slot(struct reader *r, uint64_t index)
{
	for (int i = 0; i < READER_SLOTS; i++)
		if (r->slots[i].state != SLOT_FREE && r->slots[i].index == index)
			return &r->slots[i];
	return NULL;
}

/* Is a a better slot to reuse than b? A FREE one, else the older. */
static int lru_before(const struct slot *a, const struct slot *b)
{
	int fa = a->state == SLOT_FREE, fb = b->state == SLOT_FREE;

	return fa != fb ? fa : a->used < b->used;
}

/* The slot to fill with block index: one without a buffer when the budget
 * has a block for it, else (for the block a read needs, or with no budget)
 * the least recently used one not loading, else (a read's block, when the
 * reader has no buffer to reuse) one without a buffer at once. NULL when
 * none. Lock held. */
static struct slot *pick_slot(struct reader *r, int ahead)
{
	struct slot *lru = NULL, *empty = NULL;

	for (int i = 0; i < READER_SLOTS; i++) {
		struct slot *s = &r->slots[i];

		if (s->state == SLOT_LOADING || s->waiters)
			continue;
		if (!s->charged) {
			if (!empty)
				empty = s;
		} else if (!lru || lru_before(s, lru)) {
			lru = s;
		}
	}
	if (lru && lru->state == SLOT_FREE)
		return lru; /* a buffer already paid for (and faulted in) */
	if (empty && membudget_try(r->mb, B)) {
		empty->charged = 1;
		return empty;
	}
	if (lru && (!ahead || !r->mb || lru->state == SLOT_FREE))
		return lru;
	if (empty && !ahead) {
		membudget_force(r->mb, B);
		empty->charged = 1;
		return empty;
	}
	return NULL;
}

/* Claim a slot for block index (see pick_slot), marked LOADING. Lock
 * held. */
static struct slot *claim_slot(struct reader *r, uint64_t index, int ahead)
{
	struct slot *best = pick_slot(r, ahead);

	if (best) {
		best->state = SLOT_LOADING;
		best->index = index;
		best->used = ++r->clock;
		buf_reset(&best->data);
		/* the whole block at once: no regrowth copies as it fills */
		if (buf_reserve(&best->data, block_len(r, index))) {
			best->state = SLOT_FREE;
			return NULL;
		}
	}
	return best;
}

/* The blocks a sequential read has left READER_BEHIND blocks behind (the
 * data cache and the page cache have them) are free for the window ahead,
 * their buffers kept for it; when the budget is short they go back to it.
 * Lock held. */
static void release_behind(struct reader *r, uint64_t block)
{
	int shortage;

	if (!r->sequential)
		return;
	shortage = membudget_short(r->mb);
	for (int i = 0; i < READER_SLOTS; i++) {
		struct slot *s = &r->slots[i];

		if (!s->charged || s->state == SLOT_LOADING || s->waiters ||
		    s->index + READER_BEHIND >= block)
			continue;
		if (shortage)
			slot_release(r, s);
		else
			s->state = SLOT_FREE;
	}
}

/* Publish slot s as filled (err 0) or failed. */
static void publish(struct reader *r, struct slot *s, int err)
{
	pthread_mutex_lock(&r->lock);
	s->state = err ? SLOT_FAILED : SLOT_READY;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* Splits one GET of a run of blocks into their slots, publishing each as
 * it fills (cached first, so a published slot is never touched again). */
static int run_sink(void *arg, const void *data, size_t len)
{
	struct fetch_job *job = arg;
	struct reader *r = job->r;
	const char *p = data;

	while (len && job->next < job->n) {
		struct slot *s = job->s[job->next];
		uint64_t blen = block_len(r, s->index);
		size_t n = blen - s->data.len < len ? (size_t)(blen - s->data.len)
						    : len;

		if (buf_add(&s->data, p, n))
			return 1;
		p += n;
		len -= n;
		if (s->data.len == blen) {
			datacache_put(cache_of(r, s->index), r->key, r->etag,
				      s->index, s->data.data, s->data.len);
			job->next++;
			publish(r, s, 0);
		}
	}
	return 0;
}

/* Fill the run's slots: from the cache while it has them, then the rest
 * with one ranged GET. */
static void fill_run(struct fetch_job *job)
{
	struct reader *r = job->r;
	struct buf tmp = BUF_INIT;
	uint64_t off, end;
	int err;

	for (; job->next < job->n; job->next++) {
		struct slot *s = job->s[job->next];

		from_cache(r, s, &tmp);
		if (s->data.len != block_len(r, s->index))
			break;
		publish(r, s, 0);
	}
	buf_release(&tmp);
	if (job->next == job->n)
		return;
	buf_reset(&job->s[job->next]->data);
	off = job->s[job->next]->index * B;
	end = job->s[job->n - 1]->index * B + block_len(r, job->s[job->n - 1]->index);
	err = store_get(r->store, r->key, off, end - off,
			r->etag[0] ? r->etag : NULL, run_sink, job, NULL);
	if (err == EAGAIN)
		log_error("read of %s: the object changed while open", r->key);
	if (!err && !__atomic_exchange_n(&r->size_noted, 1, __ATOMIC_RELAXED))
		datacache_put_size(r->dc, r->key, r->etag, r->size);
	for (; job->next < job->n; job->next++)
		publish(r, job->s[job->next], EIO);
}

static void *ahead_thread(void *arg)
{
	struct fetch_job *job = arg;
	struct reader *r = job->r;

	fill_run(job);
	pthread_mutex_lock(&r->lock);
	r->inflight--;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	free(job);
	return NULL;
}

/* Start a background fill of up to READER_RUN blocks from i that no slot
 * holds. *next gets the block after those considered. 0, or 1 when no
 * more can start. Lock held. */
static int start_ahead(struct reader *r, uint64_t i, uint64_t last,
		       uint64_t *next)
{
	struct fetch_job *job = calloc(1, sizeof(*job));
	pthread_t t;

	*next = i + 1;
	if (!job)
		return 1;
	job->r = r;
	for (; i <= last && job->n < READER_RUN && !find_slot(r, i); i++) {
		struct slot *s = claim_slot(r, i, 1);

		if (!s)
			break;
		job->s[job->n++] = s;
	}
	*next = job->n ? i : i + 1;
	if (!job->n) {
		free(job);
		return i <= last && !find_slot(r, i); /* no free slot */
	}
	r->inflight++;
	if (pthread_create(&t, NULL, ahead_thread, job)) {
		r->inflight--;
		for (unsigned k = 0; k < job->n; k++)
			job->s[k]->state = SLOT_FREE;
		free(job);
		return 1;
	}
	pthread_detach(t);
	return 0;
}

/* Fetch the window of blocks after index in the background. Once the
 * window is at its size, a GET starts only for a whole run (or the rest
 * of the object): topping the window up by one block per read would make
 * every GET one block long. Lock held. */
static void read_ahead(struct reader *r, uint64_t index)
{
	uint64_t last = r->size ? (r->size - 1) / B : 0;
	uint64_t end = index + r->window < last ? index + r->window : last;
	uint64_t first = index + 1;
	unsigned run = r->window < READER_RUN ? r->window : READER_RUN;

	while (first <= end && find_slot(r, first))
		first++;
	if (first > end || (end - first + 1 < run && end < last))
		return;
	for (uint64_t i = first; i <= end;)
		if (start_ahead(r, i, end, &i))
			return;
}

/* Make block index hold at least need bytes and return its slot. Lock
 * held (released while loading). NULL with *err set on failure. */
static struct slot *get_block(struct reader *r, uint64_t index,
			      uint64_t need, int *err)
{
	for (;;) {
		struct slot *s = find_slot(r, index);
		uint64_t want;

		if (s && s->state == SLOT_READY && s->data.len >= need) {
			s->used = ++r->clock;
			return s;
		}
		if (s && s->state == SLOT_LOADING) {
			s->waiters++;
			pthread_cond_wait(&r->cond, &r->lock);
			s->waiters--;
			continue;
		}
		if (!s)
			s = claim_slot(r, index, 0);
		if (!s) { /* every slot loading: wait for one */
			pthread_cond_wait(&r->cond, &r->lock);
			continue;
		}
		if (s->state == SLOT_FAILED)
			buf_reset(&s->data);
		s->state = SLOT_LOADING;
		want = block_len(r, index);
		if (!r->fetched && !r->sequential && want > READER_FIRST)
			want = READER_FIRST;
		r->fetched = 1;
		pthread_mutex_unlock(&r->lock);
		*err = load_block(r, s, need, want);
		pthread_mutex_lock(&r->lock);
		s->state = *err ? SLOT_FAILED : SLOT_READY;
		pthread_cond_broadcast(&r->cond);
		if (*err)
			return NULL;
	}
}

/* Sequential if this read starts near where the last one ended; the
 * window doubles on entering a new block and closes on a seek. While a
 * window is open, a read up to READER_BEHIND blocks before the end of the
 * last is the kernel's read-ahead arriving out of order (its requests are
 * served by several threads): it changes nothing. Lock held. */
static void note_offset(struct reader *r, uint64_t off, size_t len)
{
	uint64_t block = off / B;

	if (r->window && off < r->next_off &&
	    off + READER_BEHIND * B >= r->next_off) {
		r->sequential = 1;
		return;
	}
	r->sequential = off && off + B >= r->next_off && off <= r->next_off + B;
	if (!r->sequential) {
		r->window = 0;
		r->last_block = block;
	} else if (block > r->last_block || !r->window) {
		r->window = r->window ? 2 * r->window : 1;
		if (r->window > READER_WINDOW_MAX)
			r->window = READER_WINDOW_MAX;
		r->last_block = block;
	}
	if (off + len > r->next_off || !r->sequential)
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
	release_behind(r, off / B);
	while (*got < len) {
		uint64_t pos = off + *got, index = pos / B;
		size_t in = (size_t)(pos - index * B);
		size_t n = len - *got < B - in ? len - *got : (size_t)(B - in);
		struct slot *s;

		if (r->window) /* before waiting for this block */
			read_ahead(r, index);
		s = get_block(r, index, in + n, &err);
		if (!s)
			break;
		memcpy((char *)out + *got, s->data.data + in, n);
		*got += n;
	}
	pthread_mutex_unlock(&r->lock);
	return err;
}
