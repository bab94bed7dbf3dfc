/*
 * upload_spool: the spool file, and writing in MEM and REMOTE modes (see
 * upload_int.h).
 */
#define _GNU_SOURCE /* O_TMPFILE, mkostemp */
#include "io/upload_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/journal.h"
#include "base/membudget.h"
#include "base/log.h"
#include "io/mime.h"


/* ---- the spool file --------------------------------------------------- */

/* The spool file fd opened again with O_DIRECT (its own descriptor, so
 * reads and unaligned writes stay buffered), or -1 where the file system
 * or /proc does not allow it. */
static int spool_open_direct(int fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
}

/* Create an anonymous 0600 file in the spool directory. */
static int spool_open(struct upload *u)
{
	const char *dir = u->conf->spool_dir;
	char path[PATH_MAX];
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR ||
		       errno == EINVAL)) {
		if (snprintf(path, sizeof(path), "%s/.imgfs-spool-XXXXXX",
			     dir) >= (int)sizeof(path))
			return ENAMETOOLONG;
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
	}
	if (fd < 0) {
		int rc = errno;

		log_error("upload %s: cannot create a spool file in %s: %s",
			  u->lkey, dir, strerror(rc));
		return rc;
	}
	u->spool_fd = fd;
	u->spool_dfd = spool_open_direct(fd);
	return 0;
}

/* Take from the spool budget what u's spool needs to hold bytes up to
 * end. 0 or ENOSPC. */
static int spool_charge(struct upload *u, uint64_t end)
{
	struct membudget *b = u->conf->spool_budget;
	int rc = 0;

	if (!b)
		return 0;
	pthread_mutex_lock(&u->lock);
	if (end > u->spool_charged) {
		if (membudget_try(b, end - u->spool_charged))
			u->spool_charged = end;
		else
			rc = ENOSPC;
	}
	pthread_mutex_unlock(&u->lock);
	return rc;
}

static void spool_uncharge(struct upload *u)
{
	pthread_mutex_lock(&u->lock);
	membudget_give(u->conf->spool_budget, u->spool_charged);
	u->spool_charged = 0;
	pthread_mutex_unlock(&u->lock);
}

/* Close the spool; no worker may be running. */
void up_spool_close(struct upload *u)
{
	if (u->spool_fd >= 0)
		close(u->spool_fd);
	if (u->spool_dfd >= 0)
		close(u->spool_dfd);
	u->spool_fd = -1;
	u->spool_dfd = -1;
	spool_uncharge(u);
	pthread_mutex_lock(&u->lock);
	u->tee_err = 0;
	pthread_mutex_unlock(&u->lock);
}

/* pread or pwrite all of len bytes at off, through short transfers and
 * EINTR. 0 or errno (ENOSPC; EIO for an unexpected end). */
static int spool_io(int fd, char *p, size_t len, uint64_t off, int writing)
{
	while (len > 0) {
		ssize_t n = writing ? pwrite(fd, p, len, (off_t)off)
				    : pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write len bytes at off: the whole pages of an aligned buffer at an
 * aligned offset by direct I/O (falling back to buffered writes where the
 * file system refuses it), the rest buffered. Several workers may write
 * disjoint ranges at once. */
static int spool_write(struct upload *u, const void *data, size_t len,
		       uint64_t off)
{
	size_t direct = len & ~(size_t)(UP_DIRECT_ALIGN - 1);
	int dfd = u->spool_dfd;

	if (dfd < 0 || off % UP_DIRECT_ALIGN ||
	    (uintptr_t)data % UP_DIRECT_ALIGN)
		direct = 0;
	if (direct) {
		int rc = spool_io(dfd, (char *)data, direct, off, 1);

		if (rc == EINVAL)
			direct = 0;
		else if (rc)
			return rc;
	}
	return spool_io(u->spool_fd, (char *)data + direct, len - direct,
			off + direct, 1);
}

int up_spool_pwrite(struct upload *u, const void *data, size_t len,
		    uint64_t off)
{
	int rc = spool_charge(u, off + len);

	if (rc) {
		uint64_t max = membudget_max(u->conf->spool_budget);

		log_debug("upload %s: the spool would pass spool_max (%llu "
			  "bytes)", u->lkey, (unsigned long long)max);
		return rc;
	}
	/* only read from */
	return spool_write(u, data, len, off);
}

/* Read len bytes at off; the spool always holds them. 0 or errno. */
int up_spool_pread(int fd, void *data, size_t len, uint64_t off)
{
	return spool_io(fd, data, len, off, 0);
}

/* ---- MEM mode --------------------------------------------------------- */

/* Copy n bytes (zeros when data is NULL) at off, inside one held buffer. */
static int mem_copy(struct upload *u, const char *data, size_t n, uint64_t off)
{
	struct upload_part **pp = off < up_part_size(u) ? &u->first : &u->cur;
	size_t rel = (size_t)(off < up_part_size(u) ? off : off - up_cur_start(u));
	struct upload_part *p;

	if (!*pp) {
		*pp = up_part_get(u, up_part_size(u), pp == &u->first ? 1 : u->next,
				  0);
		if (!*pp)
			return ENOMEM;
	}
	p = *pp;
	up_part_charge(p, rel + n);
	if (rel > p->len)
		memset(p->data + p->len, 0, rel - p->len);
	if (data)
		memcpy(p->data + rel, data, n);
	else
		memset(p->data + rel, 0, n);
	if (rel + n > p->len)
		p->len = rel + n;
	return 0;
}

/* Write a held part into the spool copy, while the tee works. */
void up_mem_tee(struct upload *u, const struct upload_part *p,
		    uint64_t off)
{
	int rc;

	if (!u->tee)
		return;
	rc = u->spool_fd < 0 ? spool_open(u) : 0;
	if (!rc)
		rc = up_spool_pwrite(u, p->data, p->len, off);
	if (rc) {
		log_warn("upload %s: spool copy stopped (%s): seeking back "
			 "into parts already sent will fail", u->lkey,
			 strerror(rc));
		/* Not closed here: workers may still be writing parts into it
		 * (a closed fd number could be reused by another file). It is
		 * marked incomplete and closed once no worker runs. */
		pthread_mutex_lock(&u->lock);
		if (!u->tee_err)
			u->tee_err = rc;
		pthread_mutex_unlock(&u->lock);
		u->tee = 0;
	}
}

/* Hand the full part being filled to the workers and start the next one;
 * the multipart upload begins with the first part handed out. */
static int mem_send_cur(struct upload *u)
{
	struct upload_part *p = u->cur;
	int rc;

	if (!p)
		return EIO; /* cannot happen: a full part is always held */
	if (!u->upload_id) {
		rc = up_mpu_begin(u, u->first->data, u->first->len);
		if (rc) {
			u->broken = 1; /* commit must not PUT the head alone */
			return rc;
		}
	}
	if (u->tee && u->spool_fd < 0 && spool_open(u) != 0) {
		log_warn("upload %s: no spool copy: seeking back into parts "
			 "already sent will fail", u->lkey);
		u->tee = 0;
	}
	p->tee = u->tee;
	u->cur = NULL;
	u->next++;
	rc = up_workers_submit(u, p);
	if (rc) {
		log_error("upload %s: a part failed; the file is lost", u->lkey);
		u->broken = 1;
		return EIO;
	}
	return 0;
}

/*
 * Can [off, off+len) be written in memory? Not when it touches a part
 * already handed out, nor when it starts past the end of the part being
 * filled (a gap over whole parts).
 */
int up_mem_fits(const struct upload *u, size_t len, uint64_t off)
{
	uint64_t ps = up_part_size(u), end = off + len;

	if (u->next > 2 && off < up_cur_start(u) && end > ps)
		return 0;
	return off <= u->size || off <= up_cur_start(u) + ps;
}

/* Write in MEM mode; up_mem_fits() said yes. Zeros fill a gap from size. */
int up_mem_write(struct upload *u, const char *data, size_t len,
		     uint64_t off)
{
	uint64_t ps = up_part_size(u);
	int rc;

	if (off > u->size) {
		rc = up_mem_write(u, NULL, (size_t)(off - u->size), u->size);
		if (rc)
			return rc;
	}
	while (len > 0) {
		size_t room, n;

		if (off >= ps && off >= up_cur_start(u) + ps) {
			rc = mem_send_cur(u);
			if (rc)
				return rc;
		}
		room = (size_t)(off < ps ? ps - off : up_cur_start(u) + ps - off);
		n = len < room ? len : room;
		rc = mem_copy(u, data, n, off);
		if (rc)
			return rc;
		if (data)
			data += n;
		off += n;
		len -= n;
		if (off > u->size)
			u->size = off;
	}
	return 0;
}

/* Drop the buffers and any multipart upload: the content is elsewhere. */
void up_mem_drop(struct upload *u)
{
	up_mpu_abort(u);
	up_part_put(u, u->first);
	up_part_put(u, u->cur);
	u->first = u->cur = NULL;
	u->next = 2;
	up_spares_free(u);
}

/* Once the workers are idle: does the spool hold every part sent? */
int up_tee_complete(struct upload *u)
{
	int ok;

	up_workers_wait(u);
	pthread_mutex_lock(&u->lock);
	ok = u->tee && !u->tee_err;
	pthread_mutex_unlock(&u->lock);
	return ok;
}

/* Move MEM content into the spool. EIO when parts were sent without a
 * spool copy: their bytes exist nowhere but in the unfinished upload. */
static int mem_to_spool(struct upload *u, const char *why)
{
	int rc = 0;

	if (u->next > 2 && !up_tee_complete(u)) {
		log_error("upload %s: %s after %u parts were streamed; seeking "
			  "back past the first part of a large file needs "
			  "the spool copy (tee)", u->lkey, why, u->next - 2);
		return EIO;
	}
	if (u->spool_fd < 0)
		rc = spool_open(u);
	if (!rc && u->first)
		rc = up_spool_pwrite(u, u->first->data, u->first->len, 0);
	if (!rc && u->cur)
		rc = up_spool_pwrite(u, u->cur->data, u->cur->len,
				     up_cur_start(u));
	if (!rc && ftruncate(u->spool_fd, (off_t)u->size) != 0)
		rc = errno;
	if (rc) {
		log_error("upload %s: cannot spool: %s", u->lkey, strerror(rc));
		return rc;
	}
	up_mem_drop(u);
	u->tee = 0;
	u->mode = UPLOAD_SPOOL;
	return 0;
}

/* ---- REMOTE mode ------------------------------------------------------ */

struct load_sink {
	struct upload *u;
	uint64_t off;
	int err;
};

static int load_sink_write(void *arg, const void *data, size_t len)
{
	struct load_sink *s = arg;

	s->err = up_spool_pwrite(s->u, data, len, s->off);
	s->off += len;
	return s->err;
}

/* Copy the object into a new spool; a missing object is empty. */
static int remote_to_spool(struct upload *u)
{
	struct load_sink sink = {.u = u};
	int rc = u->spool_fd < 0 ? spool_open(u) : 0;

	if (rc)
		return rc;
	rc = ftruncate(u->spool_fd, 0) ? errno : 0;
	if (!rc && u->size > 0)
		rc = store_get(u->store, u->key, 0, 0, NULL, load_sink_write, &sink,
			    NULL);
	if (rc == ENOENT) {
		log_warn("upload %s: object vanished; starting empty", u->lkey);
		rc = ftruncate(u->spool_fd, 0) ? errno : 0;
		sink.off = 0;
	}
	if (rc) {
		rc = sink.err ? sink.err : EIO;
		log_error("upload %s: cannot load the object: %s", u->lkey,
			  strerror(rc));
		return rc;
	}
	u->size = sink.off;
	u->mode = UPLOAD_SPOOL;
	return 0;
}

/* Get the whole content into the spool, whatever the mode. */
int up_to_spool(struct upload *u, const char *why)
{
	if (u->mode == UPLOAD_SPOOL)
		return 0;
	if (u->mode == UPLOAD_REMOTE)
		return remote_to_spool(u);
	return mem_to_spool(u, why);
}
