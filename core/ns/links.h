/*
 * links: presigned URLs behind .links/, and the gallery page.
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
 * signs the URLs, store lists the gallery. */
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

/* The gallery: a self-contained HTML page listing every image under the
 * uploads prefix, each a signed thumbnail linking to the signed original,
 * captioned with its escaped path. Thumbnails are not generated here: their
 * URLs point at the thumbnail keys, made on first request by imgfs only
 * through thumbnails/ or .links/thumbnails/ -- so the page first ensures
 * each thumbnail is stored. Appends to out. 0 or errno.
 *
 * Cost: one paginated listing of the uploads prefix and one of the
 * thumbnails prefix (1 request per 1000 keys each), no HEAD per image.
 * A thumbnail object that is missing, or older than its source, is made
 * with thumbs_ensure_stored() by LINKS_GALLERY_WORKERS threads at once;
 * an image that cannot be thumbnailed appears without a preview. So the
 * first open after many new uploads is as slow as generating their
 * thumbnails; later opens cost the two listings and the signing. Originals
 * are signed as links_object() signs them (with the disposition setting),
 * thumbnails without a disposition, all for the same capped expiry. */
int links_gallery(struct links *l, time_t now, struct buf *out);

#define LINKS_GALLERY_WORKERS 4

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

/* The gallery page in three pieces, so it streams: the head (title with
 * bucket, which may be NULL; count of images; the time links expire), one
 * figure per image (thumb_url NULL: no preview), then the tail. */
int links_page_head(const char *bucket, size_t count, time_t expires_at,
		    struct buf *out);
int links_page_figure(const char *path, const char *href,
		      const char *thumb_url, struct buf *out);
int links_page_tail(size_t count, struct buf *out);

#endif
