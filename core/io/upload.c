/*
 * upload: a file being written, streamed to S3 as it grows (see upload.h).
 *
 * Three modes. MEM: part 1 and the part being filled live in part-sized
 * buffers; every other full part has been handed to this upload's workers,
 * which send it as a multipart part and then reuse or free its buffer.
 * SPOOL: the content is a spool file (unlinked at once), uploaded whole at
 * commit. REMOTE: the object in the bucket is the content (an existing
 * object nobody has written yet, or a streamed file after its commit).
 *
 * The workers are a small per-upload thread set: conf->parts_in_flight
 * threads, started with the multipart upload and joined when it completes
 * or is aborted, so an idle file holds no thread. The writer blocks while
 * that many parts are queued or in flight (backpressure), so memory is
 * bounded by parts_in_flight + 2 part buffers. Buffers are anonymous
 * mappings, returned to the system when freed.
 */
#define _GNU_SOURCE /* O_TMPFILE, mkostemp */
#include "io/upload.h"

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
#include "base/log.h"
#include "io/mime.h"

#define UPLOAD_MIN_PART (5ULL << 20)  /* S3's smallest part but the last */
#define UPLOAD_MAX_PART (5ULL << 30)  /* S3's largest part */
#define UPLOAD_MAX_PARTS 10000u       /* S3's part number limit */

enum upload_mode { UPLOAD_MEM, UPLOAD_SPOOL, UPLOAD_REMOTE };

/* One part buffer: held by the writer, queued, being sent, or spare. */
struct upload_part {
	struct upload_part *next; /* link in the queue or the spare list */
	size_t map_len;           /* bytes mapped, this header included */
	size_t cap;               /* bytes of data room */
	size_t len;               /* bytes of data used */
	unsigned number;          /* part number, from 1 */
	int tee;                  /* the worker also writes it to the spool */
	char data[];
};

struct upload {
	struct store *store;
	struct metrics *m;
	const struct upload_conf *conf;
	char *key;
	enum upload_mode mode;
	uint64_t size;          /* the file's size, in every mode */
	int dirty;              /* changed since create or the last commit */
	int broken;             /* a write failed or data was lost: every
				 * call and the commit fail with EIO */
	char etag[STORE_ETAG_MAX]; /* from the last commit, "" when none */

	/*
	 * MEM. The part being filled is number next, covering
	 * [(next-1)*ps, next*ps); parts 2..next-1 went to the workers and,
	 * with tee, to the spool too. first->len == min(size, ps) and
	 * cur->len == size - start of part next (first and cur are NULL while
	 * they would be empty).
	 */
	struct upload_part *first;
	struct upload_part *cur;
	unsigned next;
	int tee;                /* parts handed out also go to the spool */

	int spool_fd;           /* -1 when there is no spool file */

	/* The multipart upload in progress, NULL when none; the workers read
	 * it, and it changes only while none are running. */
	char *upload_id;
	pthread_t *threads;
	unsigned nthreads;

	pthread_mutex_t lock;
	pthread_cond_t cond;            /* signals any change below */
	struct upload_part *queue;      /* protected by lock: parts to send */
	struct upload_part **queue_tail;/* protected by lock */
	struct upload_part *spare;      /* protected by lock: reusable */
	unsigned nspare;                /* protected by lock */
	unsigned busy;                  /* protected by lock: queued + sending */
	int stop;                       /* protected by lock: workers exit */
	int err;                        /* protected by lock: first failure */
	int tee_err;                    /* protected by lock: spool copy failed */
	struct store_part *parts;          /* protected by lock: by number - 1 */
	unsigned nparts;                /* protected by lock: highest number */
	unsigned parts_cap;             /* protected by lock */
};

static uint64_t part_size(const struct upload *u)
{
	return u->conf->part_size;
}

/* Start offset of the part being filled in MEM mode. */
static uint64_t cur_start(const struct upload *u)
{
	return (uint64_t)(u->next - 1) * part_size(u);
}

/* ---- part buffers ---------------------------------------------------- */

static struct upload_part *part_map(size_t cap)
{
	size_t map_len = sizeof(struct upload_part) + cap;
	struct upload_part *p;

	p = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	p->map_len = map_len;
	p->cap = cap;
	return p;
}

static void part_unmap(struct upload_part *p)
{
	if (p)
		munmap(p, p->map_len);
}

/* A buffer with room for cap bytes, len 0; NULL with errno ENOMEM. */
static struct upload_part *part_get(struct upload *u, size_t cap,
				    unsigned number)
{
	struct upload_part *p = NULL;

	pthread_mutex_lock(&u->lock);
	if (u->spare && u->spare->cap >= cap) {
		p = u->spare;
		u->spare = p->next;
		u->nspare--;
	}
	pthread_mutex_unlock(&u->lock);
	if (!p)
		p = part_map(cap);
	if (p) {
		p->next = NULL;
		p->len = 0;
		p->number = number;
		p->tee = 0;
	}
	return p;
}

/* Keep p for reuse (at most one spare per worker) or free it. */
static void part_put_locked(struct upload *u, struct upload_part *p)
{
	if (u->nspare >= u->nthreads) {
		part_unmap(p);
		return;
	}
	p->next = u->spare;
	u->spare = p;
	u->nspare++;
}

static void part_put(struct upload *u, struct upload_part *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&u->lock);
	part_put_locked(u, p);
	pthread_mutex_unlock(&u->lock);
}

static void spares_free(struct upload *u)
{
	struct upload_part *p;

	pthread_mutex_lock(&u->lock);
	while ((p = u->spare)) {
		u->spare = p->next;
		part_unmap(p);
	}
	u->nspare = 0;
	pthread_mutex_unlock(&u->lock);
}

static int spool_pwrite(int fd, const void *data, size_t len, uint64_t off);

/* ---- workers ---------------------------------------------------------- */

/* Record the outcome of sending p and recycle its buffer. */
static void part_done_locked(struct upload *u, struct upload_part *p, int rc,
			     const char *etag, int tee_rc)
{
	if (tee_rc && !u->tee_err) {
		log_warn("upload %s: spool copy stopped (%s): seeking back "
			 "into parts already sent will fail", u->key,
			 strerror(tee_rc));
		u->tee_err = tee_rc;
	}
	if (rc == 0)
		memcpy(u->parts[p->number - 1].etag, etag, STORE_ETAG_MAX);
	else if (!u->err)
		u->err = rc;
	part_put_locked(u, p);
	u->busy--;
	pthread_cond_broadcast(&u->cond);
}

static void *upload_worker(void *arg)
{
	struct upload *u = arg;
	struct upload_part *p;
	char etag[STORE_ETAG_MAX];
	int rc, tee_rc;

	pthread_mutex_lock(&u->lock);
	for (;;) {
		while (!u->queue && !u->stop)
			pthread_cond_wait(&u->cond, &u->lock);
		p = u->queue;
		if (!p)
			break;
		u->queue = p->next;
		if (!u->queue)
			u->queue_tail = &u->queue;
		rc = u->err ? ECANCELED : 0;
		tee_rc = 0;
		pthread_mutex_unlock(&u->lock);
		if (p->tee)
			tee_rc = spool_pwrite(u->spool_fd, p->data, p->len,
					      (uint64_t)(p->number - 1) *
					      part_size(u));
		if (!rc)
			rc = store_mpu_part(u->store, u->key, u->upload_id, p->number,
					 p->data, p->len, etag);
		if (rc && rc != ECANCELED)
			log_error("upload %s: part %u failed: %s", u->key,
				  p->number, strerror(rc));
		pthread_mutex_lock(&u->lock);
		part_done_locked(u, p, rc, etag, tee_rc);
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

/* Tell the workers to exit once the queue is empty, and join them. */
static void workers_stop(struct upload *u)
{
	pthread_mutex_lock(&u->lock);
	u->stop = 1;
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
	for (unsigned i = 0; i < u->nthreads; i++)
		pthread_join(u->threads[i], NULL);
	free(u->threads);
	u->threads = NULL;
	u->nthreads = 0;
	spares_free(u);
}

/* Start the worker threads with every signal blocked, so signals go to the
 * daemon's own threads. 0 or errno. */
static int workers_start(struct upload *u)
{
	unsigned n = u->conf->parts_in_flight ? u->conf->parts_in_flight : 1;
	sigset_t all, old;
	int rc = 0;

	u->threads = calloc(n, sizeof(*u->threads));
	if (!u->threads)
		return ENOMEM;
	pthread_mutex_lock(&u->lock);
	u->stop = 0;
	u->err = 0;
	u->nparts = 0;
	if (u->parts)
		memset(u->parts, 0, u->parts_cap * sizeof(*u->parts));
	pthread_mutex_unlock(&u->lock);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (u->nthreads = 0; u->nthreads < n; u->nthreads++) {
		rc = pthread_create(&u->threads[u->nthreads], NULL,
				    upload_worker, u);
		if (rc)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		log_error("upload %s: cannot start a worker: %s", u->key,
			  strerror(rc));
		workers_stop(u);
	}
	return rc;
}

/* Make room in the etag table for part number; lock held. */
static int parts_reserve_locked(struct upload *u, unsigned number)
{
	unsigned cap = u->parts_cap ? u->parts_cap : 64;
	struct store_part *parts;

	if (number <= u->parts_cap)
		return 0;
	while (cap < number)
		cap *= 2;
	parts = realloc(u->parts, cap * sizeof(*parts));
	if (!parts)
		return ENOMEM;
	memset(parts + u->parts_cap, 0,
	       (cap - u->parts_cap) * sizeof(*parts));
	u->parts = parts;
	u->parts_cap = cap;
	return 0;
}

/*
 * Queue p for sending, after waiting while every worker is busy. p belongs
 * to the workers afterwards, also on failure. 0, or EIO when a part has
 * failed already, or ENOMEM.
 */
static int workers_submit(struct upload *u, struct upload_part *p)
{
	int rc;

	if (!u->nthreads) {
		part_put(u, p);
		return EIO; /* cannot happen: workers run with the upload */
	}
	pthread_mutex_lock(&u->lock);
	while (u->busy >= u->nthreads && !u->err)
		pthread_cond_wait(&u->cond, &u->lock);
	rc = u->err ? EIO : parts_reserve_locked(u, p->number);
	if (rc) {
		if (!u->err)
			u->err = rc;
		part_put_locked(u, p);
		pthread_mutex_unlock(&u->lock);
		return rc;
	}
	u->parts[p->number - 1].number = p->number;
	if (p->number > u->nparts)
		u->nparts = p->number;
	p->next = NULL;
	*u->queue_tail = p;
	u->queue_tail = &p->next;
	u->busy++;
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

/* Wait until nothing is queued or in flight. 0, or EIO after a failure. */
static int workers_wait(struct upload *u)
{
	int rc;

	pthread_mutex_lock(&u->lock);
	while (u->busy)
		pthread_cond_wait(&u->cond, &u->lock);
	rc = u->err ? EIO : 0;
	pthread_mutex_unlock(&u->lock);
	return rc;
}

/* ---- the multipart upload -------------------------------------------- */

/* Create the multipart upload, typed from head, and start the workers. */
static int mpu_begin(struct upload *u, const void *head, size_t head_len)
{
	char type[MIME_TYPE_MAX];
	struct store_put_opts opts = {.content_type = type};
	long long row;
	int rc;

	mime_sniff(u->conf->mime, head, head_len, u->key, type);
	row = journal_begin(u->conf->journal, u->key);
	rc = store_mpu_create(u->store, u->key, &opts, &u->upload_id);
	if (rc) {
		log_error("upload %s: cannot start a multipart upload: %s",
			  u->key, strerror(rc));
		journal_cancel(u->conf->journal, row);
		u->upload_id = NULL;
		return EIO;
	}
	journal_bind(u->conf->journal, row, u->upload_id);
	rc = workers_start(u);
	if (rc) {
		if (store_mpu_abort(u->store, u->key, u->upload_id))
			journal_orphan(u->conf->journal, u->upload_id);
		else
			journal_done(u->conf->journal, u->upload_id);
		free(u->upload_id);
		u->upload_id = NULL;
	}
	return rc;
}

/* Skip what is queued, wait for what is in flight, abort the upload. */
static void mpu_abort(struct upload *u)
{
	int rc;

	if (!u->upload_id)
		return;
	pthread_mutex_lock(&u->lock);
	if (!u->err)
		u->err = ECANCELED;
	pthread_mutex_unlock(&u->lock);
	workers_wait(u);
	workers_stop(u);
	rc = store_mpu_abort(u->store, u->key, u->upload_id);
	if (rc && rc != ENOENT) {
		log_error("upload %s: cannot abort multipart upload: %s; "
			  "retrying later", u->key, strerror(rc));
		journal_orphan(u->conf->journal, u->upload_id);
	} else {
		journal_done(u->conf->journal, u->upload_id);
	}
	free(u->upload_id);
	u->upload_id = NULL;
}

/* The 16 bytes of an MD5 ETag ("hex", quotes optional). 0 or EINVAL. */
static int etag_md5(const char *etag, unsigned char md5[16])
{
	char plain[STORE_ETAG_MAX];
	size_t len = strlen(etag), n = 0;

	if (len >= 2 && etag[0] == '"' && etag[len - 1] == '"') {
		etag++;
		len -= 2;
	}
	if (len >= sizeof(plain))
		return EINVAL;
	memcpy(plain, etag, len);
	plain[len] = '\0';
	if (!OPENSSL_hexstr2buf_ex(md5, 16, &n, plain, '\0') || n != 16)
		return EINVAL;
	return 0;
}

/*
 * The ETag S3 gives the object these parts make: the MD5 of the parts'
 * binary MD5s, "-" and the count, quoted. 0, or EINVAL when a part's ETag
 * is no MD5 (SSE-KMS) or MD5 is unavailable.
 */
static int mpu_expected_etag(const struct upload *u, char out[STORE_ETAG_MAX])
{
	unsigned char md5[16], sum[EVP_MAX_MD_SIZE];
	char hex[2 * 16 + 1];
	unsigned int sum_len = 0;
	size_t hex_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL);

	for (unsigned i = 0; ok && i < u->nparts; i++)
		ok = etag_md5(u->parts[i].etag, md5) == 0 &&
		     EVP_DigestUpdate(ctx, md5, sizeof(md5));
	ok = ok && EVP_DigestFinal_ex(ctx, sum, &sum_len) && sum_len == 16 &&
	     OPENSSL_buf2hexstr_ex(hex, sizeof(hex), &hex_len, sum, sum_len,
				   '\0');
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return EINVAL;
	snprintf(out, STORE_ETAG_MAX, "\"%s-%u\"", hex, u->nparts);
	return 0;
}

/*
 * Completion failed (say its reply was lost and the retry found no such
 * upload): is the object there anyway, made of exactly these parts?
 */
static int mpu_landed(struct upload *u)
{
	char want[STORE_ETAG_MAX];
	struct store_object obj;

	if (mpu_expected_etag(u, want) != 0 ||
	    store_head(u->store, u->key, &obj) != 0 ||
	    strcasecmp(obj.etag, want) != 0)
		return 0;
	log_warn("upload %s: completion reported a failure, but the object "
		 "is complete (%s)", u->key, obj.etag);
	memcpy(u->etag, obj.etag, STORE_ETAG_MAX);
	return 1;
}

/* Wait for every part and complete the upload; on failure it is aborted.
 * 0 or EIO. */
static int mpu_complete(struct upload *u)
{
	int rc = workers_wait(u);

	for (unsigned i = 0; !rc && i < u->nparts; i++) {
		if (!u->parts[i].etag[0]) {
			log_error("upload %s: part %u was never sent", u->key,
				  i + 1);
			rc = EIO;
		}
	}
	if (!rc)
		rc = store_mpu_complete(u->store, u->key, u->upload_id, u->parts,
				     u->nparts, u->etag);
	if (rc && mpu_landed(u)) {
		mpu_abort(u); /* normally gone already (ENOENT, not logged) */
		return 0;
	}
	if (rc) {
		log_error("upload %s: multipart upload failed: %s", u->key,
			  strerror(rc));
		mpu_abort(u);
		return EIO;
	}
	workers_stop(u);
	journal_done(u->conf->journal, u->upload_id);
	free(u->upload_id);
	u->upload_id = NULL;
	return 0;
}

/* ---- the spool file --------------------------------------------------- */

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
			  u->key, dir, strerror(rc));
		return rc;
	}
	u->spool_fd = fd;
	return 0;
}

/* Close the spool; no worker may be running. */
static void spool_close(struct upload *u)
{
	if (u->spool_fd >= 0)
		close(u->spool_fd);
	u->spool_fd = -1;
	pthread_mutex_lock(&u->lock);
	u->tee_err = 0;
	pthread_mutex_unlock(&u->lock);
}

/* Write all of data at off. 0 or errno (ENOSPC, EIO). */
static int spool_pwrite(int fd, const void *data, size_t len, uint64_t off)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

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

/* Read len bytes at off; the spool always holds them. 0 or errno. */
static int spool_pread(int fd, void *data, size_t len, uint64_t off)
{
	char *p = data;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

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

/* ---- MEM mode --------------------------------------------------------- */

/* Copy n bytes (zeros when data is NULL) at off, inside one held buffer. */
static int mem_copy(struct upload *u, const char *data, size_t n, uint64_t off)
{
	struct upload_part **pp = off < part_size(u) ? &u->first : &u->cur;
	size_t rel = (size_t)(off < part_size(u) ? off : off - cur_start(u));
	struct upload_part *p;

	if (!*pp) {
		*pp = part_get(u, part_size(u), pp == &u->first ? 1 : u->next);
		if (!*pp)
			return ENOMEM;
	}
	p = *pp;
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
static void mem_tee(struct upload *u, const struct upload_part *p,
		    uint64_t off)
{
	int rc;

	if (!u->tee)
		return;
	rc = u->spool_fd < 0 ? spool_open(u) : 0;
	if (!rc)
		rc = spool_pwrite(u->spool_fd, p->data, p->len, off);
	if (rc) {
		log_warn("upload %s: spool copy stopped (%s): seeking back "
			 "into parts already sent will fail", u->key,
			 strerror(rc));
		spool_close(u);
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
		rc = mpu_begin(u, u->first->data, u->first->len);
		if (rc) {
			u->broken = 1; /* commit must not PUT the head alone */
			return rc;
		}
	}
	if (u->tee && u->spool_fd < 0 && spool_open(u) != 0) {
		log_warn("upload %s: no spool copy: seeking back into parts "
			 "already sent will fail", u->key);
		u->tee = 0;
	}
	p->tee = u->tee;
	u->cur = NULL;
	u->next++;
	rc = workers_submit(u, p);
	if (rc) {
		log_error("upload %s: a part failed; the file is lost", u->key);
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
static int mem_fits(const struct upload *u, size_t len, uint64_t off)
{
	uint64_t ps = part_size(u), end = off + len;

	if (u->next > 2 && off < cur_start(u) && end > ps)
		return 0;
	return off <= u->size || off <= cur_start(u) + ps;
}

/* Write in MEM mode; mem_fits() said yes. Zeros fill a gap from size. */
static int mem_write(struct upload *u, const char *data, size_t len,
		     uint64_t off)
{
	uint64_t ps = part_size(u);
	int rc;

	if (off > u->size) {
		rc = mem_write(u, NULL, (size_t)(off - u->size), u->size);
		if (rc)
			return rc;
	}
	while (len > 0) {
		size_t room, n;

		if (off >= ps && off >= cur_start(u) + ps) {
			rc = mem_send_cur(u);
			if (rc)
				return rc;
		}
		room = (size_t)(off < ps ? ps - off : cur_start(u) + ps - off);
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
static void mem_drop(struct upload *u)
{
	mpu_abort(u);
	part_put(u, u->first);
	part_put(u, u->cur);
	u->first = u->cur = NULL;
	u->next = 2;
	spares_free(u);
}

/* Once the workers are idle: does the spool hold every part sent? */
static int tee_complete(struct upload *u)
{
	int ok;

	workers_wait(u);
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

	if (u->next > 2 && !tee_complete(u)) {
		log_error("upload %s: %s after %u parts were streamed; seeking "
			  "back past the first part of a large file needs "
			  "the spool copy (tee)", u->key, why, u->next - 2);
		return EIO;
	}
	if (u->spool_fd < 0)
		rc = spool_open(u);
	if (!rc && u->first)
		rc = spool_pwrite(u->spool_fd, u->first->data, u->first->len, 0);
	if (!rc && u->cur)
		rc = spool_pwrite(u->spool_fd, u->cur->data, u->cur->len,
				  cur_start(u));
	if (!rc && ftruncate(u->spool_fd, (off_t)u->size) != 0)
		rc = errno;
	if (rc) {
		log_error("upload %s: cannot spool: %s", u->key, strerror(rc));
		return rc;
	}
	mem_drop(u);
	u->tee = 0;
	u->mode = UPLOAD_SPOOL;
	return 0;
}

/* ---- REMOTE mode ------------------------------------------------------ */

struct load_sink {
	int fd;
	uint64_t off;
	int err;
};

static int load_sink_write(void *arg, const void *data, size_t len)
{
	struct load_sink *s = arg;

	s->err = spool_pwrite(s->fd, data, len, s->off);
	s->off += len;
	return s->err;
}

/* Copy the object into a new spool; a missing object is empty. */
static int remote_to_spool(struct upload *u)
{
	struct load_sink sink = {.fd = -1};
	int rc = u->spool_fd < 0 ? spool_open(u) : 0;

	if (rc)
		return rc;
	sink.fd = u->spool_fd;
	rc = ftruncate(u->spool_fd, 0) ? errno : 0;
	if (!rc && u->size > 0)
		rc = store_get(u->store, u->key, 0, 0, NULL, load_sink_write, &sink,
			    NULL);
	if (rc == ENOENT) {
		log_warn("upload %s: object vanished; starting empty", u->key);
		rc = ftruncate(u->spool_fd, 0) ? errno : 0;
		sink.off = 0;
	}
	if (rc) {
		rc = sink.err ? sink.err : EIO;
		log_error("upload %s: cannot load the object: %s", u->key,
			  strerror(rc));
		return rc;
	}
	u->size = sink.off;
	u->mode = UPLOAD_SPOOL;
	return 0;
}

/* Get the whole content into the spool, whatever the mode. */
static int to_spool(struct upload *u, const char *why)
{
	if (u->mode == UPLOAD_SPOOL)
		return 0;
	if (u->mode == UPLOAD_REMOTE)
		return remote_to_spool(u);
	return mem_to_spool(u, why);
}

/* ---- commit ----------------------------------------------------------- */

static int put_small(struct upload *u, const void *data, size_t len)
{
	char type[MIME_TYPE_MAX];
	struct store_put_opts opts = {.content_type = type};
	int rc;

	mime_sniff(u->conf->mime, data, len, u->key, type);
	rc = store_put(u->store, u->key, len ? data : "", len, &opts, u->etag);
	if (rc)
		log_error("upload %s: put failed: %s", u->key, strerror(rc));
	return rc ? EIO : 0;
}

/* Copy part 1 and the part being filled into the spool copy, so that the
 * spool holds the whole file; turns the tee off when that fails. */
static void mem_tee_held(struct upload *u)
{
	if (u->first)
		mem_tee(u, u->first, 0);
	if (u->cur)
		mem_tee(u, u->cur, cur_start(u));
	if (u->tee && u->spool_fd >= 0 &&
	    ftruncate(u->spool_fd, (off_t)u->size) != 0)
		u->tee = 0;
}

/* Commit a streamed file that went multipart: send the held parts, complete.
 * Afterwards the content lives in the spool copy, or in the bucket. */
static int mem_commit_multipart(struct upload *u)
{
	int rc = 0, spooled;

	mem_tee_held(u);
	if (u->cur && u->cur->len > 0) {
		rc = workers_submit(u, u->cur);
		u->cur = NULL;
	}
	if (!rc) {
		rc = workers_submit(u, u->first);
		u->first = NULL;
	}
	spooled = tee_complete(u);
	rc = rc ? EIO : mpu_complete(u);
	mem_drop(u);
	u->tee = 0;
	if (spooled)
		u->mode = UPLOAD_SPOOL;
	else if (rc)
		u->broken = 1;
	else
		u->mode = UPLOAD_REMOTE;
	if (!spooled)
		spool_close(u);
	return rc;
}

static int mem_commit(struct upload *u)
{
	if (!u->upload_id && !u->cur)
		return put_small(u, u->first ? u->first->data : "",
				 u->first ? u->first->len : 0);
	if (!u->upload_id) {
		int rc = mpu_begin(u, u->first->data, u->first->len);

		if (rc)
			return EIO;
	}
	return mem_commit_multipart(u);
}

/* Part size for a spooled file: the configured one, grown so that the
 * file fits in S3's 10,000 parts. */
static size_t spool_part_size(const struct upload *u)
{
	uint64_t ps = part_size(u);
	uint64_t need = (u->size + UPLOAD_MAX_PARTS - 1) / UPLOAD_MAX_PARTS;

	if (need > ps)
		ps = (need + (1ULL << 20) - 1) & ~((1ULL << 20) - 1);
	return (size_t)ps;
}

/* Read part number (from 1) of the spool into a fresh buffer and queue it. */
static int spool_send_part(struct upload *u, size_t ps, unsigned number,
			   struct upload_part **first_out)
{
	uint64_t off = (uint64_t)(number - 1) * ps;
	size_t len = u->size - off < ps ? (size_t)(u->size - off) : ps;
	struct upload_part *p = part_get(u, ps, number);
	int rc;

	if (!p)
		return ENOMEM;
	rc = spool_pread(u->spool_fd, p->data, len, off);
	if (rc) {
		log_error("upload %s: cannot read the spool: %s", u->key,
			  strerror(rc));
		part_put(u, p);
		return rc;
	}
	p->len = len;
	if (first_out) {
		*first_out = p;
		return 0;
	}
	return workers_submit(u, p);
}

static int spool_commit_multipart(struct upload *u)
{
	size_t ps = spool_part_size(u);
	unsigned nparts = (unsigned)((u->size + ps - 1) / ps);
	struct upload_part *first = NULL;
	int rc;

	rc = spool_send_part(u, ps, 1, &first);
	if (!rc)
		rc = mpu_begin(u, first->data, first->len);
	if (rc) {
		part_put(u, first);
		spares_free(u);
		return EIO;
	}
	rc = workers_submit(u, first);
	for (unsigned n = 2; !rc && n <= nparts; n++)
		rc = spool_send_part(u, ps, n, NULL);
	if (rc) {
		mpu_abort(u);
		return EIO;
	}
	return mpu_complete(u);
}

static int spool_commit(struct upload *u)
{
	struct upload_part *p;
	int rc;

	if (u->size > part_size(u))
		return spool_commit_multipart(u);
	if (u->size == 0)
		return put_small(u, "", 0);
	p = part_get(u, (size_t)u->size, 1);
	if (!p)
		return EIO;
	rc = spool_pread(u->spool_fd, p->data, (size_t)u->size, 0);
	if (rc)
		log_error("upload %s: cannot read the spool: %s", u->key,
			  strerror(rc));
	rc = rc ? EIO : put_small(u, p->data, (size_t)u->size);
	part_unmap(p);
	return rc;
}

/* ---- the public interface -------------------------------------------- */

struct upload *upload_create(struct store *store, struct metrics *m,
			     const struct upload_conf *conf, const char *key,
			     int existing, uint64_t existing_size)
{
	struct upload *u;
	int err = ENOMEM;

	if (conf->part_size < UPLOAD_MIN_PART ||
	    conf->part_size > UPLOAD_MAX_PART) {
		errno = EINVAL;
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->key = strdup(key);
	if (!u->key)
		goto out_free;
	err = pthread_mutex_init(&u->lock, NULL);
	if (err)
		goto out_key;
	err = pthread_cond_init(&u->cond, NULL);
	if (err)
		goto out_mutex;
	u->store = store;
	u->m = m;
	u->conf = conf;
	u->mode = existing ? UPLOAD_REMOTE : UPLOAD_MEM;
	u->size = existing ? existing_size : 0;
	u->dirty = !existing;
	u->next = 2;
	u->tee = conf->tee_spool;
	u->spool_fd = -1;
	u->queue_tail = &u->queue;
	return u;

out_mutex:
	pthread_mutex_destroy(&u->lock);
out_key:
	free(u->key);
out_free:
	free(u);
	errno = err;
	return NULL;
}

/*
 * A write or truncate failed: the file is not what its writer made, so it
 * must never reach the bucket (a cp that failed half-way would otherwise
 * leave a truncated object at close).
 */
static void upload_break(struct upload *u, const char *what, int rc)
{
	if (!u->broken)
		log_error("upload %s: %s failed (%s); the file will not be "
			  "uploaded", u->key, what, strerror(rc));
	u->broken = 1;
}

static int write_any(struct upload *u, const void *data, size_t len,
		     uint64_t off)
{
	uint64_t limit = (uint64_t)UPLOAD_MAX_PARTS * part_size(u);
	int rc;

	if (u->mode == UPLOAD_MEM && mem_fits(u, len, off)) {
		if (off + len <= limit)
			return mem_write(u, data, len, off);
		log_error("upload %s: a streamed file is limited to %u parts",
			  u->key, UPLOAD_MAX_PARTS);
		return EFBIG;
	}
	rc = to_spool(u, "a write that seeks back");
	if (!rc)
		rc = spool_pwrite(u->spool_fd, data, len, off);
	if (!rc && off + len > u->size)
		u->size = off + len;
	return rc;
}

int upload_write(struct upload *u, const void *data, size_t len, uint64_t off)
{
	int rc;

	if (u->broken)
		return EIO;
	if (len == 0)
		return 0;
	u->dirty = 1;
	rc = write_any(u, data, len, off);
	if (rc)
		upload_break(u, "a write", rc);
	return rc;
}

/* Serve a read from part 1 while the whole file is there. */
static int mem_read_small(struct upload *u, void *data, size_t len,
			  uint64_t off, size_t *got)
{
	size_t n = 0;

	if (off < u->size) {
		n = u->size - off < len ? (size_t)(u->size - off) : len;
		memcpy(data, u->first->data + off, n);
	}
	*got = n;
	return 0;
}

int upload_read(struct upload *u, void *data, size_t len, uint64_t off,
		size_t *got)
{
	int rc;

	*got = 0;
	if (u->broken)
		return EIO;
	if (u->mode == UPLOAD_MEM && !u->upload_id && !u->cur && u->first)
		return mem_read_small(u, data, len, off, got);
	if (u->mode == UPLOAD_MEM && u->size == 0)
		return 0;
	rc = to_spool(u, "a read");
	if (rc)
		return rc;
	if (off >= u->size)
		return 0;
	if (u->size - off < len)
		len = (size_t)(u->size - off);
	rc = spool_pread(u->spool_fd, data, len, off);
	if (!rc)
		*got = len;
	return rc;
}

/* Forget everything: the file is empty and new (truncate to 0). */
static void upload_reset(struct upload *u)
{
	mem_drop(u);
	spool_close(u);
	u->mode = UPLOAD_MEM;
	u->size = 0;
	u->broken = 0;
	u->tee = u->conf->tee_spool;
}

/*
 * Shrink in memory: within the part being filled, or to within part 1
 * (what was streamed is not needed then: the multipart upload is aborted).
 * EAGAIN when the new end falls in a part already sent.
 */
static int mem_shrink(struct upload *u, uint64_t size)
{
	uint64_t ps = part_size(u);

	if (u->next > 2 && size < cur_start(u)) {
		if (size > ps)
			return EAGAIN;
		part_put(u, u->cur);
		u->cur = NULL;
		mpu_abort(u);
		spool_close(u);
		u->next = 2;
	}
	if (u->first && u->first->len > size)
		u->first->len = (size_t)size;
	if (u->cur && size <= cur_start(u)) {
		part_put(u, u->cur);
		u->cur = NULL;
	} else if (u->cur) {
		u->cur->len = (size_t)(size - cur_start(u));
	}
	u->size = size;
	return 0;
}

static int truncate_any(struct upload *u, uint64_t size)
{
	int rc;

	if (u->mode == UPLOAD_MEM && size > u->size &&
	    size <= cur_start(u) + part_size(u))
		return mem_write(u, NULL, (size_t)(size - u->size), u->size);
	if (u->mode == UPLOAD_MEM && size < u->size && mem_shrink(u, size) == 0)
		return 0;
	rc = to_spool(u, "a truncate");
	if (!rc && ftruncate(u->spool_fd, (off_t)size) != 0)
		rc = errno;
	if (!rc)
		u->size = size;
	return rc;
}

int upload_truncate(struct upload *u, uint64_t size)
{
	int rc;

	if (size == 0) {
		upload_reset(u);
		u->dirty = 1;
		return 0;
	}
	if (u->broken)
		return EIO;
	if (size == u->size)
		return 0;
	u->dirty = 1;
	rc = truncate_any(u, size);
	if (rc)
		upload_break(u, "a truncate", rc);
	return rc;
}

uint64_t upload_size(const struct upload *u)
{
	return u->size;
}

int upload_dirty(const struct upload *u)
{
	return u->dirty;
}

int upload_commit(struct upload *u, char etag_out[STORE_ETAG_MAX])
{
	int rc;

	if (!u->dirty && !u->broken) {
		if (etag_out)
			memcpy(etag_out, u->etag, STORE_ETAG_MAX);
		return 0;
	}
	u->etag[0] = '\0';
	if (u->broken)
		rc = EIO;
	else if (u->mode == UPLOAD_MEM)
		rc = mem_commit(u);
	else if (u->mode == UPLOAD_SPOOL)
		rc = spool_commit(u);
	else
		rc = 0; /* REMOTE and unchanged since the last commit */
	if (rc) {
		if (u->broken)
			mem_drop(u); /* abort what was streamed */
		if (u->m)
			metrics_add(u->m, MC_UPLOAD_ERRORS, 1);
		return EIO;
	}
	u->dirty = 0;
	if (u->m)
		metrics_add(u->m, MC_UPLOADS, 1);
	if (etag_out)
		memcpy(etag_out, u->etag, STORE_ETAG_MAX);
	return 0;
}

void upload_destroy(struct upload *u)
{
	if (!u)
		return;
	mem_drop(u);
	spool_close(u);
	free(u->parts);
	pthread_cond_destroy(&u->cond);
	pthread_mutex_destroy(&u->lock);
	free(u->key);
	free(u);
}
