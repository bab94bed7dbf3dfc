/*
 * membudget: a counter of bytes under a mutex, with a condition variable
 * for the holders waiting on it (see membudget.h).
 */
#include "base/membudget.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct membudget {
	pthread_mutex_t lock;
	pthread_cond_t cond;     /* signalled when bytes or flights change */
	uint64_t max;            /* set once by membudget_create */
	uint64_t used;           /* protected by lock */
	uint64_t peak;           /* protected by lock */
	unsigned waiting;        /* protected by lock */
	long flights;            /* protected by lock */
	struct metrics *m;
};

struct membudget *membudget_create(uint64_t max, struct metrics *m)
{
	struct membudget *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	if (pthread_mutex_init(&b->lock, NULL)) {
		free(b);
		errno = ENOMEM;
		return NULL;
	}
	if (pthread_cond_init(&b->cond, NULL)) {
		pthread_mutex_destroy(&b->lock);
		free(b);
		errno = ENOMEM;
		return NULL;
	}
	b->max = max;
	b->m = m;
	return b;
}

void membudget_destroy(struct membudget *b)
{
	if (!b)
		return;
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static int fits_locked(const struct membudget *b, uint64_t n)
{
	return b->used <= b->max && n <= b->max - b->used;
}

static void add_locked(struct membudget *b, uint64_t n)
{
	b->used += n;
	if (b->used > b->peak)
		b->peak = b->used;
	if (b->m)
		metrics_gauge_add(b->m, MG_MEMORY_BYTES, (int64_t)n);
}

int membudget_try(struct membudget *b, uint64_t n)
{
	int ok;

	if (!b)
		return 1;
	pthread_mutex_lock(&b->lock);
	ok = fits_locked(b, n) && !b->waiting;
	if (ok)
		add_locked(b, n);
	pthread_mutex_unlock(&b->lock);
	return ok;
}

void membudget_take(struct membudget *b, uint64_t n)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->waiting++;
	while (!fits_locked(b, n) && b->flights > 0)
		pthread_cond_wait(&b->cond, &b->lock);
	b->waiting--;
	add_locked(b, n);
	pthread_mutex_unlock(&b->lock);
}

void membudget_force(struct membudget *b, uint64_t n)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	add_locked(b, n);
	pthread_mutex_unlock(&b->lock);
}

void membudget_give(struct membudget *b, uint64_t n)
{
	if (!b || !n)
		return;
	pthread_mutex_lock(&b->lock);
	b->used = n < b->used ? b->used - n : 0;
	if (b->m)
		metrics_gauge_add(b->m, MG_MEMORY_BYTES, -(int64_t)n);
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

void membudget_flight(struct membudget *b, int delta)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->flights += delta;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

int membudget_short(struct membudget *b)
{
	int s;

	if (!b)
		return 0;
	pthread_mutex_lock(&b->lock);
	s = b->waiting || b->used > b->max;
	pthread_mutex_unlock(&b->lock);
	return s;
}

uint64_t membudget_used(struct membudget *b)
{
	uint64_t v;

	if (!b)
		return 0;
	pthread_mutex_lock(&b->lock);
	v = b->used;
	pthread_mutex_unlock(&b->lock);
	return v;
}

uint64_t membudget_peak(struct membudget *b)
{
	uint64_t v;

	if (!b)
		return 0;
	pthread_mutex_lock(&b->lock);
	v = b->peak;
	pthread_mutex_unlock(&b->lock);
	return v;
}

uint64_t membudget_max(const struct membudget *b)
{
	return b ? b->max : UINT64_MAX;
}
