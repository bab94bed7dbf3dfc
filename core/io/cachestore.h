/*
 * cachestore: a store layered over another that keeps object bytes in the
 * data cache (io/datacache.h), so that what was uploaded or read once is
 * not downloaded again.
 *
 * - get of a whole object pinned to an ETag (off 0, len 0, if_match set,
 *   as the thumbnail service reads sources) is served from cached blocks,
 *   fetching only from the first block missing; fetched bytes are cached.
 *   Other gets pass through (the reader caches by block itself).
 * - put: the body is cached under the ETag the server returned.
 * - multipart: each part is staged at offset (number - 1) * part_size; at
 *   completion the stage becomes the object's blocks if the parts were
 *   1..n with every part but the last exactly part_size, else it is
 *   dropped (never cached at wrong offsets). Abort drops the stage.
 * Everything else passes through. Caching never changes a result: a
 * cache that cannot be written is skipped.
 *
 * Thread-safe, as every store. inner and dc must outlive it.
 */
#ifndef IMGFS_CACHESTORE_H
#define IMGFS_CACHESTORE_H

#include <stdint.h>

#include "io/datacache.h"
#include "store/store.h"

/* NULL with errno set. */
struct store *cachestore_create(struct store *inner, struct datacache *dc,
				uint64_t part_size);
/* Drops stages of uploads still open; st may be NULL. */
void cachestore_destroy(struct store *st);

#endif
