/*
 * path: what a path inside the mount names.
 *
 * Pure functions, no state: the FUSE layer's paths ("/uploads/a/b.jpg") are
 * classified into an area and a path relative to it, and names that come
 * from the bucket are checked before they are shown.
 */
#ifndef IMGFS_PATH_H
#define IMGFS_PATH_H

#include <stddef.h>

#define PATH_KEY_MAX 1024 /* S3's limit on a key, in bytes */
#define PATH_NAME_MAX 255 /* the kernel's limit on one name */

enum path_area {
	PA_ROOT,          /* "/" */
	PA_UPLOADS,       /* "/uploads" and below */
	PA_THUMBS,        /* "/thumbnails", "/thumbnails-N" and below */
	PA_LINKS,         /* "/.links" */
	PA_LINKS_UPLOADS, /* "/.links/uploads" and below */
	PA_LINKS_THUMBS,  /* "/.links/thumbnails[-N]" and below */
	PA_LINKS_INDEX,   /* "/.links/index.html" */
	PA_LINKS_UPLOAD,  /* "/.links/upload" and below (upload links) */
	PA_LINKS_GALLERY, /* "/.links/gallery" and below (gallery pages) */
	PA_METRICS,       /* "/.metrics" */
};

struct path_info {
	enum path_area area;
	const char *rel; /* inside the area: "" for its root, else "a/b.jpg";
			    points into the parsed path */
	unsigned thumb_size; /* PA_THUMBS, PA_LINKS_THUMBS: N of
				"thumbnails-N", 0 for "thumbnails" */
};

/*
 * Classify path (absolute, as FUSE gives it). 0; ENOENT for a name that is
 * not in the namespace ("thumbnails-N" is parsed for any N of 1 to 5
 * digits without a leading zero: the caller checks that N is a size); ENAMETOOLONG when rel, with prefix_len bytes of
 * S3 prefix added, would exceed PATH_KEY_MAX.
 */
int path_parse(const char *path, size_t prefix_len, struct path_info *out);

/* Split rel into its parent ("" at the top) and last name. parent must have
 * room for strlen(rel) + 1 bytes. Returns the last name (inside rel). */
const char *path_split(const char *rel, char *parent);

/* May a name listed from the bucket be shown? Not for "", ".", "..", names
 * with a NUL-free but over-long length, or names holding '/'. */
int path_name_ok(const char *name, size_t len);

/* Is s valid UTF-8 (S3 keys must be)? */
int path_utf8_ok(const char *s);

#endif
