/*
 * s3_obj: object operations, listing and presigned URLs of the S3
 * client, and the store_ops table that makes it a store (see s3.h).
 */
#define _GNU_SOURCE
#include "store/s3_int.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base/log.h"
#include "aws/sigv4.h"
#include "store/xml.h"

/* ---- operations -------------------------------------------------------- */

void s3_resp_release(struct s3_resp *r)
{
	buf_release(&r->body);
}

int s3_add_sse(struct s3_client *c, struct s3_req *req)
{
	int err = s3_req_header(req, "x-amz-server-side-encryption", c->conf->sse);

	if (!err && c->conf->sse && c->conf->sse_kms_key_id)
		err = s3_req_header(req, "x-amz-server-side-encryption-aws-kms-key-id",
				 c->conf->sse_kms_key_id);
	return err;
}

int s3_add_put_opts(struct s3_client *c, struct s3_req *req,
			const struct store_put_opts *opts)
{
	const char *ct = opts && opts->content_type ? opts->content_type
						    : "application/octet-stream";
	int err = s3_req_header(req, "content-type", ct);

	if (!err && opts)
		err = s3_req_header(req, "x-amz-meta-source-etag", opts->source_etag);
	if (!err && opts)
		err = s3_req_header(req, "if-none-match", opts->if_none_match);
	if (!err && opts)
		err = s3_add_attrs(req, opts->attrs);
	if (!err)
		err = s3_add_sse(c, req);
	return err;
}

void s3_etag_out_copy(char etag_out[STORE_ETAG_MAX], const char *etag)
{
	if (etag_out)
		snprintf(etag_out, STORE_ETAG_MAX, "%s", etag);
}

static int s3_head(struct store *st, const char *key, struct store_object *out)
{
	struct s3_client *c = s3_client_of(st);
	struct s3_req req = {.op = MOP_HEAD, .method = "HEAD", .key = key};
	struct s3_resp r = {.status = 0};
	int err = s3_run(c, &req, &r);

	if (!err && !r.have_length) {
		/* S3 always sends it; without it the size would be a guess */
		log_error("s3: HEAD: a reply without a valid Content-Length");
		err = EIO;
	}
	if (!err && out) {
		*out = r.obj;
		out->size = r.content_length;
	}
	s3_resp_release(&r);
	return err;
}

static int s3_get(struct store *st, const char *key, uint64_t off, uint64_t len,
	   const char *if_match, store_sink_fn sink, void *arg,
	   struct store_object *info)
{
	struct s3_client *c = s3_client_of(st);
	struct s3_get_state g = {.off = off, .len = len, .if_match = if_match,
				 .sink = sink, .arg = arg};
	struct s3_req req = {.op = MOP_GET, .method = "GET", .key = key,
			     .get = &g, .err_412 = EAGAIN};
	struct s3_resp r = {.status = 0};
	int err;

	if (if_match && !s3_value_is_safe(if_match))
		return EINVAL;
	err = s3_run(c, &req, &r);
	if (!err && !g.have_info) /* an empty body: no byte came through */
		err = s3_get_stream_start(&r, &g);
	if (!err && info)
		*info = g.info;
	s3_resp_release(&r);
	return err;
}

static int s3_put(struct store *st, const char *key, const void *data, size_t len,
	   const struct store_put_opts *opts, char etag_out[STORE_ETAG_MAX])
{
	struct s3_client *c = s3_client_of(st);
	struct s3_req req = {.op = MOP_PUT, .method = "PUT", .key = key,
			     .body = data, .body_len = len, .err_412 = EEXIST};
	struct s3_resp r = {.status = 0};
	int err = s3_add_put_opts(c, &req, opts);

	if (!err)
		err = s3_run(c, &req, &r);
	if (!err)
		s3_etag_out_copy(etag_out, r.obj.etag);
	s3_resp_release(&r);
	return err;
}

static int s3_delete(struct store *st, const char *key)
{
	struct s3_client *c = s3_client_of(st);
	struct s3_req req = {.op = MOP_DELETE, .method = "DELETE", .key = key};
	struct s3_resp r = {.status = 0};
	int err = s3_run(c, &req, &r);

	s3_resp_release(&r);
	return err == ENOENT ? 0 : err;
}

static int list_query(const char *prefix, const char *delimiter,
		      const char *token, unsigned max_keys, struct buf *q)
{
	char mk[16];
	int err = s3_query_add(q, "list-type", "2");

	if (!err && prefix && *prefix)
		err = s3_query_add(q, "prefix", prefix);
	if (!err && delimiter && *delimiter)
		err = s3_query_add(q, "delimiter", delimiter);
	if (!err && token)
		err = s3_query_add(q, "continuation-token", token);
	snprintf(mk, sizeof(mk), "%u", max_keys);
	if (!err && max_keys)
		err = s3_query_add(q, "max-keys", mk);
	if (!err)
		err = s3_query_add(q, "encoding-type", "url");
	return err;
}

static int s3_list(struct store *st, const char *prefix, const char *delimiter,
	    const char *token, unsigned max_keys, struct store_list_page *out)
{
	struct s3_client *c = s3_client_of(st);
	struct s3_req req = {.op = MOP_LIST, .method = "GET"};
	struct s3_resp r = {.status = 0};
	struct buf q = BUF_INIT;
	int err = list_query(prefix, delimiter, token, max_keys, &q);

	memset(out, 0, sizeof(*out));
	req.query = q.data;
	if (!err)
		err = s3_run(c, &req, &r);
	if (!err) {
		err = xml_parse_list(r.body.data, r.body.len, out, NULL);
		if (err) {
			struct log_key what;

			log_error("s3: LIST %s: unreadable response (%s)",
				  log_key(&what, prefix ? prefix : ""),
				  strerror(err));
		}
	}
	buf_release(&q);
	s3_resp_release(&r);
	return err ? (err == ENOMEM || err == ENOENT || err == EACCES ? err
								      : EIO)
		   : 0;
}

/* ---- presigned URLs ---------------------------------------------------- */

const struct store_ops s3_ops = {
	.head = s3_head,
	.get = s3_get,
	.put = s3_put,
	.del = s3_delete,
	.copy = s3_copy,
	.list = s3_list,
	.mpu_create = s3_mpu_create,
	.mpu_part = s3_mpu_part,
	.mpu_complete = s3_mpu_complete,
	.mpu_abort = s3_mpu_abort,
	.mpu_list = s3_mpu_list,
};

struct store *s3_store(struct s3_client *c)
{
	return &c->store;
}

int s3_presign_get(struct s3_client *c, const char *key, time_t now,
		   unsigned expires, const char *disposition, struct buf *out)
{
	struct aws_creds ac;
	struct buf path = BUF_INIT, q = BUF_INIT, signed_q = BUF_INIT;
	struct sigv4_header host = {"host", c->host};
	struct sigv4_request sr = {"GET", NULL, NULL, &host, 1,
				   SIGV4_UNSIGNED_PAYLOAD};
	struct sigv4_signer s = {.region = c->conf->region, .service = "s3"};
	int err = creds_get(c->creds, &ac);

	if (!err)
		err = s3_object_path(c, key, &path);
	if (!err && disposition)
		err = s3_query_add(&q, "response-content-disposition", disposition);
	if (!err) {
		sr.path = path.data;
		sr.query = q.data;
		s.access_key = ac.access_key;
		s.secret_key = ac.secret_key;
		s.token = ac.token;
		sigv4_format_date(now, s.amz_date);
		err = sigv4_presign_query(&s, &sr, expires, &signed_q);
	}
	if (!err)
		err = buf_addf(out, "%s://%s%s?%s", c->scheme, c->host,
			       path.data, signed_q.data);
	explicit_bzero(&ac, sizeof(ac));
	buf_release(&path);
	buf_release(&q);
	buf_release(&signed_q);
	return err;
}

int s3_presign_post(struct s3_client *c, const char *key_prefix,
		    uint64_t max_bytes, const char *type_prefix, time_t now,
		    unsigned expires, struct post_form *out)
{
	struct aws_creds ac;
	struct buf url = BUF_INIT;
	struct sigv4_signer s = {.region = c->conf->region, .service = "s3"};
	struct post_policy p = {c->conf->bucket, key_prefix, max_bytes,
				type_prefix, now, expires};
	int err = creds_get(c->creds, &ac);

	memset(out, 0, sizeof(*out));
	if (!err)
		err = buf_addf(&url, "%s://%s%s", c->scheme, c->host,
			       *c->base ? c->base : "/");
	if (!err) {
		s.access_key = ac.access_key;
		s.secret_key = ac.secret_key;
		s.token = ac.token;
		err = post_policy_form(&p, &s, url.data, out);
	}
	explicit_bzero(&ac, sizeof(ac));
	buf_release(&url);
	return err;
}
