/*
 * s3_int: the S3 client's private parts, shared by its files: s3_client.c
 * (the client, its handle pool, small helpers), s3_http.c (one request:
 * attempts, callbacks, retries), s3_obj.c (object operations, listing,
 * presigning) and s3_mpu.c (multipart upload). Not for use outside them.
 *
 * The client as a whole (see s3.h):
 *
 * A request is described once (struct s3_req) and performed by s3_run():
 * each attempt takes a pooled CURL easy handle (its live connection is
 * reused), signs the request afresh with the current credentials, performs
 * it, and classifies the outcome as done, failed or worth retrying.
 *
 * Invariants of struct s3_client: at most conf->max_connections easy
 * handles ever exist, so taking one is also the in-flight limit; a handle
 * is used by one thread at a time; everything else in the client is
 * immutable after s3_create().
 *
 * Retries: up to conf->retries attempts after the first, each begun
 * within conf->retry_window seconds of the first attempt, on transport
 * errors (connect, reset, timeout), 500/502/503/504, and the SlowDown,
 * RequestTimeout, InternalError and ServiceUnavailable codes (also in a 200
 * <Error> body of CompleteMultipartUpload/CopyObject). Before attempt n the
 * client sleeps a uniformly random time in [0, min(5 s, 100 ms * 2^n)]
 * ("full jitter"), so many clients hitting a throttled bucket spread out.
 */
#ifndef IMGFS_S3_INT_H
#define IMGFS_S3_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <curl/curl.h>

#include "aws/sigv4.h"
#include "store/s3.h"
#include "store/xml.h"

#define S3_BACKOFF_BASE_MS 100
#define S3_BACKOFF_CAP_MS 5000
#define S3_BODY_MAX (16u << 20)   /* XML and error bodies kept in memory */
#define S3_HDRS_MAX 16
#define S3_RECV_BUFFER (256 * 1024)
#define S3_SEND_BUFFER (1024 * 1024)

struct s3_client {
	struct store store;    /* first: the interface it implements */
	const struct s3_conf *conf;
	struct creds *creds;
	struct metrics *m;
	char *scheme;          /* "http" or "https" */
	char *host;            /* URL authority and Host header */
	char *base;            /* path before the key: "/bucket" or "" */
	int sign_payload;      /* bodies are hashed into the signature: only
				* over http to another host (see s3_run) */
	unsigned max_handles;
	pthread_mutex_t lock;
	pthread_cond_t handle_freed;
	CURL **idle;           /* protected by lock: handles not in use */
	size_t nidle;          /* protected by lock */
	unsigned nhandles;     /* protected by lock: handles created */
	atomic_uint_fast64_t rng;
	char transport_err[CURL_ERROR_SIZE + 64]; /* protected by lock: see
						     s3_last_transport_error() */
};

/* State of a streamed GET across its attempts. */
struct s3_get_state {
	uint64_t off, len;        /* requested range; len 0: to the end */
	uint64_t done;            /* bytes handed to the sink so far */
	uint64_t skip;            /* bytes of this response to drop */
	const char *if_match;     /* caller's precondition, or NULL */
	char etag[STORE_ETAG_MAX];   /* first response's ETag, for resumes */
	store_sink_fn sink;
	void *arg;
	int cancelled;            /* the sink asked to stop */
	int have_info;
	struct store_object info;
};

struct s3_req {
	enum metrics_op op;
	const char *method;           /* GET, PUT, POST, HEAD, DELETE */
	const char *key;              /* object key, NULL for the bucket */
	const char *query;            /* encoded query, or NULL */
	struct sigv4_header hdrs[S3_HDRS_MAX]; /* extra headers, all signed */
	size_t nhdrs;
	const void *body;             /* PUT/POST body */
	size_t body_len;
	int error_in_200;             /* a 200 may carry an <Error> body */
	int err_412;                  /* errno for 412: EEXIST or EAGAIN */
	struct s3_get_state *get;     /* streamed GET, or NULL */
	char payload_hash[65];
	unsigned attempts;            /* attempts made, set by s3_run() */
	char attr_vals[5][32];        /* x-amz-meta-mtime/-mode/-uid/-gid/
					 -rdev values the headers point at */
};

struct s3_resp {
	long status;
	CURLcode cc;
	long os_errno;                /* CURLINFO_OS_ERRNO after a failure */
	char curl_err[CURL_ERROR_SIZE];
	struct buf body;              /* kept body (not streamed), capped */
	int body_too_big;
	struct store_object obj;         /* from the headers */
	uint64_t content_length;
	int have_length;
	uint64_t range_start, range_total;
	int have_range;
	struct xml_error xerr;        /* Code/Message of an error body */
	size_t sent;                  /* body bytes handed to curl */
	int range_bad;                /* a 206 of another range than asked */
	int status_known;
	const struct s3_req *req;
	struct s3_client *c;
	CURL *h;
};

struct s3_client *s3_client_of(struct store *st);

/* Full jitter: a random pause in [0, min(cap, base * 2^attempt)], cut to
 * at most max_ms. */
void s3_backoff_sleep(struct s3_client *c, unsigned attempt, uint64_t max_ms,
		      unsigned *slept_ms);

/* A header value we send must not be able to end the header. */
int s3_value_is_safe(const char *v);

int s3_req_header(struct s3_req *r, const char *name, const char *value);

/* Append "&name=value" (value encoded; no '=' when value is NULL). */
int s3_query_add(struct buf *q, const char *name, const char *value);

/* The encoded path of key ("/bucket/a%20b" or "/a%20b"), or the bucket's. */
int s3_object_path(const struct s3_client *c, const char *key,
		       struct buf *out);

CURL *s3_handle_take(struct s3_client *c);

void s3_handle_give(struct s3_client *c, CURL *h);

/* The first bytes of a streamed response: check it is the range asked,
 * of the object the earlier attempts read from. */
int s3_get_stream_start(struct s3_resp *r, struct s3_get_state *g);

/* Run req with retries; on 0, r holds the successful response. */
int s3_run(struct s3_client *c, struct s3_req *req, struct s3_resp *r);

void s3_resp_release(struct s3_resp *r);

int s3_add_put_opts(struct s3_client *c, struct s3_req *req,
			const struct store_put_opts *opts);

void s3_etag_out_copy(char etag_out[STORE_ETAG_MAX], const char *etag);

/* Add the server-side encryption headers the configuration asks for. */
int s3_add_sse(struct s3_client *c, struct s3_req *req);

/* Add the x-amz-meta-mtime/-mode/-uid/-gid headers of a (NULL: none). */
int s3_add_attrs(struct s3_req *req, const struct store_attrs *a);
/* A response header: when it is one of the attribute headers, parse value
 * (n bytes) into a and return 1; else 0. */
int s3_parse_attr(struct store_attrs *a, const char *name, const char *v,
		  size_t n);

int s3_copy(struct store *st, const char *src_key, const char *dst_key,
	    const struct store_put_opts *replace, uint64_t src_size,
	    char etag_out[STORE_ETAG_MAX]);

/* The multipart operations of the store (s3_mpu.c). */
int s3_mpu_create(struct store *st, const char *key,
		  const struct store_put_opts *opts, char **upload_id);
int s3_mpu_part(struct store *st, const char *key, const char *upload_id,
		unsigned part_number, const void *data, size_t len,
		char etag_out[STORE_ETAG_MAX]);
int s3_mpu_complete(struct store *st, const char *key,
		    const char *upload_id, const struct store_part *parts,
		    size_t nparts, char etag_out[STORE_ETAG_MAX]);
int s3_mpu_abort(struct store *st, const char *key, const char *upload_id);
int s3_mpu_list(struct store *st, const char *prefix, store_mpu_fn fn,
		void *arg);

/* The client's store operations (s3_obj.c). */
extern const struct store_ops s3_ops;

#endif
