/*
 * meta: the short-lived cache of listings and attributes under uploads/.
 *
 * A directory is named by its full S3 prefix ("uploads/a/", ending with
 * '/'); an entry by its directory and name. Listings and single attributes
 * are trusted for ttl seconds; the daemon's own writes update them at once,
 * so a process always sees what it just did.
 *
 * Thread-safe: one mutex guards everything; callbacks run under it and must
 * not call back into meta.
 */
#ifndef IMGFS_META_H
#define IMGFS_META_H

#include <stdint.h>
#include <time.h>

#include "store/store.h"

struct meta_attr {
	int is_dir;
	uint64_t size;
	time_t mtime;
	char etag[STORE_ETAG_MAX]; /* "" for folders */
	struct store_attrs posix;  /* stored attributes, when posix_known */
	int posix_known;           /* posix was read (HEAD) or written by this
				      daemon; a listing does not carry it */
};

enum meta_hit {
	META_MISS,   /* nothing fresh is known */
	META_FOUND,  /* *out is filled */
	META_ABSENT, /* known not to exist */
};

struct meta;
struct meta_listing; /* a listing being assembled, before meta_dir_store() */

/* NULL with errno set. */
struct meta *meta_create(double ttl);
void meta_destroy(struct meta *m);

enum meta_hit meta_lookup(struct meta *m, const char *dir, const char *name,
			  struct meta_attr *out);

/* Assemble a complete listing, then hand it to meta_dir_store(), which takes
 * ownership (or free it with meta_listing_free()). */
struct meta_listing *meta_listing_new(void);
int meta_listing_add(struct meta_listing *l, const char *name,
		     const struct meta_attr *a);
void meta_listing_free(struct meta_listing *l);
/* A listing carries no stored attributes: give l's entries those the cache
 * holds of the same objects (same ETag), as meta_dir_store() does, for a
 * caller that hands l's entries on too. */
void meta_listing_carry(struct meta *m, const char *dir,
			struct meta_listing *l);
/* Visit l's entries, in no particular order; fn returns non-zero to stop. */
void meta_listing_each(const struct meta_listing *l,
		       int (*fn)(void *arg, const char *name,
				 const struct meta_attr *a),
		       void *arg);
void meta_dir_store(struct meta *m, const char *dir, struct meta_listing *l);
/* The same for a listing whose first request was sent when meta_gen() was
 * since: it is dropped (freed, not stored) when the daemon's own changes
 * touched dir after that, since the listing may not show them. */
void meta_dir_store_since(struct meta *m, const char *dir,
			  struct meta_listing *l, uint64_t since);
/* The change counter: bumped by every meta_set(), meta_set_absent() and
 * meta_forget_dir(). */
uint64_t meta_gen(struct meta *m);

/* Visit a fresh listing of dir, in no particular order; ENOENT when there is
 * none. fn returns non-zero to stop. */
int meta_dir_each(struct meta *m, const char *dir,
		  int (*fn)(void *arg, const char *name,
			    const struct meta_attr *a),
		  void *arg);

/* Record that dir/name exists with attributes a (updates a cached listing). */
void meta_set(struct meta *m, const char *dir, const char *name,
	      const struct meta_attr *a);
/* Forget what is known of dir/name (another client changed it): its entry
 * and dir's listing, so the next lookup asks S3. */
void meta_forget(struct meta *m, const char *dir, const char *name);
/* Record that dir/name does not exist. */
void meta_set_absent(struct meta *m, const char *dir, const char *name);
/* A lookup under dir missed (META_MISS). Returns 1 to the one caller that
 * should list dir again rather than ask S3 about the single entry: dir was
 * listed before, and since that listing expired enough entries of it were
 * missed (8, plus 4 per 1000 entries it held) that one listing costs fewer
 * requests than a HEAD each — someone is walking the directory. 0 otherwise
 * (never listed, below the threshold, another caller was told already, or
 * a ttl of 0 keeps nothing; the count restarts when a listing is stored). */
int meta_dir_walked(struct meta *m, const char *dir);
/* Whether listing dir to answer a single lookup is worth it: 0 when dir is
 * known to hold more than one page (1000 entries) or the ttl is 0 (nothing
 * would be kept). */
int meta_dir_listable(struct meta *m, const char *dir);
/* Remember that dir holds more than one page of entries. */
void meta_dir_set_big(struct meta *m, const char *dir);
/* How many listings, entries, walks and changes are held (each bounded:
 * see meta.c). */
size_t meta_held(struct meta *m);
/* Forget everything known about dir's listing and its entries' attributes. */
void meta_forget_dir(struct meta *m, const char *dir);

#endif
