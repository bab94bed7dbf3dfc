/*
 * thumbs: the thumbnail service behind thumbnails/.
 *
 * Maps source keys under the uploads prefix to thumbnail keys under the
 * thumbnails prefix, and produces a thumbnail on demand: from the SQLite
 * cache, else from the bucket (a thumbnail object whose source-etag
 * metadata matches), else by reading the source and running the libvips
 * engine in a sandboxed worker process (pool.h; nothing of the source is
 * parsed in the daemon), after which it is stored in both. A worker that
 * crashes or passes conf->timeout costs that thumbnail an EIO. Sources that failed are
 * remembered per ETag and fail again at once. Concurrent requests for the
 * same missing thumbnail wait for a single generation.
 *
 * Sizes: the engine makes every size of thumb_sizes from one decode.
 * Index 0 is the first size (thumbnails/, objects under the thumbnails
 * prefix); index i > 0 is size N = thumbs_size(t, i) (thumbnails-N/,
 * objects under "<thumbnails prefix>@N/"). The functions without _n are
 * those of index 0.
 *
 * Background work (see thumbs_int.h for how): thumbs_eager() makes the
 * thumbnails of a source just written from its bytes, and thumbs_ahead()
 * those a reader is about to ask for, on idle decode slots, never more
 * than conf->concurrency decodes at once. A read that comes meanwhile
 * waits for the same generation, or takes the bytes over.
 *
 * Thread-safe: every function may be called from any FUSE thread.
 */
#ifndef IMGFS_THUMBS_H
#define IMGFS_THUMBS_H

#include <stdint.h>

#include "base/buf.h"
#include "config/cfg.h"
#include "base/metrics.h"
#include "store/store.h"

struct thumbs;

/* NULL with errno set (and a log line) when the cache cannot be opened. */
struct thumbs *thumbs_create(const struct thumb_conf *tconf,
			     const struct cache_conf *cconf,
			     const struct fs_conf *fconf, struct store *store,
			     struct metrics *m);
void thumbs_destroy(struct thumbs *t);

/* Is name (a file name, no folder) one that gets a thumbnail? */
int thumbs_is_image(const char *name);
/* The thumbnail's file name for a source file name: the same, or with
 * ".jpg" appended where libvips cannot write the source's format. */
int thumbs_name_for(const char *src_name, struct buf *out);
/* The source file name for a thumbnail file name; ENOENT if none maps. */
int thumbs_source_for(const char *thumb_name, struct buf *out);

/*
 * The thumbnail of the source object src_key whose current ETag is
 * src_etag, appended to out. 0; EIO for a source that cannot be
 * thumbnailed (logged once per ETag) or when S3 failed; ENOENT when the
 * source is gone or no longer has src_etag (re-stat it and ask again);
 * EINVAL for an empty src_etag or a key outside the uploads prefix.
 */
int thumbs_get(struct thumbs *t, const char *src_key, const char *src_etag,
	       struct buf *out);
/* The size of the thumbnail if it is already known locally, without
 * generating or any network request: 0 or ENOENT. */
int thumbs_peek_size(struct thumbs *t, const char *src_key,
		     const char *src_etag, uint64_t *size);
/* The width and height of the source src_key at src_etag, as recorded
 * when its thumbnails were made here (the cache keeps them), with no
 * network request and no decode: 0, or ENOENT when not known. */
int thumbs_source_dims(struct thumbs *t, const char *src_key,
		       const char *src_etag, unsigned *width, unsigned *height);
/* 1 when the cache remembers that size idx of src_key at src_etag cannot
 * be made (a failed decode), without any network request; else 0. */
int thumbs_known_failed_n(struct thumbs *t, unsigned idx,
			  const char *src_key, const char *src_etag);
/* Make sure the thumbnail object exists in the bucket (for links). */
int thumbs_ensure_stored(struct thumbs *t, const char *src_key,
			 const char *src_etag);
/* The thumbnail key for a source key ("uploads/a/b.heic" ->
 * "thumbnails/a/b.heic.jpg"). */
int thumbs_key_for(struct thumbs *t, const char *src_key, struct buf *out);
/* The number of sizes (at least 1) and the edge of size idx (0 past
 * the last). */
unsigned thumbs_nsizes(const struct thumbs *t);
unsigned thumbs_size(const struct thumbs *t, unsigned idx);
/* The calls above for size idx; EINVAL for an idx past the last. */
int thumbs_get_n(struct thumbs *t, unsigned idx, const char *src_key,
		 const char *src_etag, struct buf *out);
int thumbs_peek_size_n(struct thumbs *t, unsigned idx, const char *src_key,
		       const char *src_etag, uint64_t *size);
int thumbs_ensure_stored_n(struct thumbs *t, unsigned idx,
			   const char *src_key, const char *src_etag);
int thumbs_key_for_n(struct thumbs *t, unsigned idx, const char *src_key,
		     struct buf *out);

/*
 * The bytes of a source for thumbs_eager(): thumbs_src_new() reserves
 * room for size bytes (in a memfd, which goes to the worker as it is,
 * while the service holds little, else in an unlinked file in the cache
 * directory, copied into a memfd for the decode) or returns NULL when the
 * bounds are reached (then the thumbnails are made on first read);
 * thumbs_src_add() appends, in the shape of a store sink (0 to go on,
 * non-zero when it failed or more than size bytes came); thumbs_src_free()
 * frees one that was not handed over. One thread at a time per src.
 */
struct thumbs_src;
struct thumbs_src *thumbs_src_new(struct thumbs *t, uint64_t size);
int thumbs_src_add(void *src, const void *data, size_t len);
void thumbs_src_free(struct thumbs_src *src);

/* src_key now has src_etag and the bytes in src (taken over, also on
 * failure): make every size of its thumbnail in the background, with no
 * request for the source. 0, or an errno when it was not queued. */
int thumbs_eager(struct thumbs *t, const char *src_key, const char *src_etag,
		 struct thumbs_src *src);
/* A reader is about to ask for size idx of src_key at src_etag: make it
 * in the background unless it is known or under way already. */
void thumbs_ahead(struct thumbs *t, unsigned idx, const char *src_key,
		  const char *src_etag);

/* The source at src_key was replaced or deleted: drop its cache entries,
 * its background work, and delete the thumbnail object of every size from
 * the bucket. 0 or errno. */
int thumbs_forget(struct thumbs *t, const char *src_key);

#endif
