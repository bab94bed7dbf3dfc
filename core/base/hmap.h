/*
 * hmap: a hash map from C strings to pointers.
 *
 * The map copies keys and owns the copies; values belong to the caller.
 * Not thread-safe: callers lock around it.
 */
#ifndef IMGFS_HMAP_H
#define IMGFS_HMAP_H

#include <stddef.h>

struct hmap;

/* NULL with errno set. */
struct hmap *hmap_create(void);
/* Free the map and its keys; free_value (may be NULL) is called on each value. */
void hmap_destroy(struct hmap *h, void (*free_value)(void *));

/* The value for key, or NULL. */
void *hmap_get(const struct hmap *h, const char *key);
/* Set key to value; *old (may be NULL) receives the value replaced, or NULL.
 * 0 or ENOMEM. */
int hmap_put(struct hmap *h, const char *key, void *value, void **old);
/* Remove key; returns its value, or NULL when absent. */
void *hmap_remove(struct hmap *h, const char *key);
size_t hmap_count(const struct hmap *h);

/* Visit every entry; fn returns non-zero to stop (that value is returned).
 * The map must not change during the walk. */
int hmap_each(const struct hmap *h,
	      int (*fn)(void *arg, const char *key, void *value), void *arg);

#endif
