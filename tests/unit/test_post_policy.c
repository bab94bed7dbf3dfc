/*
 * test_post_policy: core/aws/post_policy against boto3.
 *
 * tests/unit/data/post_policy/cases.json holds what botocore's
 * generate_presigned_post returned for fixed keys, a fixed clock and the
 * conditions of an upload link (gen.py made it). For each case the form
 * built here must have the same fields in the same order with the same
 * values; the policy, whose JSON whitespace differs, must decode to the same
 * document; and signing boto3's own policy must give boto3's signature.
 * Run from the repository root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "aws/post_policy.h"
#include "base/buf.h"
#include "tests/unit/check.h"

#define CASES "tests/unit/data/post_policy/cases.json"

static const char *jstr(json_object *o, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v) ||
	    json_object_get_type(v) != json_type_string)
		return NULL;
	return json_object_get_string(v);
}

static int64_t jint(json_object *o, const char *name)
{
	json_object *v;

	return json_object_object_get_ex(o, name, &v) ? json_object_get_int64(v)
						      : -1;
}

/* The JSON document a base64 policy holds (NULL when it is not one). */
static json_object *decode_policy(const char *b64)
{
	size_t n = strlen(b64);
	unsigned char *raw = malloc(n / 4 * 3 + 1);
	json_object *doc = NULL;
	int len;

	if (!raw)
		return NULL;
	len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
	if (len >= 0) {
		while (n && b64[n - 1] == '=' && len > 0) {
			len--; /* EVP_DecodeBlock counts the padding as bytes */
			n--;
		}
		raw[len] = '\0';
		doc = json_tokener_parse((const char *)raw);
	}
	free(raw);
	return doc;
}

/* The value of field name in boto3's [[name, value], ...] list. */
static const char *want_field(json_object *fields, const char *name)
{
	for (size_t i = 0; i < json_object_array_length(fields); i++) {
		json_object *kv = json_object_array_get_idx(fields, i);

		if (!strcmp(json_object_get_string(
				    json_object_array_get_idx(kv, 0)), name))
			return json_object_get_string(
				json_object_array_get_idx(kv, 1));
	}
	return NULL;
}

static void check_fields(const struct post_form *f, json_object *want)
{
	CHECK_INT(f->nfields, json_object_array_length(want));
	for (size_t i = 0; i < f->nfields && i < json_object_array_length(want);
	     i++) {
		json_object *kv = json_object_array_get_idx(want, i);

		CHECK_STR(f->fields[i].name, json_object_get_string(
					     json_object_array_get_idx(kv, 0)));
		if (strcmp(f->fields[i].name, "policy") &&
		    strcmp(f->fields[i].name, "x-amz-signature"))
			CHECK_STR(f->fields[i].value,
				  json_object_get_string(
					  json_object_array_get_idx(kv, 1)));
	}
}

static void check_policy(const struct post_form *f, json_object *fields)
{
	json_object *mine = decode_policy(post_form_get(f, "policy"));
	json_object *theirs = decode_policy(want_field(fields, "policy"));

	CHECK(mine != NULL);
	CHECK(theirs != NULL);
	CHECK(mine && theirs && json_object_equal(mine, theirs));
	if (mine && theirs && !json_object_equal(mine, theirs))
		fprintf(stderr, "  got:  %s\n  want: %s\n",
			json_object_to_json_string(mine),
			json_object_to_json_string(theirs));
	json_object_put(mine);
	json_object_put(theirs);
}

static void check_signature(struct sigv4_signer *s, const struct post_form *f,
			    json_object *fields)
{
	char sig[65];

	/* boto3's policy, signed here, gives boto3's signature. */
	post_policy_signature(s, want_field(fields, "policy"), sig);
	CHECK_STR(sig, want_field(fields, "x-amz-signature"));
	/* ours signs ours (and so differs: the JSON spacing differs) */
	post_policy_signature(s, post_form_get(f, "policy"), sig);
	CHECK_STR(sig, post_form_get(f, "x-amz-signature"));
	CHECK(strcmp(sig, want_field(fields, "x-amz-signature")) != 0);
}

/* post.json parses back to the same url and fields. */
static void check_json(const struct post_form *f)
{
	struct buf b = BUF_INIT;
	json_object *doc, *fields;

	CHECK_INT(post_form_json(f, &b), 0);
	CHECK(b.len && b.data[b.len - 1] == '\n');
	doc = json_tokener_parse(b.data);
	CHECK(doc != NULL);
	CHECK_STR(jstr(doc, "url"), f->url);
	CHECK(json_object_object_get_ex(doc, "fields", &fields));
	CHECK_INT(json_object_object_length(fields), f->nfields);
	for (size_t i = 0; i < f->nfields; i++)
		CHECK_STR(jstr(fields, f->fields[i].name), f->fields[i].value);
	json_object_put(doc);
	buf_release(&b);
}

static void run_case(json_object *c)
{
	struct sigv4_signer s = {
		.access_key = jstr(c, "access_key"),
		.secret_key = jstr(c, "secret_key"),
		.token = jstr(c, "token"),
		.region = jstr(c, "region"),
		.service = "s3",
	};
	struct post_policy p = {
		.bucket = jstr(c, "bucket"),
		.key_prefix = jstr(c, "prefix"),
		.max_bytes = (uint64_t)jint(c, "max_bytes"),
		.type_prefix = "image/",
		.now = (time_t)jint(c, "now_epoch"),
		.expires = (unsigned)jint(c, "expires"),
	};
	struct post_form f;
	json_object *fields = NULL;

	printf("case: %s\n", jstr(c, "name"));
	json_object_object_get_ex(c, "fields", &fields);
	CHECK_INT(post_policy_form(&p, &s, jstr(c, "url"), &f), 0);
	CHECK_STR(f.url, jstr(c, "url"));
	check_fields(&f, fields);
	check_policy(&f, fields);
	check_signature(&s, &f, fields);
	check_json(&f);
	post_form_release(&f);
	CHECK_INT(f.nfields, 0);
}

static void test_boto3_cases(void)
{
	json_object *cases = json_object_from_file(CASES);

	CHECK(cases != NULL);
	CHECK(cases && json_object_array_length(cases) >= 3);
	for (size_t i = 0; cases && i < json_object_array_length(cases); i++)
		run_case(json_object_array_get_idx(cases, i));
	json_object_put(cases);
}

static void check_b64(const char *in, const char *want)
{
	struct buf b = BUF_INIT;

	CHECK_INT(buf_adds(&b, "x:"), 0);
	CHECK_INT(post_policy_base64(in, strlen(in), &b), 0);
	CHECK_STR(b.data + 2, want);
	buf_release(&b);
}

/* RFC 4648's test vectors, appended after existing content. */
static void test_base64(void)
{
	check_b64("", "");
	check_b64("f", "Zg==");
	check_b64("fo", "Zm8=");
	check_b64("foo", "Zm9v");
	check_b64("foob", "Zm9vYg==");
	check_b64("fooba", "Zm9vYmE=");
	check_b64("foobar", "Zm9vYmFy");
}

static void test_refusals(void)
{
	struct sigv4_signer s = {"AK", "SK", NULL, "us-east-1", "s3", ""};
	struct post_policy p = {"bkt", "uploads/", 10, "image/", 1000, 60};
	struct post_form f;
	struct buf b = BUF_INIT;

	CHECK_INT(post_policy_form(&p, &s, "http://h/bkt", &f), 0);
	CHECK(post_form_get(&f, "x-amz-security-token") == NULL);
	CHECK(post_form_get(&f, "nope") == NULL);
	post_form_release(&f);
	/* the signer's date must be the policy's time */
	sigv4_format_date(999, s.amz_date);
	CHECK_INT(post_policy_document(&p, &s, &b), EINVAL);
	sigv4_format_date(1000, s.amz_date);
	CHECK_INT(post_policy_document(&p, &s, &b), 0);
	CHECK(strstr(b.data, "\"expiration\":\"1970-01-01T00:17:40Z\"") != NULL);
	CHECK(strstr(b.data, "[\"content-length-range\",1,10]") != NULL);
	p.expires = 0;
	CHECK_INT(post_policy_form(&p, &s, "http://h/bkt", &f), EINVAL);
	CHECK_INT(f.nfields, 0);
	CHECK(f.url == NULL);
	p.expires = POST_POLICY_MAX_EXPIRES + 1;
	CHECK_INT(post_policy_form(&p, &s, "http://h/bkt", &f), EINVAL);
	p.expires = 60;
	p.max_bytes = 0;
	CHECK_INT(post_policy_form(&p, &s, "http://h/bkt", &f), EINVAL);
	p.max_bytes = 10;
	p.bucket = "";
	CHECK_INT(post_policy_form(&p, &s, "http://h/bkt", &f), EINVAL);
	buf_release(&b);
}

int main(void)
{
	test_boto3_cases();
	test_base64();
	test_refusals();
	return check_done("test_post_policy");
}
