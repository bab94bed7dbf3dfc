/*
 * fuzz_sigv4: libFuzzer target for the SigV4 canonicaliser.
 *
 * fuzz-sources: core/aws/sigv4.c core/base/buf.c
 *
 * The input is split at newlines into method, path, query and "name:value"
 * header lines; the whole input is also percent-encoded and canonicalised as
 * one query string. Besides the sanitizers, it checks properties that must
 * hold for every input:
 *   - sigv4_uri_encode emits only unreserved bytes, '%XX' and (when kept) '/';
 *   - a canonical query is a fixed point of sigv4_canonical_query;
 *   - signing either succeeds with a well-formed result or returns an errno.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "aws/sigv4.h"

#define FUZZ_MAX_FIELDS 12

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
	if (!cond)
		abort();
}

static int is_encoded_byte(unsigned char c, int keep_slash)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
	       c == '~' || c == '%' || (keep_slash && c == '/');
}

static void fuzz_encode(const char *s, size_t n, int keep_slash)
{
	struct buf out = BUF_INIT;
	size_t i;

	require(sigv4_uri_encode(s, n, keep_slash, &out) == 0);
	require(out.len >= n && out.len <= 3 * n);
	for (i = 0; i < out.len; i++)
		require(is_encoded_byte((unsigned char)out.data[i], keep_slash));
	buf_release(&out);
}

static void fuzz_query(const char *q)
{
	struct buf once = BUF_INIT, twice = BUF_INIT;
	int err = sigv4_canonical_query(q, &once);

	require(err == 0 || err == EINVAL || err == ENOMEM);
	if (err == 0 && once.data) {
		require(sigv4_canonical_query(once.data, &twice) == 0);
		require(twice.len == once.len &&
			memcmp(twice.data, once.data, once.len) == 0);
	}
	buf_release(&once);
	buf_release(&twice);
}

/* Split text (modified in place) at '\n' into at most max fields. */
static size_t split_fields(char *text, char **fields, size_t max)
{
	size_t n = 0;
	char *p = text;

	while (n < max) {
		fields[n++] = p;
		p = strchr(p, '\n');
		if (!p)
			break;
		*p++ = '\0';
	}
	return n;
}

/* "name:value" lines into headers; returns how many. */
static size_t to_headers(char **lines, size_t n, struct sigv4_header *h)
{
	size_t i, nh = 0;

	for (i = 0; i < n; i++) {
		char *colon = strchr(lines[i], ':');

		if (!colon)
			continue;
		*colon = '\0';
		h[nh].name = lines[i];
		h[nh++].value = colon + 1;
	}
	return nh;
}

static void fuzz_sign(char *text)
{
	char *f[FUZZ_MAX_FIELDS];
	struct sigv4_header h[FUZZ_MAX_FIELDS];
	size_t n = split_fields(text, f, FUZZ_MAX_FIELDS);
	struct sigv4_request req = {f[0], n > 1 ? f[1] : "/", n > 2 ? f[2] : NULL,
				    h, 0, SIGV4_UNSIGNED_PAYLOAD};
	struct sigv4_signer s = {"AKIDEXAMPLE", "secret", "token", "us-east-1",
				 "s3", "20150830T123600Z"};
	struct buf creq = BUF_INIT, sh = BUF_INIT, out = BUF_INIT;
	int err;

	req.nheaders = n > 3 ? to_headers(f + 3, n - 3, h) : 0;
	err = sigv4_canonical_request(&req, &creq, &sh);
	require(err == 0 || err == EINVAL || err == ENOMEM);
	if (err == 0) {
		require(sigv4_authorization(&s, &req, &out) == 0);
		buf_reset(&out);
		err = sigv4_presign_query(&s, &req, 3600, &out);
		/* EINVAL: the added X-Amz-* parameters pass the limit */
		require(err == 0 || err == EINVAL);
		require(err || strstr(out.data, "&X-Amz-Signature=") != NULL);
	}
	buf_release(&creq);
	buf_release(&sh);
	buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_encode(text, size, size & 1);
	fuzz_query(text);
	fuzz_sign(text);
	free(text);
	return 0;
}
