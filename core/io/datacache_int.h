/*
 * datacache_int.h: what the data cache's files share (not a public API).
 *
 * datacache.c keeps the index and eviction; datacache_file.c reads, writes
 * and scans block files and runs stages.
 */
#ifndef IMGFS_DATACACHE_INT_H
#define IMGFS_DATACACHE_INT_H

#include <pthread.h>
#include <stdint.h>

#include "base/hmap.h"
#include "io/datacache.h"

#define DC_ID_LEN 16          /* bytes of SHA-256(key "\n" etag) kept */
#define DC_NAME_MAX 64        /* "XX/" + 32 hex + "." + block number */
#define DC_PATH_MAX 4096
#define DC_HEADER_LEN 40
#define DC_SIZE_BLOCK UINT64_MAX /* the block number of an object's size record */

struct dc_entry {
	struct dc_entry *prev, *next; /* LRU list, most recent first */
	uint64_t bytes;               /* file size */
	char name[];                  /* "XX/HASH.N" */
};

struct datacache {
	char *dir;
	struct metrics *metrics;
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* inflight changed */
	uint64_t max_bytes;           /* set once by datacache_open */
	uint64_t bytes;               /* protected by lock */
	struct hmap *index;           /* name -> struct dc_entry; protected by lock */
	struct hmap *inflight;        /* names being fetched; protected by lock */
	struct dc_entry *head, *tail; /* protected by lock */
	uint64_t stages;              /* stage ids handed out; protected by lock */
	int warned;                   /* a write failure was logged; protected by lock */
};

/* The block id of (key, etag), and a block's file name under dir. */
void dc_block_id(const char *key, const char *etag, uint8_t id[DC_ID_LEN]);
void dc_block_name(const uint8_t id[DC_ID_LEN], uint64_t block, char *name,
		   size_t size);

/* Read and check the block file at path into out. 0; ENOENT (absent);
 * ENODATA (fewer than need bytes); EBADMSG (damaged); ENOMEM. */
int dc_read_block(const char *path, const uint8_t id[DC_ID_LEN],
		  uint64_t block, size_t need, struct buf *out);
/* Write a block file dir/name atomically; *bytes gets its size. 0 or errno
 * (already reported through dc_write_failed). */
int dc_write_block(struct datacache *dc, const char *name,
		   const uint8_t id[DC_ID_LEN], uint64_t block,
		   const void *data, size_t len, uint64_t *bytes);

/* Index name (bytes), most recently used. Lock held. 0 or ENOMEM. */
int dc_index_add(struct datacache *dc, const char *name, uint64_t bytes);
/* Evict to make room for bytes, then index name (lock not held). */
void dc_account(struct datacache *dc, const char *name, uint64_t bytes);
void dc_write_failed(struct datacache *dc, const char *path, int err);

/* Rebuild the index from dir, deleting temporary files. Lock not held (the
 * cache is not shared yet). 0 or errno. */
int dc_scan(struct datacache *dc);

#endif
