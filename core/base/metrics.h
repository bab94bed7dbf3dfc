/*
 * metrics: the daemon's counters, rendered in Prometheus text format.
 *
 * Every update is a relaxed atomic add, so any thread may count at any
 * time without a lock. metrics_render() reads a consistent-enough snapshot.
 */
#ifndef IMGFS_METRICS_H
#define IMGFS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum metrics_op {
	MOP_GET, MOP_PUT, MOP_HEAD, MOP_DELETE, MOP_COPY, MOP_LIST,
	MOP_MPU_CREATE, MOP_MPU_PART, MOP_MPU_COMPLETE, MOP_MPU_ABORT,
	MOP_MPU_LIST, MOP_CREDS, MOP__COUNT
};

enum metrics_counter {
	MC_RETRIES,          /* S3 request attempts after the first */
	MC_BYTES_UP,         /* body bytes sent to S3 */
	MC_BYTES_DOWN,       /* body bytes received from S3 */
	MC_UPLOADS,          /* files uploaded at close */
	MC_UPLOAD_ERRORS,    /* uploads that failed (close returned an error) */
	MC_THUMBS_GENERATED, /* thumbnails decoded and encoded */
	MC_THUMB_ERRORS,     /* sources that could not be thumbnailed */
	MC_CACHE_HITS,       /* thumbnails served from SQLite */
	MC_CACHE_MISSES,
	MC_CACHE_EVICTIONS,
	MC_THUMB_S3_HITS,    /* thumbnails reused from the bucket */
	MC_LINK_READS,       /* .links/ files opened */
	MC_DATA_HITS,        /* blocks read from the local data cache */
	MC_DATA_MISSES,
	MC_DATA_CORRUPT,     /* damaged data cache blocks dropped */
	MC_DATA_EVICTIONS,
	MC_THUMBS_EAGER,     /* sources thumbnailed from the bytes uploaded */
	MC_THUMBS_AHEAD,     /* thumbnails queued ahead of a reader */
	MC_THUMB_WORKER_RESTARTS, /* thumbnail workers that crashed, broke
				     the protocol or timed out, replaced */
	MC__COUNT
};

/* Errors returned to a caller, by kind: imgfs_errors_total{kind=...}. */
enum metrics_error {
	ME_READ_EIO,         /* a read that failed with EIO ("read_eio") */
	ME_WRITE_REFUSED,    /* a change refused: EROFS, EACCES, EPERM ("write_refused") */
	ME_UPLOAD,           /* a close or fsync whose upload failed ("upload") */
	ME_DECODE,           /* a source that could not be thumbnailed ("decode") */
	ME__COUNT
};

enum metrics_gauge {
	MG_CACHE_BYTES, MG_CACHE_ENTRIES,
	MG_UPLOADS_ACTIVE,      /* files written and not yet uploaded */
	MG_UPLOAD_BYTES_ACTIVE, /* bytes written so far to those files */
	MG_DATA_BYTES,          /* bytes held by the local data cache */
	MG_MEMORY_BYTES,        /* bytes of part and read-ahead buffers
				   (base/membudget.h) */
	MG__COUNT
};

struct metrics;

/* NULL with errno set on ENOMEM. */
struct metrics *metrics_create(void);
void metrics_destroy(struct metrics *m);

/* One finished S3 request: HTTP status (0 for a transport error) and its
 * duration in seconds. */
void metrics_request(struct metrics *m, enum metrics_op op, int status,
		     double seconds);
void metrics_add(struct metrics *m, enum metrics_counter c, uint64_t n);
void metrics_gauge_set(struct metrics *m, enum metrics_gauge g, int64_t v);
void metrics_gauge_add(struct metrics *m, enum metrics_gauge g, int64_t d);
void metrics_error(struct metrics *m, enum metrics_error kind);
uint64_t metrics_errors(const struct metrics *m, enum metrics_error kind);
uint64_t metrics_get(const struct metrics *m, enum metrics_counter c);
/* Requests of op so far, all statuses. */
uint64_t metrics_requests(const struct metrics *m, enum metrics_op op);

/* Append the Prometheus text exposition. 0 or ENOMEM. */
int metrics_render(const struct metrics *m, struct buf *out);

/* "GET", "PUT", ... */
const char *metrics_op_name(enum metrics_op op);

#endif
