/*
 * sigv4: AWS Signature Version 4, as pure functions.
 *
 * Nothing here does I/O, reads the clock or allocates hidden state: every
 * input (time, credentials, request) is an argument, so each step can be
 * checked against the AWS test vectors. Thread-safe.
 *
 * Paths and query strings are given as they go on the wire (already
 * URI-encoded); S3 signs the path exactly as sent, without normalising
 * ".." or "//" and without encoding it twice.
 */
#ifndef IMGFS_SIGV4_H
#define IMGFS_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "base/buf.h"

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct sigv4_header {
	const char *name;   /* any case; lowercased when signed */
	const char *value;  /* leading/trailing blanks trimmed, inner runs folded */
};

struct sigv4_request {
	const char *method;                  /* "GET", "PUT", ... */
	const char *path;                    /* encoded absolute path, e.g. "/b/a%20b.jpg" */
	const char *query;                   /* encoded query without '?', or NULL/"" */
	const struct sigv4_header *headers;  /* headers to sign; must include host */
	size_t nheaders;
	const char *payload_hash;            /* lowercase hex SHA-256 or SIGV4_UNSIGNED_PAYLOAD */
};

struct sigv4_signer {
	const char *access_key;
	const char *secret_key;
	const char *token;      /* session token or NULL/"" */
	const char *region;     /* "us-east-1" */
	const char *service;    /* "s3" */
	char amz_date[17];      /* "20150830T123600Z" */
};

/* Fill s->amz_date from a Unix time. */
void sigv4_format_date(time_t t, char out[17]);

/* Lowercase hex SHA-256 of data. */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/*
 * Percent-encode s (n bytes) the way S3 expects: every byte but the
 * unreserved characters A-Z a-z 0-9 - _ . ~ becomes %XX (uppercase hex);
 * '/' is kept when keep_slash. Appends to out. 0 or ENOMEM.
 */
int sigv4_uri_encode(const char *s, size_t n, int keep_slash, struct buf *out);

/*
 * The canonical query string: parameters sorted by encoded name then value,
 * each name and value percent-decoded then encoded as above, "=" always
 * present. Appends to out. 0, ENOMEM or EINVAL (bad %-escape).
 */
int sigv4_canonical_query(const char *query, struct buf *out);

/*
 * The canonical request (the first step of signing). signed_headers gets
 * the ";"-joined sorted lowercase header names. Appends to both. 0 or errno.
 */
int sigv4_canonical_request(const struct sigv4_request *req, struct buf *out,
			    struct buf *signed_headers);

/* The credential scope "YYYYMMDD/region/service/aws4_request". */
int sigv4_scope(const struct sigv4_signer *s, struct buf *out);

/* The string to sign for a canonical request. Appends to out. 0 or errno. */
int sigv4_string_to_sign(const struct sigv4_signer *s, const char *creq,
			 struct buf *out);

/* The signing key HMAC chain: kSecret -> kDate -> kRegion -> kService -> kSigning. */
void sigv4_signing_key(const struct sigv4_signer *s, unsigned char key[32]);

/* Lowercase hex HMAC-SHA256(key, sts). */
void sigv4_signature(const unsigned char key[32], const char *sts,
		     char out[65]);

/*
 * The Authorization header value for req ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=..."). The caller has put host, x-amz-date,
 * x-amz-content-sha256 and, with a token, x-amz-security-token among the
 * headers. Appends to out. 0 or errno.
 */
int sigv4_authorization(const struct sigv4_signer *s,
			const struct sigv4_request *req, struct buf *out);

/*
 * A presigned query string for req (query-string authentication): req->query
 * holds the request's own parameters (may be NULL); this adds X-Amz-Algorithm,
 * X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders,
 * X-Amz-Security-Token (with a token) and X-Amz-Signature, the payload hash
 * being req->payload_hash (UNSIGNED-PAYLOAD for S3 URLs). Appends the whole
 * query string, without '?', to out. 0 or errno.
 */
int sigv4_presign_query(const struct sigv4_signer *s,
			const struct sigv4_request *req, unsigned expires,
			struct buf *out);

#endif
