/*
 * uplinks: upload links behind .links/upload/: for a folder of uploads/,
 * a signed S3 POST policy (post.json) and an upload page using it
 * (index.html).
 *
 * A policy lets anyone who holds it POST objects straight into the bucket,
 * with no server in between: keys under the folder's prefix (the uploader's
 * file name after it), 1..conf->upload_max bytes, a Content-Type starting
 * with "image/", until conf->expiry seconds after `now` (cut to the
 * lifetime left of temporary credentials, with a warning, as for download
 * links). S3 checks all of it. Making either file costs no network
 * request: s3_presign_post() signs with the current credentials.
 *
 * The page is self-contained (inline CSS and script, nothing loaded from
 * elsewhere): it posts each chosen or dropped image with XHR to the bucket,
 * showing a progress bar per file and S3's error code, in words, for a
 * refused one; without JavaScript its plain form posts one file. The bucket
 * needs a CORS rule allowing POST from the page's origin (README).
 *
 * Thread-safe.
 */
#ifndef IMGFS_UPLINKS_H
#define IMGFS_UPLINKS_H

#include <stdint.h>
#include <time.h>

#include "aws/creds.h"
#include "aws/post_policy.h"
#include "base/buf.h"
#include "config/cfg.h"
#include "store/s3.h"

#define UPLINKS_TYPE_PREFIX "image/"

struct uplinks;

/* NULL with errno set. conf, s3 and creds must outlive the object. */
struct uplinks *uplinks_create(const struct link_conf *conf,
			       struct s3_client *s3, struct creds *creds);
void uplinks_destroy(struct uplinks *u);

/* post.json for the folder whose keys start with prefix ("uploads/team/"):
 * {"url": ..., "fields": {...}}, the shape of boto3's
 * generate_presigned_post, and a newline. Appends to out (nothing on
 * error). 0; EACCES when the credentials have expired; or an errno of
 * creds_get()/s3_presign_post(). */
int uplinks_post_json(struct uplinks *u, const char *prefix, time_t now,
		      struct buf *out);

/* index.html for the same folder, signed as uplinks_post_json() signs.
 * Appends to out (nothing on error). 0 or errno as above. */
int uplinks_page(struct uplinks *u, const char *prefix, time_t now,
		 struct buf *out);

/* ---- pure helpers, exposed for the unit tests ------------------------ */

/* The page for form f (as s3_presign_post() makes it): title and header
 * name the bucket (may be NULL) and the key prefix; the limit max_bytes and
 * the expiry expires_at are shown and kept in data attributes for the
 * script. Every value is HTML-escaped. Appends to out. 0 or ENOMEM. */
int uplinks_page_render(const struct post_form *f, const char *bucket,
			const char *prefix, uint64_t max_bytes,
			time_t expires_at, struct buf *out);

/* A size for people: "50 MiB", "1.5 GiB", "700 KiB", "12 bytes", "1 byte".
 * Appends to out. 0 or ENOMEM. */
int uplinks_size_text(uint64_t bytes, struct buf *out);

#endif
