/*
 * ns_dir: operations that change the uploads tree by name: unlink, mkdir,
 * rmdir, rename, setattr (see ns.h).
 */
#include "ns/ns_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

int ns_upload_rel(struct ns *ns, const char *path, const char **rel)
{
	struct path_info pi;
	int rc = path_parse(path, strlen(ns->cfg->fs.uploads_prefix), &pi);

	if (rc)
		return rc == ENOENT ? EROFS : rc; /* outside uploads/ */
	if (pi.area != PA_UPLOADS)
		return EROFS;
	if (!*pi.rel)
		return EBUSY;
	*rel = pi.rel;
	return 0;
}

void ns_note_upload(struct ns *ns, const char *key, uint64_t size,
		    const char *etag, const struct store_attrs *posix)
{
	char *dir = malloc(strlen(key) + 1);
	struct meta_attr a = {.size = size, .mtime = time(NULL)};
	const char *name;

	if (!dir)
		return;
	if (posix) {
		a.posix = *posix;
		a.posix_known = 1;
	}
	name = ns_split_key(key, dir);
	snprintf(a.etag, sizeof(a.etag), "%s", etag ? etag : "");
	meta_set(ns->meta, dir, name, &a);
	free(dir);
}

static void note_absent(struct ns *ns, const char *key)
{
	char *dir = malloc(strlen(key) + 1);
	const char *name;

	if (!dir)
		return;
	name = ns_split_key(key, dir);
	meta_set_absent(ns->meta, dir, name);
	free(dir);
}

void ns_forget_thumb(struct ns *ns, const char *key)
{
	const char *slash = strrchr(key, '/');

	if (thumbs_is_image(slash ? slash + 1 : key))
		thumbs_forget(ns->thumbs, key);
}

void ns_attrs_merge(struct store_attrs *dst, const struct store_attrs *set)
{
	if (set->have & STORE_ATTR_MTIME) {
		dst->mtime_sec = set->mtime_sec;
		dst->mtime_nsec = set->mtime_nsec;
	}
	if (set->have & STORE_ATTR_MODE) /* chmod keeps the file's type */
		dst->mode = ns_stored_type(dst) | (set->mode & 07777);
	if (set->have & STORE_ATTR_UID)
		dst->uid = set->uid;
	if (set->have & STORE_ATTR_GID)
		dst->gid = set->gid;
	dst->have |= set->have;
}

/* Store set on the object at key by copying it onto itself with new
 * metadata (a HEAD for what it has, then a COPY). */
static int set_on_object(struct ns *ns, const char *key,
			 const struct store_attrs *set)
{
	struct store_object obj;
	struct store_put_opts o = {0};
	char etag[STORE_ETAG_MAX] = "";
	int rc = store_head(ns->store, key, &obj);

	if (rc)
		return rc;
	ns_attrs_merge(&obj.attrs, set);
	o.content_type = obj.content_type[0] ? obj.content_type : NULL;
	o.source_etag = obj.source_etag[0] ? obj.source_etag : NULL;
	o.attrs = &obj.attrs;
	rc = store_copy(ns->store, key, key, &o, obj.size, etag);
	if (rc) {
		log_error("cannot set the attributes of %s: %s", key,
			  strerror(rc));
		return rc;
	}
	ns_note_upload(ns, key, obj.size, etag, &obj.attrs);
	return 0;
}

int ns_setattr(struct ns *ns, const char *path, const struct store_attrs *set)
{
	struct buf key = BUF_INIT;
	struct meta_attr a;
	const char *rel;
	int rc = ns_upload_rel(ns, path, &rel);

	if (rc == EBUSY)
		return 0; /* uploads/ itself */
	if (rc || !set->have)
		return rc;
	rc = ns_upload_key(ns, rel, &key);
	if (!rc)
		rc = ns_file_setattr(ns, key.data, set);
	if (rc == EAGAIN) { /* no writer with unsaved writes: the object */
		rc = ns_upload_attr(ns, rel, &a);
		if (!rc && !a.is_dir) /* folders keep no attributes */
			rc = set_on_object(ns, key.data, set);
	}
	buf_release(&key);
	return rc;
}

int ns_unlink(struct ns *ns, const char *path)
{
	struct buf key = BUF_INIT;
	struct meta_attr a;
	const char *rel;
	int rc = ns_upload_rel(ns, path, &rel);

	if (!rc)
		rc = ns_upload_attr(ns, rel, &a);
	if (!rc && a.is_dir)
		rc = EISDIR;
	if (!rc)
		rc = ns_upload_key(ns, rel, &key);
	if (!rc) /* as on a disk: open descriptors keep the content */
		ns_files_unlink(ns, key.data);
	if (!rc)
		rc = store_delete(ns->store, key.data);
	if (!rc) {
		note_absent(ns, key.data);
		ns_forget_thumb(ns, key.data);
	}
	buf_release(&key);
	return rc;
}

int ns_free_name(struct ns *ns, const char *path, const char **rel)
{
	struct meta_attr a;
	int rc = ns_upload_rel(ns, path, rel);

	if (rc)
		return rc == EBUSY ? EEXIST : rc;
	if (!path_utf8_ok(*rel))
		return EILSEQ;
	rc = ns_upload_attr(ns, *rel, &a);
	return rc == ENOENT ? 0 : rc ? rc : EEXIST;
}

int ns_mkdir(struct ns *ns, const char *path)
{
	struct buf prefix = BUF_INIT;
	const char *rel;
	int rc = ns_free_name(ns, path, &rel);

	if (rc)
		return rc;
	rc = ns_dir_prefix(ns, rel, &prefix);
	pthread_mutex_lock(&ns->lock);
	if (!rc)
		rc = hmap_put(ns->local_dirs, prefix.data, (void *)1, NULL);
	pthread_mutex_unlock(&ns->lock);
	if (!rc) {
		prefix.data[prefix.len - 1] = '\0';
		note_absent(ns, prefix.data); /* drop the cached negative */
	}
	buf_release(&prefix);
	return rc;
}

struct under {
	const char *prefix;
	size_t plen;
};

/* Stops the walk at a key strictly below the prefix. */
static int key_under(void *arg, const char *key, void *value)
{
	const struct under *u = arg;

	return strncmp(key, u->prefix, u->plen) == 0 && key[u->plen] != '\0';
}

/* Is the name of a listed key or common prefix below the folder prefix
 * (plen bytes) one the mount shows? The folder's own marker is not. */
static int shown_below(const char *key, size_t plen)
{
	const char *name = key + plen;
	size_t len = strlen(name);

	if (len && name[len - 1] == '/')
		len--;
	return path_name_ok(name, len);
}

/* Does anything the mount shows live below the folder prefix: objects
 * other than its own marker and the keys listings hide (promise 19),
 * local folders, files being written? *hidden counts the hidden ones
 * seen. Lock not held. */
static int dir_empty(struct ns *ns, const char *prefix, int *empty,
		     size_t *hidden)
{
	struct under u = {prefix, strlen(prefix)};
	char *token = NULL;
	int rc;

	*empty = 1;
	*hidden = 0;
	do {
		struct store_list_page page = {0};

		rc = store_list(ns->store, prefix, "/", token, 1000, &page);
		free(token);
		token = NULL;
		for (size_t i = 0; !rc && *empty && i < page.nentries; i++) {
			if (shown_below(page.entries[i].key, u.plen))
				*empty = 0;
			else if (strcmp(page.entries[i].key, prefix))
				(*hidden)++;
		}
		for (size_t i = 0; !rc && *empty && i < page.nprefixes; i++) {
			if (shown_below(page.prefixes[i], u.plen))
				*empty = 0;
			else
				(*hidden)++;
		}
		if (!rc && *empty && page.next_token)
			token = strdup(page.next_token);
		store_list_page_release(&page);
	} while (!rc && token);
	free(token);
	pthread_mutex_lock(&ns->lock);
	if (!rc && *empty && (hmap_each(ns->local_dirs, key_under, &u) ||
			      hmap_each(ns->writers, key_under, &u)))
		*empty = 0;
	pthread_mutex_unlock(&ns->lock);
	if (rc)
		*empty = 0;
	return rc;
}

/* Delete every key below the folder prefix (its marker included): what
 * is left of a folder whose shown content is gone. */
static int delete_below(struct ns *ns, const char *prefix)
{
	int rc;

	do {
		struct store_list_page page = {0};

		rc = store_list(ns->store, prefix, NULL, NULL, 1000, &page);
		for (size_t i = 0; !rc && i < page.nentries; i++) {
			rc = store_delete(ns->store, page.entries[i].key);
			if (rc == ENOENT)
				rc = 0;
		}
		if (!rc && !page.nentries)
			rc = -1; /* nothing left */
		store_list_page_release(&page);
	} while (!rc);
	return rc == -1 ? 0 : rc;
}

/* An object named as the folder prefix without its '/', which other tools
 * may have written next to the folder's keys: the mount shows the folder
 * (promise 19), and the object goes with it. 0 (its size in *size),
 * ENOENT or errno. */
static int shadowed_object(struct ns *ns, const char *prefix, struct buf *key,
			   uint64_t *size)
{
	struct store_object obj;
	int rc = buf_add(key, prefix, strlen(prefix) - 1);

	if (!rc)
		rc = store_head(ns->store, key->data, &obj);
	if (!rc)
		*size = obj.size;
	return rc;
}

/* Delete the object the folder prefix shadows, if any. */
static int delete_shadowed(struct ns *ns, const char *prefix)
{
	struct buf key = BUF_INIT;
	uint64_t size;
	int rc = shadowed_object(ns, prefix, &key, &size);

	if (!rc)
		rc = store_delete(ns->store, key.data);
	if (!rc)
		ns_forget_thumb(ns, key.data);
	buf_release(&key);
	return rc == ENOENT ? 0 : rc;
}

int ns_rmdir(struct ns *ns, const char *path)
{
	struct buf prefix = BUF_INIT;
	struct meta_attr a;
	const char *rel;
	size_t hidden = 0;
	int empty = 0, rc = ns_upload_rel(ns, path, &rel);

	if (!rc)
		rc = ns_upload_attr(ns, rel, &a);
	if (!rc && !a.is_dir)
		rc = ENOTDIR;
	if (!rc)
		rc = ns_dir_prefix(ns, rel, &prefix);
	if (!rc)
		rc = dir_empty(ns, prefix.data, &empty, &hidden);
	if (!rc && !empty)
		rc = ENOTEMPTY;
	if (!rc && hidden) /* keys no name reaches: they go with the folder */
		rc = delete_below(ns, prefix.data);
	else if (!rc)
		rc = store_delete(ns->store, prefix.data); /* a marker, if any */
	if (!rc)
		rc = delete_shadowed(ns, prefix.data);
	if (!rc) {
		pthread_mutex_lock(&ns->lock);
		hmap_remove(ns->local_dirs, prefix.data);
		pthread_mutex_unlock(&ns->lock);
		meta_forget_dir(ns->meta, prefix.data);
		prefix.data[prefix.len - 1] = '\0';
		note_absent(ns, prefix.data);
	}
	buf_release(&prefix);
	return rc;
}

/* --- rename -------------------------------------------------------------- */

/* Move one object of size bytes: copy, then delete the source. etag (may
 * be NULL) gets the copy's own ETag. */
static int move_object(struct ns *ns, const char *from, const char *to,
		       uint64_t size, char etag[STORE_ETAG_MAX])
{
	int rc = store_copy(ns->store, from, to, NULL, size, etag);

	if (!rc)
		rc = store_delete(ns->store, from);
	if (rc)
		return rc;
	note_absent(ns, from);
	ns_forget_thumb(ns, from);
	ns_forget_thumb(ns, to);
	return 0;
}

/* Move every object below the folder prefix from to the prefix to. */
static int move_tree(struct ns *ns, const char *from, const char *to)
{
	size_t flen = strlen(from);
	char *token = NULL;
	int rc;

	do {
		struct store_list_page page = {0};

		rc = store_list(ns->store, from, NULL, token, 1000, &page);
		free(token);
		token = NULL;
		for (size_t i = 0; !rc && i < page.nentries; i++) {
			struct buf dst = BUF_INIT;

			rc = buf_addf(&dst, "%s%s", to, page.entries[i].key + flen);
			if (!rc)
				rc = move_object(ns, page.entries[i].key, dst.data,
						 page.entries[i].size, NULL);
			buf_release(&dst);
		}
		if (!rc && page.next_token)
			token = strdup(page.next_token);
		store_list_page_release(&page);
	} while (!rc && token);
	free(token);
	return rc;
}

struct move_dirs {
	const char *from, *to;
	size_t flen;
	struct buf moved; /* NUL-separated old keys */
};

static int collect_moved(void *arg, const char *key, void *value)
{
	struct move_dirs *m = arg;

	if (strncmp(key, m->from, m->flen) == 0)
		buf_add(&m->moved, key, strlen(key) + 1);
	return 0;
}

/* Carry local (empty) folders below from over to to. */
static void move_local_dirs(struct ns *ns, const char *from, const char *to)
{
	struct move_dirs m = {from, to, strlen(from), BUF_INIT};

	pthread_mutex_lock(&ns->lock);
	hmap_each(ns->local_dirs, collect_moved, &m);
	for (size_t off = 0; off < m.moved.len;) {
		const char *old = m.moved.data + off;
		struct buf dst = BUF_INIT;

		if (!buf_addf(&dst, "%s%s", to, old + m.flen))
			hmap_put(ns->local_dirs, dst.data, (void *)1, NULL);
		hmap_remove(ns->local_dirs, old);
		buf_release(&dst);
		off += strlen(old) + 1;
	}
	pthread_mutex_unlock(&ns->lock);
	buf_release(&m.moved);
}

/* Move the object the folder prefix from shadows, if any, along with the
 * folder: it stays shadowed by the folder's new name. */
static int move_shadowed(struct ns *ns, const char *from, const char *to)
{
	struct buf key = BUF_INIT, dst = BUF_INIT;
	uint64_t size = 0;
	int rc = shadowed_object(ns, from, &key, &size);

	if (!rc)
		rc = buf_add(&dst, to, strlen(to) - 1);
	if (!rc)
		rc = move_object(ns, key.data, dst.data, size, NULL);
	buf_release(&key);
	buf_release(&dst);
	return rc == ENOENT ? 0 : rc;
}

static int rename_dir(struct ns *ns, const char *from_rel, const char *to_rel)
{
	struct buf from = BUF_INIT, to = BUF_INIT;
	int rc = ns_dir_prefix(ns, from_rel, &from);

	if (!rc)
		rc = ns_dir_prefix(ns, to_rel, &to);
	if (!rc && strncmp(to.data, from.data, from.len) == 0)
		rc = EINVAL; /* into itself */
	if (!rc)
		rc = move_tree(ns, from.data, to.data);
	if (!rc)
		rc = move_shadowed(ns, from.data, to.data);
	if (!rc) {
		move_local_dirs(ns, from.data, to.data);
		pthread_mutex_lock(&ns->lock);
		hmap_put(ns->local_dirs, to.data, (void *)1, NULL);
		pthread_mutex_unlock(&ns->lock);
		meta_forget_dir(ns->meta, from.data);
		meta_forget_dir(ns->meta, to.data);
		from.data[from.len - 1] = to.data[to.len - 1] = '\0';
		note_absent(ns, from.data);
		note_absent(ns, to.data);
	}
	buf_release(&from);
	buf_release(&to);
	return rc;
}

/* The move of a file in the bucket, while its writers (nwriters of them)
 * are held: a name that only an open writer has, and no object yet, moves
 * with the writer alone. */
struct moved {
	uint64_t size;
	char etag[STORE_ETAG_MAX]; /* the copy's own */
};

static int move_file(struct ns *ns, const char *from, const char *to,
		     size_t nwriters, void *arg)
{
	struct moved *m = arg;
	int rc = move_object(ns, from, to, m->size, m->etag);

	if (rc == ENOENT && nwriters) {
		note_absent(ns, from);
		rc = 0;
	}
	return rc;
}

static int rename_file(struct ns *ns, const char *from_rel, const char *to_rel,
		       const struct meta_attr *a)
{
	struct moved mv = {a->size, ""};
	struct buf from = BUF_INIT, to = BUF_INIT;
	int rc = ns_upload_key(ns, from_rel, &from);

	if (!rc)
		rc = ns_upload_key(ns, to_rel, &to);
	if (!rc) /* the file replaced lives on in its open descriptors */
		ns_files_unlink(ns, to.data);
	if (!rc)
		rc = ns_files_rename(ns, from.data, to.data, move_file, &mv);
	if (!rc && mv.etag[0]) /* what S3 made, not the source's ETag */
		ns_note_upload(ns, to.data, a->size, mv.etag,
			       a->posix_known ? &a->posix : NULL);
	buf_release(&from);
	buf_release(&to);
	return rc;
}

/* May from replace to? (both exist) */
static int may_replace(struct ns *ns, const struct meta_attr *src,
		       const char *to_rel, const struct meta_attr *dst)
{
	struct buf prefix = BUF_INIT;
	size_t hidden;
	int empty = 0, rc;

	if (!src->is_dir && dst->is_dir)
		return EISDIR;
	if (src->is_dir && !dst->is_dir)
		return ENOTDIR;
	if (!dst->is_dir)
		return 0;
	rc = ns_dir_prefix(ns, to_rel, &prefix);
	if (!rc)
		rc = dir_empty(ns, prefix.data, &empty, &hidden);
	buf_release(&prefix);
	return rc ? rc : empty ? 0 : ENOTEMPTY;
}

int ns_rename(struct ns *ns, const char *from, const char *to, unsigned flags)
{
	struct meta_attr src, dst;
	const char *from_rel, *to_rel;
	int rc = ns_upload_rel(ns, from, &from_rel);

	if (!rc)
		rc = ns_upload_rel(ns, to, &to_rel);
	if (rc)
		return rc;
	if (flags & ~1u) /* only RENAME_NOREPLACE */
		return EINVAL;
	if (!path_utf8_ok(to_rel))
		return EILSEQ;
	rc = ns_upload_attr(ns, from_rel, &src);
	if (rc)
		return rc;
	rc = ns_upload_attr(ns, to_rel, &dst);
	if (rc == 0 && (flags & 1u))
		return EEXIST;
	if (rc == 0)
		rc = may_replace(ns, &src, to_rel, &dst);
	else if (rc == ENOENT)
		rc = 0;
	if (rc)
		return rc;
	return src.is_dir ? rename_dir(ns, from_rel, to_rel)
			  : rename_file(ns, from_rel, to_rel, &src);
}
