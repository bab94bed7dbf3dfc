/*
 * mem_list: ListObjectsV2 over the in-memory store's sorted keys (see
 * mem.h).
 *
 * A listing walks the keys under the prefix in order; with a delimiter,
 * a key with the delimiter after the prefix stands for its common prefix
 * (up to and including the delimiter). Keys and common prefixes are the
 * page's items. The continuation token is MEM_TOKEN followed by the last
 * item of the page: the next page holds the items after it, so a common
 * prefix ends one page and the keys under it never start the next.
 */
#include "store/mem_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

#define MEM_TOKEN "mem1:"
#define MEM_LIST_MAX 1000

struct list_walk {
	const char *prefix;
	size_t plen;
	const char *delim;   /* NULL: none */
	unsigned max;
	char *last;          /* the last item added (owned), or NULL */
	unsigned count;
	struct store_list_page *out;
};

/* Compare the first n bytes of k, as a string, with s. */
static int item_cmp(const char *k, size_t n, const char *s)
{
	size_t sn = strlen(s);
	int c = memcmp(k, s, n < sn ? n : sn);

	if (c)
		return c;
	return n < sn ? -1 : n > sn;
}

static int add_entry(struct list_walk *w, const struct mem_obj *o)
{
	struct store_list_page *p = w->out;
	struct store_list_entry *e;

	e = realloc(p->entries, (p->nentries + 1) * sizeof(*e));
	if (!e)
		return ENOMEM;
	p->entries = e;
	e += p->nentries;
	memset(e, 0, sizeof(*e));
	e->key = strdup(o->key);
	if (!e->key)
		return ENOMEM;
	p->nentries++;
	e->size = o->blob->len;
	e->mtime = o->mtime;
	memcpy(e->etag, o->etag, sizeof(e->etag));
	return 0;
}

static int add_prefix(struct list_walk *w, const char *k, size_t n)
{
	struct store_list_page *p = w->out;
	char **v = realloc(p->prefixes, (p->nprefixes + 1) * sizeof(*v));

	if (!v)
		return ENOMEM;
	p->prefixes = v;
	v[p->nprefixes] = strndup(k, n);
	if (!v[p->nprefixes])
		return ENOMEM;
	p->nprefixes++;
	return 0;
}

/* Add o's item (the key, or its common prefix of n bytes) unless it was
 * added already. *full when the page had no room left. */
static int walk_item(struct list_walk *w, const struct mem_obj *o, size_t n,
		     int is_prefix, int *full)
{
	int err;

	if (w->last && item_cmp(o->key, n, w->last) <= 0)
		return 0;
	if (w->count == w->max) {
		*full = 1;
		return 0;
	}
	err = is_prefix ? add_prefix(w, o->key, n) : add_entry(w, o);
	if (!err) {
		free(w->last);
		w->last = strndup(o->key, n);
		err = w->last ? 0 : ENOMEM;
	}
	w->count++;
	return err;
}

/* The length of key k's item: up to and including the first delimiter
 * after the prefix (*is_prefix), else the whole key. */
static size_t item_len(const struct list_walk *w, const char *k,
		       int *is_prefix)
{
	const char *d = w->delim ? strstr(k + w->plen, w->delim) : NULL;

	*is_prefix = d != NULL;
	return d ? (size_t)(d - k) + strlen(w->delim) : strlen(k);
}

/* Walk from index i. Lock held. */
static int walk(struct mem_store *m, size_t i, struct list_walk *w)
{
	int err = 0, full = 0;

	for (; !err && !full && i < m->nobjs; i++) {
		const struct mem_obj *o = m->objs[i];
		int is_prefix;
		size_t n;

		if (strncmp(o->key, w->prefix, w->plen) != 0)
			break;
		n = item_len(w, o->key, &is_prefix);
		err = walk_item(w, o, n, is_prefix, &full);
	}
	if (!err && full) {
		struct buf t = BUF_INIT;

		err = buf_addf(&t, "%s%s", MEM_TOKEN, w->last);
		w->out->next_token = err ? NULL : buf_detach(&t, NULL);
		if (!err && !w->out->next_token)
			err = ENOMEM;
		buf_release(&t);
	}
	return err;
}

/* The item a token names, or NULL when it is not one of ours. */
static const char *token_item(const char *token)
{
	size_t n = strlen(MEM_TOKEN);

	return strncmp(token, MEM_TOKEN, n) == 0 ? token + n : NULL;
}

int mem_list(struct store *st, const char *prefix, const char *delimiter,
	     const char *token, unsigned max_keys,
	     struct store_list_page *out)
{
	struct mem_store *m = mem_of(st);
	struct list_walk w = {.prefix = prefix ? prefix : "",
			      .delim = delimiter && *delimiter ? delimiter
							       : NULL,
			      .max = max_keys && max_keys < MEM_LIST_MAX
					     ? max_keys : MEM_LIST_MAX,
			      .out = out};
	const char *after = token ? token_item(token) : NULL;
	struct mem_call c;
	int err = mem_enter(m, MEM_LIST, w.prefix, &c);

	memset(out, 0, sizeof(*out));
	if (err)
		return err;
	if (token && !after) {
		log_error("mem: LIST %s: not a continuation token of this store",
			  w.prefix);
		return mem_leave(&c, EIO);
	}
	w.plen = strlen(w.prefix);
	w.last = after ? strdup(after) : NULL;
	if (after && !w.last)
		return mem_leave(&c, ENOMEM);
	pthread_mutex_lock(&m->lock);
	err = walk(m, mem_lower_bound(m, after && strcmp(after, w.prefix) > 0
						 ? after : w.prefix), &w);
	pthread_mutex_unlock(&m->lock);
	free(w.last);
	err = mem_leave(&c, err);
	if (err)
		store_list_page_release(out);
	return err;
}
