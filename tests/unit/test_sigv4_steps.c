/*
 * test_sigv4_steps: the edge cases of core/sigv4's single steps (URI
 * encoding, the canonical query, request checks, dates and scope, presign
 * limits); the AWS test vectors are in test_sigv4.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "aws/sigv4.h"
#include "tests/unit/check.h"

#define SIGV4_TEST_MANY 65  /* more headers than sigv4 accepts */
#define SUITE_DATE "20150830T123600Z" /* the test suites' date */

/* ---- edge cases of the individual steps ---------------------------------- */

static void check_encode(const char *in, size_t n, int keep_slash,
			 const char *want)
{
	struct buf out = BUF_INIT;

	CHECK_INT(sigv4_uri_encode(in, n, keep_slash, &out), 0);
	CHECK_STR(out.data ? out.data : "", want);
	buf_release(&out);
}

static void check_query(const char *in, int want_err, const char *want)
{
	struct buf out = BUF_INIT;

	CHECK_INT(sigv4_canonical_query(in, &out), want_err);
	if (!want_err)
		CHECK_STR(out.data ? out.data : "", want);
	buf_release(&out);
}

static void test_encoding(void)
{
	struct buf many = BUF_INIT;
	int i;

	check_encode("a b/c~-_.Z9", 11, 0, "a%20b%2Fc~-_.Z9");
	check_encode("a b/c~-_.Z9", 11, 1, "a%20b/c~-_.Z9");
	check_encode("\xe1\x88\xb4", 3, 0, "%E1%88%B4");
	check_encode("+%=&?#$", 7, 1, "%2B%25%3D%26%3F%23%24");
	check_encode("a\0b", 3, 0, "a%00b");
	check_encode("", 0, 0, "");
	check_query(NULL, 0, "");
	check_query("", 0, "");
	check_query("&&&", 0, "");
	check_query("b=2&a=1", 0, "a=1&b=2");
	check_query("lifecycle", 0, "lifecycle=");
	check_query("a=1&&b", 0, "a=1&b=");
	check_query("%7e=%2f", 0, "~=%2F");
	check_query("+=x y", 0, "%2B=x%20y");
	check_query("x=1&x=0", 0, "x=0&x=1");
	check_query("a-b=1&a=2", 0, "a=2&a-b=1");
	check_query("k=a=b", 0, "k=a%3Db");
	check_query("a=%zz", EINVAL, NULL);
	check_query("a=%4", EINVAL, NULL);
	check_query("%", EINVAL, NULL);
	for (i = 0; i <= 1024; i++)
		CHECK_INT(buf_adds(&many, "a&"), 0);
	check_query(many.data, EINVAL, NULL);
	buf_release(&many);
}

static int creq_err(const char *method, const char *path,
		    const struct sigv4_header *h, size_t nh, const char *hash,
		    struct buf *out)
{
	struct sigv4_request req = {method, path, NULL, h, nh, hash};
	struct buf sh = BUF_INIT;
	int err;

	buf_reset(out);
	err = sigv4_canonical_request(&req, out, &sh);
	buf_release(&sh);
	return err;
}

static void test_request_checks(void)
{
	struct sigv4_header h[SIGV4_TEST_MANY];
	struct sigv4_header host = {"Host", "  b.example  "};
	struct sigv4_header nohost = {"X-Amz-Date", SUITE_DATE};
	struct sigv4_header bad = {"bad name", "v"};
	struct buf out = BUF_INIT;
	size_t i;

	for (i = 0; i < SIGV4_TEST_MANY; i++)
		h[i] = host;
	CHECK_INT(creq_err("GET", "/a%7e%20b$", &host, 1, "x", &out), 0);
	CHECK_STR(out.data, "GET\n/a~%20b%24\n\nhost:b.example\n\nhost\nx");
	CHECK_INT(creq_err("GET", "/", &nohost, 1, "x", &out), EINVAL);
	CHECK_INT(creq_err("get", "/", &host, 1, "x", &out), EINVAL);
	CHECK_INT(creq_err("GET\n", "/", &host, 1, "x", &out), EINVAL);
	CHECK_INT(creq_err("GET", "a", &host, 1, "x", &out), EINVAL);
	CHECK_INT(creq_err("GET", "/a%zz", &host, 1, "x", &out), EINVAL);
	CHECK_INT(creq_err("GET", "/", &host, 1, NULL, &out), EINVAL);
	CHECK_INT(creq_err("GET", "/", &host, 1, "a b", &out), EINVAL);
	CHECK_INT(creq_err("GET", "/", &bad, 1, "x", &out), EINVAL);
	CHECK_INT(creq_err("GET", "/", h, SIGV4_TEST_MANY, "x", &out), EINVAL);
	CHECK_INT(creq_err("GET", "/", h, 2, "x", &out), 0);
	CHECK_STR(out.data,
		  "GET\n/\n\nhost:b.example,b.example\n\nhost\nx");
	buf_release(&out);
}

static void test_dates_and_scope(void)
{
	struct sigv4_signer s = {"AK", "SK", NULL, "us-east-1", "s3", ""};
	struct buf out = BUF_INIT;
	char hash[65];

	sigv4_format_date(1440938160, s.amz_date);
	CHECK_STR(s.amz_date, SUITE_DATE);
	sigv4_format_date(0, s.amz_date);
	CHECK_STR(s.amz_date, "19700101T000000Z");
	CHECK_INT(sigv4_scope(&s, &out), 0);
	CHECK_STR(out.data, "19700101/us-east-1/s3/aws4_request");
	s.region = "us/east";
	CHECK_INT(sigv4_scope(&s, &out), EINVAL);
	s.region = "us-east-1";
	s.amz_date[0] = '\0';
	CHECK_INT(sigv4_scope(&s, &out), EINVAL);
	sigv4_sha256_hex("", 0, hash);
	CHECK_STR(hash, SIGV4_EMPTY_SHA256);
	buf_release(&out);
}

static void test_presign_checks(void)
{
	struct sigv4_signer s = {"AK", "SK", "to/k+en=", "us-east-1", "s3",
				 SUITE_DATE};
	struct sigv4_header host = {"host", "b.example"};
	struct sigv4_request req = {"GET", "/k", "versionId=1", &host, 1,
				    SIGV4_UNSIGNED_PAYLOAD};
	struct buf out = BUF_INIT;
	const char *p;

	CHECK_INT(sigv4_presign_query(&s, &req, 0, &out), EINVAL);
	CHECK_INT(sigv4_presign_query(&s, &req, 604801, &out), EINVAL);
	CHECK_INT(sigv4_presign_query(&s, &req, 604800, &out), 0);
	p = out.data ? out.data : "";
	CHECK(strncmp(p, "versionId=1&X-Amz-Algorithm=AWS4-HMAC-SHA256&", 45) == 0);
	p = strstr(p, "&X-Amz-SignedHeaders=host&X-Amz-Security-Token="
		      "to%2Fk%2Ben%3D&X-Amz-Signature=");
	CHECK(p != NULL);
	buf_release(&out);
}

int main(void)
{
	test_encoding();
	test_request_checks();
	test_dates_and_scope();
	test_presign_checks();
	return check_done("test_sigv4_steps");
}
