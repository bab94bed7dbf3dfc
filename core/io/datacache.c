/*
 * datacache: blocks of objects on local disk (see datacache.h).
 *
 * The index is an hmap from a block's file name ("XX/HASH.N") to its
 * entry, and a doubly linked list of the entries, most recently used
 * first; both are protected by dc->lock, as is the total. File I/O is done
 * without the lock: a reader may race an eviction that unlinks the file it
 * opened, which is harmless (it reads the unlinked file or misses).
 */
#include "io/datacache.h"
#include "io/datacache_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"

static void lru_unlink(struct datacache *dc, struct dc_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		dc->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		dc->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push(struct datacache *dc, struct dc_entry *e)
{
	e->prev = NULL;
	e->next = dc->head;
	if (dc->head)
		dc->head->prev = e;
	dc->head = e;
	if (!dc->tail)
		dc->tail = e;
}

/* Remove name from the index (not from disk). Lock held. */
static void index_drop(struct datacache *dc, const char *name)
{
	struct dc_entry *e = hmap_remove(dc->index, name);

	if (!e)
		return;
	lru_unlink(dc, e);
	dc->bytes -= e->bytes;
	free(e);
}

/* Unlink least recently used blocks until at most bound bytes are held.
 * Lock held. */
static void evict_to(struct datacache *dc, uint64_t bound)
{
	char path[DC_PATH_MAX];

	while (dc->tail && dc->bytes > bound) {
		struct dc_entry *e = dc->tail;

		snprintf(path, sizeof(path), "%s/%s", dc->dir, e->name);
		if (unlink(path) && errno != ENOENT)
			log_warn("data cache: unlink of %s: %s", path,
				 strerror(errno));
		metrics_add(dc->metrics, MC_DATA_EVICTIONS, 1);
		index_drop(dc, e->name);
	}
	metrics_gauge_set(dc->metrics, MG_DATA_BYTES, (int64_t)dc->bytes);
}

/* Add (or replace) name with bytes as most recently used. Lock held. */
int dc_index_add(struct datacache *dc, const char *name, uint64_t bytes)
{
	size_t n = strlen(name) + 1;
	struct dc_entry *e;

	index_drop(dc, name);
	e = malloc(sizeof(*e) + n);
	if (!e)
		return ENOMEM;
	memcpy(e->name, name, n);
	e->bytes = bytes;
	if (hmap_put(dc->index, e->name, e, NULL)) {
		free(e);
		return ENOMEM;
	}
	lru_push(dc, e);
	dc->bytes += bytes;
	return 0;
}

/* Make room for bytes more, then account name. */
void dc_account(struct datacache *dc, const char *name, uint64_t bytes)
{
	pthread_mutex_lock(&dc->lock);
	evict_to(dc, dc->max_bytes > bytes ? dc->max_bytes - bytes : 0);
	if (dc_index_add(dc, name, bytes)) {
		char path[DC_PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", dc->dir, name);
		unlink(path);
	}
	metrics_gauge_set(dc->metrics, MG_DATA_BYTES, (int64_t)dc->bytes);
	pthread_mutex_unlock(&dc->lock);
}

/* A put or a stage could not write: log once, and free some room in case
 * the disk is full. */
void dc_write_failed(struct datacache *dc, const char *path, int err)
{
	pthread_mutex_lock(&dc->lock);
	if (!dc->warned)
		log_warn("data cache: write of %s: %s (blocks not cached)", path,
			 strerror(err));
	dc->warned = 1;
	if (err == ENOSPC && dc->bytes > 4 * (uint64_t)DATACACHE_BLOCK)
		evict_to(dc, dc->bytes - 4 * (uint64_t)DATACACHE_BLOCK);
	pthread_mutex_unlock(&dc->lock);
}

int datacache_get(struct datacache *dc, const char *key, const char *etag,
		  uint64_t block, size_t need, struct buf *out)
{
	char name[DC_NAME_MAX], path[DC_PATH_MAX];
	uint8_t id[DC_ID_LEN];
	int rc;

	if (!dc || !etag || !etag[0])
		return ENOENT;
	dc_block_id(key, etag, id);
	dc_block_name(id, block, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", dc->dir, name);
	pthread_mutex_lock(&dc->lock);
	rc = hmap_get(dc->index, name) ? 0 : ENOENT;
	pthread_mutex_unlock(&dc->lock);
	if (!rc)
		rc = dc_read_block(path, id, block, need, out);
	if (rc == EBADMSG) {
		log_warn("data cache: block %s of %s is damaged; refetching",
			 name, key);
		metrics_add(dc->metrics, MC_DATA_CORRUPT, 1);
		unlink(path);
		pthread_mutex_lock(&dc->lock);
		index_drop(dc, name);
		pthread_mutex_unlock(&dc->lock);
	}
	if (rc == EBADMSG || rc == ENODATA || rc == ENOENT) {
		metrics_add(dc->metrics, MC_DATA_MISSES, 1);
		return ENOENT;
	}
	if (rc)
		return rc;
	metrics_add(dc->metrics, MC_DATA_HITS, 1);
	pthread_mutex_lock(&dc->lock);
	struct dc_entry *e = hmap_get(dc->index, name);
	if (e) {
		lru_unlink(dc, e);
		lru_push(dc, e);
	}
	pthread_mutex_unlock(&dc->lock);
	utimensat(AT_FDCWD, path, NULL, 0);
	return 0;
}

void datacache_put(struct datacache *dc, const char *key, const char *etag,
		   uint64_t block, const void *data, size_t len)
{
	char name[DC_NAME_MAX];
	uint8_t id[DC_ID_LEN];
	uint64_t bytes;

	if (!dc || !etag || !etag[0] || !len || len > DATACACHE_BLOCK)
		return;
	if (len + DC_HEADER_LEN > dc->max_bytes)
		return;
	dc_block_id(key, etag, id);
	dc_block_name(id, block, name, sizeof(name));
	if (dc_write_block(dc, name, id, block, data, len, &bytes))
		return;
	dc_account(dc, name, bytes);
}

void datacache_put_size(struct datacache *dc, const char *key,
			const char *etag, uint64_t size)
{
	datacache_put(dc, key, etag, DC_SIZE_BLOCK, &size, sizeof(size));
}

int datacache_get_size(struct datacache *dc, const char *key,
		       const char *etag, uint64_t *size)
{
	struct buf b = BUF_INIT;
	int rc = datacache_get(dc, key, etag, DC_SIZE_BLOCK, sizeof(*size), &b);

	if (!rc)
		memcpy(size, b.data, sizeof(*size));
	buf_release(&b);
	return rc;
}

static int inflight_key(const char *key, const char *etag, uint64_t block,
			char *name, size_t size)
{
	uint8_t id[DC_ID_LEN];

	dc_block_id(key, etag, id);
	dc_block_name(id, block, name, size);
	return 0;
}

int datacache_claim(struct datacache *dc, const char *key, const char *etag,
		    uint64_t block)
{
	char name[DC_NAME_MAX];
	int mine = 1;

	if (!dc || !etag || !etag[0])
		return 1;
	inflight_key(key, etag, block, name, sizeof(name));
	pthread_mutex_lock(&dc->lock);
	while (hmap_get(dc->inflight, name)) {
		mine = 0;
		pthread_cond_wait(&dc->cond, &dc->lock);
	}
	if (mine && hmap_put(dc->inflight, name, dc, NULL))
		mine = 1; /* ENOMEM: fetch without sharing */
	pthread_mutex_unlock(&dc->lock);
	return mine;
}

void datacache_release(struct datacache *dc, const char *key,
		       const char *etag, uint64_t block)
{
	char name[DC_NAME_MAX];

	if (!dc || !etag || !etag[0])
		return;
	inflight_key(key, etag, block, name, sizeof(name));
	pthread_mutex_lock(&dc->lock);
	hmap_remove(dc->inflight, name);
	pthread_cond_broadcast(&dc->cond);
	pthread_mutex_unlock(&dc->lock);
}

int datacache_keeps(const struct datacache *dc, uint64_t size,
		    uint64_t block)
{
	return dc && (size <= dc->max_bytes / 4 ||
		      block < datacache_stage_bound(dc->max_bytes) /
				      DATACACHE_BLOCK);
}

uint64_t datacache_bytes(struct datacache *dc)
{
	uint64_t n;

	if (!dc)
		return 0;
	pthread_mutex_lock(&dc->lock);
	n = dc->bytes;
	pthread_mutex_unlock(&dc->lock);
	return n;
}

static struct datacache *dc_alloc(const char *dir, uint64_t max_bytes,
				  struct metrics *m)
{
	struct datacache *dc = calloc(1, sizeof(*dc));

	if (!dc)
		return NULL;
	dc->dir = strdup(dir);
	dc->index = hmap_create();
	dc->inflight = hmap_create();
	if (!dc->dir || !dc->index || !dc->inflight)
		goto out_free;
	if (pthread_mutex_init(&dc->lock, NULL))
		goto out_free;
	if (pthread_cond_init(&dc->cond, NULL)) {
		pthread_mutex_destroy(&dc->lock);
		goto out_free;
	}
	dc->max_bytes = max_bytes;
	dc->metrics = m;
	return dc;

out_free:
	hmap_destroy(dc->inflight, NULL);
	hmap_destroy(dc->index, NULL);
	free(dc->dir);
	free(dc);
	errno = ENOMEM;
	return NULL;
}

struct datacache *datacache_open(const char *dir, uint64_t max_bytes,
				 struct metrics *m)
{
	struct datacache *dc;
	int err;

	if (!max_bytes) {
		errno = EINVAL;
		return NULL;
	}
	if (mkdir(dir, 0700) && errno != EEXIST)
		return NULL;
	dc = dc_alloc(dir, max_bytes, m);
	if (!dc)
		return NULL;
	err = dc_scan(dc);
	if (err) {
		datacache_close(dc);
		errno = err;
		return NULL;
	}
	pthread_mutex_lock(&dc->lock);
	evict_to(dc, dc->max_bytes);
	pthread_mutex_unlock(&dc->lock);
	return dc;
}

void datacache_close(struct datacache *dc)
{
	if (!dc)
		return;
	hmap_destroy(dc->index, free);
	hmap_destroy(dc->inflight, NULL);
	pthread_cond_destroy(&dc->cond);
	pthread_mutex_destroy(&dc->lock);
	free(dc->dir);
	free(dc);
}
