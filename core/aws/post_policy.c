/*
 * post_policy: SigV4 POST policies (see post_policy.h).
 *
 * The document is built as a json-c tree and serialised once; the
 * credential scope, signing key and HMAC come from sigv4.c, base64 from
 * OpenSSL. A json-c call that fails leaves a NULL node behind, which
 * the next step turns into ENOMEM, so building is a straight line.
 */
#include "aws/post_policy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#define POST_ALGORITHM "AWS4-HMAC-SHA256"
#define POST_FILENAME "${filename}"
#define POST_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---- json-c helpers ------------------------------------------------------ */

/* Add child to array arr; frees child and returns ENOMEM on failure. */
static int arr_add(json_object *arr, json_object *child)
{
	if (!child || json_object_array_add(arr, child)) {
		json_object_put(child);
		return ENOMEM;
	}
	return 0;
}

/* Add obj[name] = child; frees child and returns ENOMEM on failure. */
static int obj_add(json_object *obj, const char *name, json_object *child)
{
	if (!child || json_object_object_add(obj, name, child)) {
		json_object_put(child);
		return ENOMEM;
	}
	return 0;
}

/* A condition {"name": "value"}. */
static json_object *cond_eq(const char *name, const char *value)
{
	json_object *o = json_object_new_object();

	if (o && obj_add(o, name, json_object_new_string(value))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* A condition ["starts-with", "$field", "prefix"]. */
static json_object *cond_starts(const char *field, const char *prefix)
{
	json_object *a = json_object_new_array();
	int err = a ? 0 : ENOMEM;

	if (!err)
		err = arr_add(a, json_object_new_string("starts-with"));
	if (!err)
		err = arr_add(a, json_object_new_string(field));
	if (!err)
		err = arr_add(a, json_object_new_string(prefix));
	if (err) {
		json_object_put(a);
		return NULL;
	}
	return a;
}

/* A condition ["content-length-range", lo, hi]. */
static json_object *cond_range(uint64_t lo, uint64_t hi)
{
	json_object *a = json_object_new_array();
	int err = a ? 0 : ENOMEM;

	if (!err)
		err = arr_add(a, json_object_new_string("content-length-range"));
	if (!err)
		err = arr_add(a, json_object_new_int64((int64_t)lo));
	if (!err)
		err = arr_add(a, json_object_new_int64((int64_t)hi));
	if (err) {
		json_object_put(a);
		return NULL;
	}
	return a;
}

/* ---- the document -------------------------------------------------------- */

/* "AKID/20150830/us-east-1/s3/aws4_request" */
static int credential(const struct sigv4_signer *s, struct buf *out)
{
	int err = buf_addf(out, "%s/", s->access_key);

	return err ? err : sigv4_scope(s, out);
}

static int policy_valid(const struct post_policy *p,
			const struct sigv4_signer *s)
{
	char date[17];

	if (!p->bucket || !*p->bucket || !p->key_prefix || !p->type_prefix ||
	    p->max_bytes < 1 || p->max_bytes > INT64_MAX || p->expires < 1 ||
	    p->expires > POST_POLICY_MAX_EXPIRES)
		return 0;
	if (!s->access_key || !*s->access_key || !s->secret_key ||
	    !s->region || !s->service)
		return 0;
	sigv4_format_date(p->now, date);
	return strcmp(date, s->amz_date) == 0;
}

/* The conditions, in boto3's order: the caller's (size, type), then
 * bucket and key, then the signing fields. */
static int add_conditions(const struct post_policy *p,
			  const struct sigv4_signer *s, json_object *conds)
{
	struct buf cred = BUF_INIT;
	int err = credential(s, &cred);

	if (!err)
		err = arr_add(conds, cond_range(1, p->max_bytes));
	if (!err)
		err = arr_add(conds, cond_starts("$Content-Type", p->type_prefix));
	if (!err)
		err = arr_add(conds, cond_eq("bucket", p->bucket));
	if (!err)
		err = arr_add(conds, cond_starts("$key", p->key_prefix));
	if (!err)
		err = arr_add(conds, cond_eq("x-amz-algorithm", POST_ALGORITHM));
	if (!err)
		err = arr_add(conds, cond_eq("x-amz-credential", cred.data));
	if (!err)
		err = arr_add(conds, cond_eq("x-amz-date", s->amz_date));
	if (!err && s->token && *s->token)
		err = arr_add(conds, cond_eq("x-amz-security-token", s->token));
	buf_release(&cred);
	return err;
}

static int add_expiration(const struct post_policy *p, json_object *doc)
{
	time_t at = p->now + (time_t)p->expires;
	char iso[32];
	struct tm tm;

	if (!gmtime_r(&at, &tm) ||
	    !strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return EINVAL;
	return obj_add(doc, "expiration", json_object_new_string(iso));
}

int post_policy_document(const struct post_policy *p,
			 const struct sigv4_signer *s, struct buf *out)
{
	json_object *doc, *conds;
	int err;

	if (!policy_valid(p, s))
		return EINVAL;
	doc = json_object_new_object();
	if (!doc)
		return ENOMEM;
	err = add_expiration(p, doc);
	conds = err ? NULL : json_object_new_array();
	if (!err)
		err = obj_add(doc, "conditions", conds);
	if (!err)
		err = add_conditions(p, s, conds);
	if (!err) {
		const char *text = json_object_to_json_string_ext(doc,
							  POST_JSON_FLAGS);

		err = text ? buf_adds(out, text) : ENOMEM;
	}
	json_object_put(doc);
	return err;
}

/* ---- signing and encoding ------------------------------------------------ */

void post_policy_signature(const struct sigv4_signer *s,
			   const char *policy_b64, char out[65])
{
	unsigned char key[32];

	sigv4_signing_key(s, key);
	sigv4_signature(key, policy_b64, out);
	OPENSSL_cleanse(key, sizeof(key));
}

int post_policy_base64(const void *data, size_t n, struct buf *out)
{
	size_t need;
	int len;

	if (n > (size_t)INT32_MAX / 4 * 3 - 3)
		return EOVERFLOW;
	need = (n + 2) / 3 * 4;
	if (buf_reserve(out, need + 1))
		return ENOMEM;
	len = EVP_EncodeBlock((unsigned char *)out->data + out->len,
			      (const unsigned char *)data, (int)n);
	out->len += (size_t)len;
	out->data[out->len] = '\0';
	return 0;
}

/* ---- the form ------------------------------------------------------------ */

/* Append field name=value (value copied). */
static int form_add(struct post_form *f, const char *name, const char *value)
{
	char *copy;

	if (f->nfields == POST_FORM_MAX_FIELDS)
		return EINVAL;
	copy = strdup(value);
	if (!copy)
		return ENOMEM;
	f->fields[f->nfields].name = name;
	f->fields[f->nfields].value = copy;
	f->nfields++;
	return 0;
}

/* The fields that sign: everything after key. */
static int form_sign(const struct post_policy *p, struct sigv4_signer *s,
		     struct post_form *f)
{
	struct buf doc = BUF_INIT, b64 = BUF_INIT, cred = BUF_INIT;
	char sig[65];
	int err = post_policy_document(p, s, &doc);

	if (!err)
		err = post_policy_base64(doc.data, doc.len, &b64);
	if (!err)
		err = credential(s, &cred);
	if (!err)
		err = form_add(f, "x-amz-algorithm", POST_ALGORITHM);
	if (!err)
		err = form_add(f, "x-amz-credential", cred.data);
	if (!err)
		err = form_add(f, "x-amz-date", s->amz_date);
	if (!err && s->token && *s->token)
		err = form_add(f, "x-amz-security-token", s->token);
	if (!err)
		err = form_add(f, "policy", b64.data);
	if (!err) {
		post_policy_signature(s, b64.data, sig);
		err = form_add(f, "x-amz-signature", sig);
	}
	buf_release(&doc);
	buf_release(&b64);
	buf_release(&cred);
	return err;
}

int post_policy_form(const struct post_policy *p, struct sigv4_signer *s,
		     const char *url, struct post_form *out)
{
	struct buf key = BUF_INIT;
	int err;

	memset(out, 0, sizeof(*out));
	if (!url || !p->key_prefix)
		return EINVAL;
	sigv4_format_date(p->now, s->amz_date);
	out->url = strdup(url);
	err = out->url ? 0 : ENOMEM;
	if (!err)
		err = buf_addf(&key, "%s%s", p->key_prefix, POST_FILENAME);
	if (!err)
		err = form_add(out, "key", key.data);
	if (!err)
		err = form_sign(p, s, out);
	if (err)
		post_form_release(out);
	buf_release(&key);
	return err;
}

const char *post_form_get(const struct post_form *f, const char *name)
{
	for (size_t i = 0; i < f->nfields; i++)
		if (!strcmp(f->fields[i].name, name))
			return f->fields[i].value;
	return NULL;
}

int post_form_json(const struct post_form *f, struct buf *out)
{
	json_object *doc = json_object_new_object();
	json_object *fields = json_object_new_object();
	int err = doc && fields ? 0 : ENOMEM;

	if (!err)
		err = obj_add(doc, "url", json_object_new_string(f->url));
	if (!err)
		err = obj_add(doc, "fields", fields);
	else
		json_object_put(fields);
	for (size_t i = 0; i < f->nfields && !err; i++)
		err = obj_add(fields, f->fields[i].name,
			      json_object_new_string(f->fields[i].value));
	if (!err) {
		const char *text = json_object_to_json_string_ext(
			doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
				     JSON_C_TO_STRING_NOSLASHESCAPE);

		err = text ? buf_addf(out, "%s\n", text) : ENOMEM;
	}
	json_object_put(doc);
	return err;
}

void post_form_release(struct post_form *f)
{
	free(f->url);
	for (size_t i = 0; i < f->nfields; i++) {
		OPENSSL_cleanse(f->fields[i].value, strlen(f->fields[i].value));
		free(f->fields[i].value);
	}
	memset(f, 0, sizeof(*f));
}
