/*
 * upload_int: the upload engine's private parts, shared by upload_part.c
 * (part buffers, workers, the multipart upload), upload_spool.c (the spool
 * file, MEM and REMOTE modes) and upload.c (commit and the public
 * interface). Not for use outside them.
 *
 * The engine (see upload.h):
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
 * mappings, returned to the system when freed. Every buffer is taken from
 * conf->budget, the daemon-wide bound (base/membudget.h): a writer that
 * needs a new one waits while the budget is spent and parts are in flight
 * anywhere; a part counts as in flight from its submission to its end.
 * A buffer filled by writes is charged as they reach into it, by
 * UPLOAD_CHARGE_STEP (so a small file costs its size, not a part); one
 * filled from the spool at once. Spares are not kept while the budget is
 * short.
 */
#ifndef IMGFS_UPLOAD_INT_H
#define IMGFS_UPLOAD_INT_H

#include <pthread.h>

#include "io/upload.h"

#define UPLOAD_MIN_PART (5ULL << 20)  /* S3's smallest part but the last */
#define UPLOAD_MAX_PART (5ULL << 30)  /* S3's largest part */
#define UPLOAD_MAX_PARTS 10000u       /* S3's part number limit */
#define UPLOAD_MAX_OBJECT (5ULL << 40) /* S3's largest object */
#define UPLOAD_CHARGE_STEP ((size_t)1 << 20) /* budget taken at a time */

enum upload_mode { UPLOAD_MEM, UPLOAD_SPOOL, UPLOAD_REMOTE };

/* Aligned writes of whole pages go to the spool by direct I/O: a
 * buffered write of a GiB costs about 3 s of system CPU in copies and page
 * cache work, a direct one a small fraction of that. */
#define UP_DIRECT_ALIGN 4096

/* One part buffer: held by the writer, queued, being sent, or spare. */
struct upload_part {
	struct upload_part *next; /* link in the queue or the spare list */
	size_t map_len;           /* bytes mapped, this header included */
	size_t cap;               /* bytes of data room */
	size_t len;               /* bytes of data used */
	unsigned number;          /* part number, from 1 */
	int tee;                  /* the worker also writes it to the spool */
	struct membudget *budget; /* charged is taken from it (may be NULL) */
	size_t charged;           /* bytes taken: the header and data room
				   * up to some point, map_len at most */
	/* page-aligned (the buffer is mapped), so the spool can take it by
	 * direct I/O */
	_Alignas(UP_DIRECT_ALIGN) char data[];
};

struct upload {
	struct store *store;
	struct metrics *m;
	const struct upload_conf *conf;
	char *key;
	char *lkey;             /* key as log lines show it (log_key_dup) */
	int active;             /* counted in the in-progress gauges */
	double started;         /* monotonic time of the first change */
	double noted;           /* last progress line (or started) */
	uint64_t written;       /* bytes written since started */
	enum upload_mode mode;
	uint64_t size;          /* the file's size, in every mode */
	int dirty;              /* changed since create or the last commit */
	int broken;             /* a write failed or data was lost: every
				 * call and the commit fail with EIO */
	char etag[STORE_ETAG_MAX]; /* from the last commit, "" when none */
	struct store_attrs attrs;  /* stored with the object (upload_set_attrs) */
	struct store_attrs mpu_attrs; /* what the multipart upload was created
				       * with; a commit that completes it fixes
				       * the object's metadata if attrs
				       * changed since */
	char mpu_type[128];        /* its Content-Type */
	int mpu_landed;            /* the last commit completed a multipart
				    * upload */

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
	int spool_dfd;          /* the same file opened O_DIRECT, or -1 */
	uint64_t spool_charged; /* bytes taken from conf->spool_budget;
				 * protected by lock */

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

uint64_t up_part_size(const struct upload *u);

/* Start offset of the part being filled in MEM mode. */
uint64_t up_cur_start(const struct upload *u);

void up_part_unmap(struct upload_part *p);

/* A buffer with room for cap bytes, len 0, with at least charge bytes of
 * data room taken from the budget (cap: all; 0: charge it with
 * up_part_charge as it fills); NULL with errno ENOMEM. May wait for the
 * budget. */
struct upload_part *up_part_get(struct upload *u, size_t cap,
				    unsigned number, size_t charge);

/* Take budget for p's data room up to upto bytes (<= cap), if not yet
 * taken. May wait for the budget. */
void up_part_charge(struct upload_part *p, size_t upto);

void up_part_put(struct upload *u, struct upload_part *p);

void up_spares_free(struct upload *u);

/*
 * Queue p for sending, after waiting while every worker is busy. p belongs
 * to the workers afterwards, also on failure. 0, or EIO when a part has
 * failed already, or ENOMEM.
 */
int up_workers_submit(struct upload *u, struct upload_part *p);

/* Wait until nothing is queued or in flight. 0, or EIO after a failure. */
int up_workers_wait(struct upload *u);

/* Create the multipart upload, typed from head, and start the workers. */
int up_mpu_begin(struct upload *u, const void *head, size_t head_len);

/* Skip what is queued, wait for what is in flight, abort the upload. */
void up_mpu_abort(struct upload *u);

/* Wait for every part and complete the upload; on failure it is aborted.
 * 0 or EIO. */
int up_mpu_complete(struct upload *u);

/* Close the spool; no worker may be running. */
void up_spool_close(struct upload *u);

/* Write all of data at off into u's spool, charged to its budget. 0 or
 * errno (ENOSPC, also when the budget would be passed; EIO). Any thread. */
int up_spool_pwrite(struct upload *u, const void *data, size_t len,
		    uint64_t off);

/* Read len bytes at off; the spool always holds them. 0 or errno. */
int up_spool_pread(int fd, void *data, size_t len, uint64_t off);

/* Write a held part into the spool copy, while the tee works. */
void up_mem_tee(struct upload *u, const struct upload_part *p,
		    uint64_t off);

/*
 * Can [off, off+len) be written in memory? Not when it touches a part
 * already handed out, nor when it starts past the end of the part being
 * filled (a gap over whole parts).
 */
int up_mem_fits(const struct upload *u, size_t len, uint64_t off);

/* Write in MEM mode; up_mem_fits() said yes. Zeros fill a gap from size. */
int up_mem_write(struct upload *u, const char *data, size_t len,
		     uint64_t off);

/* Drop the buffers and any multipart upload: the content is elsewhere. */
void up_mem_drop(struct upload *u);

/* Once the workers are idle: does the spool hold every part sent? */
int up_tee_complete(struct upload *u);

/* Get the whole content into the spool, whatever the mode. */
int up_to_spool(struct upload *u, const char *why);

/* PROTOTYPES */

#endif
