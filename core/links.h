/*
 * links: presigned URLs behind .links/, and the gallery page.
 *
 * A link is a SigV4 presigned GET URL followed by "\n", valid for
 * conf->expiry seconds from `now` (capped at the expiry of temporary
 * credentials, with a warning), following the configured endpoint and
 * addressing style. An original's link costs no network request; a
 * thumbnail's link first makes sure the thumbnail object is in the bucket.
 *
 * Thread-safe.
 */
#ifndef IMGFS_LINKS_H
#define IMGFS_LINKS_H

#include <time.h>

#include "buf.h"
#include "cfg.h"
#include "creds.h"
#include "metrics.h"
#include "s3.h"
#include "thumbs.h"

struct links;

/* NULL with errno set. Every argument must outlive the links object. */
struct links *links_create(const struct link_conf *conf,
			   const struct fs_conf *fconf, struct s3_client *s3,
			   struct creds *creds, struct thumbs *thumbs,
			   struct metrics *m);
void links_destroy(struct links *l);

/* The link for the object at key (a full key, e.g. "uploads/a/b.jpg"),
 * with no network request. Appends "URL\n" to out. 0 or errno. */
int links_object(struct links *l, const char *key, time_t now,
		 struct buf *out);

/* The link for the thumbnail of source src_key (ETag src_etag): makes sure
 * the thumbnail is stored first. Appends "URL\n". 0, EIO or errno. */
int links_thumb(struct links *l, const char *src_key, const char *src_etag,
		time_t now, struct buf *out);

/* The gallery: a self-contained HTML page listing every image under the
 * uploads prefix, each a signed thumbnail linking to the signed original,
 * captioned with its escaped path. Thumbnails are not generated here: their
 * URLs point at the thumbnail keys, made on first request by imgfs only
 * through thumbnails/ or .links/thumbnails/ -- so the page first ensures
 * each thumbnail is stored. Appends to out. 0 or errno. */
int links_gallery(struct links *l, time_t now, struct buf *out);

#endif
