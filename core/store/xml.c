/*
 * xml: S3 response bodies parsed with expat (see xml.h).
 *
 * One small engine drives every document: it tracks the element path as
 * "Root/Child/Leaf", gathers each element's text, and calls a per-document
 * handler when an element opens and when it closes. Handlers match on the
 * full path, so an element in an unexpected place is ignored, and every
 * limit (depth, text length, entry count) is enforced in one place.
 */
#define _GNU_SOURCE
#include "store/xml.h"

#include <errno.h>
#include <expat.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hex.h"
#include "base/num.h"

#define XML_DEPTH_MAX 8
#define XML_PATH_MAX 256
#define XML_TEXT_MAX 65536
#define XML_ENTRIES_MAX 100000
#define XML_BODY_MAX (64u << 20)

struct xml_doc;
/* Called with the element's path; text is NULL when the element opens. */
typedef int (*xml_handler_fn)(struct xml_doc *d, const char *path,
			      const char *text, size_t len);

struct xml_doc {
	XML_Parser parser;
	char path[XML_PATH_MAX];        /* "Root/Child", NUL-terminated */
	size_t mark[XML_DEPTH_MAX];     /* path length before each level */
	int depth;
	struct buf text;                /* text of the innermost element */
	xml_handler_fn handler;
	void *arg;
	int err;                        /* first error; stops the parser */
};

static void doc_fail(struct xml_doc *d, int err)
{
	if (!d->err)
		d->err = err;
	XML_StopParser(d->parser, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name,
			     const XML_Char **atts)
{
	struct xml_doc *d = ud;
	size_t len = strlen(d->path), nlen = strlen(name);
	int err;

	(void)atts;
	if (d->err)
		return;
	if (d->depth == XML_DEPTH_MAX ||
	    len + 1 + nlen + 1 > sizeof(d->path)) {
		doc_fail(d, EINVAL);
		return;
	}
	d->mark[d->depth++] = len;
	if (len)
		d->path[len++] = '/';
	memcpy(d->path + len, name, nlen + 1);
	buf_reset(&d->text);
	err = d->handler(d, d->path, NULL, 0);
	if (err)
		doc_fail(d, err);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct xml_doc *d = ud;
	int err;

	(void)name;
	if (d->err)
		return;
	err = d->handler(d, d->path, d->text.data ? d->text.data : "",
			 d->text.len);
	if (err) {
		doc_fail(d, err);
		return;
	}
	d->path[d->mark[--d->depth]] = '\0';
	buf_reset(&d->text);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct xml_doc *d = ud;

	if (d->err)
		return;
	if (len < 0 || d->text.len + (size_t)len > XML_TEXT_MAX) {
		doc_fail(d, EINVAL);
		return;
	}
	if (buf_add(&d->text, s, (size_t)len))
		doc_fail(d, ENOMEM);
}

/* S3 never sends a DTD: refuse one, and with it every entity trick. */
static void XMLCALL on_doctype(void *ud, const XML_Char *name,
			       const XML_Char *sysid, const XML_Char *pubid,
			       int has_internal_subset)
{
	(void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
	doc_fail(ud, EINVAL);
}

static void XMLCALL on_entity(void *ud, const XML_Char *name, int is_param,
			      const XML_Char *value, int value_len,
			      const XML_Char *base, const XML_Char *sysid,
			      const XML_Char *pubid, const XML_Char *notation)
{
	(void)name, (void)is_param, (void)value, (void)value_len, (void)base;
	(void)sysid, (void)pubid, (void)notation;
	doc_fail(ud, EINVAL);
}

/* Parse a whole document with handler. 0, EINVAL or the handler's error. */
static int doc_parse(const char *data, size_t len, xml_handler_fn handler,
		     void *arg)
{
	struct xml_doc d = {.handler = handler, .arg = arg};
	int err = 0;

	if (len > XML_BODY_MAX || (len && !data))
		return EINVAL;
	d.parser = XML_ParserCreate(NULL);
	if (!d.parser)
		return ENOMEM;
	XML_SetUserData(d.parser, &d);
	XML_SetElementHandler(d.parser, on_start, on_end);
	XML_SetCharacterDataHandler(d.parser, on_text);
	XML_SetStartDoctypeDeclHandler(d.parser, on_doctype);
	XML_SetEntityDeclHandler(d.parser, on_entity);
	if (XML_Parse(d.parser, data ? data : "", (int)len, XML_TRUE) !=
	    XML_STATUS_OK)
		err = d.err ? d.err : EINVAL;
	else if (d.err || d.depth != 0)
		err = d.err ? d.err : EINVAL;
	XML_ParserFree(d.parser);
	buf_release(&d.text);
	return err;
}

/* ---- values ------------------------------------------------------------ */

static int parse_bool(const char *s, int *out)
{
	if (strcmp(s, "true") == 0)
		*out = 1;
	else if (strcmp(s, "false") == 0)
		*out = 0;
	else
		return EINVAL;
	return 0;
}

int xml_parse_time(const char *s, time_t *out)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	time_t t;

	if (!p || tm.tm_year < 70 || tm.tm_year > 8000)
		return EINVAL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (strcmp(p, "Z") != 0)
		return EINVAL;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return EINVAL;
	*out = t;
	return 0;
}

/* A copy of text that holds no NUL byte. */
static int dup_text(const char *text, size_t len, char **out)
{
	char *p;

	if (memchr(text, '\0', len))
		return EINVAL;
	p = strndup(text, len);
	if (!p)
		return ENOMEM;
	free(*out);
	*out = p;
	return 0;
}

/* An ETag, always quoted: some servers (RGW repeating a completion) leave
 * the quotes out. */
static int copy_etag(const char *text, size_t len, char etag[STORE_ETAG_MAX])
{
	int quoted = len >= 2 && text[0] == '"' && text[len - 1] == '"';

	if (len == 0 || len + (quoted ? 0 : 2) >= STORE_ETAG_MAX ||
	    memchr(text, '\0', len) || (!quoted && memchr(text, '"', len)))
		return EINVAL;
	snprintf(etag, STORE_ETAG_MAX, "%s%.*s%s", quoted ? "" : "\"", (int)len,
		 text, quoted ? "" : "\"");
	return 0;
}

/* Undo encoding-type=url in place: %XX and '+' for a space. */
static int url_decode(char *s)
{
	char *w = s;

	for (const char *r = s; *r; r++) {
		if (*r == '+') {
			*w++ = ' ';
		} else if (*r == '%') {
			int hi = hex_digit((unsigned char)r[1]);
			int lo = hi < 0 ? -1 : hex_digit((unsigned char)r[2]);

			if (lo < 0 || (hi == 0 && lo == 0))
				return EINVAL;
			*w++ = (char)(hi << 4 | lo);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return 0;
}

/*
 * Add one zeroed item to an array of elem-sized items holding *n. The
 * capacity is the smallest power of two >= *n, so the array is full (and
 * doubles) exactly when *n is 0 or a power of two.
 */
static int grow(void **arr, size_t *n, size_t elem)
{
	void *p = *arr;

	if (*n >= XML_ENTRIES_MAX)
		return EINVAL;
	if ((*n & (*n - 1)) == 0) {
		p = realloc(*arr, (*n ? *n * 2 : 1) * elem);
		if (!p)
			return ENOMEM;
		*arr = p;
	}
	memset((char *)p + *n * elem, 0, elem);
	(*n)++;
	return 0;
}

/* ---- <Error> ----------------------------------------------------------- */

static void copy_trunc(char *dst, size_t size, const char *text, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(dst, text, len);
	dst[len] = '\0';
}

static int error_handler(struct xml_doc *d, const char *path,
			 const char *text, size_t len)
{
	struct xml_error *e = d->arg;

	if (d->depth == 1 && !text)
		return strcmp(path, "Error") == 0 ? 0 : EINVAL;
	if (!text)
		return 0;
	if (strcmp(path, "Error/Code") == 0)
		copy_trunc(e->code, sizeof(e->code), text, len);
	else if (strcmp(path, "Error/Message") == 0)
		copy_trunc(e->message, sizeof(e->message), text, len);
	return 0;
}

int xml_parse_error(const char *data, size_t len, struct xml_error *err)
{
	struct xml_error tmp = {{0}, {0}};
	int rc = doc_parse(data, len, error_handler, &tmp);

	if (!rc && err)
		*err = tmp;
	return rc;
}

/* ---- <ListBucketResult> ------------------------------------------------ */

struct list_state {
	struct store_list_page *page;
	int truncated;
	int url;
};

static int list_entry_field(struct store_list_entry *e, const char *field,
			    const char *text, size_t len)
{
	if (strcmp(field, "Key") == 0)
		return len ? dup_text(text, len, &e->key) : EINVAL;
	if (strcmp(field, "Size") == 0)
		return num_parse_u64(text, NULL, &e->size) ? EINVAL : 0;
	if (strcmp(field, "LastModified") == 0)
		return xml_parse_time(text, &e->mtime);
	if (strcmp(field, "ETag") == 0)
		return copy_etag(text, len, e->etag);
	return 0;
}

static int list_top_field(struct list_state *st, const char *field,
			  const char *text, size_t len)
{
	uint64_t count;

	if (strcmp(field, "IsTruncated") == 0)
		return parse_bool(text, &st->truncated);
	if (strcmp(field, "NextContinuationToken") == 0)
		return len ? dup_text(text, len, &st->page->next_token) : EINVAL;
	if (strcmp(field, "KeyCount") == 0)
		return num_parse_u64(text, NULL, &count) ? EINVAL : 0;
	if (strcmp(field, "EncodingType") == 0)
		st->url = strcmp(text, "url") == 0;
	return 0;
}

#define LIST_ROOT "ListBucketResult"
#define LIST_CONTENTS LIST_ROOT "/Contents"
#define LIST_PREFIXES LIST_ROOT "/CommonPrefixes"

static int list_open(struct list_state *st, const char *path, int depth)
{
	struct store_list_page *p = st->page;

	if (depth == 1)
		return strcmp(path, LIST_ROOT) == 0 ? 0 : EINVAL;
	if (strcmp(path, LIST_CONTENTS) == 0)
		return grow((void **)&p->entries, &p->nentries,
			    sizeof(*p->entries));
	return 0;
}

static int list_handler(struct xml_doc *d, const char *path,
			const char *text, size_t len)
{
	struct list_state *st = d->arg;
	struct store_list_page *p = st->page;

	if (!text)
		return list_open(st, path, d->depth);
	if (d->depth == 3 && strncmp(path, LIST_CONTENTS "/",
				     sizeof(LIST_CONTENTS)) == 0)
		return list_entry_field(&p->entries[p->nentries - 1],
					path + sizeof(LIST_CONTENTS), text, len);
	if (strcmp(path, LIST_CONTENTS) == 0)
		return p->entries[p->nentries - 1].key ? 0 : EINVAL;
	if (strcmp(path, LIST_PREFIXES "/Prefix") == 0) {
		if (!len)
			return EINVAL;
		int err = grow((void **)&p->prefixes, &p->nprefixes,
			       sizeof(*p->prefixes));
		return err ? err
			   : dup_text(text, len, &p->prefixes[p->nprefixes - 1]);
	}
	if (d->depth == 2)
		return list_top_field(st, path + sizeof(LIST_ROOT), text, len);
	return 0;
}

/* Decode keys and prefixes; check the page is complete. */
static int list_finish(struct list_state *st)
{
	struct store_list_page *p = st->page;
	int err = 0;

	for (size_t i = 0; st->url && !err && i < p->nentries; i++)
		err = url_decode(p->entries[i].key);
	for (size_t i = 0; st->url && !err && i < p->nprefixes; i++)
		err = url_decode(p->prefixes[i]);
	for (size_t i = 0; !err && i < p->nprefixes; i++)
		if (p->prefixes[i] == NULL)
			err = EINVAL;
	if (!err && st->truncated && !p->next_token)
		err = EINVAL;
	if (!err && !st->truncated) {
		free(p->next_token);
		p->next_token = NULL;
	}
	return err;
}

int xml_parse_list(const char *data, size_t len, struct store_list_page *out,
		   int *truncated)
{
	struct list_state st = {.page = out};
	int err;

	memset(out, 0, sizeof(*out));
	err = doc_parse(data, len, list_handler, &st);
	if (!err)
		err = list_finish(&st);
	if (err) {
		store_list_page_release(out);
		return err;
	}
	if (truncated)
		*truncated = st.truncated;
	return 0;
}

/* Defined here rather than in s3.c so that parsing a page (and testing
 * it) needs nothing of the network client. */
/* ---- one-value results, and <Error> in their place --------------------- */

struct value_state {
	const char *root;     /* expected root element */
	const char *path;     /* the element whose text is wanted */
	struct buf value;
	int seen;
	int is_error;
	struct xml_error error;
};

static int value_handler(struct xml_doc *d, const char *path,
			 const char *text, size_t len)
{
	struct value_state *st = d->arg;

	if (d->depth == 1 && !text) {
		st->is_error = strcmp(path, "Error") == 0;
		return st->is_error || strcmp(path, st->root) == 0 ? 0 : EINVAL;
	}
	if (st->is_error) {
		d->arg = &st->error;
		int err = error_handler(d, path, text, len);
		d->arg = st;
		return err;
	}
	if (!text || strcmp(path, st->path) != 0)
		return 0;
	st->seen = 1;
	buf_reset(&st->value);
	return buf_add(&st->value, text, len);
}

/* Parse a document whose one interesting value is at path. On 0, st->value
 * holds it; EREMOTEIO (st->error filled) for an <Error> body. */
static int value_parse(const char *data, size_t len, struct value_state *st)
{
	int err = doc_parse(data, len, value_handler, st);

	if (err)
		return err;
	if (st->is_error)
		return EREMOTEIO;
	return st->seen ? 0 : EINVAL;
}

int xml_parse_initiate(const char *data, size_t len, char **upload_id)
{
	struct value_state st = {.root = "InitiateMultipartUploadResult",
				 .path = "InitiateMultipartUploadResult/UploadId"};
	int err = value_parse(data, len, &st);

	*upload_id = NULL;
	if (err == EREMOTEIO)
		err = EINVAL;
	if (!err && st.value.len == 0)
		err = EINVAL;
	if (!err)
		err = dup_text(st.value.data, st.value.len, upload_id);
	buf_release(&st.value);
	return err;
}

static int etag_result(const char *data, size_t len, const char *root,
		       const char *path, char etag[STORE_ETAG_MAX],
		       struct xml_error *xerr)
{
	struct value_state st = {.root = root, .path = path};
	int err = value_parse(data, len, &st);

	if (err == EREMOTEIO && xerr)
		*xerr = st.error;
	if (!err)
		err = copy_etag(st.value.data ? st.value.data : "",
				st.value.len, etag);
	buf_release(&st.value);
	return err;
}

/* Ceph RGW answers a successful completion with an empty <ETag></ETag>:
 * that is a success with etag "" (the caller may HEAD the object). */
int xml_parse_complete(const char *data, size_t len,
		       char etag[STORE_ETAG_MAX], struct xml_error *err)
{
	struct value_state st = {.root = "CompleteMultipartUploadResult",
				 .path = "CompleteMultipartUploadResult/ETag"};
	int rc = value_parse(data, len, &st);

	if (rc == EREMOTEIO && err)
		*err = st.error;
	if (!rc && st.value.len == 0)
		etag[0] = '\0';
	else if (!rc)
		rc = copy_etag(st.value.data, st.value.len, etag);
	buf_release(&st.value);
	return rc;
}

int xml_parse_copy(const char *data, size_t len, char etag[STORE_ETAG_MAX],
		   struct xml_error *err)
{
	return etag_result(data, len, "CopyObjectResult",
			   "CopyObjectResult/ETag", etag, err);
}

int xml_parse_copy_part(const char *data, size_t len,
			char etag[STORE_ETAG_MAX], struct xml_error *err)
{
	return etag_result(data, len, "CopyPartResult", "CopyPartResult/ETag",
			   etag, err);
}

/* ---- <ListMultipartUploadsResult> -------------------------------------- */

#define MPU_ROOT "ListMultipartUploadsResult"
#define MPU_UPLOAD MPU_ROOT "/Upload"

struct uploads_state {
	struct xml_uploads_page *page;
	int url;         /* the document says EncodingType url */
	int keys_url;    /* the caller asked for it */
};

static int upload_field(struct xml_upload *u, const char *field,
			const char *text, size_t len)
{
	if (strcmp(field, "Key") == 0)
		return len ? dup_text(text, len, &u->key) : EINVAL;
	if (strcmp(field, "UploadId") == 0)
		return len ? dup_text(text, len, &u->upload_id) : EINVAL;
	if (strcmp(field, "Initiated") == 0)
		return xml_parse_time(text, &u->initiated);
	return 0;
}

static int uploads_top_field(struct uploads_state *st, const char *field,
			     const char *text, size_t len)
{
	struct xml_uploads_page *p = st->page;

	if (strcmp(field, "IsTruncated") == 0)
		return parse_bool(text, &p->truncated);
	if (strcmp(field, "NextKeyMarker") == 0)
		return dup_text(text, len, &p->next_key_marker);
	if (strcmp(field, "NextUploadIdMarker") == 0)
		return dup_text(text, len, &p->next_upload_id_marker);
	if (strcmp(field, "EncodingType") == 0)
		st->url = strcmp(text, "url") == 0;
	return 0;
}

static int uploads_handler(struct xml_doc *d, const char *path,
			   const char *text, size_t len)
{
	struct uploads_state *st = d->arg;
	struct xml_uploads_page *p = st->page;

	if (!text && d->depth == 1)
		return strcmp(path, MPU_ROOT) == 0 ? 0 : EINVAL;
	if (!text)
		return strcmp(path, MPU_UPLOAD) == 0
			       ? grow((void **)&p->uploads, &p->nuploads,
				      sizeof(*p->uploads))
			       : 0;
	if (d->depth == 3 &&
	    strncmp(path, MPU_UPLOAD "/", sizeof(MPU_UPLOAD)) == 0)
		return upload_field(&p->uploads[p->nuploads - 1],
				    path + sizeof(MPU_UPLOAD), text, len);
	if (strcmp(path, MPU_UPLOAD) == 0) {
		struct xml_upload *u = &p->uploads[p->nuploads - 1];
		return u->key && u->upload_id ? 0 : EINVAL;
	}
	if (d->depth == 2)
		return uploads_top_field(st, path + sizeof(MPU_ROOT), text, len);
	return 0;
}

static int uploads_finish(struct uploads_state *st)
{
	struct xml_uploads_page *p = st->page;
	int err = 0;

	for (size_t i = 0; (st->url || st->keys_url) && !err &&
			   i < p->nuploads; i++)
		err = url_decode(p->uploads[i].key);
	if (!err && st->url && p->next_key_marker)
		err = url_decode(p->next_key_marker);
	if (!err && p->truncated && (!p->next_key_marker ||
				     !*p->next_key_marker))
		err = EINVAL;
	if (!err && p->truncated && !p->next_upload_id_marker)
		p->next_upload_id_marker = strdup("");
	if (!err && p->truncated && !p->next_upload_id_marker)
		err = ENOMEM;
	return err;
}

int xml_parse_uploads(const char *data, size_t len, int keys_encoded,
		      struct xml_uploads_page *out)
{
	struct uploads_state st = {.page = out, .keys_url = keys_encoded};
	int err;

	memset(out, 0, sizeof(*out));
	err = doc_parse(data, len, uploads_handler, &st);
	if (!err)
		err = uploads_finish(&st);
	if (err)
		xml_uploads_page_release(out);
	return err;
}

void xml_uploads_page_release(struct xml_uploads_page *p)
{
	for (size_t i = 0; i < p->nuploads; i++) {
		free(p->uploads[i].key);
		free(p->uploads[i].upload_id);
	}
	free(p->uploads);
	free(p->next_key_marker);
	free(p->next_upload_id_marker);
	memset(p, 0, sizeof(*p));
}
