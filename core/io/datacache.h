/*
 * datacache: object bytes kept on local disk, in fixed blocks.
 *
 * A block is DATACACHE_BLOCK bytes of one version of one object, named by
 * (key, ETag, block number), so a replaced object (a new ETag) never finds
 * the old version's blocks; they age out. A block may hold only a prefix
 * of its range (a small first read of an object); a lookup states how many
 * bytes it needs and misses when the block holds fewer.
 *
 * On disk: DIR/XX/HASH.N, one file per block, a header (magic, the hash of
 * key and ETag, the block number, length and CRC-32 of the bytes) and the
 * bytes. A block is written to a temporary file and renamed into place, so
 * a crash at any moment leaves either the old state or the whole block;
 * temporary files left by a crash are removed at open. Every read checks
 * the header and the CRC: a damaged block is deleted and reported as a
 * miss, never served. The cache survives restarts (the index is rebuilt
 * from the directory at open, oldest modification time evicted first; a
 * hit refreshes the file's mtime).
 *
 * Bounded by max_bytes (file sizes, headers included): a put evicts least
 * recently used blocks until the total fits. A put that cannot be written
 * (ENOSPC, EIO) is dropped (logged once per open): the cache is an
 * optimisation and never fails a read.
 *
 * Sharing: datacache_claim() lets readers of one object (several open
 * files, or read-ahead threads) fetch a block once: the first claimant
 * fetches and puts (or releases); the others wait and then look again.
 *
 * Uploads: a stage collects the blocks of an object being written before
 * its ETag is known; committing it with the ETag makes them blocks of that
 * version. A stage holds at most datacache_stage_bound() bytes: of a larger
 * file only the head is kept (enough for its headers), since writing every
 * byte of a large file to the local disk a second time (the upload's spool
 * holds one copy already) costs more write throughput than re-reading it
 * would cost later.
 *
 * Every function accepts dc == NULL (a disabled cache): lookups miss, puts
 * do nothing. Thread-safe.
 */
#ifndef IMGFS_DATACACHE_H
#define IMGFS_DATACACHE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/metrics.h"

#define DATACACHE_BLOCK (1u << 20)

struct datacache;
struct datacache_stage;

/* Open (creating) the cache in dir, bounded by max_bytes (> 0). m may be
 * NULL. NULL with errno set. */
struct datacache *datacache_open(const char *dir, uint64_t max_bytes,
				 struct metrics *m);
void datacache_close(struct datacache *dc);

/* Replace out's content with the bytes of block (from offset 0 of the
 * block; at least need bytes). 0 on a hit; ENOENT on a miss or a damaged
 * block; ENOMEM. */
int datacache_get(struct datacache *dc, const char *key, const char *etag,
		  uint64_t block, size_t need, struct buf *out);
/* Store len (1..DATACACHE_BLOCK) bytes as block; replaces a shorter one. */
void datacache_put(struct datacache *dc, const char *key, const char *etag,
		   uint64_t block, const void *data, size_t len);

/* The object's size, recorded with its blocks (reads of a whole object
 * need it to know where it ends). get: 0 or ENOENT. */
void datacache_put_size(struct datacache *dc, const char *key,
			const char *etag, uint64_t size);
int datacache_get_size(struct datacache *dc, const char *key,
		       const char *etag, uint64_t *size);

/* 1: the caller is now the one fetching block and must call
 * datacache_release() after its put (or failure). 0: another caller was
 * fetching it and has finished; look in the cache again. A NULL dc or an
 * empty etag always returns 1. */
int datacache_claim(struct datacache *dc, const char *key, const char *etag,
		    uint64_t block);
void datacache_release(struct datacache *dc, const char *key,
		       const char *etag, uint64_t block);

/* Should a read of an object of size bytes keep block? Yes, but of an
 * object larger than a quarter of the cache only the head (the
 * datacache_stage_bound() bytes a stage would keep): one pass over it
 * would push out most of what the cache holds, for an object that, read
 * again, streams as fast from the store. 0 when dc is NULL. */
int datacache_keeps(const struct datacache *dc, uint64_t size,
		    uint64_t block);

/* Bytes currently held (file sizes). */
uint64_t datacache_bytes(struct datacache *dc);

/* The most a stage keeps: DATACACHE_STAGE_MAX, or half the cache when
 * that is smaller. */
#define DATACACHE_STAGE_MAX (64ull << 20)
static inline uint64_t datacache_stage_bound(uint64_t max_bytes)
{
	return max_bytes / 2 < DATACACHE_STAGE_MAX ? max_bytes / 2
						   : DATACACHE_STAGE_MAX;
}

/* Begin collecting the blocks of a new version of key. NULL when dc is
 * NULL or on ENOMEM. */
struct datacache_stage *datacache_stage_begin(struct datacache *dc,
					      const char *key);
/* Bytes [off, off + len) of the new version. Writes that are not aligned
 * to blocks, or that would leave a hole, are ignored (the stage then
 * keeps only the blocks it has whole). Not thread-safe per stage. */
void datacache_stage_write(struct datacache_stage *st, uint64_t off,
			   const void *data, size_t len);
/* The object is now etag with size bytes: its staged blocks become cache
 * blocks. Frees st. */
void datacache_stage_commit(struct datacache_stage *st, const char *etag,
			    uint64_t size);
/* Drop the staged blocks. Frees st. st may be NULL. */
void datacache_stage_abort(struct datacache_stage *st);

#endif
