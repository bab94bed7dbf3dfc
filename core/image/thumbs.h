/*
 * thumbs: the thumbnail service behind thumbnails/.
 *
 * Maps source keys under the uploads prefix to thumbnail keys under the
 * thumbnails prefix, and produces a thumbnail on demand: from the SQLite
 * cache, else from the bucket (a thumbnail object whose source-etag
 * metadata matches), else by reading the source and running the libvips
 * engine, after which it is stored in both. Sources that failed are
 * remembered per ETag and fail again at once. Concurrent requests for the
 * same missing thumbnail wait for a single generation.
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
/* Make sure the thumbnail object exists in the bucket (for links). */
int thumbs_ensure_stored(struct thumbs *t, const char *src_key,
			 const char *src_etag);
/* The thumbnail key for a source key ("uploads/a/b.heic" ->
 * "thumbnails/a/b.heic.jpg"). */
int thumbs_key_for(struct thumbs *t, const char *src_key, struct buf *out);
/* The source at src_key was replaced or deleted: drop its cache entries
 * and delete its thumbnail object from the bucket. 0 or errno. */
int thumbs_forget(struct thumbs *t, const char *src_key);

#endif
