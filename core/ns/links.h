/*
 * links: presigned URLs behind .links/, and the gallery's pages.
 *
 * A link is a SigV4 presigned GET URL followed by "\n", valid for
 * conf->expiry seconds from `now` (capped at the expiry of temporary
 * credentials, with a warning), following the configured endpoint and
 * addressing style. An original's link costs no network request; a
 * thumbnail's link first makes sure the thumbnail object is in the bucket.
 *
 * Nothing here counts MC_LINK_READS: a stat computes a link too, so the
 * caller counts the opens.
 *
 * Thread-safe.
 */
#ifndef IMGFS_LINKS_H
#define IMGFS_LINKS_H

#include <stdatomic.h>
#include <time.h>

#include "base/buf.h"
#include "config/cfg.h"
#include "aws/creds.h"
#include "base/metrics.h"
#include "store/s3.h"
#include "image/thumbs.h"

struct links;

/* NULL with errno set. Every argument must outlive the links object: s3
 * signs the URLs, store lists the gallery's thumbnails. */
struct links *links_create(const struct link_conf *conf,
			   const struct fs_conf *fconf, struct s3_client *s3,
			   struct store *store, struct creds *creds, struct thumbs *thumbs,
			   struct metrics *m);
void links_destroy(struct links *l);

/* The link for the object at key (a full key, e.g. "uploads/a/b.jpg"),
 * with no network request. With conf->attachment the URL carries a signed
 * response-content-disposition naming the key's last segment. Appends
 * "URL\n" to out (nothing on error). 0; EACCES when the credentials have
 * expired; or an errno of creds_get()/s3_presign_get(). */
int links_object(struct links *l, const char *key, time_t now,
		 struct buf *out);

/* The link for the thumbnail of source src_key (ETag src_etag): makes sure
 * the thumbnail is stored first (thumbs_ensure_stored), then signs its key
 * as links_object() does. Appends "URL\n". 0, EIO (the source cannot be
 * thumbnailed), ENOENT (the source is gone) or errno. */
int links_thumb(struct links *l, const char *src_key, const char *src_etag,
		time_t now, struct buf *out);
/* The same for size idx of thumbs_sizes (0: links_thumb()). */
int links_thumb_n(struct links *l, unsigned idx, const char *src_key,
		  const char *src_etag, time_t now, struct buf *out);

/* One image of a gallery folder, as listed. */
struct links_gallery_image {
	const char *name;   /* file name inside the folder */
	uint64_t size;
	time_t mtime;       /* upload date: the stored mtime, else LastModified */
	time_t modified;    /* LastModified (what a thumbnail must not predate) */
	const char *etag;
};

/* One page of the gallery of a folder of uploads/ (see gallery_page.h for
 * the tree of pages and what each shows). */
struct links_gallery_req {
	const char *prefix;  /* the folder's key prefix: "uploads/a/b/" */
	const char *folder;  /* the same inside uploads/: "a/b", "" at the top */
	const char *root;    /* from the page to .links/gallery/ */
	size_t page;         /* 1-based */
	const struct links_gallery_image *images; /* every image, in order */
	size_t nimages;
	const char *const *subdirs;
	size_t nsubdirs;
};

/*
 * Append page r->page of the gallery of r->folder to out. 0, ENOENT (a
 * page past the last), EACCES (expired credentials) or errno.
 *
 * Thumbnails are never generated here: the page lists the thumbnail
 * folder of each size (one request per 1000 thumbnails, none per image)
 * and shows a thumbnail whose object is in the bucket and not older than
 * its source; srcset names the second size for 2x screens when its object
 * is there too. Every other image of the page shows a placeholder and is
 * handed to the thumbnail scheduler (thumbs_ahead()), which makes and
 * stores it in the background; a later read of the page shows it. An image
 * the thumbnail cache knows cannot be thumbnailed says "no preview".
 * Originals are signed as links_object() signs them (with the disposition
 * setting), thumbnails without one, all for the same capped expiry.
 */
int links_gallery_page(struct links *l, const struct links_gallery_req *r,
		       time_t now, struct buf *out);

/*
 * The expiry to sign a link for at now: want seconds, cut to the lifetime
 * left of creds' current credentials; the first cut (per *warned flag,
 * which goes from 0 to 1) is logged at warn, prefixed by who. 0, EACCES
 * (the credentials have expired), or an errno of creds_get() (logged).
 */
int links_signing_expiry(struct creds *creds, unsigned want, time_t now,
			 atomic_int *warned, const char *who,
			 unsigned *expires);

/* ---- pure helpers, exposed for the unit tests ------------------------ */

/* The expiry to sign for: want, cut to what is left of credentials that
 * expire at creds_expiry (0: never). 0 when they have already expired. */
unsigned links_expiry_cap(unsigned want, time_t now, time_t creds_expiry);

/* Append s HTML-escaped (& < > " ' become entities), fit for text and for
 * quoted attribute values. 0 or ENOMEM. */
int links_html_escape(const char *s, struct buf *out);

/* Append a Content-Disposition value "attachment; filename=..." for a file
 * name: an ASCII fallback (quoted-string; other bytes become '_') and,
 * when the name is not plain printable ASCII, an RFC 6266/8187
 * filename*=UTF-8''... with every other byte percent-encoded. 0 or ENOMEM. */
int links_disposition(const char *name, struct buf *out);

#endif
