/*
 * sigv4: AWS Signature Version 4 (see sigv4.h).
 *
 * Each step of the algorithm is its own small function: percent-encoding,
 * the canonical query, the canonical headers, the canonical request, the
 * credential scope, the string to sign, the signing key and the signature.
 * Hashing and HMAC go through OpenSSL; nothing here keeps state between
 * calls, so every function is safe to call from any thread.
 *
 * Inputs are checked before they are framed into the canonical request: a
 * method, header name or date that could break the line structure is
 * refused with EINVAL rather than signed.
 */
#include "aws/sigv4.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/hex.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_TERMINATOR "aws4_request"

/* Upper bounds on what one request may carry. */
#define SIGV4_MAX_HEADERS 64
#define SIGV4_MAX_QUERY_PARAMS 1024
/* S3 refuses presigned URLs valid for more than seven days. */
#define SIGV4_MAX_EXPIRES 604800u

/* One query parameter, encoded; offsets into a shared buffer while parsing. */
struct qparam {
	size_t name_off, name_len;
	size_t value_off, value_len;
	const char *name;   /* set once the buffer no longer moves */
	const char *value;
};

/* One header to sign, remembered with its position for a stable sort. */
struct hdr_ref {
	const struct sigv4_header *h;
	size_t pos;
};

/* ---- ASCII classes (locale-independent, unlike <ctype.h>) ------------ */

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int is_alnum(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_visible(unsigned char c)
{
	return c > ' ' && c < 0x7f;
}

static char to_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* strcasecmp for ASCII names, whatever the locale. */
static int ascii_casecmp(const char *a, const char *b)
{
	for (; *a && to_lower(*a) == to_lower(*b); a++, b++)
		;
	return (unsigned char)to_lower(*a) - (unsigned char)to_lower(*b);
}

/* ---- hashing ---------------------------------------------------------- */

static int sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen != 32) {
		out[0] = '\0';
		return EIO;
	}
	hex_encode(md, 32, out);
	return 0;
}

static int hmac_sha256(const void *key, size_t klen, const void *data,
		       size_t dlen, unsigned char out[32])
{
	unsigned int outlen = 0;

	if (klen > INT32_MAX ||
	    !HMAC(EVP_sha256(), key, (int)klen, data, dlen, out, &outlen) ||
	    outlen != 32) {
		memset(out, 0, 32);
		return EIO;
	}
	return 0;
}

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	(void)sha256_hex(data, len, out);
}

/* ---- dates ------------------------------------------------------------ */

void sigv4_format_date(time_t t, char out[17])
{
	struct tm tm;

	out[0] = '\0';
	if (!gmtime_r(&t, &tm))
		return;
	if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
		out[0] = '\0';
}

/* Is d an ISO 8601 basic UTC timestamp, "YYYYMMDDTHHMMSSZ"? */
static int date_is_valid(const char *d)
{
	size_t i;

	if (strnlen(d, 17) != 16 || d[8] != 'T' || d[15] != 'Z')
		return 0;
	for (i = 0; i < 15; i++)
		if (i != 8 && !is_digit((unsigned char)d[i]))
			return 0;
	return 1;
}

/* ---- percent-encoding ------------------------------------------------- */

static int is_unreserved(unsigned char c)
{
	return is_alnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

int sigv4_uri_encode(const char *s, size_t n, int keep_slash, struct buf *out)
{
	static const char digits[] = "0123456789ABCDEF";
	char esc[3] = {'%', 0, 0};
	size_t i, run;
	int err = 0;

	for (i = 0; i < n && !err; i += run) {
		unsigned char c = (unsigned char)s[i];

		for (run = 0; i + run < n; run++) {
			unsigned char r = (unsigned char)s[i + run];

			if (!is_unreserved(r) && !(keep_slash && r == '/'))
				break;
		}
		if (run) {
			err = buf_add(out, s + i, run);
			continue;
		}
		esc[1] = digits[c >> 4];
		esc[2] = digits[c & 0x0f];
		err = buf_add(out, esc, 3);
		run = 1;
	}
	return err;
}

/* Decode %XX escapes of s (n bytes) into out. 0, ENOMEM or EINVAL. */
static int percent_decode(const char *s, size_t n, struct buf *out)
{
	size_t i;
	int err = buf_reserve(out, n);

	for (i = 0; i < n && !err; i++) {
		char c = s[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3)
				return EINVAL;
			hi = hex_digit((unsigned char)s[i + 1]);
			lo = hex_digit((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return EINVAL;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		err = buf_add(out, &c, 1);
	}
	return err;
}

/* Decode then encode s, so any valid encoding gives the canonical one. */
static int reencode(const char *s, size_t n, int keep_slash, struct buf *out)
{
	struct buf raw = BUF_INIT;
	int err = percent_decode(s, n, &raw);

	if (!err)
		err = sigv4_uri_encode(raw.data ? raw.data : "", raw.len,
				       keep_slash, out);
	buf_release(&raw);
	return err;
}

/* ---- canonical query -------------------------------------------------- */

/* Number of non-empty '&'-separated parts of q. */
static size_t query_count(const char *q)
{
	size_t n = 0;
	const char *p = q;

	while (*p) {
		size_t len = strcspn(p, "&");

		n += len > 0;
		p += len;
		p += *p == '&';
	}
	return n;
}

/* Encode one "name[=value]" part of len bytes into store, noting where. */
static int qparam_parse(const char *part, size_t len, struct buf *store,
			struct qparam *qp)
{
	const char *eq = memchr(part, '=', len);
	size_t nlen = eq ? (size_t)(eq - part) : len;
	int err;

	qp->name_off = store->len;
	err = reencode(part, nlen, 0, store);
	if (err)
		return err;
	qp->name_len = store->len - qp->name_off;
	qp->value_off = store->len;
	if (eq)
		err = reencode(eq + 1, len - nlen - 1, 0, store);
	qp->value_len = store->len - qp->value_off;
	return err;
}

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return (alen > blen) - (alen < blen);
}

static int qparam_cmp(const void *pa, const void *pb)
{
	const struct qparam *a = pa, *b = pb;
	int c = bytes_cmp(a->name, a->name_len, b->name, b->name_len);

	return c ? c : bytes_cmp(a->value, a->value_len, b->value, b->value_len);
}

/* Split q into params (n of them, as counted), encoded into store. */
static int query_collect(const char *q, struct qparam *params, size_t n,
			 struct buf *store)
{
	const char *p = q;
	size_t i = 0;
	int err = buf_reserve(store, strlen(q)); /* data is never NULL below */

	while (*p && i < n && !err) {
		size_t len = strcspn(p, "&");

		if (len)
			err = qparam_parse(p, len, store, &params[i++]);
		p += len;
		p += *p == '&';
	}
	for (i = 0; i < n && !err; i++) {
		params[i].name = store->data + params[i].name_off;
		params[i].value = store->data + params[i].value_off;
	}
	return err;
}

static int query_emit(const struct qparam *params, size_t n, struct buf *out)
{
	size_t i;
	int err = 0;

	for (i = 0; i < n && !err; i++) {
		if (i)
			err = buf_add(out, "&", 1);
		if (!err)
			err = buf_add(out, params[i].name, params[i].name_len);
		if (!err)
			err = buf_add(out, "=", 1);
		if (!err)
			err = buf_add(out, params[i].value, params[i].value_len);
	}
	return err;
}

int sigv4_canonical_query(const char *query, struct buf *out)
{
	struct buf store = BUF_INIT;
	struct qparam *params;
	size_t n;
	int err;

	if (!query)
		return 0;
	n = query_count(query);
	if (n == 0)
		return 0;
	if (n > SIGV4_MAX_QUERY_PARAMS)
		return EINVAL;
	params = calloc(n, sizeof(*params));
	if (!params)
		return ENOMEM;
	err = query_collect(query, params, n, &store);
	if (!err) {
		qsort(params, n, sizeof(*params), qparam_cmp);
		err = query_emit(params, n, out);
	}
	buf_release(&store);
	free(params);
	return err;
}

/* ---- canonical headers ------------------------------------------------ */

/* A header name is an RFC 9110 token. */
static int header_name_is_valid(const char *name)
{
	const unsigned char *p = (const unsigned char *)name;

	if (!*p)
		return 0;
	for (; *p; p++)
		if (!is_alnum(*p) && !strchr("!#$%&'*+-.^_`|~", *p))
			return 0;
	return 1;
}

static int hdr_ref_cmp(const void *pa, const void *pb)
{
	const struct hdr_ref *a = pa, *b = pb;
	int c = ascii_casecmp(a->h->name, b->h->name);

	if (c)
		return c;
	return (a->pos > b->pos) - (a->pos < b->pos);
}

static int is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Append v with leading/trailing blanks dropped and inner runs folded. */
static int add_trimmed(struct buf *out, const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	int err = 0, pending = 0;

	while (*p && is_blank(*p))
		p++;
	for (; *p && !err; p++) {
		if (is_blank(*p)) {
			pending = 1;
			continue;
		}
		if (pending)
			err = buf_add(out, " ", 1);
		pending = 0;
		if (!err)
			err = buf_add(out, p, 1);
	}
	return err;
}

static int add_lower(struct buf *out, const char *s)
{
	int err = 0;

	for (; *s && !err; s++) {
		char c = to_lower(*s);

		err = buf_add(out, &c, 1);
	}
	return err;
}

/* Sort refs to req's headers by name; EINVAL on a bad or missing header. */
static int headers_sorted(const struct sigv4_request *req,
			  struct hdr_ref *refs)
{
	size_t i;
	int has_host = 0;

	if (req->nheaders > SIGV4_MAX_HEADERS || !req->headers)
		return EINVAL;
	for (i = 0; i < req->nheaders; i++) {
		const struct sigv4_header *h = &req->headers[i];

		if (!h->name || !h->value || !header_name_is_valid(h->name))
			return EINVAL;
		has_host |= ascii_casecmp(h->name, "host") == 0;
		refs[i].h = h;
		refs[i].pos = i;
	}
	if (!has_host)
		return EINVAL;
	qsort(refs, req->nheaders, sizeof(*refs), hdr_ref_cmp);
	return 0;
}

/*
 * Append the canonical header lines ("name:value\n", duplicate names joined
 * with ',') to out and the ';'-joined names to signed_headers.
 */
static int canonical_headers(const struct sigv4_request *req,
			     struct buf *out, struct buf *signed_headers)
{
	struct hdr_ref refs[SIGV4_MAX_HEADERS];
	size_t i;
	int err = headers_sorted(req, refs);

	for (i = 0; i < req->nheaders && !err; i++) {
		int same = i && ascii_casecmp(refs[i].h->name,
					   refs[i - 1].h->name) == 0;

		if (same) {
			out->len--; /* drop the previous line's '\n' */
			err = buf_add(out, ",", 1);
		} else {
			if (i)
				err = buf_add(signed_headers, ";", 1);
			if (!err)
				err = add_lower(signed_headers, refs[i].h->name);
			if (!err)
				err = add_lower(out, refs[i].h->name);
			if (!err)
				err = buf_add(out, ":", 1);
		}
		if (!err)
			err = add_trimmed(out, refs[i].h->value);
		if (!err)
			err = buf_add(out, "\n", 1);
	}
	return err;
}

/* ---- canonical request ------------------------------------------------ */

static int method_is_valid(const char *m)
{
	if (!m || !*m)
		return 0;
	for (; *m; m++)
		if (*m < 'A' || *m > 'Z')
			return 0;
	return 1;
}

/* A payload hash is one printable token: a hex digest or a keyword. */
static int payload_hash_is_valid(const char *h)
{
	if (!h || !*h)
		return 0;
	for (; *h; h++)
		if (!is_visible((unsigned char)*h))
			return 0;
	return 1;
}

static int request_is_valid(const struct sigv4_request *req)
{
	return method_is_valid(req->method) && req->path &&
	       req->path[0] == '/' && payload_hash_is_valid(req->payload_hash);
}

/* The canonical request of req as if its query were query. */
static int canonical_request_with(const struct sigv4_request *req,
				  const char *query, struct buf *out,
				  struct buf *signed_headers)
{
	struct buf hdrs = BUF_INIT;
	size_t signed_start = signed_headers->len;
	int err;

	if (!request_is_valid(req))
		return EINVAL;
	err = canonical_headers(req, &hdrs, signed_headers);
	if (!err)
		err = buf_addf(out, "%s\n", req->method);
	if (!err)
		err = reencode(req->path, strlen(req->path), 1, out);
	if (!err)
		err = buf_add(out, "\n", 1);
	if (!err)
		err = sigv4_canonical_query(query, out);
	if (!err)
		err = buf_addf(out, "\n%s\n%s\n%s", hdrs.data,
			       signed_headers->data + signed_start,
			       req->payload_hash);
	buf_release(&hdrs);
	return err;
}

int sigv4_canonical_request(const struct sigv4_request *req, struct buf *out,
			    struct buf *signed_headers)
{
	return canonical_request_with(req, req->query, out, signed_headers);
}

/* ---- scope, string to sign, key, signature ---------------------------- */

/* A scope component: non-empty, no '/', nothing outside visible ASCII. */
static int scope_part_is_valid(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (!is_visible((unsigned char)*s) || *s == '/')
			return 0;
	return 1;
}

static int signer_is_valid(const struct sigv4_signer *s)
{
	return date_is_valid(s->amz_date) && scope_part_is_valid(s->region) &&
	       scope_part_is_valid(s->service) &&
	       scope_part_is_valid(s->access_key) && s->secret_key;
}

int sigv4_scope(const struct sigv4_signer *s, struct buf *out)
{
	if (!signer_is_valid(s))
		return EINVAL;
	return buf_addf(out, "%.8s/%s/%s/" SIGV4_TERMINATOR, s->amz_date,
			s->region, s->service);
}

int sigv4_string_to_sign(const struct sigv4_signer *s, const char *creq,
			 struct buf *out)
{
	char hash[65];
	int err = sha256_hex(creq, strlen(creq), hash);

	if (!err)
		err = buf_addf(out, SIGV4_ALGORITHM "\n%s\n", s->amz_date);
	if (!err)
		err = sigv4_scope(s, out);
	if (!err)
		err = buf_addf(out, "\n%s", hash);
	return err;
}

static int signing_key(const struct sigv4_signer *s, unsigned char key[32])
{
	struct buf secret = BUF_INIT;
	int err;

	if (!signer_is_valid(s))
		return EINVAL;
	err = buf_addf(&secret, "AWS4%s", s->secret_key);
	if (!err)
		err = hmac_sha256(secret.data, secret.len, s->amz_date, 8, key);
	if (!err)
		err = hmac_sha256(key, 32, s->region, strlen(s->region), key);
	if (!err)
		err = hmac_sha256(key, 32, s->service, strlen(s->service), key);
	if (!err)
		err = hmac_sha256(key, 32, SIGV4_TERMINATOR,
				  strlen(SIGV4_TERMINATOR), key);
	if (secret.data)
		OPENSSL_cleanse(secret.data, secret.len);
	buf_release(&secret);
	if (err)
		memset(key, 0, 32);
	return err;
}

void sigv4_signing_key(const struct sigv4_signer *s, unsigned char key[32])
{
	(void)signing_key(s, key);
}

static int signature_hex(const unsigned char key[32], const char *sts,
			 char out[65])
{
	unsigned char mac[32];
	int err = hmac_sha256(key, 32, sts, strlen(sts), mac);

	if (err) {
		out[0] = '\0';
		return err;
	}
	hex_encode(mac, 32, out);
	return 0;
}

void sigv4_signature(const unsigned char key[32], const char *sts,
		     char out[65])
{
	(void)signature_hex(key, sts, out);
}

/* The signature of a canonical request, every step checked. */
static int sign_canonical(const struct sigv4_signer *s, const char *creq,
			  char sig[65])
{
	struct buf sts = BUF_INIT;
	unsigned char key[32];
	int err = sigv4_string_to_sign(s, creq, &sts);

	if (!err)
		err = signing_key(s, key);
	if (!err)
		err = signature_hex(key, sts.data, sig);
	OPENSSL_cleanse(key, sizeof(key));
	buf_release(&sts);
	return err;
}

/* ---- Authorization header and presigned query ------------------------- */

int sigv4_authorization(const struct sigv4_signer *s,
			const struct sigv4_request *req, struct buf *out)
{
	struct buf creq = BUF_INIT, signed_headers = BUF_INIT;
	char sig[65];
	int err = sigv4_canonical_request(req, &creq, &signed_headers);

	if (!err)
		err = sign_canonical(s, creq.data, sig);
	if (!err)
		err = buf_addf(out, SIGV4_ALGORITHM " Credential=%s/",
			       s->access_key);
	if (!err)
		err = sigv4_scope(s, out);
	if (!err)
		err = buf_addf(out, ", SignedHeaders=%s, Signature=%s",
			       signed_headers.data, sig);
	buf_release(&creq);
	buf_release(&signed_headers);
	return err;
}

/* Append "&name=" and the encoded value (no '&' when out is empty). */
static int add_param(struct buf *out, const char *name, const char *value)
{
	int err = buf_addf(out, "%s%s=", out->len ? "&" : "", name);

	if (!err)
		err = sigv4_uri_encode(value, strlen(value), 0, out);
	return err;
}

/* The X-Amz-* authentication parameters, in the order S3 SDKs emit them. */
static int presign_params(const struct sigv4_signer *s, const char *signed_headers,
			  unsigned expires, struct buf *out)
{
	struct buf cred = BUF_INIT;
	char exp[16];
	int err = buf_addf(&cred, "%s/", s->access_key);

	if (!err)
		err = sigv4_scope(s, &cred);
	snprintf(exp, sizeof(exp), "%u", expires);
	if (!err)
		err = add_param(out, "X-Amz-Algorithm", SIGV4_ALGORITHM);
	if (!err)
		err = add_param(out, "X-Amz-Credential", cred.data);
	if (!err)
		err = add_param(out, "X-Amz-Date", s->amz_date);
	if (!err)
		err = add_param(out, "X-Amz-Expires", exp);
	if (!err)
		err = add_param(out, "X-Amz-SignedHeaders", signed_headers);
	if (!err && s->token && *s->token)
		err = add_param(out, "X-Amz-Security-Token", s->token);
	buf_release(&cred);
	return err;
}

int sigv4_presign_query(const struct sigv4_signer *s,
			const struct sigv4_request *req, unsigned expires,
			struct buf *out)
{
	struct buf query = BUF_INIT, creq = BUF_INIT, hdrs = BUF_INIT,
		   signed_headers = BUF_INIT;
	char sig[65];
	int err = 0;

	if (expires == 0 || expires > SIGV4_MAX_EXPIRES)
		return EINVAL;
	if (req->query && *req->query)
		err = buf_adds(&query, req->query);
	if (!err)
		err = canonical_headers(req, &hdrs, &signed_headers);
	if (!err)
		err = presign_params(s, signed_headers.data, expires, &query);
	buf_reset(&signed_headers);
	if (!err)
		err = canonical_request_with(req, query.data, &creq,
					     &signed_headers);
	if (!err)
		err = sign_canonical(s, creq.data, sig);
	if (!err)
		err = buf_addf(out, "%s&X-Amz-Signature=%s", query.data, sig);
	buf_release(&query);
	buf_release(&creq);
	buf_release(&hdrs);
	buf_release(&signed_headers);
	return err;
}
