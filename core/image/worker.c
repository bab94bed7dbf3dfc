/*
 * worker: the sandboxed thumbnail worker (see worker.h).
 */
#define _GNU_SOURCE
#include "image/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "image/thumb.h"
#include "image/wire.h"

#define WORKER_MMAP_THRESHOLD (256 * 1024)

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WORKER_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WORKER_SANITIZED 1
#endif
#endif
#ifndef WORKER_SANITIZED
#define WORKER_SANITIZED 0
#endif

#define WORKER_NOFILE 64

static int worker_limit(int res, rlim_t soft, rlim_t hard)
{
	struct rlimit rl = {soft, hard};

	return setrlimit(res, &rl) ? errno : 0;
}

static int worker_limits(void)
{
	int rc = worker_limit(RLIMIT_CPU, WORKER_CPU_LIMIT_S,
			      WORKER_CPU_LIMIT_S + 5);

	if (!rc)
		rc = worker_limit(RLIMIT_CORE, 0, 0);
	if (!rc)
		rc = worker_limit(RLIMIT_NOFILE, WORKER_NOFILE, WORKER_NOFILE);
	if (!rc && !WORKER_SANITIZED)
		rc = worker_limit(RLIMIT_AS, WORKER_AS_LIMIT, WORKER_AS_LIMIT);
	if (!rc && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		rc = errno;
	if (!rc && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		rc = errno;
	return rc;
}

/* What decoding needs: descriptors it holds, memory, threads, time. */
static const int worker_allowed[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(lseek),
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(recvfrom),
	SCMP_SYS(sendto), SCMP_SYS(close), SCMP_SYS(fstat),
	SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(fcntl),
	SCMP_SYS(dup), SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(memfd_create), SCMP_SYS(ftruncate),
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect),
	SCMP_SYS(mremap), SCMP_SYS(brk), SCMP_SYS(madvise),
	SCMP_SYS(futex), SCMP_SYS(clone), SCMP_SYS(set_robust_list),
	SCMP_SYS(rseq), SCMP_SYS(set_tid_address),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigaction),
	SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack),
	SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getrusage),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
	SCMP_SYS(gettimeofday), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(nanosleep), SCMP_SYS(getrandom), SCMP_SYS(prctl),
	SCMP_SYS(sysinfo), SCMP_SYS(uname), SCMP_SYS(getuid),
	SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
	SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(tgkill),
	SCMP_SYS(restart_syscall), SCMP_SYS(eventfd2), SCMP_SYS(umask), SCMP_SYS(times),
};

/* Refused with an error the libraries handle (a file, a socket). */
static const int worker_refused[] = {
	SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(openat2),
	SCMP_SYS(creat), SCMP_SYS(socket), SCMP_SYS(socketpair),
	SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(access),
	SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(stat),
	SCMP_SYS(lstat), SCMP_SYS(readlink), SCMP_SYS(readlinkat),
	SCMP_SYS(mkdir), SCMP_SYS(mkdirat), SCMP_SYS(unlink),
	SCMP_SYS(unlinkat), SCMP_SYS(getcwd),
};

static int worker_seccomp(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int rc = ctx ? 0 : ENOMEM;
	size_t i;

	/* A binary tree, not a list of 80 comparisons per system call. */
	if (!rc)
		rc = -seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);

	for (i = 0; !rc && i < sizeof(worker_allowed) / sizeof(int); i++)
		rc = -seccomp_rule_add(ctx, SCMP_ACT_ALLOW, worker_allowed[i],
				       0);
	for (i = 0; !rc && i < sizeof(worker_refused) / sizeof(int); i++)
		rc = -seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES),
				       worker_refused[i], 0);
	/* Reading a limit (ImageMagick's probe does), never setting one. */
	if (!rc)
		rc = -seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64),
				       1, SCMP_A2(SCMP_CMP_EQ, 0));
	/* No terminal here: isatty() (a sanitizer's report, a library's
	 * colour check) learns so. */
	if (!rc)
		rc = -seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOTTY),
				       SCMP_SYS(ioctl), 0);
	/* glibc falls back to clone() when clone3() is missing. */
	if (!rc)
		rc = -seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
				       SCMP_SYS(clone3), 0);
	if (!rc)
		rc = -seccomp_load(ctx);
	if (ctx)
		seccomp_release(ctx);
	return rc;
}

static uint64_t worker_cpu_ms(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (uint64_t)ru.ru_utime.tv_sec * 1000u +
	       (uint64_t)ru.ru_utime.tv_usec / 1000u +
	       (uint64_t)ru.ru_stime.tv_sec * 1000u +
	       (uint64_t)ru.ru_stime.tv_usec / 1000u;
}

/* Send rep with its error text and thumbnails; 0 or errno. */
static int worker_reply(struct wire_rep *rep, const struct buf *err,
			const struct buf *outs)
{
	int rc;

	rep->magic = WIRE_MAGIC;
	rep->cpu_ms = worker_cpu_ms();
	rep->err_len = err && err->len ? (uint32_t)(err->len < WIRE_ERR_MAX
							    ? err->len
							    : WIRE_ERR_MAX)
				       : 0;
	rc = wire_send(WORKER_FD, rep, sizeof(*rep), -1);
	if (!rc && rep->err_len)
		rc = wire_send(WORKER_FD, err->data, rep->err_len, -1);
	for (uint32_t i = 0; !rc && outs && i < rep->nsizes; i++)
		if (rep->lens[i])
			rc = wire_send(WORKER_FD, outs[i].data, rep->lens[i],
				       -1);
	return rc;
}

/* Try what the sandbox must refuse; report both errnos (0: allowed). */
static int worker_probe(void)
{
	struct wire_rep rep;
	struct buf err = BUF_INIT;
	int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
	int open_err = fd < 0 ? errno : 0;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int sock_err = s < 0 ? errno : 0;
	int rc;

	if (fd >= 0)
		close(fd);
	if (s >= 0)
		close(s);
	memset(&rep, 0, sizeof(rep));
	buf_addf(&err, "open=%d socket=%d", open_err, sock_err);
	rc = worker_reply(&rep, &err, NULL);
	buf_release(&err);
	return rc;
}

static void worker_conf(const struct wire_req *r, struct thumb_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->size = r->sizes[0];
	c->crop = (enum thumb_crop)r->crop;
	c->max_pixels = r->max_pixels ? r->max_pixels : 1;
	c->nsizes = r->nsizes;
	c->first_frame = r->first_frame != 0;
	memcpy(c->sizes, r->sizes, sizeof(c->sizes));
}

/* Make the thumbnails of the source mapped at src into rep and outs. */
static void worker_make(const struct wire_req *r, const void *src,
			const char *name, struct wire_rep *rep,
			struct buf *outs, struct buf *err)
{
	struct thumb_conf conf;
	struct thumb_engine *e;
	enum thumb_format fmt = THUMB_FMT_JPEG;

	worker_conf(r, &conf);
	e = thumb_engine_create(&conf);
	if (!e) {
		rep->status = EIO;
		buf_adds(err, "thumbnail engine unavailable");
		return;
	}
	struct thumb_source_info shown = {0, 0};

	rep->status = thumb_make_sizes_info(e, src, (size_t)r->src_len, name,
					    r->nsizes, outs, &fmt, err, &shown);
	thumb_engine_destroy(e);
	rep->fmt = (uint32_t)fmt;
	rep->width = shown.width;
	rep->height = shown.height;
	for (uint32_t i = 0; !rep->status && i < r->nsizes; i++) {
		if (outs[i].len > WIRE_THUMB_MAX) {
			rep->status = EIO;
			buf_adds(err, "thumbnail too large");
		}
	}
	if (rep->status)
		return;
	rep->nsizes = r->nsizes;
	for (uint32_t i = 0; i < r->nsizes; i++)
		rep->lens[i] = (uint32_t)outs[i].len;
}

/* Serve one MAKE request whose source is in fd. */
static int worker_serve(const struct wire_req *r, int fd, const char *name)
{
	struct buf outs[THUMB_SIZES_MAX], err = BUF_INIT;
	struct wire_rep rep;
	void *src = MAP_FAILED;
	int rc;

	memset(&rep, 0, sizeof(rep));
	for (unsigned i = 0; i < THUMB_SIZES_MAX; i++)
		outs[i] = (struct buf)BUF_INIT;
	if (fd >= 0 && r->src_len > 0)
		src = mmap(NULL, (size_t)r->src_len, PROT_READ, MAP_PRIVATE,
			   fd, 0);
	if (src == MAP_FAILED && r->src_len > 0) {
		rep.status = EIO;
		buf_adds(&err, "cannot map the source");
	} else {
		worker_make(r, r->src_len ? src : "", name, &rep, outs, &err);
	}
	rc = worker_reply(&rep, &err, outs);
	if (src != MAP_FAILED)
		munmap(src, (size_t)r->src_len);
	for (unsigned i = 0; i < THUMB_SIZES_MAX; i++)
		buf_release(&outs[i]);
	buf_release(&err);
	/* A decode frees tens of megabytes in pieces. */
	malloc_trim(0);
	return rc;
}

static int worker_loop(void)
{
	for (;;) {
		struct wire_req r;
		char name[WIRE_NAME_MAX + 1];
		int fd = -1, rc = wire_recv(WORKER_FD, &r, sizeof(r), 0, &fd);

		if (rc)
			return rc == EPIPE ? 0 : 1;
		if (wire_req_check(&r) ||
		    wire_recv(WORKER_FD, name, r.name_len, 0, NULL))
			return 1;
		name[r.name_len] = '\0';
		rc = r.op == WIRE_OP_PROBE ? worker_probe()
					   : worker_serve(&r, fd, name);
		if (fd >= 0)
			close(fd);
		if (rc)
			return 1;
	}
}

static int worker_main(void)
{
	struct wire_rep hello;
	int rc;

	/* Nothing of libvips' chatter reaches stderr. */
	log_setup(LOG_LVL_ERROR, 0);
	log_quiet(1);
	if (!thumb_can_save(THUMB_FMT_JPEG))
		return 1;
	rc = worker_limits();
	if (!rc)
		rc = worker_seccomp();
	if (rc)
		return 1;
	memset(&hello, 0, sizeof(hello));
	if (worker_reply(&hello, NULL, NULL))
		return 1;
	return worker_loop();
}

int worker_dispatch(int argc, char **argv)
{
	if (argc != 2 || strcmp(argv[1], WORKER_ARG) != 0)
		return -1;
	/* Decoders allocate and free tens of megabytes in pieces of one to
	 * a few megabytes; glibc's sliding mmap threshold would keep them
	 * in the heap for good after the first large image. */
	mallopt(M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD);
	/* Exit without atexit handlers (a leak check would need ptrace). */
	_exit(worker_main());
}
