/*
 * s3: the S3 client on libcurl, an implementation of the store interface
 * (store.h): s3_store() is what services use; s3_presign_get() signs URLs.
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
#include <time.h>

#include "aws/creds.h"
#include "aws/post_policy.h"
#include "base/buf.h"
#include "base/metrics.h"
#include "config/cfg.h"
#include "store/store.h"

struct s3_client;

/* Create a client; NULL with errno set. conf, creds and m must outlive it. */
struct s3_client *s3_create(const struct s3_conf *conf, struct creds *creds,
			    struct metrics *m);
void s3_destroy(struct s3_client *c);

/*
 * Why the last request that failed without an HTTP answer failed, in a few
 * words a newcomer understands: "connection refused", "timed out", "TLS:
 * wrong protocol (is the endpoint http?)", "TLS: certificate from an
 * unknown CA", "TLS: certificate for another host name", "cannot resolve
 * host", else libcurl's own message. Copies it into out and returns 1, or
 * returns 0 when no request has failed that way. Thread-safe.
 */
int s3_last_transport_error(struct s3_client *c, char *out, size_t len);

/* The client as a store; valid until s3_destroy(). */
struct store *s3_store(struct s3_client *c);

/*
 * A presigned GET URL for key, valid for expires seconds from now (the
 * caller's clock reading), with an optional response-content-disposition.
 * No network request. Appends the URL to out. 0 or errno.
 */
int s3_presign_get(struct s3_client *c, const char *key, time_t now,
		   unsigned expires, const char *disposition, struct buf *out);

/*
 * A signed POST policy for browser-based uploads into the bucket (see
 * post_policy.h): keys starting with key_prefix, 1..max_bytes bytes, a
 * Content-Type starting with type_prefix, valid for expires seconds from
 * now, signed with the current credentials (their session token
 * included). out->url is the bucket's URL in the configured addressing
 * style ("http://host:port/bucket" or "https://bucket.host/"). No network
 * request. On success *out owns its strings (post_form_release()); on
 * error it is empty. 0, EINVAL or an errno of creds_get().
 */
int s3_presign_post(struct s3_client *c, const char *key_prefix,
		    uint64_t max_bytes, const char *type_prefix, time_t now,
		    unsigned expires, struct post_form *out);

#endif
