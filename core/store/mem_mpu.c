/*
 * mem_mpu: multipart uploads of the in-memory store (see mem.h).
 *
 * An upload keeps its parts sorted by number; a part sent again replaces
 * the one before. Completion checks the list the caller gives as S3 does
 * and only then builds the object; on any error the upload stays.
 */
#include "store/mem_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

#define MEM_PARTS_MAX 10000

void mem_upload_free(struct mem_upload *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < u->nparts; i++)
		mem_blob_unref(u->parts[i].blob);
	free(u->parts);
	free(u->id);
	free(u->key);
	free(u);
}

/* The upload with this id for this key (S3 knows an id only with its
 * key), and the link pointing at it. Lock held. */
static struct mem_upload *upload_find(struct mem_store *m, const char *key,
				      const char *id,
				      struct mem_upload ***link)
{
	struct mem_upload **p = &m->uploads;

	for (; *p; p = &(*p)->next) {
		if (strcmp((*p)->id, id) == 0 && strcmp((*p)->key, key) == 0) {
			if (link)
				*link = p;
			return *p;
		}
	}
	return NULL;
}

static struct mem_upload *upload_new(struct mem_store *m, const char *key,
				     const struct store_put_opts *opts)
{
	struct mem_upload *u = calloc(1, sizeof(*u));
	struct buf id = BUF_INIT;

	if (!u)
		return NULL;
	u->key = strdup(key);
	u->initiated = time(NULL);
	mem_copy_str(u->content_type, sizeof(u->content_type),
		     opts && opts->content_type ? opts->content_type
						: "application/octet-stream");
	mem_copy_str(u->source_etag, sizeof(u->source_etag),
		     opts ? opts->source_etag : NULL);
	if (opts && opts->attrs)
		u->attrs = *opts->attrs;
	pthread_mutex_lock(&m->lock);
	u->seq = ++m->next_upload;
	pthread_mutex_unlock(&m->lock);
	if (buf_addf(&id, "mem-upload-%lu", u->seq) == 0)
		u->id = buf_detach(&id, NULL);
	buf_release(&id);
	if (!u->key || !u->id) {
		mem_upload_free(u);
		return NULL;
	}
	return u;
}

/* Append u to the uploads. */
static void upload_link(struct mem_store *m, struct mem_upload *u)
{
	struct mem_upload **p;

	pthread_mutex_lock(&m->lock);
	for (p = &m->uploads; *p; p = &(*p)->next)
		;
	*p = u;
	pthread_mutex_unlock(&m->lock);
}

int mem_mpu_create(struct store *st, const char *key,
		   const struct store_put_opts *opts, char **upload_id)
{
	struct mem_store *m = mem_of(st);
	struct mem_upload *u;
	struct mem_call c;
	char *id = NULL;
	int err;

	*upload_id = NULL;
	err = mem_enter(m, MEM_MPU_CREATE, key, &c);
	if (err)
		return err;
	u = upload_new(m, key, opts);
	if (u && !c.lose)
		id = strdup(u->id);
	if (!u || (!c.lose && !id)) {
		mem_upload_free(u);
		return ENOMEM;
	}
	upload_link(m, u);
	err = mem_leave(&c, 0);
	if (err)
		free(id);
	else
		*upload_id = id;
	return err;
}

/* Put part p (its blob taken over) in u, replacing one of that number.
 * Lock held. 0 or ENOMEM (the blob is released). */
static int part_place(struct mem_upload *u, struct mem_part *p)
{
	size_t i = 0;

	while (i < u->nparts && u->parts[i].number < p->number)
		i++;
	if (i < u->nparts && u->parts[i].number == p->number) {
		mem_blob_unref(u->parts[i].blob);
		u->parts[i] = *p;
		return 0;
	}
	if (u->nparts == u->cap) {
		size_t cap = u->cap ? 2 * u->cap : 8;
		struct mem_part *v = realloc(u->parts, cap * sizeof(*v));

		if (!v) {
			mem_blob_unref(p->blob);
			return ENOMEM;
		}
		u->parts = v;
		u->cap = cap;
	}
	memmove(u->parts + i + 1, u->parts + i,
		(u->nparts - i) * sizeof(*u->parts));
	u->parts[i] = *p;
	u->nparts++;
	return 0;
}

static int part_store(struct mem_store *m, const char *key, const char *id,
		      struct mem_part *p)
{
	struct mem_upload *u;
	int err;

	pthread_mutex_lock(&m->lock);
	u = upload_find(m, key, id, NULL);
	if (u) {
		m->bytes_written += p->blob->len;
		err = part_place(u, p);
	} else {
		mem_blob_unref(p->blob);
		err = ENOENT;
	}
	pthread_mutex_unlock(&m->lock);
	return err;
}

int mem_mpu_part(struct store *st, const char *key, const char *upload_id,
		 unsigned part_number, const void *data, size_t len,
		 char etag_out[STORE_ETAG_MAX])
{
	struct mem_store *m = mem_of(st);
	struct mem_part p = {.number = part_number};
	struct mem_call c;
	int err = mem_enter(m, MEM_MPU_PART, key, &c);

	if (err)
		return err;
	if (part_number < 1 || part_number > MEM_PARTS_MAX) {
		log_error("mem: MPU_PART %s: part number %u is out of range",
			  key, part_number);
		return mem_leave(&c, EIO);
	}
	p.blob = mem_blob_new(data, len);
	err = p.blob ? store_md5_etag(data, len, p.etag) : ENOMEM;
	if (err)
		mem_blob_unref(p.blob);
	else
		err = part_store(m, key, upload_id, &p);
	err = mem_leave(&c, err);
	if (!err && etag_out)
		memcpy(etag_out, p.etag, STORE_ETAG_MAX);
	return err;
}

/* The part of u numbered n, or NULL. Lock held. */
static const struct mem_part *part_find(const struct mem_upload *u,
					unsigned n)
{
	for (size_t i = 0; i < u->nparts; i++)
		if (u->parts[i].number == n)
			return &u->parts[i];
	return NULL;
}

/* Check the caller's list against u as S3 does, and sum the sizes.
 * Lock held. 0 or EIO (logged). */
static int complete_check(const struct mem_store *m,
			  const struct mem_upload *u,
			  const struct store_part *parts, size_t nparts,
			  uint64_t *size)
{
	const char *why = nparts ? NULL : "no part (MalformedXML)";

	*size = 0;
	for (size_t i = 0; !why && i < nparts; i++) {
		const struct mem_part *p = part_find(u, parts[i].number);

		if (i && parts[i].number <= parts[i - 1].number)
			why = "parts out of order (InvalidPartOrder)";
		else if (!p || !mem_etag_equal(p->etag, parts[i].etag))
			why = "a part missing or of another ETag (InvalidPart)";
		else if (i + 1 < nparts && p->blob->len < m->min_part)
			why = "a part too small (EntityTooSmall)";
		else
			*size += p->blob->len;
	}
	if (why)
		log_error("mem: MPU_COMPLETE %s: %s", u->key, why);
	return why ? EIO : 0;
}

/* The object u's listed parts make. Lock held. NULL on ENOMEM. */
static struct mem_blob *complete_join(const struct mem_upload *u,
				      const struct store_part *parts,
				      size_t nparts, uint64_t size)
{
	struct mem_blob *big = size < SIZE_MAX / 2
				       ? mem_blob_new(NULL, (size_t)size) : NULL;
	size_t off = 0;

	if (!big)
		return NULL;
	for (size_t i = 0; i < nparts; i++) {
		const struct mem_part *p = part_find(u, parts[i].number);

		memcpy(big->data + off, p->blob->data, p->blob->len);
		off += p->blob->len;
	}
	return big;
}

/* Build the object and drop the upload. Lock held. */
static int complete_locked(struct mem_store *m, const char *key,
			   const char *id, const struct store_part *parts,
			   size_t nparts, char etag[STORE_ETAG_MAX])
{
	struct mem_upload **link, *u = upload_find(m, key, id, &link);
	struct store_put_opts opts = {0};
	struct mem_blob *blob;
	uint64_t size;
	int err = u ? complete_check(m, u, parts, nparts, &size) : ENOENT;

	if (!err)
		err = store_mpu_etag(parts, nparts, etag) ? EIO : 0;
	if (err)
		return err;
	blob = complete_join(u, parts, nparts, size);
	opts.content_type = u->content_type;
	opts.source_etag = u->source_etag[0] ? u->source_etag : NULL;
	opts.attrs = &u->attrs;
	err = blob ? mem_insert(m, key, blob, etag, &opts) : ENOMEM;
	if (!err) {
		*link = u->next;
		mem_upload_free(u);
	}
	return err;
}

int mem_mpu_complete(struct store *st, const char *key,
		     const char *upload_id, const struct store_part *parts,
		     size_t nparts, char etag_out[STORE_ETAG_MAX])
{
	struct mem_store *m = mem_of(st);
	char etag[STORE_ETAG_MAX];
	struct mem_call c;
	int err = mem_enter(m, MEM_MPU_COMPLETE, key, &c);

	if (err)
		return err;
	pthread_mutex_lock(&m->lock);
	err = complete_locked(m, key, upload_id, parts, nparts, etag);
	pthread_mutex_unlock(&m->lock);
	err = mem_leave(&c, err);
	if (!err && etag_out)
		memcpy(etag_out, etag, STORE_ETAG_MAX);
	return err;
}

int mem_mpu_abort(struct store *st, const char *key, const char *upload_id)
{
	struct mem_store *m = mem_of(st);
	struct mem_upload **link, *u;
	struct mem_call c;
	int err = mem_enter(m, MEM_MPU_ABORT, key, &c);

	if (err)
		return err;
	pthread_mutex_lock(&m->lock);
	u = upload_find(m, key, upload_id, &link);
	if (u)
		*link = u->next;
	pthread_mutex_unlock(&m->lock);
	mem_upload_free(u);
	return mem_leave(&c, u ? 0 : ENOENT);
}

/* What mpu_list reports of one upload, copied out of the lock. */
struct mpu_row {
	char *key;
	char *id;
	unsigned long seq;
	time_t initiated;
};

static int row_cmp(const void *a, const void *b)
{
	const struct mpu_row *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Copy the uploads under prefix into rows. Lock held. 0 or ENOMEM. */
static int rows_collect(struct mem_store *m, const char *prefix,
			struct mpu_row **rows, size_t *n)
{
	size_t plen = strlen(prefix), cap = 0;

	*rows = NULL;
	*n = 0;
	for (const struct mem_upload *u = m->uploads; u; u = u->next, cap++)
		;
	*rows = calloc(cap ? cap : 1, sizeof(**rows));
	if (!*rows)
		return ENOMEM;
	for (const struct mem_upload *u = m->uploads; u; u = u->next) {
		struct mpu_row *r = &(*rows)[*n];

		if (strncmp(u->key, prefix, plen) != 0)
			continue;
		r->key = strdup(u->key);
		r->id = strdup(u->id);
		r->seq = u->seq;
		r->initiated = u->initiated;
		++*n;
		if (!r->key || !r->id)
			return ENOMEM;
	}
	return 0;
}

int mem_mpu_list(struct store *st, const char *prefix, store_mpu_fn fn,
		 void *arg)
{
	struct mem_store *m = mem_of(st);
	struct mpu_row *rows;
	struct mem_call c;
	size_t n;
	int err = mem_enter(m, MEM_MPU_LIST, prefix, &c);

	if (err)
		return err;
	pthread_mutex_lock(&m->lock);
	err = rows_collect(m, prefix ? prefix : "", &rows, &n);
	pthread_mutex_unlock(&m->lock);
	if (!err)
		qsort(rows, n, sizeof(*rows), row_cmp);
	err = mem_leave(&c, err);
	for (size_t i = 0; i < n; i++) {
		if (!err)
			fn(arg, rows[i].key, rows[i].id, rows[i].initiated);
		free(rows[i].key);
		free(rows[i].id);
	}
	free(rows);
	return err;
}
