/* hmap: chained hash map with FNV-1a hashing (see hmap.h). */
#include "base/hmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct hnode {
	struct hnode *next;
	uint64_t hash;
	void *value;
	char key[]; /* NUL-terminated copy */
};

struct hmap {
	struct hnode **slots;
	size_t nslots; /* a power of two */
	size_t count;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct hmap *hmap_create(void)
{
	struct hmap *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->nslots = 16;
	h->slots = calloc(h->nslots, sizeof(*h->slots));
	if (!h->slots) {
		free(h);
		errno = ENOMEM;
		return NULL;
	}
	return h;
}

void hmap_destroy(struct hmap *h, void (*free_value)(void *))
{
	if (!h)
		return;
	for (size_t i = 0; i < h->nslots; i++) {
		struct hnode *n = h->slots[i], *next;

		for (; n; n = next) {
			next = n->next;
			if (free_value)
				free_value(n->value);
			free(n);
		}
	}
	free(h->slots);
	free(h);
}

static struct hnode **find_slot(const struct hmap *h, const char *key,
				uint64_t hash)
{
	struct hnode **p = &h->slots[hash & (h->nslots - 1)];

	for (; *p; p = &(*p)->next)
		if ((*p)->hash == hash && strcmp((*p)->key, key) == 0)
			break;
	return p;
}

void *hmap_get(const struct hmap *h, const char *key)
{
	struct hnode *n = *find_slot(h, key, hash_str(key));

	return n ? n->value : NULL;
}

static void grow(struct hmap *h)
{
	size_t nslots = h->nslots * 2;
	struct hnode **slots = calloc(nslots, sizeof(*slots));

	if (!slots)
		return; /* stay at the current size; still correct */
	for (size_t i = 0; i < h->nslots; i++) {
		struct hnode *n = h->slots[i], *next;

		for (; n; n = next) {
			next = n->next;
			n->next = slots[n->hash & (nslots - 1)];
			slots[n->hash & (nslots - 1)] = n;
		}
	}
	free(h->slots);
	h->slots = slots;
	h->nslots = nslots;
}

int hmap_put(struct hmap *h, const char *key, void *value, void **old)
{
	uint64_t hash = hash_str(key);
	struct hnode **p = find_slot(h, key, hash);
	size_t klen;

	if (old)
		*old = *p ? (*p)->value : NULL;
	if (*p) {
		(*p)->value = value;
		return 0;
	}
	klen = strlen(key);
	*p = malloc(sizeof(**p) + klen + 1);
	if (!*p)
		return ENOMEM;
	(*p)->next = NULL;
	(*p)->hash = hash;
	(*p)->value = value;
	memcpy((*p)->key, key, klen + 1);
	if (++h->count > h->nslots - h->nslots / 4)
		grow(h);
	return 0;
}

void *hmap_remove(struct hmap *h, const char *key)
{
	struct hnode **p = find_slot(h, key, hash_str(key));
	struct hnode *n = *p;
	void *value;

	if (!n)
		return NULL;
	*p = n->next;
	value = n->value;
	free(n);
	h->count--;
	return value;
}

size_t hmap_count(const struct hmap *h)
{
	return h->count;
}

int hmap_each(const struct hmap *h,
	      int (*fn)(void *arg, const char *key, void *value), void *arg)
{
	for (size_t i = 0; i < h->nslots; i++) {
		for (struct hnode *n = h->slots[i]; n; n = n->next) {
			int r = fn(arg, n->key, n->value);

			if (r)
				return r;
		}
	}
	return 0;
}
