/*
 * pool: the thumbnail workers of the daemon.
 *
 * n worker processes (worker.h), each started by posix_spawn() of
 * /proc/self/exe in its worker mode with an empty environment (sanitizer
 * options excepted) and no descriptor of the daemon but stderr. A decode
 * takes a free worker (waiting for one when all n are busy), hands it the
 * source in a sealed memfd and waits for the reply until a wall-clock
 * deadline of timeout_ms. A worker that crashes, breaks the protocol or
 * misses the deadline is killed (SIGKILL) and reaped at once, that
 * decode fails with EIO and a reason in err, the restart is counted
 * (imgfs_thumb_worker_restarts_total) and a replacement is started; the
 * caller remembers the failure and logs it. A worker that has used half
 * its CPU limit is replaced quietly between two decodes.
 *
 * Thread safety: every function but pool_destroy may be called from any
 * thread at once; pool_destroy when no call is under way.
 */
#ifndef IMGFS_POOL_H
#define IMGFS_POOL_H

#include <stddef.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/metrics.h"
#include "config/cfg.h"
#include "image/thumb.h"

struct pool;

/* Start n (>= 1) workers; m may be NULL. Only the first is waited for
 * (and none with idle): the others start up while the caller goes on,
 * and a decode that comes first waits for its worker's hello. NULL with
 * errno set (and a log line) when the first cannot be started (with
 * idle: launched). Workers carry IMGFS_THUMB_WORKER=1 in
 * their environment, and a process that has it gets EPERM here: a binary
 * that was started as a worker but does not know the worker mode cannot
 * start workers of its own, and so on without end. With idle, the workers
 * run under SCHED_IDLE (the CPU only when nothing else wants it: work
 * nobody waits for); else they take the spawning thread's policy. */
struct pool *pool_create(unsigned n, unsigned timeout_ms, int idle,
			 struct metrics *m);
/* Kill and reap every worker. */
void pool_destroy(struct pool *p);

/*
 * What a decode in a worker gives back. The caller points outs and err at
 * its own buffers (it keeps owning them) before the call; the pool writes
 * fmt and shown.
 */
struct pool_result {
	struct buf *outs;  /* one per size asked: each gets its thumbnail
			    * appended on success */
	struct buf *err;   /* the reason of an EIO is appended; may be NULL */
	enum thumb_format fmt;          /* on success: the thumbnails' format */
	struct thumb_source_info shown; /* on success: the source's shown size */
};

/*
 * thumb_make_sizes_info() of conf's first nsizes sizes (0: all) in a
 * worker, into res: the same results (0, EIO with the reason in res->err,
 * ENOMEM), plus EIO when the worker died or timed out; res->fmt and
 * res->shown are set only on 0. The bytes at src are copied once, into
 * the memfd the worker maps (pool_make_fd() takes one filled by the
 * caller).
 */
int pool_make(struct pool *p, const struct thumb_conf *conf, const void *src,
	      size_t len, const char *name, unsigned nsizes,
	      struct pool_result *res);

/* A memfd to fill with a source for pool_make_fd(); -1 with errno. */
int pool_memfd(void);

/* pool_make() of the len bytes written into fd (from pool_memfd()), which
 * is sealed and handed to the worker as it is: no copy. The caller still
 * closes fd. */
int pool_make_fd(struct pool *p, const struct thumb_conf *conf, int fd,
		 size_t len, const char *name, unsigned nsizes,
		 struct pool_result *res);

/* Ask a worker to open a file and a socket: 0 with the errno each got
 * (0: it was allowed), or an errno when the worker did not answer. */
int pool_probe(struct pool *p, int *open_err, int *socket_err);

/* The pid of worker i (0 while it is not running), for tests. */
pid_t pool_worker_pid(struct pool *p, unsigned i);

#endif
