/*
 * s3_copy: server-side copies (CopyObject, and UploadPartCopy for objects
 * too large for it) and the POSIX attribute headers (see store.h).
 */
#define _GNU_SOURCE
#include "store/s3_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "aws/sigv4.h"
#include "store/xml.h"

#define COPY_PART_MIN (64ULL << 20) /* bytes per UploadPartCopy, at least */

/* ---- attribute headers ------------------------------------------------- */

int s3_add_attrs(struct s3_req *req, const struct store_attrs *a)
{
	char (*v)[32] = req->attr_vals;
	int err = 0;

	if (!a)
		return 0;
	if (a->have & STORE_ATTR_MTIME) {
		if (a->mtime_nsec)
			snprintf(v[0], sizeof(v[0]), "%" PRId64 ".%09ld",
				 a->mtime_sec, a->mtime_nsec);
		else
			snprintf(v[0], sizeof(v[0]), "%" PRId64, a->mtime_sec);
		err = s3_req_header(req, "x-amz-meta-mtime", v[0]);
	}
	snprintf(v[1], sizeof(v[1]), "%" PRIu32, a->mode);
	snprintf(v[2], sizeof(v[2]), "%" PRIu32, a->uid);
	snprintf(v[3], sizeof(v[3]), "%" PRIu32, a->gid);
	snprintf(v[4], sizeof(v[4]), "%" PRIu64, a->rdev);
	if (!err && (a->have & STORE_ATTR_MODE))
		err = s3_req_header(req, "x-amz-meta-mode", v[1]);
	if (!err && (a->have & STORE_ATTR_UID))
		err = s3_req_header(req, "x-amz-meta-uid", v[2]);
	if (!err && (a->have & STORE_ATTR_GID))
		err = s3_req_header(req, "x-amz-meta-gid", v[3]);
	if (!err && (a->have & STORE_ATTR_RDEV))
		err = s3_req_header(req, "x-amz-meta-rdev", v[4]);
	return err;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return EINVAL;
	*out = v;
	return 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;
	int rc = parse_u64(s, UINT32_MAX, &v);

	if (!rc)
		*out = (uint32_t)v;
	return rc;
}

/* "seconds" or "seconds.fraction" (up to nanoseconds; more is cut). */
static int parse_mtime(const char *s, int64_t *sec, long *nsec)
{
	char *end;
	long long v;
	long ns = 0, scale = 100000000;

	if ((*s < '0' || *s > '9') && *s != '-')
		return EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno)
		return EINVAL;
	if (*end == '.') {
		for (end++; *end >= '0' && *end <= '9'; end++) {
			ns += (*end - '0') * scale;
			scale /= 10;
		}
	}
	if (*end)
		return EINVAL;
	*sec = v;
	*nsec = ns;
	return 0;
}

int s3_parse_attr(struct store_attrs *a, const char *name, const char *v,
		  size_t n)
{
	char tmp[64];

	if (strncasecmp(name, "x-amz-meta-", 11) != 0)
		return 0;
	name += 11;
	if (strcasecmp(name, "mtime") && strcasecmp(name, "mode") &&
	    strcasecmp(name, "uid") && strcasecmp(name, "gid") &&
	    strcasecmp(name, "rdev"))
		return 0;
	if (n >= sizeof(tmp))
		return 1; /* no such number: ignored */
	memcpy(tmp, v, n);
	tmp[n] = '\0';
	if (!strcasecmp(name, "mtime") &&
	    !parse_mtime(tmp, &a->mtime_sec, &a->mtime_nsec))
		a->have |= STORE_ATTR_MTIME;
	else if (!strcasecmp(name, "mode") && !parse_u32(tmp, &a->mode))
		a->have |= STORE_ATTR_MODE;
	else if (!strcasecmp(name, "uid") && !parse_u32(tmp, &a->uid))
		a->have |= STORE_ATTR_UID;
	else if (!strcasecmp(name, "gid") && !parse_u32(tmp, &a->gid))
		a->have |= STORE_ATTR_GID;
	else if (!strcasecmp(name, "rdev") &&
		 !parse_u64(tmp, UINT64_MAX, &a->rdev))
		a->have |= STORE_ATTR_RDEV;
	return 1;
}

/* ---- copies ------------------------------------------------------------ */

static int copy_source(struct s3_client *c, const char *key, struct buf *out)
{
	int err = buf_addf(out, "/%s/", c->conf->bucket);

	return err ? err : sigv4_uri_encode(key, strlen(key), 1, out);
}

/* CopyObject. EFBIG when the server says the source is too large. */
static int copy_object(struct s3_client *c, const char *src_key,
		       const char *dst_key, const struct store_put_opts *replace,
		       char etag_out[STORE_ETAG_MAX])
{
	struct s3_req req = {.op = MOP_COPY, .method = "PUT", .key = dst_key,
			     .error_in_200 = 1};
	struct s3_resp r = {.status = 0};
	struct buf src = BUF_INIT;
	char etag[STORE_ETAG_MAX];
	int err = copy_source(c, src_key, &src);

	if (!err)
		err = s3_req_header(&req, "x-amz-copy-source", src.data);
	if (!err)
		err = s3_req_header(&req, "x-amz-metadata-directive",
				    replace ? "REPLACE" : "COPY");
	if (!err && replace)
		err = s3_add_put_opts(c, &req, replace); /* adds SSE too */
	else if (!err)
		err = s3_add_sse(c, &req);
	if (!err)
		err = s3_run(c, &req, &r);
	if (err && (!strcmp(r.xerr.code, "EntityTooLarge") ||
		    !strcmp(r.xerr.code, "InvalidRequest")))
		err = EFBIG; /* larger than this server copies at once */
	if (!err && xml_parse_copy(r.body.data, r.body.len, etag, NULL)) {
		log_error("s3: COPY: unreadable response");
		err = EIO;
	}
	if (!err)
		s3_etag_out_copy(etag_out, etag);
	buf_release(&src);
	s3_resp_release(&r);
	return err;
}

/* One UploadPartCopy of bytes [off, off + len) of src. */
static int copy_part(struct s3_client *c, const char *src, const char *dst_key,
		     const char *upload_id, struct store_part *part,
		     uint64_t off, uint64_t len)
{
	struct s3_req req = {.op = MOP_MPU_PART, .method = "PUT",
			     .key = dst_key, .error_in_200 = 1};
	struct s3_resp r = {.status = 0};
	struct buf q = BUF_INIT;
	char num[16], range[64];
	int err;

	snprintf(num, sizeof(num), "%u", part->number);
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off,
		 off + len - 1);
	err = s3_query_add(&q, "partNumber", num);
	if (!err)
		err = s3_query_add(&q, "uploadId", upload_id);
	req.query = q.data;
	if (!err)
		err = s3_req_header(&req, "x-amz-copy-source", src);
	if (!err)
		err = s3_req_header(&req, "x-amz-copy-source-range", range);
	if (!err)
		err = s3_run(c, &req, &r);
	if (!err && xml_parse_copy_part(r.body.data, r.body.len, part->etag,
					NULL)) {
		log_error("s3: UPLOAD_PART_COPY: unreadable response");
		err = EIO;
	}
	buf_release(&q);
	s3_resp_release(&r);
	return err;
}

/* The metadata a part-by-part copy keeps: the source's, unless replaced. */
static int copy_opts(struct s3_client *c, const char *src_key,
		     const struct store_put_opts *replace,
		     struct store_object *head, struct store_put_opts *o,
		     uint64_t *size)
{
	int err = store_head(&c->store, src_key, head);

	if (err)
		return err;
	*size = head->size;
	if (replace) {
		*o = *replace;
	} else {
		o->content_type = head->content_type[0] ? head->content_type
							: NULL;
		o->source_etag = head->source_etag[0] ? head->source_etag : NULL;
		o->attrs = &head->attrs;
	}
	o->if_none_match = NULL;
	return 0;
}

/* Copy src_key to dst_key with UploadPartCopy, parts of at least
 * COPY_PART_MIN bytes and at most 10,000 of them. */
static int copy_multipart(struct s3_client *c, const char *src_key,
			  const char *dst_key,
			  const struct store_put_opts *replace,
			  char etag_out[STORE_ETAG_MAX])
{
	struct store_object head;
	struct store_put_opts o = {0};
	struct store_part *parts = NULL;
	struct buf src = BUF_INIT;
	char *id = NULL;
	uint64_t size = 0, ps = COPY_PART_MIN;
	unsigned n = 0;
	int err = copy_opts(c, src_key, replace, &head, &o, &size);

	if (!err && size / 10000 >= ps)
		ps = size / 10000 + 1;
	if (!err)
		err = copy_source(c, src_key, &src);
	if (!err && !(parts = calloc(size / ps + 1, sizeof(*parts))))
		err = ENOMEM;
	if (!err)
		err = s3_mpu_create(&c->store, dst_key, &o, &id);
	for (uint64_t off = 0; !err && off < size; off += ps, n++) {
		parts[n].number = n + 1;
		err = copy_part(c, src.data, dst_key, id, &parts[n], off,
				size - off < ps ? size - off : ps);
	}
	if (!err)
		err = s3_mpu_complete(&c->store, dst_key, id, parts, n, etag_out);
	if (err && id && s3_mpu_abort(&c->store, dst_key, id))
		log_warn("s3: cannot abort a failed part-by-part copy; the "
			 "lifecycle rule will");
	if (err)
		log_error("s3: part-by-part copy failed: %s", strerror(err));
	free(id);
	free(parts);
	buf_release(&src);
	return err;
}

int s3_copy(struct store *st, const char *src_key, const char *dst_key,
	    const struct store_put_opts *replace, uint64_t src_size,
	    char etag_out[STORE_ETAG_MAX])
{
	struct s3_client *c = s3_client_of(st);
	int err = EFBIG;

	uint64_t max = c->conf->copy_max ? c->conf->copy_max : STORE_COPY_MAX;

	if (src_size <= max && src_size <= STORE_COPY_MAX)
		err = copy_object(c, src_key, dst_key, replace, etag_out);
	if (err == EFBIG) /* over 5 GiB, or this server's lower limit */
		err = copy_multipart(c, src_key, dst_key, replace, etag_out);
	return err;
}
