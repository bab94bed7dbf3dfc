/*
 * ns: the namespace a mount shows, in errno terms.
 *
 *   /uploads/...            objects under the uploads prefix, read/write
 *   /thumbnails/...         thumbnails of the image files in uploads/
 *   /.links/uploads/...     presigned URLs of the uploads
 *   /.links/thumbnails/...  presigned URLs of the thumbnails
 *   /.links/index.html      the gallery page
 *   /.metrics               the daemon's counters
 *
 * Every function returns 0 or a positive errno; the FUSE layer negates it.
 * All functions are thread-safe; an ns_file may be used from several
 * threads (calls on one file are serialised inside).
 *
 * Lifecycle: ns_new() parses nothing and starts no thread; ns_check()
 * verifies the bucket can be reached (before daemonising); ns_start()
 * creates the S3 client, the thumbnail service and the rest (in the FUSE
 * init callback, after daemonising); ns_free() waits for open files' work
 * and frees everything. ns_start_store() is ns_start() over a store the
 * caller made (the in-memory store of the unit tests).
 */
#ifndef IMGFS_NS_H
#define IMGFS_NS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config/cfg.h"
#include "aws/creds.h"
#include "store/store.h"

struct ns;
struct ns_file;
struct s3_client;
struct store;

struct ns_attr {
	int is_dir;
	int writable;  /* 0 in the read-only areas */
	uint64_t size;
	time_t mtime;
	long mtime_nsec;
	unsigned have;   /* STORE_ATTR_MODE, _UID, _GID: stored values below */
	uint32_t mode;   /* permission bits (and type) as stored */
	uint32_t uid, gid;
	uint64_t rdev;   /* a device's number, when have has STORE_ATTR_RDEV */
};

/* The file type a shows: S_IFDIR for a folder; for a file, the type its
 * stored mode names when that is a symbolic link, FIFO, socket or device
 * (as ns_symlink() and ns_mknod() store them), else S_IFREG. */
uint32_t ns_attr_type(const struct ns_attr *a);

/* NULL with errno set. cfg and creds must outlive the ns. */
struct ns *ns_new(const struct cfg *cfg, struct creds *creds);
/* Check that the bucket answers with these credentials and that the
 * databases in the cache directory (upload journal, thumbnail cache) open.
 * 0, or an errno with a one-line reason in err. Starts and stops its own
 * client and closes what it opened, so nothing crosses a later fork. */
int ns_check(struct ns *ns, char *err, size_t errlen);
/* Create the S3 client and the services over it. 0 or errno (logged). */
int ns_start(struct ns *ns);
/* Create the services over store, with signer signing the links (it need
 * not be store; signing makes no request). Both stay the caller's and must
 * outlive the ns. 0 or errno (logged). */
int ns_start_store(struct ns *ns, struct store *store,
		   struct s3_client *signer);
void ns_free(struct ns *ns);

int ns_getattr(struct ns *ns, const char *path, struct ns_attr *out);

/* Count an error the FUSE layer returns to a caller in
 * imgfs_errors_total: rc EIO from an open or read (is_change 0) as
 * read_eio; EROFS, EACCES or EPERM from a change (is_change 1) as
 * write_refused. Other results are not counted here. */
void ns_count_error(struct ns *ns, int is_change, int rc);

/* Call fn for each entry of the folder at path ("." and ".." excluded).
 * fn returns non-zero to stop early. */
typedef int (*ns_fill_fn)(void *arg, const char *name,
			  const struct ns_attr *a);
int ns_readdir(struct ns *ns, const char *path, ns_fill_fn fn, void *arg);

/* Open an existing file with open(2) flags; *out on success. */
int ns_open(struct ns *ns, const char *path, int flags, struct ns_file **out);
/* Create a file in uploads/ (O_CREAT); *out on success. init (may be
 * NULL) holds the mode, uid and gid a new file is stored with. */
int ns_create(struct ns *ns, const char *path, int flags,
	      const struct store_attrs *init, struct ns_file **out);

int ns_read(struct ns_file *f, void *buf, size_t len, uint64_t off,
	    size_t *got);
int ns_write(struct ns_file *f, const void *buf, size_t len, uint64_t off);
/* close(2) and fsync(2): make the bucket hold what was written. EIO when
 * the upload failed (nothing partial is left in the bucket). */
int ns_flush(struct ns_file *f);
/* The last reference is gone: free the file. */
void ns_release(struct ns_file *f);

/* Attributes of an open file, also after its name was removed. 0. */
int ns_fgetattr(struct ns_file *f, struct ns_attr *out);

/* Should the kernel bypass its page cache (content made at open)? */
int ns_file_direct_io(const struct ns_file *f);
/* May the kernel keep the pages it cached of this file at an earlier open
 * (the object's ETag is the one it had then)? */
int ns_file_keep_cache(const struct ns_file *f);
/* Did open learn the file's size, so cached attributes are stale? */
int ns_file_size_changed(const struct ns_file *f);

/* truncate(2) by path, or ftruncate(2) when f is not NULL. */
int ns_truncate(struct ns *ns, const char *path, struct ns_file *f,
		uint64_t size);
int ns_unlink(struct ns *ns, const char *path);
int ns_mkdir(struct ns *ns, const char *path);
int ns_rmdir(struct ns *ns, const char *path);
/* Nodes that are not files or folders, in uploads/ (EROFS elsewhere), each
 * an object as s3fs stores it: the type in its mode (x-amz-meta-mode), a
 * symbolic link's target as its body, a device's number in
 * x-amz-meta-rdev. init holds the owner (and for mknod the mode and rdev);
 * the mtime is now. EEXIST when the name is taken. */
int ns_symlink(struct ns *ns, const char *path, const char *target,
	       const struct store_attrs *init);
/* A FIFO, socket or device (init->mode's type; EINVAL for another). */
int ns_mknod(struct ns *ns, const char *path, const struct store_attrs *init);
/* The target of the symbolic link at path into buf, NUL-terminated and cut
 * at size - 1 bytes as readlink(2) is by FUSE. EINVAL when path is not a
 * symbolic link. */
int ns_readlink(struct ns *ns, const char *path, char *buf, size_t size);
/* link(2) to the new name to: EPERM in uploads/ (an object has one name),
 * EROFS elsewhere. */
int ns_link(struct ns *ns, const char *to);
/* flags: 0 or RENAME_NOREPLACE. */
int ns_rename(struct ns *ns, const char *from, const char *to,
	      unsigned flags);
/* chmod, chown, utimens: set->have names what changes (STORE_ATTR_*). A
 * file in uploads/ stores them in its object's metadata: at its next
 * commit when it is open with unsaved writes, else at once by a copy of
 * the object onto itself (a HEAD and a COPY). Folders keep none (0).
 * EROFS in the read-only areas. */
int ns_setattr(struct ns *ns, const char *path, const struct store_attrs *set);

#endif
