/*
 * reader: reads of one object, by blocks, with adaptive read-ahead.
 *
 * The object is read in DATACACHE_BLOCK blocks. Each block is looked up in
 * the data cache (keyed by key and the ETag seen at open) and otherwise
 * fetched with a ranged GET carrying If-Match of that ETag, so bytes of two
 * versions are never mixed (a replaced object reads as EIO), then put into
 * the cache. Readers of one object share blocks through the cache: a block
 * being fetched by one is waited for by the others (datacache_claim).
 *
 * Read-ahead adapts: the first GET of an open that does not look
 * sequential fetches READER_FIRST bytes (enough for an image's header, and
 * little for `head`); the rest of a partly fetched block is fetched later
 * without fetching its start again. Each time sequential reads enter a new
 * block the window of blocks fetched ahead in the background doubles, up
 * to READER_WINDOW_MAX, fetched by runs of up to READER_RUN blocks per GET
 * (several in flight; once the window is full, a GET starts only for a
 * whole run); a seek drops it to none. Memory is bounded by
 * READER_SLOTS blocks per open file, and every block buffer is taken from
 * the daemon-wide budget (base/membudget.h): a read-ahead block only when
 * it fits (else the window is cut short), the block a read needs at once
 * (reusing one of the reader's own buffers first when the budget is
 * spent). A sequential reader reuses the buffers of the blocks it has
 * passed (READER_BEHIND back, as the kernel's requests come slightly out
 * of order) and gives them back when the budget is short.
 *
 * Thread-safe: FUSE may deliver reads of one file from several threads.
 */
#ifndef IMGFS_READER_H
#define IMGFS_READER_H

#include <stddef.h>
#include <stdint.h>

#include "io/datacache.h"
#include "store/store.h"

#define READER_FIRST (256u << 10)   /* bytes of an open's first GET */
#define READER_WINDOW_MAX 64        /* blocks fetched ahead at most */
#define READER_RUN 32               /* blocks per read-ahead GET at most */
#define READER_BEHIND 4             /* blocks kept behind a sequential read */
#define READER_SLOTS (READER_WINDOW_MAX + READER_BEHIND + 4)

struct reader;

struct membudget;

/* NULL with errno set. store, dc (may be NULL: no cache) and mb (may be
 * NULL: unbounded) must outlive the reader. */
struct reader *reader_create(struct store *store, struct datacache *dc,
			     struct membudget *mb, const char *key,
			     uint64_t size, const char *etag);
/* Read up to len bytes at off; *got is short only at the end of the object.
 * 0 or errno (EIO). */
int reader_read(struct reader *r, void *out, size_t len, uint64_t off,
		size_t *got);
/* Waits for background fetches, then frees. */
void reader_destroy(struct reader *r);

#endif
