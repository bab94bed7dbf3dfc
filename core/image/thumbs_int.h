/*
 * thumbs_int: the thumbnail service's private parts, shared by thumbs.c
 * (names, keys, producing a thumbnail, the contract) and thumbs_sched.c
 * (decode workers, single flight, background requests). Not for use
 * outside them.
 *
 * Scheduling (see thumbs.h for what callers see):
 *
 * Decodes are jobs on two queues. The demand queue holds decodes someone
 * waits for (a read) and, behind them, those of read-ahead; the background
 * queue those of eager thumbnails. conf->concurrency threads serve the
 * demand queue at normal priority and as many serve the background queue
 * under SCHED_IDLE (they get the CPU only when nothing else wants it, so
 * an upload in progress is not slowed); together they never run more than
 * conf->concurrency decodes (t->decoding < t->slots), and a free slot goes
 * to a demand job first. A read that joins the flight of a job still
 * queued moves it ahead of the read-ahead jobs; read-ahead that meets an
 * eager job moves it to the demand queue, behind the reads.
 *
 * Only eager work decodes at low priority: read-ahead is for a reader
 * who is coming, so it decodes at normal priority, but after every read
 * already waiting: a reader never waits behind a guess.
 * The background threads' decodes run in workers of their own (t->bpool,
 * SCHED_IDLE too), started only when conf.eager is on: without privilege
 * a process cannot be lifted out of SCHED_IDLE again, so one worker
 * cannot serve both priorities.
 *
 * Background requests (make the thumbnails of a key, from bytes held or
 * from the bucket) wait on a third queue for 2 x concurrency producer
 * threads, which do the network part and queue the decode. A read that
 * finds a request for its source still waiting takes it over, bytes
 * included, so eager thumbnails never cost a GET. Requests and bytes held
 * are bounded (THUMBS_PENDING_MAX, THUMBS_HELD_MEM in memory, then
 * THUMBS_HELD_DISK in unlinked files in the cache directory); past the
 * bounds a request is dropped and the thumbnail is made on first read.
 */
#ifndef IMGFS_THUMBS_INT_H
#define IMGFS_THUMBS_INT_H

#include <pthread.h>
#include <stdint.h>

#include "image/cache.h"
#include "image/pool.h"
#include "image/thumb.h"
#include "image/thumbs.h"

#define THUMBS_SOURCE_MAX (256u << 20)   /* bytes of a source we decode */
#define THUMBS_OBJECT_MAX (16u << 20)    /* bytes of a stored thumbnail */
#define THUMBS_HELD_MEM (48ull << 20)    /* eager bytes held in memory */
#define THUMBS_HELD_DISK (2ull << 30)    /* then in the cache directory */
#define THUMBS_PENDING_MAX 1024u         /* background requests waiting */

/* How urgent a decode is, most first: a read waits for it; read-ahead
 * (a reader is coming); an eager thumbnail (nobody waits). */
enum thumbs_prio { PRIO_READ, PRIO_AHEAD, PRIO_EAGER };

/* One decode of every size; lives on the requester's stack. */
struct thumbs_job {
	int fd;                  /* a memfd holding the source's bytes */
	size_t len;
	const char *name;
	struct pool_result res;  /* outs: one per size of the engine */
	int rc;
	enum thumbs_prio prio;   /* protected by thumbs.lock: EAGER on the
				    background queue, else on the demand
				    queue, READ jobs before AHEAD ones */
	int started;             /* protected by thumbs.lock */
	int done;                /* protected by thumbs.lock */
	struct thumbs_job *next; /* protected by thumbs.lock */
};

/* The bytes of a source written through the mount (see thumbs.h). */
struct thumbs_src {
	struct thumbs *t;
	int fd;           /* holds the bytes: a memfd (held in memory, or
			   * once thumbs_src_memfd() copied them there) or an
			   * unlinked file in the cache directory; -1 */
	int memfd;        /* fd is a memfd */
	uint64_t size;    /* bytes reserved */
	uint64_t len;     /* bytes added */
	int failed;       /* an add failed: unusable */
	int held;         /* reserved: 1 in memory, 0 on disk, -1 nothing */
};

/* A background request: the thumbnails of key at etag, for size idx. */
struct thumbs_req {
	char *key;
	char *etag;
	unsigned idx;
	struct thumbs_src *src;  /* owned; NULL: read the source */
	int urgent;              /* protected by thumbs.lock while queued: a
				    reader is coming (read-ahead), so
				    normal priority */
	struct thumbs_req *next; /* protected by thumbs.lock */
};

/* A generation in progress. */
struct thumbs_flight {
	char *key;
	char *etag;
	int forgotten;           /* protected by lock: the source changed */
	unsigned waiters;        /* protected by lock: readers waiting or
				    coming (read-ahead) */
	enum thumbs_prio want;   /* protected by lock: the most urgent of
				    them (EAGER when none) */
	struct thumbs_job *job;  /* protected by lock: its decode, while
				    queued; NULL otherwise */
	struct thumbs_flight *next;
};

struct thumbs {
	struct thumb_engine *engine;   /* names and specs only: decoding is
					  done by the pool's workers */
	struct pool *pool;             /* decodes a reader waits for */
	struct pool *bpool;            /* eager decodes, under SCHED_IDLE;
					* NULL when conf.eager is off */
	struct thumb_conf conf;        /* what the workers are asked for */
	struct cache *cache;
	struct store *store;
	struct metrics *m;
	char *uploads_prefix;
	char *thumbs_prefix;
	char *spool_dir;               /* for bytes held on disk */
	unsigned nsizes;

	pthread_mutex_t lock;
	pthread_cond_t work;           /* something queued, a slot freed,
					  or stopping */
	pthread_cond_t done;           /* a job finished, a flight landed,
					  a source slot freed */
	struct thumbs_job *queue;      /* protected by lock: demand, READ
					  jobs first, each kind FIFO */
	struct thumbs_job *queue_tail; /* protected by lock */
	struct thumbs_job *bqueue;     /* protected by lock: background */
	struct thumbs_job *bqueue_tail;/* protected by lock */
	struct thumbs_req *reqs;       /* protected by lock: FIFO */
	struct thumbs_req *reqs_tail;  /* protected by lock */
	unsigned nreqs;                /* protected by lock */
	struct thumbs_flight *flights; /* protected by lock */
	unsigned decoding;             /* protected by lock: running now */
	unsigned slots;                /* decodes at once */
	uint64_t held_mem;             /* protected by lock: thumbs_src bytes */
	uint64_t held_disk;            /* protected by lock */
	int stopping;                  /* protected by lock */
	unsigned sources;              /* protected by lock; held in memory */
	unsigned sources_max;          /* bound on sources of guesses */

	pthread_t *threads;
	unsigned nthreads;
	unsigned nproducers;           /* the first nproducers of threads */
};

/* ---- thumbs_sched.c ------------------------------------------------ */

/* Start conf->concurrency decode threads of each kind and the
 * producers; stop them all (waiting for what is under way). */
int thumbs_sched_start(struct thumbs *t, unsigned n);
void thumbs_sched_stop(struct thumbs *t);

/* Run one decode at prio and wait for it; sooner when a reader (or
 * read-ahead) joins the flight of (key, etag) meanwhile. ECANCELED when
 * stopping, else the job's rc. */
int thumbs_decode(struct thumbs *t, struct thumbs_job *job,
		  enum thumbs_prio prio, const char *key, const char *etag);

/* Take off (0), or wait for the flight under way and return EAGAIN (look
 * again); with nowait, EBUSY instead of waiting. ENOMEM. */
int thumbs_flight_join(struct thumbs *t, const char *key, const char *etag,
		       int nowait);
/* Land a flight; returns 1 when the source was forgotten meanwhile. */
int thumbs_flight_land(struct thumbs *t, const char *key, const char *etag);
/* Was the source forgotten since this flight took off? */
int thumbs_flight_forgotten(struct thumbs *t, const char *key,
			    const char *etag);
/* Mark every flight of key forgotten and drop its waiting requests. */
void thumbs_sched_forget(struct thumbs *t, const char *key);

/* Wait for room to hold one more source in memory; give it back. Work
 * nobody waits for yet (AHEAD, EAGER) may hold sources_max sources, a
 * read slots more: it never waits for a guess to make room. */
void thumbs_source_slot(struct thumbs *t, enum thumbs_prio prio);
void thumbs_source_done(struct thumbs *t);

/* Queue a request (taking src, which is freed when it is refused):
 * 0, EEXIST (one is waiting or flying for key and etag), ENOSPC (too
 * many waiting), ECANCELED or ENOMEM. */
int thumbs_req_push(struct thumbs *t, const char *key, const char *etag,
		    unsigned idx, struct thumbs_src *src);
/* The bytes of a request for (key, etag) still waiting, which is taken
 * off the queue; NULL when there is none (or it has no bytes). */
struct thumbs_src *thumbs_req_steal(struct thumbs *t, const char *key,
				    const char *etag);

/* Make src->fd a memfd holding all of src's bytes, for pool_make_fd():
 * bytes held on disk are copied into a new one (once; the file is
 * closed). src keeps owning fd. 0 or errno (EIO when bytes are missing). */
int thumbs_src_memfd(struct thumbs_src *src);

/* ---- thumbs.c ------------------------------------------------------ */

/* Carry out one background request (on a producer thread), whose flight
 * the producer has taken off; lands it. */
void thumbs_run_request(struct thumbs *t, struct thumbs_req *r);

#endif
