/*
 * mem: the in-memory store's objects, faults and counters (see mem.h);
 * listings are in mem_list.c, multipart uploads in mem_mpu.c.
 *
 * Invariant: objs holds nobjs pointers sorted by key (strcmp, which orders
 * bytes as unsigned, as S3 does), no key twice.
 */
#include "store/mem_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------ */

void mem_copy_str(char *out, size_t n, const char *s)
{
	snprintf(out, n, "%s", s ? s : "");
}

/* The ETag without its quotes: start and length. */
static const char *etag_bare(const char *e, size_t *len)
{
	size_t n = strlen(e);

	if (n >= 2 && e[0] == '"' && e[n - 1] == '"') {
		*len = n - 2;
		return e + 1;
	}
	*len = n;
	return e;
}

int mem_etag_equal(const char *a, const char *b)
{
	size_t na, nb;
	const char *pa = etag_bare(a, &na), *pb = etag_bare(b, &nb);

	return na == nb && memcmp(pa, pb, na) == 0;
}

struct mem_blob *mem_blob_new(const void *data, size_t len)
{
	struct mem_blob *b = malloc(sizeof(*b) + len);

	if (!b)
		return NULL;
	b->refs = 1;
	b->len = len;
	if (len && data)
		memcpy(b->data, data, len);
	return b;
}

struct mem_blob *mem_blob_ref(struct mem_blob *b)
{
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	return b;
}

void mem_blob_unref(struct mem_blob *b)
{
	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(b);
}

static void obj_free(struct mem_obj *o)
{
	if (!o)
		return;
	mem_blob_unref(o->blob);
	free(o->key);
	free(o);
}

/* ---- the sorted objects ------------------------------------------------- */

size_t mem_lower_bound(struct mem_store *m, const char *key)
{
	size_t lo = 0, hi = m->nobjs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(m->objs[mid]->key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct mem_obj *mem_find(struct mem_store *m, const char *key)
{
	size_t i = mem_lower_bound(m, key);

	return i < m->nobjs && strcmp(m->objs[i]->key, key) == 0 ? m->objs[i]
								 : NULL;
}

static int objs_make_room(struct mem_store *m)
{
	size_t cap = m->cap ? 2 * m->cap : 64;
	struct mem_obj **p;

	if (m->nobjs < m->cap)
		return 0;
	p = realloc(m->objs, cap * sizeof(*p));
	if (!p)
		return ENOMEM;
	m->objs = p;
	m->cap = cap;
	return 0;
}

/* Put o at key's place, replacing what is there. 0 or ENOMEM. */
static int objs_place(struct mem_store *m, struct mem_obj *o)
{
	size_t i = mem_lower_bound(m, o->key);

	if (i < m->nobjs && strcmp(m->objs[i]->key, o->key) == 0) {
		obj_free(m->objs[i]);
		m->objs[i] = o;
		return 0;
	}
	if (objs_make_room(m))
		return ENOMEM;
	memmove(m->objs + i + 1, m->objs + i, (m->nobjs - i) * sizeof(*m->objs));
	m->objs[i] = o;
	m->nobjs++;
	return 0;
}

int mem_insert(struct mem_store *m, const char *key, struct mem_blob *blob,
	       const char *etag, const struct store_put_opts *opts)
{
	struct mem_obj *o = calloc(1, sizeof(*o));

	if (!o || !(o->key = strdup(key))) {
		free(o);
		mem_blob_unref(blob);
		return ENOMEM;
	}
	o->blob = blob;
	o->mtime = time(NULL);
	mem_copy_str(o->etag, sizeof(o->etag), etag);
	mem_copy_str(o->content_type, sizeof(o->content_type),
		     opts && opts->content_type ? opts->content_type
						: "application/octet-stream");
	mem_copy_str(o->source_etag, sizeof(o->source_etag),
		     opts ? opts->source_etag : NULL);
	if (opts && opts->attrs)
		o->attrs = *opts->attrs;
	if (objs_place(m, o)) {
		obj_free(o);
		return ENOMEM;
	}
	return 0;
}

static void obj_info(const struct mem_obj *o, struct store_object *out)
{
	memset(out, 0, sizeof(*out));
	out->size = o->blob->len;
	out->mtime = o->mtime;
	memcpy(out->etag, o->etag, sizeof(out->etag));
	memcpy(out->content_type, o->content_type, sizeof(out->content_type));
	memcpy(out->source_etag, o->source_etag, sizeof(out->source_etag));
	out->attrs = o->attrs;
}

static void objs_remove_at(struct mem_store *m, size_t i)
{
	obj_free(m->objs[i]);
	memmove(m->objs + i, m->objs + i + 1,
		(m->nobjs - i - 1) * sizeof(*m->objs));
	m->nobjs--;
}

/* ---- faults ------------------------------------------------------------- */

/* Advance the faults matching op; the first due decides. Lock held. */
static void faults_apply(struct mem_store *m, enum mem_op op,
			 struct mem_call *c)
{
	int decided = 0;

	for (unsigned i = 0; i < MEM_FAULTS; i++) {
		struct mem_fault_slot *s = &m->faults[i];

		if (!s->armed || (s->f.op != op && s->f.op != MEM_ANY))
			continue;
		if (s->skip) {
			s->skip--;
			continue;
		}
		if (decided)
			continue;
		decided = 1;
		c->lose = s->f.lose_reply;
		c->err = s->f.err ? s->f.err : EIO;
		if (s->f.times != MEM_FOREVER && --s->left == 0)
			s->armed = 0;
	}
}

int mem_enter(struct mem_store *m, enum mem_op op, const char *key,
	      struct mem_call *c)
{
	unsigned long n;
	unsigned usec;
	mem_hook_fn hook;
	void *arg;

	memset(c, 0, sizeof(*c));
	pthread_mutex_lock(&m->lock);
	n = ++m->calls[op];
	usec = m->latency[op] + m->latency[MEM_ANY];
	hook = m->hook;
	arg = m->hook_arg;
	pthread_mutex_unlock(&m->lock);
	if (hook)
		hook(arg, op, key, n);
	if (usec)
		usleep(usec);
	pthread_mutex_lock(&m->lock);
	faults_apply(m, op, c);
	pthread_mutex_unlock(&m->lock);
	return c->err && !c->lose ? c->err : 0;
}

int mem_inject(struct mem_store *m, const struct mem_fault *f)
{
	int rc = ENOSPC;

	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < MEM_FAULTS && rc; i++) {
		struct mem_fault_slot *s = &m->faults[i];

		if (s->armed)
			continue;
		s->f = *f;
		s->armed = 1;
		s->skip = f->nth > 1 ? f->nth - 1 : 0;
		s->left = f->times ? f->times : 1;
		rc = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

void mem_clear_faults(struct mem_store *m)
{
	pthread_mutex_lock(&m->lock);
	memset(m->faults, 0, sizeof(m->faults));
	memset(m->latency, 0, sizeof(m->latency));
	pthread_mutex_unlock(&m->lock);
}

void mem_latency(struct mem_store *m, enum mem_op op, unsigned usec)
{
	pthread_mutex_lock(&m->lock);
	m->latency[op] = usec;
	pthread_mutex_unlock(&m->lock);
}

void mem_set_hook(struct mem_store *m, mem_hook_fn fn, void *arg)
{
	pthread_mutex_lock(&m->lock);
	m->hook = fn;
	m->hook_arg = arg;
	pthread_mutex_unlock(&m->lock);
}

void mem_set_min_part(struct mem_store *m, uint64_t bytes)
{
	pthread_mutex_lock(&m->lock);
	m->min_part = bytes;
	pthread_mutex_unlock(&m->lock);
}

/* ---- object operations -------------------------------------------------- */

static int mem_head(struct store *st, const char *key, struct store_object *out)
{
	struct mem_store *m = mem_of(st);
	struct store_object info;
	struct mem_call c;
	int err = mem_enter(m, MEM_HEAD, key, &c);

	if (err)
		return err;
	err = mem_peek(m, key, NULL, &info);
	err = mem_leave(&c, err);
	if (!err && out)
		*out = info;
	return err;
}

/* The object's bytes for a get: a reference to its blob and the range.
 * Lock held. */
static int get_locked(struct mem_store *m, const char *key, uint64_t *off,
		      uint64_t *len, const char *if_match,
		      struct store_object *info, struct mem_blob **blob)
{
	struct mem_obj *o = mem_find(m, key);
	uint64_t size;

	if (!o)
		return ENOENT;
	if (if_match && !mem_etag_equal(if_match, o->etag))
		return EAGAIN;
	size = o->blob->len;
	if (size && *off >= size)
		return ERANGE;
	if (*off > size)
		*off = size;
	if (!*len || *len > size - *off)
		*len = size - *off;
	obj_info(o, info);
	*blob = mem_blob_ref(o->blob);
	return 0;
}

/* Hand blob's bytes [off, off+len) to sink in pieces. 0 or ECANCELED. */
static int get_deliver(struct mem_store *m, const struct mem_blob *b,
		       uint64_t off, uint64_t len, store_sink_fn sink,
		       void *arg)
{
	int err = 0;

	while (!err && len) {
		size_t n = len < MEM_SINK_PIECE ? (size_t)len : MEM_SINK_PIECE;

		if (sink(arg, b->data + off, n) != 0)
			err = ECANCELED;
		pthread_mutex_lock(&m->lock);
		m->bytes_read += n;
		pthread_mutex_unlock(&m->lock);
		off += n;
		len -= n;
	}
	return err;
}

static int mem_get(struct store *st, const char *key, uint64_t off,
		   uint64_t len, const char *if_match, store_sink_fn sink,
		   void *arg, struct store_object *info)
{
	struct mem_store *m = mem_of(st);
	struct mem_blob *blob = NULL;
	struct store_object obj;
	struct mem_call c;
	int err = mem_enter(m, MEM_GET, key, &c);

	if (err)
		return err;
	pthread_mutex_lock(&m->lock);
	err = get_locked(m, key, &off, &len, if_match, &obj, &blob);
	pthread_mutex_unlock(&m->lock);
	if (!err && !c.lose)
		err = get_deliver(m, blob, off, len, sink, arg);
	mem_blob_unref(blob);
	err = mem_leave(&c, err);
	if (!err && info)
		*info = obj;
	return err;
}

/* Store an object as a PUT does; precondition checked. Counts nothing. */
static int put_object(struct mem_store *m, const char *key, const void *data,
		      size_t len, const struct store_put_opts *opts,
		      int check, char etag[STORE_ETAG_MAX])
{
	struct mem_blob *blob = mem_blob_new(data, len);
	const char *inm = check && opts ? opts->if_none_match : NULL;
	struct mem_obj *o;
	int err = blob ? store_md5_etag(data, len, etag) : ENOMEM;

	pthread_mutex_lock(&m->lock);
	o = err ? NULL : mem_find(m, key);
	if (o && inm && (strcmp(inm, "*") == 0 || mem_etag_equal(inm, o->etag)))
		err = EEXIST;
	if (!err) {
		err = mem_insert(m, key, blob, etag, opts);
		blob = NULL;
	}
	pthread_mutex_unlock(&m->lock);
	mem_blob_unref(blob);
	return err;
}

static int mem_put(struct store *st, const char *key, const void *data,
		   size_t len, const struct store_put_opts *opts,
		   char etag_out[STORE_ETAG_MAX])
{
	struct mem_store *m = mem_of(st);
	char etag[STORE_ETAG_MAX];
	struct mem_call c;
	int err = mem_enter(m, MEM_PUT, key, &c);

	if (err)
		return err;
	err = put_object(m, key, data, len, opts, 1, etag);
	if (!err) {
		pthread_mutex_lock(&m->lock);
		m->bytes_written += len;
		pthread_mutex_unlock(&m->lock);
	}
	err = mem_leave(&c, err);
	if (!err && etag_out)
		memcpy(etag_out, etag, STORE_ETAG_MAX);
	return err;
}

static int mem_del(struct store *st, const char *key)
{
	struct mem_store *m = mem_of(st);
	struct mem_call c;
	int err = mem_enter(m, MEM_DELETE, key, &c);

	if (err)
		return err;
	(void)mem_remove(m, key);
	return mem_leave(&c, 0);
}

/* Like S3: the copy gets its own (single-part) ETag; replace NULL keeps
 * the source's metadata. No size limit, so src_size is not needed. */
static int mem_copy(struct store *st, const char *src_key, const char *dst_key,
		    const struct store_put_opts *replace, uint64_t src_size,
		    char etag_out[STORE_ETAG_MAX])
{
	struct mem_store *m = mem_of(st);
	struct store_put_opts opts = {0};
	char etag[STORE_ETAG_MAX], ct[STORE_META_MAX], se[STORE_ETAG_MAX];
	struct store_attrs attrs;
	struct mem_call c;
	struct mem_obj *o;
	int err = mem_enter(m, MEM_COPY, dst_key, &c);

	if (err)
		return err;
	pthread_mutex_lock(&m->lock);
	o = mem_find(m, src_key);
	err = o ? store_md5_etag(o->blob->data, o->blob->len, etag) : ENOENT;
	if (!err && replace) {
		opts = *replace;
		opts.if_none_match = NULL;
	} else if (!err) {
		memcpy(ct, o->content_type, sizeof(ct));
		memcpy(se, o->source_etag, sizeof(se));
		attrs = o->attrs;
		opts.content_type = ct;
		opts.source_etag = se[0] ? se : NULL;
		opts.attrs = &attrs;
	}
	if (!err)
		err = mem_insert(m, dst_key, mem_blob_ref(o->blob), etag,
				 &opts);
	pthread_mutex_unlock(&m->lock);
	if (!err && etag_out)
		memcpy(etag_out, etag, STORE_ETAG_MAX);
	return mem_leave(&c, err);
}

static const struct store_ops mem_ops = {
	.head = mem_head,
	.get = mem_get,
	.put = mem_put,
	.del = mem_del,
	.copy = mem_copy,
	.list = mem_list,
	.mpu_create = mem_mpu_create,
	.mpu_part = mem_mpu_part,
	.mpu_complete = mem_mpu_complete,
	.mpu_abort = mem_mpu_abort,
	.mpu_list = mem_mpu_list,
};

/* ---- lifecycle ---------------------------------------------------------- */

struct mem_store *mem_create(void)
{
	struct mem_store *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	if (pthread_mutex_init(&m->lock, NULL)) {
		free(m);
		errno = ENOMEM;
		return NULL;
	}
	m->store.ops = &mem_ops;
	m->min_part = MEM_MIN_PART;
	return m;
}

void mem_destroy(struct mem_store *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nobjs; i++)
		obj_free(m->objs[i]);
	free(m->objs);
	while (m->uploads) {
		struct mem_upload *u = m->uploads;

		m->uploads = u->next;
		mem_upload_free(u);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

struct store *mem_store(struct mem_store *m)
{
	return &m->store;
}

struct mem_store *mem_of(struct store *st)
{
	return (struct mem_store *)st;
}

/* ---- behind the caller's back, and observation -------------------------- */

int mem_set(struct mem_store *m, const char *key, const void *data,
	    size_t len, const struct store_put_opts *opts,
	    char etag_out[STORE_ETAG_MAX])
{
	char etag[STORE_ETAG_MAX];
	int err = put_object(m, key, data, len, opts, 0, etag);

	if (!err && etag_out)
		memcpy(etag_out, etag, STORE_ETAG_MAX);
	return err;
}

int mem_remove(struct mem_store *m, const char *key)
{
	size_t i;
	int err = ENOENT;

	pthread_mutex_lock(&m->lock);
	i = mem_lower_bound(m, key);
	if (i < m->nobjs && strcmp(m->objs[i]->key, key) == 0) {
		objs_remove_at(m, i);
		err = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return err;
}

int mem_set_mtime(struct mem_store *m, const char *key, time_t mtime)
{
	struct mem_obj *o;

	pthread_mutex_lock(&m->lock);
	o = mem_find(m, key);
	if (o)
		o->mtime = mtime;
	pthread_mutex_unlock(&m->lock);
	return o ? 0 : ENOENT;
}

int mem_peek(struct mem_store *m, const char *key, struct buf *data,
	     struct store_object *info)
{
	struct mem_blob *blob = NULL;
	struct mem_obj *o;
	int err = 0;

	pthread_mutex_lock(&m->lock);
	o = mem_find(m, key);
	if (o && info)
		obj_info(o, info);
	if (o)
		blob = mem_blob_ref(o->blob);
	pthread_mutex_unlock(&m->lock);
	if (!blob)
		return ENOENT;
	if (data)
		err = buf_add(data, blob->data, blob->len);
	mem_blob_unref(blob);
	return err;
}

void mem_stats(struct mem_store *m, struct mem_stats *out)
{
	pthread_mutex_lock(&m->lock);
	memcpy(out->calls, m->calls, sizeof(out->calls));
	out->bytes_read = m->bytes_read;
	out->bytes_written = m->bytes_written;
	out->objects = m->nobjs;
	out->uploads = 0;
	for (const struct mem_upload *u = m->uploads; u; u = u->next)
		out->uploads++;
	pthread_mutex_unlock(&m->lock);
}

static struct mem_stats snapshot(struct mem_store *m)
{
	struct mem_stats s;

	mem_stats(m, &s);
	return s;
}

unsigned long mem_calls(struct mem_store *m, enum mem_op op)
{
	struct mem_stats s = snapshot(m);
	unsigned long n = 0;

	for (unsigned i = 0; i < MEM_OPS; i++)
		if (op == MEM_ANY || op == (enum mem_op)i)
			n += s.calls[i];
	return n;
}

uint64_t mem_bytes_read(struct mem_store *m)
{
	return snapshot(m).bytes_read;
}

uint64_t mem_bytes_written(struct mem_store *m)
{
	return snapshot(m).bytes_written;
}

size_t mem_object_count(struct mem_store *m)
{
	return snapshot(m).objects;
}

size_t mem_upload_count(struct mem_store *m)
{
	return snapshot(m).uploads;
}

void mem_reset_counters(struct mem_store *m)
{
	pthread_mutex_lock(&m->lock);
	memset(m->calls, 0, sizeof(m->calls));
	m->bytes_read = m->bytes_written = 0;
	pthread_mutex_unlock(&m->lock);
}

