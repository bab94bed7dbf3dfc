/*
 * ns_thumbs: the namespace's side of thumbnails: the image a thumbnail path
 * names, which size a thumbnails area shows, and read-ahead for a reader
 * walking a folder (see ns_int.h).
 */
#include "ns/ns_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NS_AHEAD_MAX 16 /* thumbnails queued ahead of one open */
/* Names queued per decode slot. Decode times differ twentyfold between
 * images (a JPEG that shrinks on load, a large PNG): with two names per
 * slot the other slots ran dry while a reader waited for a slow one, and
 * a fifth of the CPU stood idle. A queued name is a small request; the
 * sources fetched for them are bounded by the scheduler (sources_max). */
#define NS_AHEAD_PER_SLOT 8

int ns_thumb_source(struct ns *ns, const char *rel, struct buf *src_key,
		    struct meta_attr *src)
{
	char *parent = malloc(strlen(rel) + 1);
	struct buf name = BUF_INIT, src_rel = BUF_INIT;
	const char *leaf;
	int rc;

	if (!parent)
		return ENOMEM;
	leaf = path_split(rel, parent);
	rc = ns_upload_attr(ns, rel, src);
	if (rc == 0 && src->is_dir)
		goto out; /* folders mirror folders */
	rc = thumbs_source_for(leaf, &name);
	if (!rc)
		rc = buf_addf(&src_rel, "%s%s%s", parent, *parent ? "/" : "",
			      name.data);
	if (!rc)
		rc = ns_upload_attr(ns, src_rel.data, src);
	if (!rc && (src->is_dir || !thumbs_is_image(name.data)))
		rc = ENOENT;
	if (!rc && src->posix_known && ns_stored_type(&src->posix) != S_IFREG)
		rc = ENOENT; /* a link or a FIFO, however it is named */
	if (!rc)
		rc = ns_upload_key(ns, src_rel.data, src_key);
out:
	buf_release(&name);
	buf_release(&src_rel);
	free(parent);
	return rc;
}

int ns_thumb_idx(const struct ns *ns, unsigned thumb_size, unsigned *idx)
{
	const struct thumb_conf *tc = &ns->cfg->thumb;

	if (thumb_size == 0) {
		*idx = 0;
		return 0;
	}
	for (unsigned i = 1; i < tc->nsizes; i++) {
		if (tc->sizes[i] == thumb_size) {
			*idx = i;
			return 0;
		}
	}
	return ENOENT;
}

void ns_forget_source(struct ns *ns, const char *key)
{
	char *dir = malloc(strlen(key) + 1);

	if (dir)
		meta_forget(ns->meta, dir, ns_split_key(key, dir));
	free(dir);
}

/* The first n image names after `after` in name order, with ETags. */
struct ahead {
	const char *after;
	unsigned max, n;
	char names[NS_AHEAD_MAX][PATH_NAME_MAX + 1];
	char etags[NS_AHEAD_MAX][STORE_ETAG_MAX];
};

/* Keep name if it is among the max smallest after a->after. Runs under
 * meta's lock: touches nothing else. */
static int ahead_visit(void *arg, const char *name, const struct meta_attr *m)
{
	struct ahead *a = arg;
	unsigned at;

	if (m->is_dir || !m->etag[0] || strcmp(name, a->after) <= 0 ||
	    strlen(name) > PATH_NAME_MAX || !thumbs_is_image(name))
		return 0;
	for (at = a->n; at > 0 && strcmp(a->names[at - 1], name) > 0; at--)
		;
	if (at >= a->max)
		return 0;
	if (a->n == a->max)
		a->n--;
	memmove(a->names[at + 1], a->names[at],
		(a->n - at) * sizeof(a->names[0]));
	memmove(a->etags[at + 1], a->etags[at],
		(a->n - at) * sizeof(a->etags[0]));
	snprintf(a->names[at], sizeof(a->names[at]), "%s", name);
	snprintf(a->etags[at], sizeof(a->etags[at]), "%s", m->etag);
	a->n++;
	return 0;
}

void ns_thumb_ahead(struct ns *ns, unsigned idx, const char *src_key)
{
	char *dir = malloc(strlen(src_key) + 1);
	struct ahead *a = calloc(1, sizeof(*a));
	struct buf key = BUF_INIT;
	unsigned n = ns->cfg->thumb.concurrency;

	if (!dir || !a)
		goto out_free;
	a->after = ns_split_key(src_key, dir);
	n *= NS_AHEAD_PER_SLOT;
	a->max = n < 1 ? 1 : n > NS_AHEAD_MAX ? NS_AHEAD_MAX : n;
	if (meta_dir_each(ns->meta, dir, ahead_visit, a))
		goto out_free; /* no fresh listing: nothing to go by */
	for (unsigned i = 0; i < a->n; i++) {
		buf_reset(&key);
		if (buf_addf(&key, "%s%s", dir, a->names[i]) == 0)
			thumbs_ahead(ns->thumbs, idx, key.data, a->etags[i]);
	}
out_free:
	buf_release(&key);
	free(a);
	free(dir);
}
