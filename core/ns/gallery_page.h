/*
 * gallery_page: the HTML of one gallery page, and the names of the pages.
 *
 * Pure functions, no state and no I/O: the caller (links_gallery.c) lists
 * and signs; this module only writes what it is given, every name and URL
 * HTML-escaped and every path inside the gallery percent-encoded.
 *
 * The gallery's pages mirror the folders of uploads/ under .links/gallery/:
 * the folder "a/b" has .links/gallery/a/b/index.html (its first page),
 * then index-2.html, index-3.html, ... with GALLERY_PER_PAGE images each;
 * .links/index.html is the first page of the top folder again. A page
 * links to its breadcrumbs, its sub-folders and its neighbours with paths
 * relative to itself, so the tree works from file:// and from a web server
 * alike.
 *
 * Each page is self-contained: its style and its one script are inline and
 * allowed by a Content-Security-Policy meta tag naming their SHA-256
 * hashes; nothing else is loaded but the signed images.
 */
#ifndef IMGFS_GALLERY_PAGE_H
#define IMGFS_GALLERY_PAGE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/buf.h"

#define GALLERY_PER_PAGE 100
#define GALLERY_PAGE_MAX 10000000u /* highest page number parsed */

/* What a page shows around its images. */
struct gallery_view {
	const char *bucket;      /* the title; NULL: "imgfs" */
	const char *folder;      /* "" for the top, else "a/b" (no slashes at
				    either end) */
	const char *root;        /* from this page to .links/gallery/: "" ,
				    "../../" or "gallery/"; ends with '/' or
				    is "" */
	size_t page, npages;     /* 1-based; npages >= 1 */
	size_t nimages;          /* images in the folder, all pages */
	const char *const *subdirs; /* sub-folder names, in order */
	size_t nsubdirs;
	time_t expires_at;       /* when the signed links stop working */
	unsigned box;            /* edge of the first thumbnail size, CSS px */
};

/* One image. */
struct gallery_image {
	const char *name;   /* file name, no folder */
	uint64_t size;      /* bytes */
	time_t mtime;       /* upload date */
	unsigned width, height; /* of the source; 0: unknown, not shown */
	const char *href;   /* signed URL of the original */
	const char *src;    /* signed URL of the thumbnail; NULL: placeholder */
	const char *src2x;  /* of the next size, for srcset; NULL: none */
	int failed;         /* no thumbnail can be made (placeholder says so) */
};

/* The page: head (title, CSP, breadcrumbs, counts, sub-folders, paging),
 * then one figure per image, then the tail (paging again, the script).
 * 0 or ENOMEM. */
int gallery_page_head(const struct gallery_view *v, struct buf *out);
int gallery_page_image(const struct gallery_view *v,
		       const struct gallery_image *im, struct buf *out);
int gallery_page_tail(const struct gallery_view *v, struct buf *out);

/* Pages needed for n images (at least 1). */
size_t gallery_npages(size_t n);
/* The file name of page n: "index.html" for 1, else "index-N.html". */
int gallery_page_name(size_t n, struct buf *out);
/* The page number a file name names: 0 and *n set, or ENOENT. Only the
 * forms gallery_page_name() makes are accepted ("index-1.html",
 * "index-02.html" are not). */
int gallery_parse_page(const char *name, size_t *n);

/* May an entry named name (len bytes) be shown in the gallery? Not "",
 * ".", "..", over 255 bytes, holding '/', a control character, invalid
 * UTF-8, and (for folders, dir != 0) not a name a page file has. */
int gallery_name_ok(const char *name, size_t len, int dir);

/* Append path percent-encoded for a URL: bytes other than A-Z a-z 0-9
 * - . _ ~ and '/' become %XX. 0 or ENOMEM. */
int gallery_url_path(const char *path, struct buf *out);

/* Append a byte count for people: "512 B", "1.5 KiB", "2.0 MiB". */
int gallery_human_size(uint64_t n, struct buf *out);

#endif
