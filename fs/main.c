/*
 * imgfs: mount an S3 bucket as an image workspace.
 *
 * Start-up order: parse the configuration, resolve credentials and check
 * the bucket while errors can still reach the terminal; then mount,
 * daemonise, and start the services in the FUSE init callback.
 */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "base/buf.h"
#include "aws/creds.h"
#include "base/log.h"
#include "image/pool.h"
#include "image/worker.h"

extern char **environ;

/* mkdir -p with mode for each folder made. 0 or errno. */
static int make_dirs(const char *path, mode_t mode)
{
	struct buf b = BUF_INIT;
	int rc = buf_adds(&b, path);

	for (char *p = b.data ? b.data + 1 : NULL; !rc && p && *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(b.data, mode) && errno != EEXIST)
			rc = errno;
		*p = '/';
	}
	if (!rc && mkdir(b.data, mode) && errno != EEXIST)
		rc = errno;
	buf_release(&b);
	return rc;
}

#define FUSE_SUPER_MAGIC 0x65735546

/* Does folder path hold anything? 0 (empty), 1, or -1 with errno. */
static int dir_has_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int found = 0;

	if (!d)
		return -1;
	while (!found && (e = readdir(d)))
		found = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return found;
}

/* Is path the root of a FUSE mount (another imgfs, or a stale one)? */
static int is_fuse_mount(const char *path, const struct stat *st)
{
	struct buf parent = BUF_INIT;
	struct statfs fs;
	struct stat pst;
	int root;

	if (statfs(path, &fs) || fs.f_type != FUSE_SUPER_MAGIC)
		return 0;
	if (buf_addf(&parent, "%s/..", path))
		return 0;
	root = stat(parent.data, &pst) == 0 && pst.st_dev != st->st_dev;
	buf_release(&parent);
	return root;
}

/*
 * Refuse a mountpoint that would hide files or stack a second mount, as
 * rclone and s3fs do, unless -o nonempty. 0, or 1 with one line in err.
 */
static int check_mountpoint(const struct fs_conf *fs, char *err, size_t len)
{
	const char *mp = fs->mountpoint;
	struct stat st;
	int full;

	if (stat(mp, &st)) {
		if (errno == ENOTCONN)
			snprintf(err, len, "mountpoint %s is a stale mount whose "
				 "daemon is gone; unmount it with fusermount3 -u %s",
				 mp, mp);
		else
			snprintf(err, len, "mountpoint %s: %s", mp, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, len, "mountpoint %s is not a directory", mp);
		return 1;
	}
	if (fs->nonempty)
		return 0;
	if (is_fuse_mount(mp, &st)) {
		snprintf(err, len, "mountpoint %s is already mounted (FUSE); "
			 "unmount it first with fusermount3 -u %s, or add "
			 "-o nonempty to mount over it", mp, mp);
		return 1;
	}
	full = dir_has_entries(mp);
	if (full)
		snprintf(err, len, full < 0 ? "mountpoint %s: cannot read it: %s"
			 : "mountpoint %s is not empty: its files would be hidden "
			   "while mounted; use an empty folder, or -o nonempty%s",
			 mp, full < 0 ? strerror(errno) : "");
	return full != 0;
}

static int has_fuse_opt(const struct cfg *c, const char *name)
{
	for (char **o = c->fuse_opts; o && *o; o++)
		if (strcmp(*o, name) == 0)
			return 1;
	return 0;
}

/* The arguments libfuse sees: -f (we daemonise ourselves), -d, -o opts;
 * with allow_other the kernel checks modes (default_permissions), so
 * other users may read but not change the mounting user's files. */
static int fuse_arguments(const struct cfg *c, struct fuse_args *args)
{
	struct buf fsname = BUF_INIT;
	int rc = fuse_opt_add_arg(args, "imgfs");

	if (!rc && c->fs.debug)
		rc = fuse_opt_add_arg(args, "-d");
	if (!rc && buf_addf(&fsname, "-ofsname=%s,subtype=imgfs", c->s3.bucket))
		rc = -1;
	if (!rc)
		rc = fuse_opt_add_arg(args, fsname.data);
	if (!rc && has_fuse_opt(c, "allow_other") &&
	    !has_fuse_opt(c, "default_permissions"))
		rc = fuse_opt_add_arg(args, "-odefault_permissions");
	for (char **o = c->fuse_opts; !rc && o && *o; o++) {
		rc = fuse_opt_add_arg(args, "-o");
		if (!rc)
			rc = fuse_opt_add_arg(args, *o);
	}
	buf_release(&fsname);
	return rc ? ENOMEM : 0;
}

#define FS_MAX_READ_MIN 4096u
#define FS_MAX_READ_MAX (128u << 20)

/* The value of -o max_read=N, checked before mounting: 0 when absent,
 * EINVAL (with a message in err) when it is not a size libfuse and the
 * kernel accept. */
static int max_read_option(const struct cfg *c, unsigned *out, char *err,
			   size_t errlen)
{
	*out = 0;
	for (char **o = c->fuse_opts; o && *o; o++) {
		const char *v = *o + strlen("max_read=");
		char *end = NULL;
		unsigned long n;

		if (strncmp(*o, "max_read=", strlen("max_read=")))
			continue;
		errno = 0;
		n = strtoul(v, &end, 10);
		if (errno || end == v || *end || n < FS_MAX_READ_MIN ||
		    n > FS_MAX_READ_MAX) {
			snprintf(err, errlen,
				 "max_read=%s: expected a number of bytes from %u to %u",
				 v, FS_MAX_READ_MIN, FS_MAX_READ_MAX);
			return EINVAL;
		}
		*out = (unsigned)n;
	}
	return 0;
}

/* Mount, daemonise, serve until unmounted or signalled. */
static int serve(struct fs_state *st, struct fuse_args *args)
{
	struct fuse *fuse = fuse_new(args, fs_operations(),
				     sizeof(*fs_operations()), st);
	struct fuse_loop_config *loop;
	int rc = 1;

	if (!fuse)
		return 1;
	if (fuse_mount(fuse, st->cfg->fs.mountpoint))
		goto out_destroy;
	if (fuse_daemonize(st->cfg->fs.foreground))
		goto out_unmount;
	if (!st->cfg->fs.foreground)
		log_setup(st->cfg->log_level, 1);
	if (fuse_set_signal_handlers(fuse_get_session(fuse)))
		goto out_unmount;
	loop = fuse_loop_cfg_create();
	if (loop) {
		fuse_loop_cfg_set_max_threads(loop, 64);
		fuse_loop_cfg_set_idle_threads(loop, 16);
		rc = fuse_loop_mt(fuse, loop) < 0 || st->start_error ? 1 : 0;
		fuse_loop_cfg_destroy(loop);
	}
	fuse_remove_signal_handlers(fuse_get_session(fuse));
out_unmount:
	fuse_unmount(fuse);
out_destroy:
	fuse_destroy(fuse);
	return rc;
}

static int run(struct cfg *c)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fs_state st = {c, NULL, 0, 0, NULL};
	struct creds *creds;
	char err[512];
	int rc = 1;

	log_setup(c->log_level, 0);
	if (max_read_option(c, &st.max_read, err, sizeof(err))) {
		fprintf(stderr, "imgfs: %s\n", err);
		return 2;
	}
	if (check_mountpoint(&c->fs, err, sizeof(err))) {
		fprintf(stderr, "imgfs: %s\n", err);
		return 1;
	}
	creds = creds_create(&c->creds, environ, err, sizeof(err));
	if (!creds) {
		fprintf(stderr, "imgfs: %s\n", err);
		return 1;
	}
	st.ns = ns_new(c, creds);
	if (!st.ns) {
		fprintf(stderr, "imgfs: %s\n", strerror(errno));
		goto out_creds;
	}
	if (make_dirs(c->cache.dir, 0700)) {
		fprintf(stderr, "imgfs: cannot create cache_dir %s: %s\n",
			c->cache.dir, strerror(errno));
		goto out_ns;
	}
	if (ns_check(st.ns, err, sizeof(err))) {
		fprintf(stderr, "imgfs: %s\n", err);
		goto out_ns;
	}
	if (fuse_arguments(c, &args) == 0)
		rc = serve(&st, &args);
	fuse_opt_free_args(&args);
out_ns:
	ns_free(st.ns);
out_creds:
	creds_destroy(creds);
	return rc;
}

/* imgfs --thumb-worker-probe: start one sandboxed thumbnail worker, ask
 * it to open a file and a socket, print what each got; 0 when both were
 * refused. */
static int thumb_worker_probe(void)
{
	struct pool *p = pool_create(1, 10000, 0, NULL);
	int open_err = 0, sock_err = 0, rc;

	if (!p)
		return 1;
	rc = pool_probe(p, &open_err, &sock_err);
	pool_destroy(p);
	if (rc) {
		fprintf(stderr, "imgfs: the worker did not answer: %s\n",
			strerror(rc));
		return 1;
	}
	printf("open: %s\nsocket: %s\n",
	       open_err ? strerror(open_err) : "allowed",
	       sock_err ? strerror(sock_err) : "allowed");
	return open_err && sock_err ? 0 : 1;
}

#define IMGFS_MMAP_THRESHOLD (2 << 20)
#define IMGFS_TRIM (2 << 20)

int main(int argc, char **argv)
{
	struct cfg c;
	char err[512], *out = NULL;
	int rc;

	/* No core dump (nor ptrace by the same user) may hold the secret key,
	 * a session token or a signing key: they pass through buffers of
	 * libcurl, OpenSSL and the stack that no madvise() can reach. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	rc = worker_dispatch(argc, argv);
	if (rc >= 0)
		return rc;
	if (argc == 2 && strcmp(argv[1], "--thumb-worker-probe") == 0)
		return thumb_worker_probe();
	/* Buffers the size of a FUSE request or a cache block (1 MiB) come
	 * from malloc's arenas and are reused warm: mapping each afresh cost
	 * a page fault per 4 KiB read (a fifth of a sequential read's CPU).
	 * Upload parts and decode buffers, larger, are mapped and unmapped,
	 * so what memory_max gives back leaves the process; fixed values stop
	 * glibc moving the threshold after each free, and an arena keeps at
	 * most IMGFS_TRIM free bytes at its top. */
	mallopt(M_MMAP_THRESHOLD, IMGFS_MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, IMGFS_TRIM);
	memset(&c, 0, sizeof(c));
	switch (cfg_parse(&c, argc, argv, environ, err, sizeof(err), &out)) {
	case CFG_OK:
		rc = run(&c);
		break;
	case CFG_EXIT_OK:
		fputs(out ? out : "", stdout);
		rc = 0;
		break;
	default:
		fprintf(stderr, "%s\n", err);
		rc = 2;
		break;
	}
	free(out);
	cfg_release(&c);
	return rc;
}
