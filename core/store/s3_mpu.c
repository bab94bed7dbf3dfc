/*
 * s3_mpu: multipart upload through the S3 client (see s3_int.h).
 */
#define _GNU_SOURCE
#include "store/s3_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/log.h"
#include "aws/sigv4.h"
#include "store/xml.h"

/* ---- multipart upload -------------------------------------------------- */

/*
 * A create whose reply was lost (a reset, a timeout, a 5xx) may still have
 * made an upload. Its id never reached us, and nothing S3 lists about an
 * upload in progress (key, id, initiator, initiated time; never its
 * metadata) tells it from another client's upload of the same key begun at
 * the same moment, so it is not aborted here: the bucket's lifecycle rule
 * (AbortIncompleteMultipartUpload) removes it. See docs/SEMANTICS.md.
 */
static void mpu_note_stray(const char *key)
{
	struct log_key k;

	log_warn("s3: a multipart upload of %s may have been created by a "
		 "request whose reply was lost; it is left to the bucket's "
		 "lifecycle rule", log_key(&k, key));
}

int s3_mpu_create(struct store *st, const char *key,
		  const struct store_put_opts *opts, char **upload_id)
{
	struct s3_client *c = s3_client_of(st);
	struct s3_req req = {.op = MOP_MPU_CREATE, .method = "POST",
			     .key = key, .query = "uploads"};
	struct s3_resp r = {.status = 0};
	struct store_put_opts o = {0};
	int err;

	*upload_id = NULL;
	if (opts) {
		o = *opts;
		o.if_none_match = NULL; /* not a multipart create header */
	}
	err = s3_add_put_opts(c, &req, &o);
	if (!err)
		err = s3_run(c, &req, &r);
	if (!err && xml_parse_initiate(r.body.data, r.body.len, upload_id)) {
		log_error("s3: MPU_CREATE: unreadable response");
		err = EIO;
	}
	s3_resp_release(&r);
	if (req.attempts > 1 || err == EIO)
		mpu_note_stray(key);
	return err;
}

static int upload_query(const char *upload_id, unsigned part,
			struct buf *q)
{
	char num[16];
	int err = 0;

	snprintf(num, sizeof(num), "%u", part);
	if (part)
		err = s3_query_add(q, "partNumber", num);
	if (!err)
		err = s3_query_add(q, "uploadId", upload_id);
	return err;
}

int s3_mpu_part(struct store *st, const char *key, const char *upload_id,
		unsigned part_number, const void *data, size_t len,
		char etag_out[STORE_ETAG_MAX])
{
	struct s3_client *c = s3_client_of(st);
	struct s3_req req = {.op = MOP_MPU_PART, .method = "PUT", .key = key,
			     .body = data, .body_len = len};
	struct s3_resp r = {.status = 0};
	struct buf q = BUF_INIT;
	int err = part_number >= 1 && part_number <= 10000 ? 0 : EINVAL;

	if (!err)
		err = upload_query(upload_id, part_number, &q);
	req.query = q.data;
	if (!err)
		err = s3_run(c, &req, &r);
	if (!err && !r.obj.etag[0])
		err = EIO;
	if (!err)
		s3_etag_out_copy(etag_out, r.obj.etag);
	buf_release(&q);
	s3_resp_release(&r);
	return err;
}

/* Text for an XML element, with the five special characters escaped. */
static int xml_text(struct buf *out, const char *s)
{
	int err = 0;

	for (; *s && !err; s++) {
		switch (*s) {
		case '&': err = buf_adds(out, "&amp;"); break;
		case '<': err = buf_adds(out, "&lt;"); break;
		case '>': err = buf_adds(out, "&gt;"); break;
		case '"': err = buf_adds(out, "&quot;"); break;
		case '\'': err = buf_adds(out, "&apos;"); break;
		default: err = buf_add(out, s, 1); break;
		}
	}
	return err;
}

static int complete_body(const struct store_part *parts, size_t nparts,
			 struct buf *out)
{
	int err = nparts ? buf_adds(out, "<CompleteMultipartUpload>") : EINVAL;

	for (size_t i = 0; !err && i < nparts; i++) {
		if (parts[i].number < 1 || parts[i].number > 10000 ||
		    (i && parts[i].number <= parts[i - 1].number) ||
		    !s3_value_is_safe(parts[i].etag))
			return EINVAL;
		err = buf_addf(out, "<Part><PartNumber>%u</PartNumber><ETag>",
			       parts[i].number);
		if (!err)
			err = xml_text(out, parts[i].etag);
		if (!err)
			err = buf_adds(out, "</ETag></Part>");
	}
	if (!err)
		err = buf_adds(out, "</CompleteMultipartUpload>");
	return err;
}

/* The ETag of a completed upload whose response did not carry one. */
static int complete_etag(struct s3_client *c, const char *key,
			 char etag[STORE_ETAG_MAX])
{
	struct store_object obj;
	int err = store_head(&c->store, key, &obj);

	if (!err)
		snprintf(etag, STORE_ETAG_MAX, "%s", obj.etag);
	return err;
}

/*
 * A completion answered NoSuchUpload: an earlier attempt (ours, or curl's
 * own resend on a reused connection) may have completed the upload and
 * lost its reply. It did when the object now has exactly the ETag these
 * parts make.
 */
static int complete_confirm(struct s3_client *c, const char *key,
			    const struct store_part *parts, size_t nparts,
			    char etag[STORE_ETAG_MAX])
{
	struct log_key k;

	if (!store_mpu_landed(&c->store, key, parts, nparts, etag))
		return ENOENT;
	log_info("s3: MPU_COMPLETE %s: the first reply was lost, the object "
		 "is complete", log_key(&k, key));
	return 0;
}

int s3_mpu_complete(struct store *st, const char *key,
		    const char *upload_id, const struct store_part *parts,
		    size_t nparts, char etag_out[STORE_ETAG_MAX])
{
	struct s3_client *c = s3_client_of(st);
	struct s3_req req = {.op = MOP_MPU_COMPLETE, .method = "POST",
			     .key = key, .error_in_200 = 1};
	struct s3_resp r = {.status = 0};
	struct buf q = BUF_INIT, body = BUF_INIT;
	char etag[STORE_ETAG_MAX];
	int err = upload_query(upload_id, 0, &q);

	if (!err)
		err = complete_body(parts, nparts, &body);
	if (!err)
		err = s3_req_header(&req, "content-type", "application/xml");
	req.query = q.data;
	req.body = body.data;
	req.body_len = body.len;
	if (!err)
		err = s3_run(c, &req, &r);
	if (err == ENOENT) /* curl itself resends on a reused connection */
		err = complete_confirm(c, key, parts, nparts, etag);
	else if (!err && xml_parse_complete(r.body.data, r.body.len, etag,
					    NULL)) {
		log_error("s3: MPU_COMPLETE: unreadable response");
		err = EIO;
	}
	if (!err && !etag[0] && etag_out)
		err = complete_etag(c, key, etag);
	if (!err)
		s3_etag_out_copy(etag_out, etag);
	buf_release(&q);
	buf_release(&body);
	s3_resp_release(&r);
	return err;
}

int s3_mpu_abort(struct store *st, const char *key, const char *upload_id)
{
	struct s3_client *c = s3_client_of(st);
	struct s3_req req = {.op = MOP_MPU_ABORT, .method = "DELETE",
			     .key = key};
	struct s3_resp r = {.status = 0};
	struct buf q = BUF_INIT;
	int err = upload_query(upload_id, 0, &q);

	req.query = q.data;
	if (!err)
		err = s3_run(c, &req, &r);
	if (err == ENOENT && req.attempts > 1)
		err = 0; /* an earlier attempt aborted it and lost the reply */
	buf_release(&q);
	s3_resp_release(&r);
	return err;
}

static int uploads_query(const char *prefix, const char *key_marker,
			 const char *id_marker, struct buf *q)
{
	int err = s3_query_add(q, "uploads", NULL);

	if (!err)
		err = s3_query_add(q, "encoding-type", "url");
	if (!err && prefix && *prefix)
		err = s3_query_add(q, "prefix", prefix);
	if (!err && key_marker)
		err = s3_query_add(q, "key-marker", key_marker);
	if (!err && key_marker && id_marker)
		err = s3_query_add(q, "upload-id-marker", id_marker);
	return err;
}

/* One page of ListMultipartUploads after the given markers. */
static int mpu_list_page(struct s3_client *c, const char *prefix,
			 const char *key_marker, const char *id_marker,
			 struct xml_uploads_page *page)
{
	struct s3_req req = {.op = MOP_MPU_LIST, .method = "GET"};
	struct s3_resp r = {.status = 0};
	struct buf q = BUF_INIT;
	int err = uploads_query(prefix, key_marker, id_marker, &q);

	req.query = q.data;
	if (!err)
		err = s3_run(c, &req, &r);
	if (!err && xml_parse_uploads(r.body.data, r.body.len, 1, page)) {
		log_error("s3: MPU_LIST: unreadable response");
		err = EIO;
	}
	buf_release(&q);
	s3_resp_release(&r);
	return err;
}

/* The markers for the page after this one: its last upload. */
static int next_markers(const struct xml_uploads_page *page, char **key,
			char **id)
{
	const struct xml_upload *last;
	char *k, *i;

	if (!page->nuploads)
		return EIO; /* truncated yet empty: no way forward */
	last = &page->uploads[page->nuploads - 1];
	if (*key && *id && strcmp(*key, last->key) == 0 &&
	    strcmp(*id, last->upload_id) == 0)
		return EIO; /* no progress: the server is looping */
	k = strdup(last->key);
	i = strdup(last->upload_id);
	if (!k || !i) {
		free(k);
		free(i);
		return ENOMEM;
	}
	free(*key);
	free(*id);
	*key = k;
	*id = i;
	return 0;
}

int s3_mpu_list(struct store *st, const char *prefix, store_mpu_fn fn,
		void *arg)
{
	struct s3_client *c = s3_client_of(st);
	struct xml_uploads_page page = {0};
	char *key_marker = NULL, *id_marker = NULL;
	int err, more;

	do {
		err = mpu_list_page(c, prefix, key_marker, id_marker, &page);
		for (size_t i = 0; !err && i < page.nuploads; i++)
			fn(arg, page.uploads[i].key, page.uploads[i].upload_id,
			   page.uploads[i].initiated);
		more = !err && page.truncated;
		if (more)
			err = next_markers(&page, &key_marker, &id_marker);
		xml_uploads_page_release(&page);
	} while (more && !err);
	free(key_marker);
	free(id_marker);
	return err;
}
