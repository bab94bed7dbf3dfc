/*
 * ns_int: the namespace's private parts, shared by ns.c (attributes,
 * listings, folder operations) and ns_file.c (open files). Not for use
 * outside the ns module.
 */
#ifndef IMGFS_NS_INT_H
#define IMGFS_NS_INT_H

#include <pthread.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/hmap.h"
#include "io/journal.h"
#include "ns/links.h"
#include "ns/meta.h"
#include "io/mime.h"
#include "base/metrics.h"
#include "ns/ns.h"
#include "ns/path.h"
#include "io/cachestore.h"
#include "io/datacache.h"
#include "io/reader.h"
#include "store/s3.h"
#include "image/thumbs.h"
#include "io/upload.h"
#include "ns/uplinks.h"

struct ns {
	const struct cfg *cfg;
	struct creds *creds;
	struct metrics *metrics;
	struct s3_client *own_s3; /* made by ns_start(), or NULL */
	struct s3_client *s3;     /* set by ns_start_store(); signs links */
	struct store *store;      /* set by ns_start_store(); every object call */
	struct thumbs *thumbs;    /* set by ns_start() */
	struct links *links;      /* set by ns_start() */
	struct uplinks *uplinks;  /* set by ns_start(); .links/upload/ */
	struct journal *journal;  /* set by ns_start() */
	struct datacache *data;   /* set by ns_start(); NULL when disabled */
	struct store *cstore;     /* set by ns_start(): the store over the data
				     cache (NULL without it); ns->store then */
	struct meta *meta;
	struct mime *mime;        /* Content-Type sniffer for uploads */
	struct membudget *budget; /* memory_max: part and read-ahead buffers */
	struct upload_conf upconf;
	struct membudget *spool_budget; /* spool_max: spool file bytes (no
					 * gauge); NULL when 0 (unbounded) */
	uid_t uid;
	gid_t gid;
	time_t started;
	pthread_mutex_t lock;
	struct hmap *writers;     /* key -> struct ns_file *; protected by lock */
	struct hmap *local_dirs;  /* "uploads/a/" -> (void *)1; protected by lock */
	struct ns_file *files;    /* every open file; protected by lock */
	struct hmap *seen;        /* key -> ETag (char *) the kernel may hold
				     pages of; protected by lock */
	uint64_t index_size;      /* last gallery page built; protected by lock */
	struct hmap *gallery_made; /* gallery pages built for a stat, for the
				     open that follows (ns_gallery.c);
				     protected by lock */
	uint64_t metrics_size;    /* last .metrics rendered; protected by lock */
};

#define NS_SEEN_MAX 65536 /* keys whose page-cache version is remembered */

enum ns_file_kind {
	NF_READ,  /* an object read through a reader */
	NF_WRITE, /* a file in uploads/ open for writing */
	NF_BLOB,  /* content made at open: thumbnails, links, pages */
};

struct ns_file {
	struct ns *ns;
	struct ns_file *prev, *next; /* in ns->files; protected by ns->lock */
	unsigned refs;            /* the open's reference plus one per borrower
				     (ns_truncate by path); protected by
				     ns->lock; freed when it drops to 0 */
	enum ns_file_kind kind;
	pthread_mutex_t lock;     /* serialises calls on this file */
	char *key;                /* NF_READ, NF_WRITE; NF_WRITE: changed by a
				     rename with both f->lock and ns->lock
				     held, so either protects a read */
	struct reader *reader;    /* NF_READ; NULL for an empty object */
	struct upload *upload;    /* NF_WRITE */
	struct ns_file *writer;   /* NF_READ of a key being written: reads
				     come from that writer (a reference is
				     held); NULL otherwise */
	int existed;              /* NF_WRITE: the key existed at open */
	int unlinked;             /* NF_WRITE: its name was removed (unlink,
				     or a rename over it): its closes upload
				     nothing; set with both locks held */
	int released;             /* the open's reference was dropped;
				     protected by ns->lock */
	struct store_attrs posix; /* NF_WRITE: stored at commit; NF_READ: as
				     seen at open, when known; protected by
				     ns->lock */
	int mtime_set;            /* NF_WRITE: posix.mtime was set (utimens)
				     after the last write; protected by lock */
	uint64_t open_size;       /* NF_READ: the size seen at open */
	time_t mtime;             /* NF_READ: the mtime seen at open */
	int registered;           /* NF_WRITE: listed in ns->writers */
	struct buf blob;          /* NF_BLOB */
	uint64_t size;            /* NF_WRITE: the upload's size, read without
				     the lock (__atomic) by stat */
	int direct_io;
	int keep_cache;           /* NF_READ: the kernel's pages are of this
				     version */
	int size_changed;
};

/* Parse path, which must be strictly inside uploads/: *rel points into
 * path. EROFS outside uploads/, EBUSY for uploads/ itself. */
int ns_upload_rel(struct ns *ns, const char *path, const char **rel);
/* The longest target a symbolic link holds (PATH_MAX, with the NUL); so no
 * object of this size or more is a link or another node. */
#define NS_LINK_MAX 4096
/* A new name in uploads/ for mkdir, symlink or mknod: 0 with *rel when no
 * object, folder or open writer has it; EEXIST when one has (or path is
 * uploads/ itself), EROFS outside uploads/, EILSEQ when no key can be it. */
int ns_free_name(struct ns *ns, const char *path, const char **rel);
/* The file type stored in p's mode when it is one a non-folder object can
 * be (S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK), else S_IFREG. */
uint32_t ns_stored_type(const struct store_attrs *p);

/* The S3 key for rel in the uploads area ("uploads/" + rel). */
int ns_upload_key(const struct ns *ns, const char *rel, struct buf *out);
/* The folder prefix for rel ("uploads/" + rel + "/", or "uploads/"). */
int ns_dir_prefix(const struct ns *ns, const char *rel, struct buf *out);

/* Attributes of uploads/rel: open writers first, then the cache, then
 * HEAD and a one-key listing. etag (may be NULL) gets the object's ETag. */
int ns_upload_attr(struct ns *ns, const char *rel, struct meta_attr *out);

/* The source of thumbnails/rel: its rel in uploads/, attributes and key.
 * ENOENT when no image maps to it; *is_dir for a folder. */
int ns_thumb_source(struct ns *ns, const char *rel, struct buf *src_key,
		    struct meta_attr *src);

/* The thumbs size index of a thumbnails area: 0 for "thumbnails"
 * (thumb_size 0), i for "thumbnails-N" where N is size i > 0. 0 or
 * ENOENT. */
int ns_thumb_idx(const struct ns *ns, unsigned thumb_size, unsigned *idx);
/* A reader opened size idx of the thumbnail of src_key: queue the next
 * few images of its folder (in listing order) ahead of it. */
void ns_thumb_ahead(struct ns *ns, unsigned idx, const char *src_key);

/* Record a finished upload of key (size, etag, and its stored attributes
 * posix, NULL when unknown) in the cache. */
void ns_note_upload(struct ns *ns, const char *key, uint64_t size,
		    const char *etag, const struct store_attrs *posix);

/* ns_upload_attr(), and for a file whose stored attributes are not known
 * yet (it was seen in a listing), a HEAD to learn them. */
int ns_upload_attr_posix(struct ns *ns, const char *rel, struct meta_attr *out);

/* setattr of key while it is open for writing: the writers keep set for
 * their commits. 0 when one of them has unsaved writes (its commit stores
 * set), EAGAIN when the object must be changed now. */
int ns_file_setattr(struct ns *ns, const char *key,
		    const struct store_attrs *set);

/* Copy the attributes set->have names from set into dst. */
void ns_attrs_merge(struct store_attrs *dst, const struct store_attrs *set);
/* Another client replaced or removed the source at key: forget its cached
 * attributes (and its folder's listing), so the next lookup asks S3. */
void ns_forget_source(struct ns *ns, const char *key);
/* The source at key was replaced or removed: forget its thumbnail. */
void ns_forget_thumb(struct ns *ns, const char *key);

/* .links/upload/ (ns_uplinks.c); rel is inside that area.
 * Attributes of what rel names: a folder mirroring one of uploads/, or its
 * post.json or index.html (made now, for its exact size). 0 or ENOENT. */
int ns_uplink_attr(struct ns *ns, const char *rel, struct ns_attr *out);
/* The content of rel's post.json or index.html, appended to out. 0, EISDIR,
 * ENOENT, EACCES (expired credentials) or errno. */
int ns_uplink_make(struct ns *ns, const char *rel, struct buf *out);
/* Emit the two files of the folder (rel "" for the top) through fn. */
int ns_uplink_files(struct ns *ns, const char *folder, ns_fill_fn fn,
		    void *arg);
/* Is name one of those files (a folder of that name is not listed)? */
int ns_uplink_reserved(const char *name);

/* .links/gallery/ and .links/index.html (ns_gallery.c); rel is inside
 * .links/gallery/ (top_index: .links/index.html, rel ignored). Attributes
 * of a folder or page: 0 or ENOENT (or errno: a page is built to learn
 * its size, and kept a moment for the open that follows). */
int ns_gallery_attr(struct ns *ns, const char *rel, int top_index,
		    struct ns_attr *out);
/* Free the pages kept for opens, and their map (at ns_free(): no other
 * thread uses ns, its lock may never have been initialised). */
void ns_gallery_free_made(struct ns *ns);
/* The page rel names (top_index: .links/index.html, rel ignored),
 * appended to out. 0, EISDIR, ENOENT, EACCES or errno. */
int ns_gallery_make(struct ns *ns, const char *rel, int top_index,
		    struct buf *out);
/* Is a folder of that name shown in .links/gallery/? */
int ns_gallery_dir_shown(const char *name);
/* Emit the page files of the folder whose entries are seen. */
int ns_gallery_files(struct ns *ns, struct hmap *seen, ns_fill_fn fn,
		     void *arg);

/* Every entry of the uploads folder prefix ("uploads/a/"), as a listing
 * shows it (cached listing, else the bucket, plus empty folders made here
 * and files being written), into seen: name -> malloc'd struct meta_attr. */
int ns_list_folder(struct ns *ns, const char *prefix, struct hmap *seen);

/* Lock order: an ns_file's lock before ns->lock; the writers of one key
 * in address order. */

/* Drop one reference to f (ns_file.c); the last one frees it. */
void ns_file_unref(struct ns_file *f);

/* The name key was removed (unlink, or replaced by a rename): every file
 * open for writing under it keeps its content but uploads nothing at its
 * close, and stat/listings stop showing it. Returns how many there were. */
size_t ns_files_unlink(struct ns *ns, const char *key);

/* Rename key from to key to for the files open for writing under from:
 * with every one of them locked (so none uploads meanwhile), call move
 * (the object's move in the bucket; it gets the number of writers and
 * arg), then
 * rekey them so their closes upload to to. 0 or errno (then nothing was
 * rekeyed). */
int ns_files_rename(struct ns *ns, const char *from, const char *to,
		    int (*move)(struct ns *ns, const char *from,
				const char *to, size_t nwriters, void *arg),
		    void *arg);

/* Free every file still open (the kernel went away without releasing
 * them). */
void ns_release_all(struct ns *ns);

/* Split a key under the uploads prefix into its folder prefix and name.
 * dir must hold strlen(key) + 1 bytes. Returns the name. */
const char *ns_split_key(const char *key, char *dir);

#endif
