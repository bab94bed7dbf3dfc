/*
 * reader: reads of one object, by chunks, with sequential read-ahead.
 *
 * The object is read in aligned chunks fetched with ranged GETs that all
 * carry If-Match of the ETag seen at open, so bytes of two versions are
 * never mixed (a replaced object reads as EIO). Once reads look sequential,
 * the next chunks are fetched in the background, several at once. Memory
 * is bounded by READER_SLOTS chunks per open file.
 *
 * Thread-safe: FUSE may deliver reads of one file from several threads.
 */
#ifndef IMGFS_READER_H
#define IMGFS_READER_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define READER_CHUNK (8u << 20) /* bytes per ranged GET */
#define READER_AHEAD 2          /* chunks fetched ahead when sequential */
#define READER_SLOTS (READER_AHEAD + 2)

struct reader;

/* NULL with errno set. s3 must outlive the reader. */
struct reader *reader_create(struct store *store, const char *key,
			     uint64_t size, const char *etag);
/* Read up to len bytes at off; *got is short only at the end of the object.
 * 0 or errno (EIO). */
int reader_read(struct reader *r, void *out, size_t len, uint64_t off,
		size_t *got);
/* Waits for background fetches, then frees. */
void reader_destroy(struct reader *r);

#endif
