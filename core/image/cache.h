/*
 * cache: the thumbnail cache, an SQLite database in the cache directory.
 *
 * An entry is keyed by (source key, source ETag, thumbnail spec) and holds
 * either a thumbnail (its bytes and format name) or a failure (the error
 * text, so that a source that cannot be thumbnailed fails again at once
 * for that ETag). Entries survive restarts. The total size is bounded by
 * conf->max_bytes: after each insertion the least recently used entries
 * are evicted. Putting an entry drops the entries of the same source and
 * spec with another ETag, so a replaced source never serves a stale
 * thumbnail and does not hold space.
 *
 * Storage: WAL journal, synchronous=NORMAL (an entry may be lost in a
 * power cut, the database is never corrupted by a crash); a database that
 * cannot be opened as one is deleted and created anew, since it is only a
 * cache. Last access is written at most once per second per entry.
 *
 * Thread-safe: one connection guarded by a mutex; every function may be
 * called from any thread. Byte and entry totals are kept in memory: two
 * processes sharing one directory each bound only what they know of.
 */
#ifndef IMGFS_CACHE_H
#define IMGFS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "config/cfg.h"
#include "base/metrics.h"

#define CACHE_DB_NAME "thumbs.db"
#define CACHE_FORMAT_MAX 16 /* bytes for a format name, with its NUL */

struct cache;

struct cache_key {
	const char *key;  /* source object key */
	const char *etag; /* source ETag, as S3 sends it */
	const char *spec; /* thumbnail spec, e.g. "128/none/v2" */
};

/* Open (creating conf->dir with mode 0700 and the database as needed).
 * m (may be NULL) receives hits, misses, evictions, bytes and entries and
 * must outlive the cache. NULL with errno set and a log line. */
struct cache *cache_open(const struct cache_conf *conf, struct metrics *m);
void cache_close(struct cache *c);

/*
 * Look an entry up. 0: a thumbnail; its bytes are appended to out and its
 * format name copied to format (CACHE_FORMAT_MAX bytes, may be NULL).
 * ENOENT: no entry. EIO: a remembered failure; its text is appended to err
 * (may be NULL). Counts a hit or a miss. Other errno: the database failed.
 */
int cache_get(struct cache *c, const struct cache_key *k, struct buf *out,
	      char *format, struct buf *err);
/* The size of a thumbnail entry, without reading it, counting or touching
 * it: 0, ENOENT, or EIO for a remembered failure. */
int cache_peek(struct cache *c, const struct cache_key *k, uint64_t *size);

/* Store a thumbnail (format: "jpeg", "png", ...) or a failure. Replaces
 * the entries of the same key and spec, then evicts down to the bound.
 * 0 or errno (logged). */
int cache_put(struct cache *c, const struct cache_key *k, const void *data,
	      size_t len, const char *format);
int cache_put_failure(struct cache *c, const struct cache_key *k,
		      const char *error);

/*
 * The width and height of the source key at etag, recorded when a
 * thumbnail was made from it: one small row per source key (a new ETag
 * replaces it), outside the byte bound and the LRU, dropped with the
 * source by cache_forget_source(). get: 0, ENOENT or errno; put: 0 or
 * errno (logged).
 */
int cache_put_dims(struct cache *c, const char *key, const char *etag,
		   unsigned width, unsigned height);
int cache_get_dims(struct cache *c, const char *key, const char *etag,
		   unsigned *width, unsigned *height);

/* Drop every entry of source key (all ETags and specs), and its
 * dimensions. 0 or errno. */
int cache_forget_source(struct cache *c, const char *key);

/* Bytes and entries held. */
void cache_totals(struct cache *c, uint64_t *bytes, uint64_t *entries);
/* PRAGMA integrity_check: 0 when "ok", else EIO (logged). */
int cache_check(struct cache *c);

#endif
