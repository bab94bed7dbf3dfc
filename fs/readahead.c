/*
 * readahead: the kernel's read-ahead window of this mount (readahead.h).
 */
#define _GNU_SOURCE
#include "readahead.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/log.h"

struct readahead {
	pthread_t thread;
	const char *mountpoint;
	uint64_t kib;
};

int readahead_attr_path(unsigned long dev, char *out, unsigned n)
{
	int len = snprintf(out, n, "/sys/class/bdi/%u:%u/read_ahead_kb",
			   major(dev), minor(dev));

	return len < 0 || (unsigned)len >= n ? ENAMETOOLONG : 0;
}

/* Write text to path whole: 0 or an errno. */
static int write_attr(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t len = (ssize_t)strlen(text), put;
	int err;

	if (fd < 0)
		return errno;
	put = write(fd, text, (size_t)len);
	err = put == len ? 0 : put < 0 ? errno : EIO;
	if (close(fd) && !err)
		err = errno;
	return err;
}

#define FUSE_MAGIC 0x65735546 /* statfs f_type of a FUSE mount */

static int set_window(const struct readahead *r)
{
	struct statfs sfs;
	struct stat st;
	char path[64], text[32];
	int fd = open(r->mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return errno;
	/* statfs always reaches the daemon, and only once INIT is done; the
	 * same fd makes sure the device is this mount's, not the folder's
	 * below it should the mount be gone already. */
	if (fstatfs(fd, &sfs) || fstat(fd, &st))
		err = errno;
	else if (sfs.f_type != FUSE_MAGIC)
		err = ENOTCONN;
	close(fd);
	if (!err)
		err = readahead_attr_path(st.st_dev, path, sizeof(path));
	if (err)
		return err;
	snprintf(text, sizeof(text), "%" PRIu64 "\n", r->kib);
	return write_attr(path, text);
}

static void *run(void *arg)
{
	const struct readahead *r = arg;
	int err = set_window(r);

	if (!err)
		log_debug("kernel read-ahead of %s set to %" PRIu64 " KiB",
			  r->mountpoint, r->kib);
	else if (err == EACCES || err == EPERM || err == EROFS)
		log_debug("kernel read-ahead of %s left as it is (only root "
			  "can set it): %s", r->mountpoint, strerror(err));
	else
		log_warn("cannot set the kernel read-ahead of %s: %s",
			 r->mountpoint, strerror(err));
	return NULL;
}

struct readahead *readahead_start(const char *mountpoint, uint64_t bytes)
{
	struct readahead *r;
	int err;

	if (bytes < 1024)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r) {
		log_warn("cannot set the kernel read-ahead: %s", strerror(ENOMEM));
		return NULL;
	}
	r->mountpoint = mountpoint;
	r->kib = bytes / 1024;
	err = pthread_create(&r->thread, NULL, run, r);
	if (err) {
		log_warn("cannot set the kernel read-ahead: %s", strerror(err));
		free(r);
		return NULL;
	}
	return r;
}

void readahead_finish(struct readahead *r)
{
	if (!r)
		return;
	pthread_join(r->thread, NULL);
	free(r);
}
