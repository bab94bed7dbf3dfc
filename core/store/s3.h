/*
 * s3: a small S3 client on libcurl.
 *
 * Keys are full object keys ("uploads/a b.jpg"), unencoded; the client
 * encodes them. Every call is synchronous and thread-safe: connections are
 * pooled and reused, at most conf->max_connections requests are in flight,
 * and failed attempts (connection errors, timeouts, 500, 503, SlowDown,
 * RequestTimeout) are retried with capped exponential backoff and full
 * jitter. A request with no progress for conf->request_timeout seconds
 * fails.
 *
 * Returns: 0; ENOENT (404/NoSuchKey/NoSuchUpload); EACCES (403);
 * EEXIST/EAGAIN (412 precondition); ERANGE (416); EIO (anything else,
 * logged once with operation, key, status and attempt); ENOMEM; ECANCELED
 * (a sink asked to stop).
 */
#ifndef IMGFS_S3_H
#define IMGFS_S3_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "base/buf.h"
#include "config/cfg.h"
#include "aws/creds.h"
#include "base/metrics.h"

#define S3_ETAG_MAX 80       /* quoted ETag, including a multipart "-N" */
#define S3_META_MAX 128

struct s3_client;

struct s3_object {
	uint64_t size;
	time_t mtime;
	char etag[S3_ETAG_MAX];         /* as S3 sends it, with quotes */
	char content_type[S3_META_MAX]; /* HEAD/GET only */
	char source_etag[S3_ETAG_MAX];  /* x-amz-meta-source-etag, HEAD/GET only */
};

struct s3_put_opts {
	const char *content_type;   /* NULL: application/octet-stream */
	const char *source_etag;    /* stored as x-amz-meta-source-etag, or NULL */
	const char *if_none_match;  /* "*" to create only, or NULL */
};

/* Create a client; NULL with errno set. conf, creds and m must outlive it. */
struct s3_client *s3_create(const struct s3_conf *conf, struct creds *creds,
			    struct metrics *m);
void s3_destroy(struct s3_client *c);

int s3_head(struct s3_client *c, const char *key, struct s3_object *out);

/*
 * GET bytes [off, off+len) (len 0: to the end) and hand them to sink in
 * order as they arrive. A sink returning non-zero stops the transfer with
 * ECANCELED (no retry). Retries resume where the sink left off, so the sink
 * never sees a byte twice. info (may be NULL) receives the object's
 * attributes. If if_match is not NULL the object must have that ETag
 * (else EAGAIN).
 */
typedef int (*s3_sink_fn)(void *arg, const void *data, size_t len);
int s3_get(struct s3_client *c, const char *key, uint64_t off, uint64_t len,
	   const char *if_match, s3_sink_fn sink, void *arg,
	   struct s3_object *info);
/* GET the whole object into out (appended). */
int s3_get_buf(struct s3_client *c, const char *key, struct buf *out,
	       struct s3_object *info);

/* PUT a body from memory. etag_out (may be NULL) gets the new ETag. */
int s3_put(struct s3_client *c, const char *key, const void *data, size_t len,
	   const struct s3_put_opts *opts, char etag_out[S3_ETAG_MAX]);
/* DELETE; deleting a missing key is 0. */
int s3_delete(struct s3_client *c, const char *key);
/* Server-side copy, keeping metadata and Content-Type. */
int s3_copy(struct s3_client *c, const char *src_key, const char *dst_key);

/* One page of ListObjectsV2. */
struct s3_list_entry {
	char *key;         /* full key */
	uint64_t size;
	time_t mtime;
	char etag[S3_ETAG_MAX];
};
struct s3_list_page {
	struct s3_list_entry *entries;
	size_t nentries;
	char **prefixes;   /* CommonPrefixes, full, ending with the delimiter */
	size_t nprefixes;
	char *next_token;  /* NULL when this was the last page */
};
/* List under prefix with delimiter (NULL: none), starting at token (NULL:
 * first page), at most max_keys (0: server default, 1000). */
int s3_list(struct s3_client *c, const char *prefix, const char *delimiter,
	    const char *token, unsigned max_keys, struct s3_list_page *out);
void s3_list_page_release(struct s3_list_page *p);

/* Multipart upload. upload_id is allocated by s3_mpu_create (caller frees). */
int s3_mpu_create(struct s3_client *c, const char *key,
		  const struct s3_put_opts *opts, char **upload_id);
int s3_mpu_part(struct s3_client *c, const char *key, const char *upload_id,
		unsigned part_number, const void *data, size_t len,
		char etag_out[S3_ETAG_MAX]);
struct s3_part { unsigned number; char etag[S3_ETAG_MAX]; };
int s3_mpu_complete(struct s3_client *c, const char *key,
		    const char *upload_id, const struct s3_part *parts,
		    size_t nparts, char etag_out[S3_ETAG_MAX]);
int s3_mpu_abort(struct s3_client *c, const char *key, const char *upload_id);
/* Call fn for each multipart upload in progress under prefix. */
typedef void (*s3_mpu_fn)(void *arg, const char *key, const char *upload_id,
			  time_t initiated);
int s3_mpu_list(struct s3_client *c, const char *prefix, s3_mpu_fn fn,
		void *arg);

/*
 * A presigned GET URL for key, valid for expires seconds from now (the
 * caller's clock reading), with an optional response-content-disposition.
 * No network request. Appends the URL to out. 0 or errno.
 */
int s3_presign_get(struct s3_client *c, const char *key, time_t now,
		   unsigned expires, const char *disposition, struct buf *out);

#endif
