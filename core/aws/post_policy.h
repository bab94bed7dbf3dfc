/*
 * post_policy: SigV4-signed POST policies for browser-based uploads to S3,
 * as pure functions.
 *
 * A policy lets whoever holds the form fields POST one object into the
 * bucket: its key must start with a prefix (the uploader picks the rest of
 * the name, "${filename}" standing for the file's own name), its size lies
 * in 1..max_bytes, its Content-Type starts with a given prefix, and the
 * policy expires at a fixed time. S3 checks every condition and the
 * signature; nothing else guards the upload.
 *
 * The conditions and form fields come in the order boto3's
 * generate_presigned_post produces them for the same request, so a
 * policy decodes to the same JSON document boto3 would sign (the
 * encoding's whitespace differs; S3 parses the JSON). The policy is
 * serialised with json-c, base64-encoded with OpenSSL, and signed with the
 * signing key of sigv4.h over the base64 text.
 *
 * Nothing here does I/O, reads the clock or keeps state: the time, the
 * credentials and the URL are arguments. Thread-safe.
 */
#ifndef IMGFS_POST_POLICY_H
#define IMGFS_POST_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aws/sigv4.h"
#include "base/buf.h"

/* S3 refuses POST policies valid for more than seven days, like URLs. */
#define POST_POLICY_MAX_EXPIRES 604800u
/* key, algorithm, credential, date, token, policy, signature */
#define POST_FORM_MAX_FIELDS 7

/* What one policy allows. */
struct post_policy {
	const char *bucket;       /* the bucket's name */
	const char *key_prefix;   /* every key starts with it, e.g. "uploads/team/" */
	uint64_t max_bytes;       /* content-length-range 1..max_bytes; >= 1 */
	const char *type_prefix;  /* Content-Type starts with it, e.g. "image/" */
	time_t now;               /* the signing time (x-amz-date) */
	unsigned expires;         /* seconds from now, 1..POST_POLICY_MAX_EXPIRES */
};

/* One form field; name is a string constant, value is owned. */
struct post_field {
	const char *name;
	char *value;
};

/* What a form posts: the URL and its fields, in boto3's order (key,
 * x-amz-algorithm, x-amz-credential, x-amz-date, x-amz-security-token when
 * there is a session token, policy, x-amz-signature). A zeroed struct is
 * empty; release with post_form_release(). */
struct post_form {
	char *url;
	struct post_field fields[POST_FORM_MAX_FIELDS];
	size_t nfields;
};

/*
 * The policy document as JSON text (json-c, "/" not escaped): expiration
 * (ISO 8601, UTC, whole seconds) and conditions. s supplies the access key,
 * token, region and service; its amz_date must hold p->now formatted by
 * sigv4_format_date(). Appends to out. 0, EINVAL (a missing field, an
 * expiry out of range, a date that does not match) or ENOMEM.
 */
int post_policy_document(const struct post_policy *p,
			 const struct sigv4_signer *s, struct buf *out);

/* The x-amz-signature for a base64 policy: lowercase hex
 * HMAC-SHA256(signing key of s, policy_b64). */
void post_policy_signature(const struct sigv4_signer *s,
			   const char *policy_b64, char out[65]);

/* Append the standard base64 (with padding, no newlines) of n bytes.
 * 0, ENOMEM or EOVERFLOW. */
int post_policy_base64(const void *data, size_t n, struct buf *out);

/*
 * The whole form for p, posted to url (the bucket's URL): the key field is
 * key_prefix followed by "${filename}". s->amz_date is set from p->now.
 * On success *out owns its strings; on error it is left empty.
 * 0, EINVAL or ENOMEM.
 */
int post_policy_form(const struct post_policy *p, struct sigv4_signer *s,
		     const char *url, struct post_form *out);

/* The value of field name in f, or NULL. */
const char *post_form_get(const struct post_form *f, const char *name);

/* The form as boto3 returns it, {"url": ..., "fields": {...}}, as JSON
 * text with a final newline. Appends to out. 0 or ENOMEM. */
int post_form_json(const struct post_form *f, struct buf *out);

/* Free the strings; the form is empty afterwards. Secrets are not among
 * them, but the session token is, so values are zeroed first. */
void post_form_release(struct post_form *f);

#endif
