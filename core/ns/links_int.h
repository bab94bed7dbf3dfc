/*
 * links_int: the links module's private parts, shared by links.c (signing)
 * and links_gallery.c (the gallery's pages). Not for use outside them.
 */
#ifndef IMGFS_LINKS_INT_H
#define IMGFS_LINKS_INT_H

#include <stdatomic.h>

#include "ns/links.h"

/* Invariant: every pointer is borrowed and outlives the links object;
 * cap_warned only ever goes from 0 to 1. */
struct links {
	const struct link_conf *conf;
	const struct fs_conf *fconf;
	struct s3_client *s3;   /* signs URLs */
	struct store *store;    /* lists the gallery's thumbnails */
	struct creds *creds;
	struct thumbs *thumbs;
	struct metrics *m;      /* link reads are counted by the caller */
	atomic_int cap_warned;  /* 1 once the credential cap was logged */
};

/* The expiry to sign for now: conf->expiry cut to the credentials'
 * lifetime, warning the first time the cut happens. 0 or EACCES. */
int links_sign_expiry(struct links *l, time_t now, unsigned *expires);

/* Presign key for expires seconds; with attach, name it after the key's
 * last segment (Content-Disposition). Appends the URL (no newline). */
int links_sign(struct links *l, const char *key, time_t now,
	       unsigned expires, int attach, struct buf *out);

/* The last path segment of a key or path. */
const char *links_base_name(const char *path);

#endif
