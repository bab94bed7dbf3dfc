/*
 * mem: an in-memory object store that behaves like S3, for tests.
 *
 * mem_store() is a struct store (store.h) whose calls behave as S3's do:
 *
 *   objects   bytes, a quoted MD5 ETag (a completed multipart upload gets
 *             store_mpu_etag()'s "-N" ETag), Content-Type (default
 *             application/octet-stream), source_etag, LastModified (whole
 *             seconds, from time(NULL) or mem_set_mtime()).
 *   head/get  ENOENT for a missing key; get's if_match that differs from
 *             the ETag (quotes optional) is EAGAIN; a range starting at or
 *             past the end of a non-empty object is ERANGE (S3's 416), one
 *             running past the end is cut at the end; info->size is the
 *             whole object's size. Bytes reach the sink in pieces of at
 *             most MEM_SINK_PIECE, in order; a sink's non-zero stops the
 *             get with ECANCELED.
 *   put       replaces; if_none_match "*" on an existing key is EEXIST.
 *   copy      the bytes, Content-Type and source_etag; the copy's ETag is
 *             the MD5 of its bytes (a copy is a single-part object).
 *   delete    a missing key is 0.
 *   list      ListObjectsV2: keys in byte order (strcmp), prefix,
 *             delimiter folding keys into CommonPrefixes, max_keys (0 or
 *             more than 1000: 1000) counting keys and prefixes together,
 *             an opaque next_token when more follow. A token this store did
 *             not make is EIO.
 *   multipart uploads have ids ("mem-upload-N", never reused); a part
 *             numbered 1..10000 is replaced when sent again; complete
 *             needs parts in ascending order, each sent with that ETag,
 *             every one but the last at least the minimum part size (5 MiB
 *             as S3, see mem_set_min_part), else EIO as S3's InvalidPart,
 *             InvalidPartOrder or EntityTooSmall (and the upload stays);
 *             an unknown upload id is ENOENT (NoSuchUpload); abort of an
 *             unknown id is ENOENT; mpu_list reports uploads whose key
 *             starts with the prefix, by key, then by id.
 *
 * Faults, counted per call through the store interface only (the mem_*
 * functions below never count and never fail by injection):
 *   mem_inject()   fail the Nth call of one op (or of any) with an errno,
 *                  once, several times or for good; or "lose the reply":
 *                  the call takes effect, then returns the errno (a dropped
 *                  connection after the server acted: a lost create leaves
 *                  an upload nobody knows the id of).
 *   mem_latency()  sleep before each call of an op.
 *   mem_set_hook() run a function before each call (e.g. replace the
 *                  object before the second GET).
 * Behind the caller's back: mem_set(), mem_remove(), mem_set_mtime().
 * Observation: mem_stats() (and its shorthands mem_calls(),
 * mem_bytes_read(), ...), mem_peek().
 *
 * Thread-safe: one lock guards the objects, uploads, faults and counters.
 * Latency, hooks and sinks run without it, so a hook or sink may call any
 * mem_* function (a sink must not call the same store, as with S3). Memory
 * is the objects' and parts' bytes; an object's bytes are shared, not
 * copied, by the gets reading it.
 */
#ifndef IMGFS_MEM_H
#define IMGFS_MEM_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/buf.h"
#include "store/store.h"

#define MEM_SINK_PIECE (64u << 10)  /* bytes per sink call of a get */
#define MEM_MIN_PART (5u << 20)     /* S3's minimum size of a non-last part */

/* The calls of the store interface, for faults and counters. */
enum mem_op {
	MEM_HEAD,
	MEM_GET,
	MEM_PUT,
	MEM_DELETE,
	MEM_COPY,
	MEM_LIST,
	MEM_MPU_CREATE,
	MEM_MPU_PART,
	MEM_MPU_COMPLETE,
	MEM_MPU_ABORT,
	MEM_MPU_LIST,
	MEM_OPS,          /* the number of ops */
	MEM_ANY = MEM_OPS /* matches (or counts) every op */
};

struct mem_store;

/* An empty store. NULL with errno set. */
struct mem_store *mem_create(void);
/* Free everything; no call may be in progress. NULL is ignored. */
void mem_destroy(struct mem_store *m);
/* The store interface; valid until mem_destroy(). */
struct store *mem_store(struct mem_store *m);
/* The mem store behind mem_store(m)'s result. */
struct mem_store *mem_of(struct store *st);

/* ---- faults ------------------------------------------------------------ */

#define MEM_FOREVER UINT_MAX

struct mem_fault {
	enum mem_op op;   /* the op it applies to, or MEM_ANY */
	unsigned nth;     /* 1 (or 0): the next matching call; 2: the one after */
	unsigned times;   /* calls that fail from the nth on (0: one);
			   * MEM_FOREVER: every one until cleared */
	int err;          /* the errno returned (0: EIO) */
	int lose_reply;   /* 1: the call takes effect first (outputs dropped:
			   * no ETag, id, page or bytes reach the caller) */
};

/*
 * Arm a fault, counting calls from now. Several may be armed (at most
 * MEM_FAULTS); each matching call advances every armed fault, and the
 * first one due (in the order armed) decides the call; another also due
 * then stays due for the next matching call. 0 or ENOSPC.
 */
#define MEM_FAULTS 16
int mem_inject(struct mem_store *m, const struct mem_fault *f);
/* Disarm every fault and latency. */
void mem_clear_faults(struct mem_store *m);
/* Sleep usec microseconds before each call of op (MEM_ANY: every op). */
void mem_latency(struct mem_store *m, enum mem_op op, unsigned usec);

/* Run before each call of the store interface (after counting it, before
 * faults and latency), without the lock; call is the op's count including
 * this one. NULL removes it. */
typedef void (*mem_hook_fn)(void *arg, enum mem_op op, const char *key,
			    unsigned long call);
void mem_set_hook(struct mem_store *m, mem_hook_fn fn, void *arg);

/* Parts but the last smaller than this make complete fail (default
 * MEM_MIN_PART; tests with small parts lower it). */
void mem_set_min_part(struct mem_store *m, uint64_t bytes);

/* ---- the bucket behind the caller's back ------------------------------- */

/* Store an object as a PUT would (opts may be NULL; if_none_match is
 * ignored), uncounted. etag_out may be NULL. 0 or ENOMEM. */
int mem_set(struct mem_store *m, const char *key, const void *data,
	    size_t len, const struct store_put_opts *opts,
	    char etag_out[STORE_ETAG_MAX]);
/* Remove an object. 0 or ENOENT. */
int mem_remove(struct mem_store *m, const char *key);
/* Set an object's LastModified. 0 or ENOENT. */
int mem_set_mtime(struct mem_store *m, const char *key, time_t mtime);

/* ---- observation -------------------------------------------------------- */

/* What the store has seen, at one instant: calls through the interface
 * (failed ones included) and bytes, since create or the last
 * mem_reset_counters(); objects and multipart uploads now. */
struct mem_stats {
	unsigned long calls[MEM_OPS];
	uint64_t bytes_read;     /* handed to get sinks */
	uint64_t bytes_written;  /* received by put and mpu_part */
	size_t objects;
	size_t uploads;          /* multipart uploads in progress */
};
void mem_stats(struct mem_store *m, struct mem_stats *out);

/* Shorthands for one figure of mem_stats(); MEM_ANY sums every op. */
unsigned long mem_calls(struct mem_store *m, enum mem_op op);
uint64_t mem_bytes_read(struct mem_store *m);
uint64_t mem_bytes_written(struct mem_store *m);
size_t mem_object_count(struct mem_store *m);
size_t mem_upload_count(struct mem_store *m);
/* Zero the calls and bytes. */
void mem_reset_counters(struct mem_store *m);

/* An object's bytes (appended to data, which may be NULL) and attributes
 * (info may be NULL), uncounted. 0, ENOENT or ENOMEM. */
int mem_peek(struct mem_store *m, const char *key, struct buf *data,
	     struct store_object *info);

#endif
