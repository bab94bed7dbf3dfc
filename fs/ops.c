/*
 * ops: FUSE callbacks, each a thin translation onto core/ns.h.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "ns/errmap.h"
#include "readahead.h"

#define FS_BLKSIZE (1u << 20) /* st_blksize: invites large writes */

/* A result for the kernel: 0, or a negated errno from errmap's list. */
static int fail(int rc)
{
	return -errmap_public(rc);
}

static struct fs_state *state(void)
{
	return fuse_get_context()->private_data;
}

static struct ns *ns(void)
{
	return state()->ns;
}

static struct ns_file *file_of(const struct fuse_file_info *fi)
{
	return (struct ns_file *)(uintptr_t)fi->fh;
}

/* -rc for FUSE, counting a refused change (EROFS, EACCES, EPERM). */
static int changed(int rc)
{
	if (rc)
		ns_count_error(ns(), 1, rc);
	return fail(rc);
}

static int is_change(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/* The owner a new node is stored with: the caller's. */
static struct store_attrs caller_owns(mode_t mode)
{
	const struct fuse_context *ctx = fuse_get_context();

	return (struct store_attrs){
		.have = STORE_ATTR_MODE | STORE_ATTR_UID | STORE_ATTR_GID,
		.mode = mode,
		.uid = ctx->uid,
		.gid = ctx->gid,
	};
}

static void fill_stat(struct stat *st, const struct ns_attr *a)
{
	memset(st, 0, sizeof(*st));
	if (a->is_dir) {
		st->st_mode = S_IFDIR | (a->writable ? 0755 : 0555);
		st->st_nlink = 2;
	} else {
		mode_t type = ns_attr_type(a);

		st->st_mode = S_IFREG | (a->writable ? 0644 : 0444);
		if (a->writable && (a->have & STORE_ATTR_MODE))
			st->st_mode = type | (a->mode & 07777);
		if ((type == S_IFCHR || type == S_IFBLK) &&
		    (a->have & STORE_ATTR_RDEV))
			st->st_rdev = (dev_t)a->rdev;
		st->st_nlink = 1;
	}
	st->st_uid = a->have & STORE_ATTR_UID ? a->uid : getuid();
	st->st_gid = a->have & STORE_ATTR_GID ? a->gid : getgid();
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_blksize = FS_BLKSIZE;
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = a->mtime;
	st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = st->st_atim.tv_nsec =
		a->mtime_nsec;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *fc)
{
	struct fs_state *s = state();
	double ttl = s->cfg->fs.metadata_ttl;

	fc->attr_timeout = ttl;
	fc->entry_timeout = ttl;
	fc->negative_timeout = ttl < 1 ? ttl : 1;
	fc->hard_remove = 1;
	fc->use_ino = 0;
	conn->max_write = FS_BLKSIZE;
	if (s->max_read) /* libfuse wants it in both places */
		conn->max_read = s->max_read;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) /* a target is read once */
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	s->start_error = ns_start(s->ns);
	if (s->start_error) {
		log_error("cannot start: %s", strerror(s->start_error));
		fuse_exit(fuse_get_context()->fuse);
	} else {
		s->readahead = readahead_start(s->cfg->fs.mountpoint,
					       s->cfg->fs.read_ahead);
		log_info("mounted bucket %s at %s (endpoint %s)",
			 s->cfg->s3.bucket, s->cfg->fs.mountpoint,
			 s->cfg->s3.endpoint);
	}
	return s;
}

static int fs_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	struct ns_attr a;
	int rc;

	if (fi && fi->fh)
		rc = ns_fgetattr(file_of(fi), &a); /* also once unlinked */
	else if (!path)
		return -ESTALE;
	else
		rc = ns_getattr(ns(), path, &a);
	if (rc)
		return fail(rc);
	fill_stat(st, &a);
	return 0;
}

/* A folder's entries, taken when a read of the folder starts at offset 0
 * and then handed out by offset. libfuse passes an entry's attributes on in
 * a READDIRPLUS reply only when it comes with an offset: without them the
 * kernel sent a LOOKUP per entry of ls -l. One per open folder (fi->fh). */
struct dir_snap {
	size_t n, cap;
	int err;
	struct dir_ent {
		char *name;
		struct stat st;
	} *e;
};

static struct dir_snap *snap_of(const struct fuse_file_info *fi)
{
	return (struct dir_snap *)(uintptr_t)fi->fh;
}

static void snap_clear(struct dir_snap *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->e[i].name);
	s->n = 0;
	s->err = 0;
}

static int snap_add(void *arg, const char *name, const struct ns_attr *a)
{
	struct dir_snap *s = arg;

	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		struct dir_ent *e = realloc(s->e, cap * sizeof(*e));

		if (!e) {
			s->err = ENOMEM;
			return 1;
		}
		s->e = e;
		s->cap = cap;
	}
	s->e[s->n].name = strdup(name);
	if (!s->e[s->n].name) {
		s->err = ENOMEM;
		return 1;
	}
	fill_stat(&s->e[s->n].st, a);
	s->n++;
	return 0;
}

static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct dir_snap *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	fi->fh = (uint64_t)(uintptr_t)s;
	return 0;
}

static int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct dir_snap *s = snap_of(fi);

	if (s) {
		snap_clear(s);
		free(s->e);
		free(s);
	}
	return 0;
}

/* Offsets: "." is entry 0, ".." entry 1, snapshot entry i is i + 2; each is
 * given the offset of the entry after it. */
static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	enum fuse_fill_dir_flags plus = 0;
	struct dir_snap *s = snap_of(fi);
	int rc;

	if (flags & FUSE_READDIR_PLUS)
		plus = FUSE_FILL_DIR_PLUS;
	if (off == 0) {
		snap_clear(s);
		rc = ns_readdir(ns(), path, snap_add, s);
		if (rc || s->err)
			return fail(rc ? rc : s->err);
	}
	for (size_t i = off < 0 ? 0 : (size_t)off; i < s->n + 2; i++) {
		const char *name = i == 0 ? "." : i == 1 ? ".." : s->e[i - 2].name;
		const struct stat *st = i < 2 ? NULL : &s->e[i - 2].st;

		if (filler(buf, name, st, (off_t)(i + 1), i < 2 ? 0 : plus))
			break;
	}
	return 0;
}

/* After open learnt a file's size, drop the kernel's cached attributes. */
static void opened(const char *path, struct ns_file *f,
		   struct fuse_file_info *fi)
{
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->direct_io = ns_file_direct_io(f);
	fi->keep_cache = ns_file_keep_cache(f);
	if (ns_file_size_changed(f))
		fuse_invalidate_path(fuse_get_context()->fuse, path);
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct ns_file *f;
	int rc = ns_open(ns(), path, fi->flags, &f);

	if (rc) {
		ns_count_error(ns(), is_change(fi->flags), rc);
		return fail(rc);
	}
	opened(path, f, fi);
	/* Closing a file opened for reading has nothing to commit: spare the
	 * kernel's FLUSH round trip on every close (one in four requests of a
	 * link read). */
	if ((fi->flags & O_ACCMODE) == O_RDONLY)
		fi->noflush = 1;
	return 0;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct store_attrs init = caller_owns(S_IFREG | (mode & 07777));
	struct ns_file *f;
	int rc = ns_create(ns(), path, fi->flags, &init, &f);

	if (rc)
		return changed(rc);
	opened(path, f, fi);
	return 0;
}

static int fs_read(const char *path, char *buf, size_t len, off_t off,
		   struct fuse_file_info *fi)
{
	size_t got;
	int rc = ns_read(file_of(fi), buf, len, (uint64_t)off, &got);

	if (rc)
		ns_count_error(ns(), 0, rc);
	return rc ? fail(rc) : (int)got;
}

static int fs_write(const char *path, const char *buf, size_t len, off_t off,
		    struct fuse_file_info *fi)
{
	int rc = ns_write(file_of(fi), buf, len, (uint64_t)off);

	return rc ? fail(rc) : (int)len;
}

static int fs_flush(const char *path, struct fuse_file_info *fi)
{
	return fail(ns_flush(file_of(fi)));
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	return fail(ns_flush(file_of(fi)));
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	ns_release(file_of(fi));
	return 0;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	return changed(ns_truncate(ns(), path, fi ? file_of(fi) : NULL, (uint64_t)size));
}

static int fs_unlink(const char *path)
{
	return changed(ns_unlink(ns(), path));
}

static int fs_mkdir(const char *path, mode_t mode)
{
	return changed(ns_mkdir(ns(), path));
}

static int fs_rmdir(const char *path)
{
	return changed(ns_rmdir(ns(), path));
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	return changed(ns_rename(ns(), from, to, flags));
}

/* chmod, chown and utimens of a file whose name was removed (path NULL)
 * change nothing that could be seen. */
static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct store_attrs set = {.have = STORE_ATTR_MODE, .mode = mode & 07777};

	return path ? changed(ns_setattr(ns(), path, &set)) : 0;
}

static int fs_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	struct store_attrs set = {.uid = uid, .gid = gid};

	if (uid != (uid_t)-1)
		set.have |= STORE_ATTR_UID;
	if (gid != (gid_t)-1)
		set.have |= STORE_ATTR_GID;
	return path ? changed(ns_setattr(ns(), path, &set)) : 0;
}

/* Only the mtime is kept (tv[1]); atime is not. */
static int fs_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	struct store_attrs set = {0};
	struct timespec t;

	if (!tv || tv[1].tv_nsec == UTIME_NOW)
		clock_gettime(CLOCK_REALTIME, &t);
	else
		t = tv[1];
	if (!tv || tv[1].tv_nsec != UTIME_OMIT) {
		set.have = STORE_ATTR_MTIME;
		set.mtime_sec = t.tv_sec;
		set.mtime_nsec = t.tv_nsec;
	}
	return path ? changed(ns_setattr(ns(), path, &set)) : 0;
}

/* Symbolic links, FIFOs, sockets and devices are objects (ns.h); libfuse
 * makes a regular file through create, never mknod. The kernel checks
 * first that the name is free (EEXIST) and may be made (EACCES). */
static int fs_symlink(const char *target, const char *path)
{
	struct store_attrs init = caller_owns(S_IFLNK | 0777);

	return changed(ns_symlink(ns(), path, target, &init));
}

static int fs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	struct store_attrs init = caller_owns(mode);

	init.rdev = rdev;
	return changed(ns_mknod(ns(), path, &init));
}

static int fs_readlink(const char *path, char *buf, size_t size)
{
	return fail(ns_readlink(ns(), path, buf, size));
}

/* A second name of an object: none can have one. Without this callback
 * programs got ENOSYS ("Function not implemented"). */
static int fs_link(const char *from, const char *to)
{
	return changed(ns_link(ns(), to));
}

static int fs_access(const char *path, int mask)
{
	struct ns_attr a;
	int rc = ns_getattr(ns(), path, &a);

	if (rc)
		return fail(rc);
	return (mask & W_OK) && !a.writable ? -EROFS : 0;
}

static int fs_statfs(const char *path, struct statvfs *st)
{
	memset(st, 0, sizeof(*st));
	st->f_bsize = st->f_frsize = 4096;
	st->f_blocks = st->f_bfree = st->f_bavail = 1ULL << 40;
	st->f_files = st->f_ffree = st->f_favail = 1ULL << 32;
	st->f_namemax = 255;
	return 0;
}

static void fs_destroy(void *private_data)
{
	struct fs_state *s = private_data;

	readahead_finish(s->readahead);
	s->readahead = NULL;
	log_info("unmounted bucket %s from %s", s->cfg->s3.bucket,
		 s->cfg->fs.mountpoint);
}

static const struct fuse_operations operations = {
	.init = fs_init,
	.destroy = fs_destroy,
	.getattr = fs_getattr,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.fsync = fs_fsync,
	.release = fs_release,
	.truncate = fs_truncate,
	.unlink = fs_unlink,
	.mkdir = fs_mkdir,
	.rmdir = fs_rmdir,
	.rename = fs_rename,
	.symlink = fs_symlink,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.link = fs_link,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.utimens = fs_utimens,
	.access = fs_access,
	.statfs = fs_statfs,
};

const struct fuse_operations *fs_operations(void)
{
	return &operations;
}
