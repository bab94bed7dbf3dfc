/*
 * ns_file: open files of the namespace (see ns.h).
 *
 * Files open for writing in uploads/ are registered in ns->writers by key,
 * so that stat and listings see their size before they are uploaded. Other
 * files are either read through a reader, or are blobs whose whole content
 * is made at open (thumbnails, links, the gallery, the metrics).
 */
#include "ns/ns_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"

/* A new file of kind (with its key, or NULL), listed in ns->files only
 * once complete: others walk that list reading kind and key. */
static struct ns_file *file_new(struct ns *ns, enum ns_file_kind kind,
				const char *key)
{
	struct ns_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	if (key && !(f->key = strdup(key))) {
		free(f);
		return NULL;
	}
	if (pthread_mutex_init(&f->lock, NULL)) {
		free(f->key);
		free(f);
		return NULL;
	}
	f->ns = ns;
	f->kind = kind;
	f->refs = 1;
	pthread_mutex_lock(&ns->lock);
	f->next = ns->files;
	if (f->next)
		f->next->prev = f;
	ns->files = f;
	pthread_mutex_unlock(&ns->lock);
	return f;
}

/* Drop one reference; the last one unlinks and frees f. */
void ns_file_unref(struct ns_file *f)
{
	struct ns *ns = f->ns;
	int last;

	pthread_mutex_lock(&ns->lock);
	last = --f->refs == 0;
	if (last && f->prev)
		f->prev->next = f->next;
	else if (last)
		ns->files = f->next;
	if (last && f->next)
		f->next->prev = f->prev;
	pthread_mutex_unlock(&ns->lock);
	if (!last)
		return;
	if (f->writer)
		ns_file_unref(f->writer);
	reader_destroy(f->reader);
	upload_destroy(f->upload);
	buf_release(&f->blob);
	free(f->key);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* Make f the registered writer of its key (the latest open wins). */
static void register_writer(struct ns *ns, struct ns_file *f)
{
	pthread_mutex_lock(&ns->lock);
	f->registered = hmap_put(ns->writers, f->key, f, NULL) == 0;
	pthread_mutex_unlock(&ns->lock);
}

/* The registered writer of key with a reference taken, or NULL. The
 * caller drops it with ns_file_unref(). */
static struct ns_file *borrow_writer(struct ns *ns, const char *key)
{
	struct ns_file *f;

	pthread_mutex_lock(&ns->lock);
	f = hmap_get(ns->writers, key);
	if (f)
		f->refs++;
	pthread_mutex_unlock(&ns->lock);
	return f;
}

static void unregister_writer(struct ns *ns, struct ns_file *f)
{
	pthread_mutex_lock(&ns->lock);
	if (f->registered && hmap_get(ns->writers, f->key) == f)
		hmap_remove(ns->writers, f->key);
	pthread_mutex_unlock(&ns->lock);
}

static void forget_seen(struct ns *ns, const char *key)
{
	char *old;

	pthread_mutex_lock(&ns->lock);
	old = ns->seen ? hmap_remove(ns->seen, key) : NULL;
	pthread_mutex_unlock(&ns->lock);
	free(old);
}

static int open_writer(struct ns *ns, const char *key, int existed,
		       uint64_t size, const struct store_attrs *posix,
		       struct ns_file **out)
{
	struct ns_file *f = file_new(ns, NF_WRITE, key);

	if (!f)
		return ENOMEM;
	f->existed = existed;
	if (posix)
		f->posix = *posix;
	if (f->key)
		f->upload = upload_create(ns->store, ns->metrics, &ns->upconf, key,
					  existed && size, size);
	if (!f->key || !f->upload) {
		int err = errno ? errno : ENOMEM;

		ns_file_unref(f);
		return err;
	}
	f->size = upload_size(f->upload);
	forget_seen(ns, key); /* the kernel's pages may now hold other bytes */
	register_writer(ns, f);
	*out = f;
	return 0;
}

/* Record that the kernel may now cache pages of key at etag. 1 when they
 * are of the same version as the pages it may hold already. */
static int note_seen(struct ns *ns, const char *key, const char *etag)
{
	char *copy, *old = NULL;
	int same;

	if (!etag || !etag[0])
		return 0;
	pthread_mutex_lock(&ns->lock);
	old = ns->seen ? hmap_get(ns->seen, key) : NULL;
	same = old && !strcmp(old, etag);
	if (!same && ns->seen && hmap_count(ns->seen) >= NS_SEEN_MAX) {
		hmap_destroy(ns->seen, free); /* forget all: pages get dropped */
		ns->seen = hmap_create();
	}
	copy = same || !ns->seen ? NULL : strdup(etag);
	old = NULL;
	if (copy && hmap_put(ns->seen, key, copy, (void **)&old))
		free(copy);
	pthread_mutex_unlock(&ns->lock);
	free(old);
	return same;
}

static int open_reader(struct ns *ns, const char *key,
		       const struct meta_attr *a, struct ns_file **out)
{
	struct ns_file *f = file_new(ns, NF_READ, key);

	if (!f)
		return ENOMEM;
	f->open_size = a->size;
	f->mtime = a->mtime;
	if (a->posix_known)
		f->posix = a->posix;
	f->writer = borrow_writer(ns, key); /* read what it has written */
	if (f->key && f->writer) {
		*out = f;
		return 0;
	}
	if (f->key && a->size)
		f->reader = reader_create(ns->store, ns->data, ns->budget, key,
					  a->size, a->etag);
	if (!f->key || (a->size && !f->reader)) {
		ns_file_unref(f);
		return ENOMEM;
	}
	f->keep_cache = note_seen(ns, key, a->etag);
	*out = f;
	return 0;
}

/* The attributes and key of the file (not folder) uploads/rel. */
static int upload_file(struct ns *ns, const char *rel, struct meta_attr *a,
		       struct buf *key, int posix)
{
	int rc = posix ? ns_upload_attr_posix(ns, rel, a)
		       : ns_upload_attr(ns, rel, a);

	if (!rc && a->is_dir)
		rc = EISDIR;
	if (!rc)
		rc = ns_upload_key(ns, rel, key);
	return rc;
}

static int open_upload(struct ns *ns, const char *rel, int flags,
		       struct ns_file **out)
{
	struct buf key = BUF_INIT;
	struct meta_attr a;
	int wr = (flags & O_ACCMODE) != O_RDONLY;
	/* a rewrite keeps the mode and owner: learn them */
	int rc = upload_file(ns, rel, &a, &key, wr);

	if (!rc && !a.posix_known && a.size < NS_LINK_MAX)
		rc = ns_upload_attr_posix(ns, rel, &a); /* a node is small */
	if (!rc && (a.is_dir ||
		    (a.posix_known && ns_stored_type(&a.posix) != S_IFREG)))
		rc = ESTALE; /* a listing showed a link as a file: the kernel
				looks the name up again */
	if (!rc && wr)
		rc = open_writer(ns, key.data, 1,
				 (flags & O_TRUNC) ? 0 : a.size,
				 a.posix_known ? &a.posix : NULL, out);
	else if (!rc)
		rc = open_reader(ns, key.data, &a, out);
	if (!rc && (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY)
		(*out)->size_changed = 1;
	buf_release(&key);
	return rc;
}

/* A file whose content is made now, by fn. Its size was known at stat
 * (links: the URL's length is fixed) unless sized_at_open. */
static int open_blob(struct ns *ns,
		     int (*fn)(struct ns *, const struct path_info *,
			       struct buf *),
		     const struct path_info *pi, int sized_at_open,
		     struct ns_file **out)
{
	struct ns_file *f = file_new(ns, NF_BLOB, NULL);
	int rc;

	if (!f)
		return ENOMEM;
	rc = fn(ns, pi, &f->blob);
	if (rc) {
		ns_file_unref(f);
		return rc;
	}
	f->size_changed = sized_at_open;
	*out = f;
	return 0;
}

/* The size index and the image (a file, not a folder) behind the
 * thumbnail path pi. */
static int thumb_target(struct ns *ns, const struct path_info *pi,
			unsigned *idx, struct buf *src_key,
			struct meta_attr *src)
{
	int rc = ns_thumb_idx(ns, pi->thumb_size, idx);

	if (!rc)
		rc = ns_thumb_source(ns, pi->rel, src_key, src);
	return !rc && src->is_dir ? EISDIR : rc;
}

static int make_thumb(struct ns *ns, const struct path_info *pi,
		      struct buf *out)
{
	struct buf src_key = BUF_INIT;
	struct meta_attr src;
	unsigned idx;
	int rc = thumb_target(ns, pi, &idx, &src_key, &src);

	if (!rc) {
		ns_thumb_ahead(ns, idx, src_key.data);
		rc = thumbs_get_n(ns->thumbs, idx, src_key.data, src.etag, out);
	}
	if (rc == ENOENT && src_key.len) {
		/* the source was replaced or removed since its ETag was
		 * cached: ask S3 again and make the thumbnail of what is
		 * there now (EIO if that changes under us again) */
		ns_forget_source(ns, src_key.data);
		buf_reset(&src_key);
		rc = thumb_target(ns, pi, &idx, &src_key, &src);
		if (!rc)
			rc = thumbs_get_n(ns->thumbs, idx, src_key.data,
					  src.etag, out);
		if (rc == ENOENT && src_key.len)
			rc = EIO;
	}
	buf_release(&src_key);
	return rc;
}

static int make_thumb_link(struct ns *ns, const struct path_info *pi,
			   struct buf *out)
{
	struct buf src_key = BUF_INIT;
	struct meta_attr src;
	unsigned idx;
	int rc = thumb_target(ns, pi, &idx, &src_key, &src);

	if (!rc)
		rc = links_thumb_n(ns->links, idx, src_key.data, src.etag,
				   time(NULL), out);
	buf_release(&src_key);
	return rc;
}

static int make_upload_link(struct ns *ns, const struct path_info *pi,
			    struct buf *out)
{
	const char *rel = pi->rel;
	struct buf key = BUF_INIT;
	struct meta_attr a;
	int rc = upload_file(ns, rel, &a, &key, 0);

	if (!rc)
		rc = links_object(ns->links, key.data, time(NULL), out);
	buf_release(&key);
	return rc;
}

static int make_index(struct ns *ns, const struct path_info *pi,
		      struct buf *out)
{
	return ns_gallery_make(ns, pi->rel, pi->area == PA_LINKS_INDEX, out);
}

static int make_uplink(struct ns *ns, const struct path_info *pi,
		       struct buf *out)
{
	return ns_uplink_make(ns, pi->rel, out);
}

static int make_metrics(struct ns *ns, const struct path_info *pi,
			struct buf *out)
{
	int rc = metrics_render(ns->metrics, out);

	pthread_mutex_lock(&ns->lock);
	if (!rc)
		ns->metrics_size = out->len;
	pthread_mutex_unlock(&ns->lock);
	return rc;
}

int ns_open(struct ns *ns, const char *path, int flags, struct ns_file **out)
{
	struct path_info pi;
	int rc = path_parse(path, strlen(ns->cfg->fs.uploads_prefix), &pi);

	if (rc)
		return rc;
	if (pi.area != PA_UPLOADS && (flags & O_ACCMODE) != O_RDONLY)
		return EROFS;
	if (!*pi.rel && pi.area != PA_METRICS && pi.area != PA_LINKS_INDEX)
		return EISDIR;
	switch (pi.area) {
	case PA_UPLOADS:
		return open_upload(ns, pi.rel, flags, out);
	case PA_THUMBS:
		return open_blob(ns, make_thumb, &pi, 1, out);
	case PA_LINKS_UPLOADS:
		metrics_add(ns->metrics, MC_LINK_READS, 1);
		return open_blob(ns, make_upload_link, &pi, 0, out);
	case PA_LINKS_THUMBS:
		metrics_add(ns->metrics, MC_LINK_READS, 1);
		return open_blob(ns, make_thumb_link, &pi, 0, out);
	case PA_LINKS_INDEX:
	case PA_LINKS_GALLERY:
		return open_blob(ns, make_index, &pi, 1, out);
	case PA_LINKS_UPLOAD:
		metrics_add(ns->metrics, MC_LINK_READS, 1);
		return open_blob(ns, make_uplink, &pi, 1, out);
	case PA_METRICS:
		return open_blob(ns, make_metrics, &pi, 1, out);
	default:
		return EISDIR;
	}
}

int ns_create(struct ns *ns, const char *path, int flags,
	      const struct store_attrs *init, struct ns_file **out)
{
	struct path_info pi;
	struct buf key = BUF_INIT;
	struct meta_attr a;
	int rc = path_parse(path, strlen(ns->cfg->fs.uploads_prefix), &pi);

	if (rc)
		return rc == ENOENT ? EROFS : rc; /* a new name outside uploads/ */
	if (pi.area != PA_UPLOADS)
		return EROFS;
	if (!*pi.rel)
		return EISDIR;
	if (!path_utf8_ok(pi.rel))
		return EILSEQ;
	rc = ns_upload_attr(ns, pi.rel, &a);
	if (rc == 0 && (flags & O_EXCL))
		return EEXIST;
	if (rc == 0) /* O_CREAT of an existing name truncates only with O_TRUNC */
		return open_upload(ns, pi.rel, flags, out);
	if (rc != ENOENT)
		return rc;
	rc = ns_upload_key(ns, pi.rel, &key);
	if (!rc)
		rc = open_writer(ns, key.data, 0, 0, init, out);
	buf_release(&key);
	return rc;
}

int ns_read(struct ns_file *f, void *buf, size_t len, uint64_t off,
	    size_t *got)
{
	int rc = 0;

	*got = 0;
	pthread_mutex_lock(&f->lock);
	if (f->kind == NF_WRITE) {
		rc = upload_read(f->upload, buf, len, off, got);
	} else if (f->kind == NF_BLOB) {
		if (off < f->blob.len) {
			*got = f->blob.len - off < len ? f->blob.len - off : len;
			memcpy(buf, f->blob.data + off, *got);
		}
	}
	pthread_mutex_unlock(&f->lock);
	if (f->kind == NF_READ && f->writer) {
		pthread_mutex_lock(&f->writer->lock);
		rc = upload_read(f->writer->upload, buf, len, off, got);
		pthread_mutex_unlock(&f->writer->lock);
	} else if (f->kind == NF_READ && f->reader) { /* thread-safe alone */
		rc = reader_read(f->reader, buf, len, off, got);
	}
	return rc;
}

int ns_write(struct ns_file *f, const void *buf, size_t len, uint64_t off)
{
	int rc;

	if (f->kind != NF_WRITE)
		return EBADF;
	pthread_mutex_lock(&f->lock);
	f->mtime_set = 0; /* a write makes the mtime the time of its commit */
	rc = upload_write(f->upload, buf, len, off);
	__atomic_store_n(&f->size, upload_size(f->upload), __ATOMIC_RELAXED);
	pthread_mutex_unlock(&f->lock);
	return rc;
}

/* Hand the bytes just uploaded to the thumbnail service, so that the
 * thumbnails are made in the background without reading them back. */
static void eager_thumbs(struct ns_file *f, uint64_t size, const char *etag)
{
	struct ns *ns = f->ns;
	const char *slash = strrchr(f->key, '/');
	struct thumbs_src *src;

	if (!ns->cfg->thumb.eager || !thumbs_is_image(slash ? slash + 1 : f->key))
		return;
	src = thumbs_src_new(ns->thumbs, size);
	if (!src)
		return; /* too much held already: made on first read */
	if (upload_content(f->upload, thumbs_src_add, src)) {
		thumbs_src_free(src);
		return;
	}
	thumbs_eager(ns->thumbs, f->key, etag, src);
}

/* The attributes a commit stores: f's, with the mtime now unless set
 * after the last write. Locks held: f->lock. */
static void commit_attrs(struct ns_file *f, struct store_attrs *out)
{
	struct timespec now;

	pthread_mutex_lock(&f->ns->lock);
	*out = f->posix;
	pthread_mutex_unlock(&f->ns->lock);
	if (!f->mtime_set) {
		clock_gettime(CLOCK_REALTIME, &now);
		out->mtime_sec = now.tv_sec;
		out->mtime_nsec = now.tv_nsec;
		out->have |= STORE_ATTR_MTIME;
	}
}

int ns_flush(struct ns_file *f)
{
	char etag[STORE_ETAG_MAX] = "";
	struct store_attrs posix;
	uint64_t size;
	int rc = 0;

	if (f->kind != NF_WRITE)
		return 0;
	pthread_mutex_lock(&f->lock);
	if (!f->unlinked && upload_dirty(f->upload)) {
		size = upload_size(f->upload);
		commit_attrs(f, &posix);
		upload_set_attrs(f->upload, &posix);
		rc = upload_commit(f->upload, etag);
		if (!rc) {
			ns_note_upload(f->ns, f->key, size, etag, &posix);
			if (f->existed)
				ns_forget_thumb(f->ns, f->key);
			f->existed = 1;
			eager_thumbs(f, size, etag);
		} else {
			struct log_key k;

			log_error("upload of %s failed: %s", log_key(&k, f->key),
				  strerror(rc));
			metrics_error(f->ns->metrics, ME_UPLOAD);
		}
	}
	pthread_mutex_unlock(&f->lock);
	return rc ? EIO : 0;
}

void ns_release(struct ns_file *f)
{
	if (!f)
		return;
	if (f->kind == NF_WRITE)
		unregister_writer(f->ns, f);
	pthread_mutex_lock(&f->ns->lock);
	f->released = 1;
	pthread_mutex_unlock(&f->ns->lock);
	ns_file_unref(f);
}

int ns_fgetattr(struct ns_file *f, struct ns_attr *out)
{
	const struct ns_file *src = f->kind == NF_READ && f->writer ? f->writer
								   : f;

	memset(out, 0, sizeof(*out));
	out->writable = f->kind != NF_BLOB;
	out->mtime = time(NULL);
	if (src->kind == NF_WRITE) {
		out->size = __atomic_load_n(&src->size, __ATOMIC_RELAXED);
	} else if (src->kind == NF_READ) {
		out->size = src->open_size;
		out->mtime = src->mtime;
	} else {
		out->size = src->blob.len;
	}
	if (src->kind != NF_BLOB) { /* the mode and owner stat shows */
		pthread_mutex_lock(&f->ns->lock);
		out->have = src->posix.have &
			    (STORE_ATTR_MODE | STORE_ATTR_UID | STORE_ATTR_GID);
		out->mode = src->posix.mode;
		out->uid = src->posix.uid;
		out->gid = src->posix.gid;
		if (src->kind == NF_READ && (src->posix.have & STORE_ATTR_MTIME)) {
			out->mtime = (time_t)src->posix.mtime_sec;
			out->mtime_nsec = src->posix.mtime_nsec;
		}
		pthread_mutex_unlock(&f->ns->lock);
	}
	return 0;
}

int ns_file_direct_io(const struct ns_file *f)
{
	return f->direct_io;
}

int ns_file_keep_cache(const struct ns_file *f)
{
	return f->keep_cache;
}

int ns_file_size_changed(const struct ns_file *f)
{
	return f->size_changed;
}

/* truncate(2) or ftruncate(2) of a file open for writing. */
static int truncate_open(struct ns_file *f, uint64_t size)
{
	int rc;

	if (f->kind != NF_WRITE)
		return EROFS;
	pthread_mutex_lock(&f->lock);
	rc = upload_truncate(f->upload, size);
	__atomic_store_n(&f->size, upload_size(f->upload), __ATOMIC_RELAXED);
	pthread_mutex_unlock(&f->lock);
	return rc;
}

/* truncate(2) of a path nobody has open for writing. */
static int truncate_closed(struct ns *ns, const char *rel, uint64_t size)
{
	struct ns_file *f;
	int rc = open_upload(ns, rel, O_WRONLY, &f);

	if (rc)
		return rc;
	rc = truncate_open(f, size); /* readers may borrow f already */
	if (!rc)
		rc = ns_flush(f);
	ns_release(f);
	return rc;
}

int ns_truncate(struct ns *ns, const char *path, struct ns_file *f,
		uint64_t size)
{
	struct path_info pi;
	struct buf key = BUF_INIT;
	int rc;

	if (f)
		return truncate_open(f, size);
	if (!path)
		return EBADF;
	rc = path_parse(path, strlen(ns->cfg->fs.uploads_prefix), &pi);
	if (rc)
		return rc;
	if (pi.area != PA_UPLOADS)
		return EROFS;
	rc = ns_upload_key(ns, pi.rel, &key);
	f = rc ? NULL : borrow_writer(ns, key.data);
	buf_release(&key);
	if (rc)
		return rc;
	if (!f)
		return truncate_closed(ns, pi.rel, size);
	rc = truncate_open(f, size);
	ns_file_unref(f);
	return rc;
}

void ns_release_all(struct ns *ns)
{
	struct ns_file *f;

	for (;;) {
		pthread_mutex_lock(&ns->lock);
		for (f = ns->files; f && f->released; f = f->next)
			; /* only a borrower's reference is left: it frees it */
		pthread_mutex_unlock(&ns->lock);
		if (!f)
			return;
		ns_release(f);
	}
}
