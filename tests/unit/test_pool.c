/*
 * Unit tests of the worker protocol (wire) and the worker pool (pool)
 * with real sandboxed workers: this binary is the worker too
 * (worker_dispatch). A thumbnail is made in another process; a probe is
 * refused a file and a socket; a hang is killed by the deadline and a
 * crash noticed, each costing that one decode and counted, with the next
 * decode fine.
 */
#define _GNU_SOURCE /* SCHED_IDLE */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "image/pool.h"
#include "image/wire.h"
#include "image/worker.h"
#include "tests/unit/check.h"

/* A 2x2 grey PNG, written out by hand. */
static void png_chunk(struct buf *b, const char *kind, const void *data,
		      uint32_t n)
{
	unsigned char len[4] = {n >> 24, n >> 16, n >> 8, n};
	uLong crc = crc32(0, (const Bytef *)kind, 4);
	unsigned char c[4];

	crc = crc32(crc, data, n);
	c[0] = (unsigned char)(crc >> 24);
	c[1] = (unsigned char)(crc >> 16);
	c[2] = (unsigned char)(crc >> 8);
	c[3] = (unsigned char)crc;
	buf_add(b, len, 4);
	buf_add(b, kind, 4);
	buf_add(b, data, n);
	buf_add(b, c, 4);
}

static void small_png(struct buf *b)
{
	static const unsigned char ihdr[13] = {0, 0, 0, 40, 0, 0, 0, 30,
					       8, 0, 0, 0, 0};
	unsigned char rows[30 * 41], z[2048];
	uLongf zn = sizeof(z);

	for (int y = 0; y < 30; y++) {
		rows[y * 41] = 0;
		for (int x = 0; x < 40; x++)
			rows[y * 41 + 1 + x] = (unsigned char)(x * 6);
	}
	compress(z, &zn, rows, sizeof(rows));
	buf_add(b, "\x89PNG\r\n\x1a\n", 8);
	png_chunk(b, "IHDR", ihdr, 13);
	png_chunk(b, "IDAT", z, (uint32_t)zn);
	png_chunk(b, "IEND", "", 0);
}

/* A gzip member and stray bytes: libvips 8.14's SVG sniffer spins. */
static void spinning_svgz(struct buf *b)
{
	unsigned char z[256];
	z_stream s;
	static const char text[] = "{\"not\": \"an image, only some text\"}";

	memset(&s, 0, sizeof(s));
	deflateInit2(&s, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
	s.next_in = (Bytef *)text;
	s.avail_in = sizeof(text) - 1;
	s.next_out = z;
	s.avail_out = sizeof(z);
	deflate(&s, Z_FINISH);
	buf_add(b, z, sizeof(z) - s.avail_out);
	deflateEnd(&s);
	for (int i = 1; i < 58; i++) {
		unsigned char c = (unsigned char)i;

		buf_add(b, &c, 1);
	}
}

static struct thumb_conf conf32(void)
{
	struct thumb_conf c;

	memset(&c, 0, sizeof(c));
	c.size = 32;
	c.max_pixels = 1u << 24;
	c.nsizes = 2;
	c.sizes[0] = 32;
	c.sizes[1] = 16;
	return c;
}

/* Has pid died? (asked without reaping it: that is the pool's job) */
static int dead(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT))
		return 1;
	return si.si_pid == pid;
}

static int make_shown(struct pool *p, const struct buf *src,
		      const char *name, struct buf *outs, struct buf *err,
		      struct thumb_source_info *shown)
{
	struct thumb_conf c = conf32();
	struct pool_result res = {outs, err, THUMB_FMT__COUNT, {0, 0}};
	int rc;

	buf_reset(&outs[0]);
	buf_reset(&outs[1]);
	buf_reset(err);
	rc = pool_make(p, &c, src->data, src->len, name, 0, &res);
	if (rc == 0 && shown)
		*shown = res.shown;
	return rc;
}

static int make(struct pool *p, const struct buf *src, const char *name,
		struct buf *outs, struct buf *err)
{
	return make_shown(p, src, name, outs, err, NULL);
}

/* The end of a pool test: the pool, its metrics, the buffers. */
static void release_all(struct pool *p, struct metrics *m, struct buf *png,
			struct buf *spin, struct buf *err, struct buf outs[2])
{
	pool_destroy(p);
	metrics_destroy(m);
	buf_release(png);
	buf_release(spin);
	buf_release(err);
	buf_release(&outs[0]);
	buf_release(&outs[1]);
}

static void test_wire_bounds(void)
{
	struct wire_req r;
	struct wire_rep rep;

	memset(&r, 0, sizeof(r));
	r.magic = WIRE_MAGIC;
	r.op = WIRE_OP_MAKE;
	r.nsizes = 1;
	r.sizes[0] = 128;
	CHECK_INT(wire_req_check(&r), 0);
	r.nsizes = THUMB_SIZES_MAX + 1;
	CHECK_INT(wire_req_check(&r), EPROTO);
	r.nsizes = 1;
	r.name_len = WIRE_NAME_MAX + 1;
	CHECK_INT(wire_req_check(&r), EPROTO);
	r.name_len = 0;
	r.op = 7;
	CHECK_INT(wire_req_check(&r), EPROTO);

	memset(&rep, 0, sizeof(rep));
	rep.magic = WIRE_MAGIC;
	rep.nsizes = 1;
	rep.lens[0] = 100;
	CHECK_INT(wire_rep_check(&rep, 1), 0);
	rep.lens[0] = WIRE_THUMB_MAX + 1;
	CHECK_INT(wire_rep_check(&rep, 1), EPROTO);
	rep.lens[0] = 100;
	CHECK_INT(wire_rep_check(&rep, 2), EPROTO); /* not what was asked */
	rep.status = EIO;
	CHECK_INT(wire_rep_check(&rep, 1), EPROTO); /* bytes with a failure */
	rep.lens[0] = 0;
	rep.nsizes = 0;
	rep.err_len = WIRE_ERR_MAX + 1;
	CHECK_INT(wire_rep_check(&rep, 1), EPROTO);
}

static void test_pool(void)
{
	struct metrics *m = metrics_create();
	struct pool *p = pool_create(1, 1500, 0, m);
	struct buf png = BUF_INIT, spin = BUF_INIT, err = BUF_INIT;
	struct buf outs[2] = {BUF_INIT, BUF_INIT};
	struct thumb_source_info shown = {0, 0};
	int open_err = 0, sock_err = 0;
	pid_t pid, pid2;
	double t0;

	CHECK(p != NULL);
	if (!p)
		return;
	small_png(&png);
	spinning_svgz(&spin);
	pid = pool_worker_pid(p, 0);
	CHECK(pid > 0 && pid != getpid());

	/* A thumbnail from the worker, both sizes, and the source's size. */
	CHECK_INT(make_shown(p, &png, "a.png", outs, &err, &shown), 0);
	CHECK_INT(shown.width, 40);
	CHECK_INT(shown.height, 30);
	CHECK(outs[0].len > 8 && memcmp(outs[0].data, "\x89PNG", 4) == 0);
	CHECK(outs[1].len > 8 && outs[1].len <= outs[0].len + 64);
	CHECK_INT(pool_worker_pid(p, 0), pid);

	/* The sandbox refuses a file and a socket. */
	CHECK_INT(pool_probe(p, &open_err, &sock_err), 0);
	CHECK_INT(open_err, EACCES);
	CHECK_INT(sock_err, EACCES);

	/* Damaged input fails in the worker, which lives on. */
	CHECK_INT(make(p, &(struct buf){png.data, png.len / 2, 0}, "t.png",
		       outs, &err),
		  EIO);
	CHECK_INT(pool_worker_pid(p, 0), pid);
	CHECK_INT(metrics_get(m, MC_THUMB_WORKER_RESTARTS), 0);

	/* A hang: killed at the deadline, replaced, counted. */
	t0 = mono_s();
	CHECK_INT(make(p, &spin, "x.jpg", outs, &err), EIO);
	CHECK(mono_s() - t0 < 10.0);
	CHECK(err.data && strstr(err.data, "thumb_timeout") != NULL);
	pid2 = pool_worker_pid(p, 0);
	CHECK(pid2 > 0 && pid2 != pid);
	CHECK_INT(kill(pid, 0) == -1 && errno == ESRCH, 1); /* reaped */
	CHECK_INT(metrics_get(m, MC_THUMB_WORKER_RESTARTS), 1);
	CHECK_INT(make(p, &png, "a.png", outs, &err), 0);

	/* A worker that died while idle is replaced before use. */
	kill(pid2, SIGSEGV);
	while (!dead(pid2))
		usleep(10000);
	CHECK_INT(make(p, &png, "a.png", outs, &err), 0);
	CHECK(pool_worker_pid(p, 0) != pid2);
	CHECK_INT(metrics_get(m, MC_THUMB_WORKER_RESTARTS), 2);

	release_all(p, m, &png, &spin, &err, outs);
}

/* CPU time (ticks) pid has used, -1 when it is gone. */
static long cpu_ticks(pid_t pid)
{
	char path[64], line[1024], *end;
	unsigned long user = 0, sys = 0;
	FILE *f;
	int got = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(line, sizeof(line), f) && (end = strrchr(line, ')')))
		got = sscanf(end + 2,
			     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			     &user, &sys);
	fclose(f);
	return got == 2 ? (long)(user + sys) : -1;
}

/* A decode that holds a worker busy until thumb_timeout. */
struct hold {
	struct pool *p;
	const struct buf *src;
	int rc;
};

static void *hold_run(void *arg)
{
	struct hold *h = arg;
	struct buf outs[2] = {BUF_INIT, BUF_INIT}, err = BUF_INIT;

	h->rc = make(h->p, h->src, "x.jpg", outs, &err);
	buf_release(&outs[0]);
	buf_release(&outs[1]);
	buf_release(&err);
	return NULL;
}

/* pool_create waits for its first worker only; a later one stopped
 * right away (during its start-up, or just after) costs the decode that
 * gets it an EIO at thumb_timeout, and is replaced. */
static void test_stopped_at_start(void)
{
	struct metrics *m = metrics_create();
	struct pool *p;
	struct buf png = BUF_INIT, spin = BUF_INIT, err = BUF_INIT;
	struct buf outs[2] = {BUF_INIT, BUF_INIT};
	struct hold h = {NULL, &spin, 0};
	pthread_t th;
	pid_t first, second;
	long ticks;
	double t0;
	cpu_set_t all, one;

	/* On one CPU (the workers inherit it) the second worker is most
	 * likely still starting when pool_create has the first's hello. */
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	sched_getaffinity(0, sizeof(all), &all);
	sched_setaffinity(0, sizeof(one), &one);
	p = pool_create(2, 1500, 0, m);
	sched_setaffinity(0, sizeof(all), &all);
	CHECK(p != NULL);
	if (!p)
		return;
	h.p = p;
	second = pool_worker_pid(p, 1);
	CHECK(second > 0);
	kill(second, SIGSTOP);
	small_png(&png);
	spinning_svgz(&spin);
	/* the first worker busy with a hang (its CPU time grows), so that
	 * the next decode gets the second */
	first = pool_worker_pid(p, 0);
	ticks = cpu_ticks(first);
	CHECK_INT(pthread_create(&th, NULL, hold_run, &h), 0);
	t0 = mono_s();
	while (cpu_ticks(first) == ticks && mono_s() - t0 < 10.0)
		usleep(10000);
	CHECK(cpu_ticks(first) > ticks);
	t0 = mono_s();
	CHECK_INT(make(p, &png, "a.png", outs, &err), EIO);
	CHECK(mono_s() - t0 < 1.5 + 2.0);
	CHECK(err.data && strstr(err.data, "thumb_timeout") != NULL);
	pthread_join(th, NULL);
	CHECK_INT(h.rc, EIO);
	CHECK(dead(second));
	CHECK(pool_worker_pid(p, 1) != second);
	CHECK_INT(metrics_get(m, MC_THUMB_WORKER_RESTARTS), 2);
	CHECK_INT(make(p, &png, "a.png", outs, &err), 0);

	release_all(p, m, &png, &spin, &err, outs);
}

/* A worker never starts workers: a binary started as a worker that did
 * not know the worker mode would start workers of its own without end. */
static void test_no_pool_in_a_worker(void)
{
	struct pool *p;

	setenv("IMGFS_THUMB_WORKER", "1", 1);
	errno = 0;
	p = pool_create(1, 1000, 0, NULL);
	CHECK(p == NULL);
	CHECK_INT(errno, EPERM);
	unsetenv("IMGFS_THUMB_WORKER");
	if (p)
		pool_destroy(p);
}

/* The scheduling policy of this process's only child, or -1. */
static int child_policy(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int policy = -1, found = 0;

	while (d && (e = readdir(d))) {
		char path[300], stat[512], *p;
		FILE *f;
		int ppid;

		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		p = fgets(stat, sizeof(stat), f) ? strrchr(stat, ')') : NULL;
		fclose(f);
		if (p && sscanf(p, ") %*c %d", &ppid) == 1 && ppid == getpid()) {
			policy = sched_getscheduler(atoi(e->d_name));
			found++;
		}
	}
	if (d)
		closedir(d);
	return found == 1 ? policy : -1;
}

/* Workers of an idle pool run under SCHED_IDLE, of a plain one as their
 * parent does. */
static void test_idle_pool(void)
{
	struct pool *p = pool_create(1, 1000, 1, NULL);

	CHECK(p != NULL);
	CHECK_INT(child_policy(), SCHED_IDLE);
	pool_destroy(p);
	p = pool_create(1, 1000, 0, NULL);
	CHECK(p != NULL);
	CHECK_INT(child_policy(), SCHED_OTHER);
	pool_destroy(p);
}

int main(int argc, char **argv)
{
	if (worker_dispatch(argc, argv) >= 0)
		return 1;
	test_wire_bounds();
	test_pool();
	test_stopped_at_start();
	test_no_pool_in_a_worker();
	test_idle_pool();
	return check_done("pool");
}
