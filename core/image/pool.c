/*
 * pool: the daemon's thumbnail workers (see pool.h).
 *
 * Each worker slot is taken by one decode at a time (busy, under lock);
 * the decode then talks to its worker without the lock, so a slow or hung
 * worker delays only its own caller, until the deadline.
 */
#define _GNU_SOURCE
#include "image/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "image/wire.h"
#include "image/worker.h"

#define POOL_CPU_RECYCLE_MS (WORKER_CPU_LIMIT_S * 1000ull / 2)
#define POOL_START_MS 30000u /* a new worker's libvips start-up */

extern char **environ;

struct pool_worker {
	pid_t pid;       /* 0: not running */
	int sock;        /* -1 while not running */
	int starting;    /* launched, its hello not read yet */
	int busy;        /* protected by pool.lock */
};

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	unsigned n;
	unsigned timeout_ms;
	int idle;              /* workers under SCHED_IDLE */
	struct metrics *m;
	struct pool_worker *w;
	char asan_env[1024];   /* set by pool_create, then read-only */
	char tsan_env[1024];   /* the same */
};

/* Set in every worker's environment: a process that has it never starts
 * workers itself (a binary started as a worker that does not know the
 * worker mode would otherwise start workers of its own, without end). */
#define POOL_WORKER_MARK "IMGFS_THUMB_WORKER=1"

/* Each worker quantises PNG thumbnails with libimagequant, which runs
 * OpenMP; its threads spin between parallel regions and, with one such
 * team per worker, took a sixth of the pool's CPU from the other workers'
 * decodes. The pool is the parallelism: one OpenMP thread per worker. */
#define POOL_WORKER_OMP "OMP_NUM_THREADS=1"

/* NAME=<the daemon's NAME>:handle_segv=0:handle_sigbus=0 into out. */
static void pool_sanitizer_env(char *out, size_t len, const char *name)
{
	const char *v = getenv(name);

	snprintf(out, len, "%s=%s%shandle_segv=0:handle_sigbus=0", name,
		 v ? v : "", v && *v ? ":" : "");
}

/* The environment of a worker: the mark, the OpenMP thread count and the
 * sanitizer options only (no secret). In a sanitizer build a worker's
 * crash is an expected event that the pool handles, not a report: ASan
 * and TSan leave SIGSEGV and SIGBUS alone there (their handlers would
 * also make system calls the sandbox refuses). */
static void pool_env(struct pool *p, char **env, size_t max)
{
	static const char *const keep[] = {"UBSAN_OPTIONS=", "LSAN_OPTIONS="};
	size_t n = 0;

	env[n++] = p->asan_env;
	env[n++] = p->tsan_env;
	env[n++] = (char *)POOL_WORKER_MARK;
	env[n++] = (char *)POOL_WORKER_OMP;
	for (char **e = environ; e && *e && n + 1 < max; e++)
		for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++)
			if (strncmp(*e, keep[k], strlen(keep[k])) == 0)
				env[n++] = *e;
	env[n] = NULL;
}

static int pool_spawn_fds(posix_spawn_file_actions_t *fa, int child)
{
	int rc = posix_spawn_file_actions_addopen(fa, 0, "/dev/null",
						  O_RDONLY, 0);

	if (!rc)
		rc = posix_spawn_file_actions_addopen(fa, 1, "/dev/null",
						      O_WRONLY, 0);
	if (!rc)
		rc = posix_spawn_file_actions_adddup2(fa, child, WORKER_FD);
	if (!rc)
		rc = posix_spawn_file_actions_addclosefrom_np(fa,
							      WORKER_FD + 1);
	return rc;
}

static int pool_spawn_attr(posix_spawnattr_t *attr)
{
	sigset_t none, all;
	int rc;

	sigemptyset(&none);
	sigfillset(&all);
	rc = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK |
						    POSIX_SPAWN_SETSIGDEF);
	if (!rc)
		rc = posix_spawnattr_setsigmask(attr, &none);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(attr, &all);
	return rc;
}

/* Reap w after SIGKILL; the way it ended, for a log line. */
static int pool_reap(struct pool_worker *w)
{
	int status = 0;

	if (w->sock >= 0)
		close(w->sock);
	w->sock = -1;
	if (w->pid > 0) {
		kill(w->pid, SIGKILL);
		while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	w->pid = 0;
	w->starting = 0;
	return status;
}

/* Start the worker of slot w; its hello is read by pool_hello(), so that
 * its start-up (dynamic linking, libvips' modules: ~75 ms of CPU) runs
 * while the caller goes on. 0 or errno. */
static int pool_launch(struct pool *p, struct pool_worker *w)
{
	char *argv[] = {(char *)"imgfs", (char *)WORKER_ARG, NULL};
	char *env[8];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct sched_param idle_prio = {0};
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return errno;
	pool_env(p, env, sizeof(env) / sizeof(env[0]));
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	rc = pool_spawn_fds(&fa, sv[1]);
	if (!rc)
		rc = pool_spawn_attr(&attr);
	if (!rc)
		rc = posix_spawn(&w->pid, "/proc/self/exe", &fa, &attr, argv,
				 env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(sv[1]);
	w->sock = sv[0];
	if (rc) {
		w->pid = 0;
		pool_reap(w);
		return rc;
	}
	/* (posix_spawn's own scheduler attribute knows no SCHED_IDLE; a
	 * process may lower its child's policy) */
	if (p->idle && sched_setscheduler(w->pid, SCHED_IDLE, &idle_prio))
		log_warn("thumbnails: an eager worker at normal priority: %s",
			 strerror(errno));
	w->starting = 1;
	return 0;
}

/* Read the hello of a launched worker by deadline (mono_ms): 0, or errno
 * (w is left for the caller to reap). */
static int pool_hello(struct pool_worker *w, uint64_t deadline)
{
	struct wire_rep hello;
	int rc = wire_recv(w->sock, &hello, sizeof(hello), deadline, NULL);

	if (!rc && (hello.magic != WIRE_MAGIC || hello.status))
		rc = EPROTO;
	if (!rc)
		w->starting = 0;
	return rc;
}

/* Start the worker of slot w and wait for its hello (a replacement:
 * ready before the decode that lost its predecessor returns). */
static int pool_spawn(struct pool *p, struct pool_worker *w)
{
	int rc = pool_launch(p, w);

	if (!rc && (rc = pool_hello(w, mono_ms() + POOL_START_MS)))
		pool_reap(w);
	return rc;
}

struct pool *pool_create(unsigned n, unsigned timeout_ms, int idle,
			 struct metrics *m)
{
	struct pool *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return NULL;
	if (getenv("IMGFS_THUMB_WORKER")) {
		free(p);
		log_error("thumbnails: a thumbnail worker starts no workers");
		errno = EPERM;
		return NULL;
	}
	p->n = n ? n : 1;
	p->timeout_ms = timeout_ms ? timeout_ms : 1000;
	p->idle = idle;
	p->m = m;
	pool_sanitizer_env(p->asan_env, sizeof(p->asan_env), "ASAN_OPTIONS");
	pool_sanitizer_env(p->tsan_env, sizeof(p->tsan_env), "TSAN_OPTIONS");
	p->w = calloc(p->n, sizeof(*p->w));
	if (!p->w || pthread_mutex_init(&p->lock, NULL)) {
		free(p->w);
		free(p);
		errno = ENOMEM;
		return NULL;
	}
	pthread_cond_init(&p->freed, NULL);
	for (unsigned i = 0; i < p->n; i++)
		p->w[i].sock = -1;
	/* All start at once, none waited for but the first of a pool at
	 * normal priority (a worker that cannot start fails the mount, not
	 * a read later): the FUSE INIT that creates the pools holds every
	 * request of the mount back until it returns (a cold ls -l of 5,000
	 * names right after mounting took 0.72-0.77 s while four workers
	 * started one after the other, 0.34-0.41 s two seconds later). */
	rc = pool_launch(p, &p->w[0]);
	for (unsigned i = 1; !rc && i < p->n; i++)
		pool_launch(p, &p->w[i]); /* a failure is retried on use */
	if (!rc && !idle)
		rc = pool_hello(&p->w[0], mono_ms() + POOL_START_MS);
	if (rc) {
		log_error("thumbnails: cannot start a thumbnail worker: %s",
			  strerror(rc));
		pool_destroy(p); /* reaps the launched ones */
		errno = rc;
		return NULL;
	}
	return p;
}

void pool_destroy(struct pool *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->n; i++)
		pool_reap(&p->w[i]);
	pthread_cond_destroy(&p->freed);
	pthread_mutex_destroy(&p->lock);
	free(p->w);
	free(p);
}

pid_t pool_worker_pid(struct pool *p, unsigned i)
{
	pid_t pid;

	pthread_mutex_lock(&p->lock);
	pid = i < p->n ? p->w[i].pid : 0;
	pthread_mutex_unlock(&p->lock);
	return pid;
}

static struct pool_worker *pool_take(struct pool *p)
{
	struct pool_worker *w = NULL;

	pthread_mutex_lock(&p->lock);
	while (!w) {
		for (unsigned i = 0; i < p->n && !w; i++)
			if (!p->w[i].busy)
				w = &p->w[i];
		if (!w)
			pthread_cond_wait(&p->freed, &p->lock);
	}
	w->busy = 1;
	pthread_mutex_unlock(&p->lock);
	return w;
}

static void pool_give(struct pool *p, struct pool_worker *w)
{
	pthread_mutex_lock(&p->lock);
	w->busy = 0;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->lock);
}

int pool_memfd(void)
{
	return memfd_create("imgfs-source", MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

/* The worker can read the source and nothing else. */
static void pool_seal(int fd)
{
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
				       F_SEAL_SEAL);
}

/* A memfd holding the len bytes at src; -1 with errno. */
static int pool_memfd_of(const void *src, size_t len)
{
	int fd = pool_memfd();
	const char *s = src;
	size_t off = 0;

	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t k = pwrite(fd, s + off, len - off, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			close(fd);
			errno = k < 0 ? errno : EIO;
			return -1;
		}
		off += (size_t)k;
	}
	return fd;
}

/* Send one request (with the source's memfd, or -1). */
static int pool_send(struct pool_worker *w, struct wire_req *r,
		     const char *name, int fd)
{
	int rc;

	r->magic = WIRE_MAGIC;
	r->name_len = (uint32_t)strnlen(name, WIRE_NAME_MAX);
	rc = wire_send(w->sock, r, sizeof(*r), fd);
	if (!rc && r->name_len)
		rc = wire_send(w->sock, name, r->name_len, -1);
	return rc;
}

/* Receive a reply to r: the fixed part, the error text into err, the
 * thumbnails into outs (may be NULL when none are asked). */
static int pool_recv(struct pool_worker *w, const struct wire_req *r,
		     struct wire_rep *rep, struct buf *outs, struct buf *err,
		     uint64_t deadline)
{
	char text[WIRE_ERR_MAX];
	int rc = wire_recv(w->sock, rep, sizeof(*rep), deadline, NULL);

	if (!rc)
		rc = wire_rep_check(rep, r->op == WIRE_OP_MAKE ? r->nsizes : 0);
	if (!rc && rep->err_len)
		rc = wire_recv(w->sock, text, rep->err_len, deadline, NULL);
	if (!rc && rep->err_len && err)
		buf_add(err, text, rep->err_len);
	for (uint32_t i = 0; !rc && i < rep->nsizes; i++) {
		if (rep->lens[i] == 0)
			continue;
		rc = buf_reserve(&outs[i], rep->lens[i]) ? ENOMEM : 0;
		if (!rc)
			rc = wire_recv(w->sock, outs[i].data + outs[i].len,
				       rep->lens[i], deadline, NULL);
		if (!rc) {
			outs[i].len += rep->lens[i];
			outs[i].data[outs[i].len] = '\0';
		}
	}
	return rc;
}

/* The worker failed in transit (rc): kill, reap, count, replace; the
 * reason goes to err. */
static void pool_lost(struct pool *p, struct pool_worker *w, int rc,
		      struct buf *err)
{
	pid_t pid = w->pid;
	int status = pool_reap(w);

	if (err && rc == ETIMEDOUT)
		buf_addf(err, "thumbnail worker %d killed: no result within "
			      "thumb_timeout (%u ms)", (int)pid, p->timeout_ms);
	else if (err && WIFSIGNALED(status))
		buf_addf(err, "thumbnail worker %d died of signal %d (%s)",
			 (int)pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (err)
		buf_addf(err, "thumbnail worker %d failed: %s", (int)pid,
			 strerror(rc));
	metrics_add(p->m, MC_THUMB_WORKER_RESTARTS, 1);
	pool_spawn(p, w); /* on failure, retried by the next decode */
}

/* A worker that died while idle is replaced before it is used (counted,
 * but no decode is lost). */
static void pool_check_idle(struct pool *p, struct pool_worker *w)
{
	int status;

	if (w->pid > 0 && waitpid(w->pid, &status, WNOHANG) == w->pid) {
		w->pid = 0;
		pool_reap(w);
		metrics_add(p->m, MC_THUMB_WORKER_RESTARTS, 1);
	}
}

/* One request on w: ensure it runs, send, receive until the deadline. */
static int pool_call(struct pool *p, struct pool_worker *w,
		     struct wire_req *r, const char *name, int fd,
		     struct wire_rep *rep, struct buf *outs, struct buf *err)
{
	uint64_t deadline;
	int rc;

	pool_check_idle(p, w);
	rc = w->pid > 0 ? 0 : pool_spawn(p, w);
	if (rc) {
		buf_addf(err, "cannot start a thumbnail worker: %s",
			 strerror(rc));
		return EIO;
	}
	/* thumb_timeout bounds the rest, the start-up of a worker launched
	 * by pool_create included (a stopped one is an EIO like any other) */
	deadline = mono_ms() + p->timeout_ms;
	if (w->starting)
		rc = pool_hello(w, deadline);
	if (!rc)
		rc = pool_send(w, r, name, fd);
	if (!rc)
		rc = pool_recv(w, r, rep, outs, err, deadline);
	if (rc == ENOMEM) {
		pool_reap(w);
		pool_spawn(p, w);
		return ENOMEM;
	}
	if (rc) {
		pool_lost(p, w, rc, err);
		return EIO;
	}
	if (rep->cpu_ms > POOL_CPU_RECYCLE_MS) {
		pool_reap(w);
		pool_spawn(p, w);
	}
	return 0;
}

static void pool_req(struct wire_req *r, const struct thumb_conf *conf,
		     unsigned nsizes, size_t len)
{
	unsigned have = conf->nsizes ? conf->nsizes : 1;

	memset(r, 0, sizeof(*r));
	r->op = WIRE_OP_MAKE;
	r->src_len = len;
	r->max_pixels = conf->max_pixels;
	r->crop = (uint32_t)conf->crop;
	r->first_frame = conf->first_frame ? 1 : 0;
	r->nsizes = nsizes && nsizes < have ? nsizes : have;
	if (conf->nsizes)
		memcpy(r->sizes, conf->sizes, sizeof(r->sizes));
	else
		r->sizes[0] = conf->size;
}

int pool_make_fd(struct pool *p, const struct thumb_conf *conf, int fd,
		 size_t len, const char *name, unsigned nsizes,
		 struct pool_result *res)
{
	struct wire_req r;
	struct wire_rep rep;
	struct pool_worker *w;
	struct log_key k;
	uint64_t t0 = mono_ms();
	int rc;
	pid_t pid;

	pool_seal(fd);
	pool_req(&r, conf, nsizes, len);
	w = pool_take(p);
	rc = pool_call(p, w, &r, name, fd, &rep, res->outs, res->err);
	pid = w->pid;
	pool_give(p, w);
	if (rc)
		return rc;
	if (rep.status == 0) {
		res->fmt = (enum thumb_format)rep.fmt;
		res->shown.width = rep.width;
		res->shown.height = rep.height;
	}
	log_debug("thumbnails: %s decoded by worker %d in %llu ms: %s",
		  log_key(&k, name), (int)pid,
		  (unsigned long long)(mono_ms() - t0),
		  rep.status ? strerror(rep.status) : "ok");
	return rep.status == ENOMEM ? ENOMEM : rep.status ? EIO : 0;
}

int pool_make(struct pool *p, const struct thumb_conf *conf, const void *src,
	      size_t len, const char *name, unsigned nsizes,
	      struct pool_result *res)
{
	int fd = pool_memfd_of(src, len), rc;

	if (fd < 0)
		return errno == ENOMEM ? ENOMEM : EIO;
	rc = pool_make_fd(p, conf, fd, len, name, nsizes, res);
	close(fd);
	return rc;
}

int pool_probe(struct pool *p, int *open_err, int *socket_err)
{
	struct wire_req r;
	struct wire_rep rep;
	struct buf text = BUF_INIT;
	struct pool_worker *w;
	int rc;

	memset(&r, 0, sizeof(r));
	r.op = WIRE_OP_PROBE;
	r.nsizes = 1;
	r.sizes[0] = 1;
	w = pool_take(p);
	rc = pool_call(p, w, &r, "", -1, &rep, NULL, &text);
	pool_give(p, w);
	if (!rc && (!text.data ||
		    sscanf(text.data, "open=%d socket=%d", open_err,
			   socket_err) != 2))
		rc = EPROTO;
	buf_release(&text);
	return rc;
}
