/*
 * ns_writers: files open for writing under a name that changes (unlink,
 * rename, setattr of a key with writers), see ns_int.h.
 */
#include "ns/ns_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct writer_set {
	struct ns_file **f;
	size_t n;
};

static int addr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(struct ns_file *const *)a;
	uintptr_t y = (uintptr_t)*(struct ns_file *const *)b;

	return x < y ? -1 : x > y;
}

/* Every file open for writing under key, a reference taken on each, and
 * locked in address order. */
static int writers_lock(struct ns *ns, const char *key, struct writer_set *w)
{
	size_t cap = 0;

	w->f = NULL;
	w->n = 0;
	pthread_mutex_lock(&ns->lock);
	for (struct ns_file *f = ns->files; f; f = f->next)
		cap += f->kind == NF_WRITE && !f->unlinked && !strcmp(f->key, key);
	if (cap)
		w->f = malloc(cap * sizeof(*w->f));
	for (struct ns_file *f = ns->files; f && w->f; f = f->next) {
		if (f->kind == NF_WRITE && !f->unlinked && !strcmp(f->key, key)) {
			f->refs++;
			w->f[w->n++] = f;
		}
	}
	pthread_mutex_unlock(&ns->lock);
	if (cap && !w->f)
		return ENOMEM;
	if (w->n > 1)
		qsort(w->f, w->n, sizeof(*w->f), addr_cmp);
	for (size_t i = 0; i < w->n; i++)
		pthread_mutex_lock(&w->f[i]->lock);
	return 0;
}

static void writers_unlock(struct writer_set *w)
{
	for (size_t i = w->n; i-- > 0;) {
		pthread_mutex_unlock(&w->f[i]->lock);
		ns_file_unref(w->f[i]);
	}
	free(w->f);
}

size_t ns_files_unlink(struct ns *ns, const char *key)
{
	struct writer_set w;
	size_t n;

	if (writers_lock(ns, key, &w))
		return 0;
	for (size_t i = 0; i < w.n; i++) /* their content outlives the object */
		upload_detach(w.f[i]->upload);
	pthread_mutex_lock(&ns->lock);
	for (size_t i = 0; i < w.n; i++) {
		w.f[i]->unlinked = 1;
		if (hmap_get(ns->writers, key) == w.f[i])
			hmap_remove(ns->writers, key);
	}
	pthread_mutex_unlock(&ns->lock);
	n = w.n;
	writers_unlock(&w);
	return n;
}

/* Move the files of w from key from to key to (locks held). */
static int writers_rekey(struct ns *ns, struct writer_set *w,
			 const char *from, const char *to)
{
	struct ns_file *reg = NULL;
	char **keys = calloc(w->n ? w->n : 1, sizeof(*keys));
	size_t i;
	int rc = keys ? 0 : ENOMEM;

	for (i = 0; !rc && i < w->n; i++) {
		keys[i] = strdup(to);
		rc = keys[i] ? upload_rekey(w->f[i]->upload, to) : ENOMEM;
	}
	if (rc) { /* put back what was rekeyed (spooled: cannot fail) */
		for (size_t j = 0; j + 1 < i; j++)
			upload_rekey(w->f[j]->upload, from);
		for (size_t j = 0; j < i; j++)
			free(keys[j]);
		free(keys);
		return rc;
	}
	pthread_mutex_lock(&ns->lock);
	for (i = 0; i < w->n; i++) {
		if (hmap_get(ns->writers, from) == w->f[i]) {
			hmap_remove(ns->writers, from);
			reg = w->f[i];
		}
		free(w->f[i]->key);
		w->f[i]->key = keys[i];
	}
	if (reg)
		reg->registered = hmap_put(ns->writers, to, reg, NULL) == 0;
	pthread_mutex_unlock(&ns->lock);
	free(keys);
	return 0;
}

int ns_files_rename(struct ns *ns, const char *from, const char *to,
		    int (*move)(struct ns *ns, const char *from,
				const char *to, size_t nwriters, void *arg),
		    void *arg)
{
	struct writer_set w;
	int rc = writers_lock(ns, from, &w);

	if (rc)
		return rc;
	rc = writers_rekey(ns, &w, from, to);
	if (!rc) {
		rc = move(ns, from, to, w.n, arg);
		if (rc)
			writers_rekey(ns, &w, to, from);
	}
	writers_unlock(&w);
	return rc;
}

int ns_file_setattr(struct ns *ns, const char *key,
		    const struct store_attrs *set)
{
	struct writer_set w;
	int dirty = 0, rc = writers_lock(ns, key, &w);

	if (rc)
		return rc;
	for (size_t i = 0; i < w.n; i++) {
		pthread_mutex_lock(&ns->lock);
		ns_attrs_merge(&w.f[i]->posix, set);
		pthread_mutex_unlock(&ns->lock);
		if (set->have & STORE_ATTR_MTIME)
			w.f[i]->mtime_set = 1;
		dirty |= upload_dirty(w.f[i]->upload);
	}
	writers_unlock(&w);
	return dirty ? 0 : EAGAIN;
}
