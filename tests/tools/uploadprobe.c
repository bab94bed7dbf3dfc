/*
 * uploadprobe: drive core/upload directly against an S3 server, so that
 * tests and benchmarks see the engine without FUSE in between.
 *
 *   uploadprobe [options] KEY
 *
 * The server and bucket come from the environment: IMGFS_ENDPOINT,
 * AWS_REGION (default us-east-1), IMGFS_BUCKET, AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY. Input is -i FILE or stdin. One JSON line on stdout
 * reports the outcome, bytes, seconds, throughput, peak RSS (VmHWM) and the S3
 * requests made. Exit status: 0 done, 1 the engine returned an error, 2 a
 * usage or set-up error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aws/creds.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "config/cfg.h"
#include "io/mime.h"
#include "io/upload.h"
#include "store/s3.h"

extern char **environ;

enum probe_mode { MODE_STREAM, MODE_PATCH, MODE_RANDOM, MODE_APPEND,
		  MODE_TWICE };

struct probe {
	const char *key;
	const char *input;        /* NULL: stdin */
	int in_fd;
	enum probe_mode mode;
	size_t block;             /* bytes per write */
	uint64_t patch_off;       /* patch: bytes written last */
	size_t patch_len;
	int read_back;            /* -r: compare upload_read with the input */
	int no_commit;            /* -X: destroy the upload without a commit */
	int truncate;             /* -t: truncate to trunc_size after writing */
	uint64_t trunc_size;
	uint64_t pause_at;        /* -w: stop after this many bytes ... */
	const char *pause_file;   /* -W: ... until this file exists */
	unsigned seed;
	struct upload_conf uc;
	struct s3_conf sc;
	struct creds_conf cc;
	struct creds *creds;
	struct metrics *metrics;
	struct s3_client *s3;
	struct upload *up;
	char *buf;                /* block bytes */
	uint64_t written;         /* bytes handed to upload_write */
	const char *stage;        /* where an error happened */
	int err;
	int close_err;            /* commit after a failed write, as close() */
	char etag[STORE_ETAG_MAX];
};

static void usage(void)
{
	fprintf(stderr,
		"usage: uploadprobe [-i FILE] [-P PART] [-n INFLIGHT] [-b BLOCK]\n"
		"  [-d SPOOLDIR] [-T] [-m stream|patch|random|append|twice]\n"
		"  [-o PATCH_OFF] [-l PATCH_LEN] [-r] [-t SIZE] [-w BYTES -W FILE]\n"
		"  [-S SEED] [-X] [-v] KEY\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	if (cfg_parse_size(s, out) != 0) {
		fprintf(stderr, "uploadprobe: bad size '%s'\n", s);
		return -1;
	}
	return 0;
}

static int parse_mode(const char *s, enum probe_mode *out)
{
	static const char *const names[] = {"stream", "patch", "random",
					    "append", "twice"};

	for (unsigned i = 0; i < sizeof(names) / sizeof(*names); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum probe_mode)i;
			return 0;
		}
	}
	fprintf(stderr, "uploadprobe: bad mode '%s'\n", s);
	return -1;
}

static int parse_opt(struct probe *p, int c, const char *arg)
{
	uint64_t v;

	switch (c) {
	case 'i': p->input = arg; return 0;
	case 'd': p->uc.spool_dir = arg; return 0;
	case 'T': p->uc.tee_spool = 1; return 0;
	case 'r': p->read_back = 1; return 0;
	case 'X': p->no_commit = 1; return 0;
	case 'W': p->pause_file = arg; return 0;
	case 'v': log_setup(LOG_LVL_DEBUG, 0); return 0;
	case 'm': return parse_mode(arg, &p->mode);
	case 'P': return parse_size(arg, &p->uc.part_size);
	case 'o': return parse_size(arg, &p->patch_off);
	case 'w': return parse_size(arg, &p->pause_at);
	case 't': p->truncate = 1; return parse_size(arg, &p->trunc_size);
	}
	if (parse_size(arg, &v) != 0)
		return -1;
	if (c == 'n')
		p->uc.parts_in_flight = (unsigned)v;
	else if (c == 'b')
		p->block = (size_t)v;
	else if (c == 'l')
		p->patch_len = (size_t)v;
	else if (c == 'S')
		p->seed = (unsigned)v;
	else
		return -1;
	return 0;
}

static int parse_args(struct probe *p, int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "i:P:n:b:d:Tm:o:l:rt:w:W:S:vX")) != -1) {
		if (c == '?' || parse_opt(p, c, optarg) != 0)
			return -1;
	}
	if (optind != argc - 1 || p->block == 0)
		return -1;
	p->key = argv[optind];
	return 0;
}

static int setup_s3(struct probe *p)
{
	const char *endpoint = getenv("IMGFS_ENDPOINT");
	const char *region = getenv("AWS_REGION");
	const char *bucket = getenv("IMGFS_BUCKET");
	char err[256] = "";

	if (!endpoint || !bucket) {
		fprintf(stderr, "uploadprobe: set IMGFS_ENDPOINT and IMGFS_BUCKET\n");
		return -1;
	}
	p->sc = (struct s3_conf){
		.bucket = (char *)bucket, .endpoint = (char *)endpoint,
		.region = (char *)(region ? region : "us-east-1"),
		.addressing = S3_ADDR_PATH, .max_connections = 32,
		.retries = 3, .connect_timeout = 5, .request_timeout = 30,
	};
	p->cc = (struct creds_conf){.profile = (char *)"default",
		.credentials_file = (char *)"/nonexistent/credentials",
		.config_file = (char *)"/nonexistent/config"};
	p->creds = creds_create(&p->cc, environ, err, sizeof(err));
	if (!p->creds) {
		fprintf(stderr, "uploadprobe: credentials: %s\n", err);
		return -1;
	}
	p->metrics = metrics_create();
	p->s3 = p->metrics ? s3_create(&p->sc, p->creds, p->metrics) : NULL;
	p->uc.mime = mime_create();
	if (!p->s3 || !p->uc.mime) {
		fprintf(stderr, "uploadprobe: set-up: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Read up to len input bytes at off (sequentially from a pipe). */
static ssize_t input_read(struct probe *p, char *data, size_t len,
			  uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = p->input ? pread(p->in_fd, data + got, len - got,
					     (off_t)(off + got))
				     : read(p->in_fd, data + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int fail(struct probe *p, const char *stage, int err)
{
	p->stage = stage;
	p->err = err;
	return -1;
}

/* Wait for the test to do something to the server mid-upload. */
static void maybe_pause(struct probe *p, uint64_t before, uint64_t after)
{
	struct timespec ts = {0, 50 * 1000 * 1000};

	if (!p->pause_file || before >= p->pause_at || after < p->pause_at)
		return;
	fprintf(stderr, "paused at %" PRIu64 "\n", after);
	fflush(stderr);
	while (access(p->pause_file, F_OK) != 0)
		nanosleep(&ts, NULL);
}

/* Write one block at off, zeros over the patch range unless patching. */
static int write_block(struct probe *p, size_t len, uint64_t off, int patch)
{
	uint64_t lo = p->patch_off, hi = p->patch_off + p->patch_len;
	int rc;

	if (p->mode == MODE_PATCH && !patch) {
		for (size_t i = 0; i < len; i++)
			if (off + i >= lo && off + i < hi)
				p->buf[i] = 0;
	}
	rc = upload_write(p->up, p->buf, len, off);
	if (rc)
		return fail(p, "write", rc);
	maybe_pause(p, p->written, p->written + len);
	p->written += len;
	return 0;
}

/* Copy input [from, to) (to 0: to its end) sequentially. */
static int write_sequential(struct probe *p, uint64_t from, uint64_t to,
			    uint64_t dest_base)
{
	uint64_t off = from;

	for (;;) {
		size_t want = p->block;
		ssize_t n;

		if (to && to - off < want)
			want = (size_t)(to - off);
		if (want == 0)
			return 0;
		n = input_read(p, p->buf, want, off);
		if (n < 0)
			return fail(p, "input", errno);
		if (n == 0)
			return 0;
		if (write_block(p, (size_t)n, dest_base + off, 0) != 0)
			return -1;
		off += (uint64_t)n;
	}
}

/* Write the real bytes of the patch range last. */
static int write_patch(struct probe *p)
{
	ssize_t n;

	if (p->patch_len > p->block)
		return fail(p, "usage: patch longer than a block", EINVAL);
	n = input_read(p, p->buf, p->patch_len, p->patch_off);
	if (n <= 0)
		return n < 0 ? fail(p, "input", errno) : 0;
	return write_block(p, (size_t)n, p->patch_off, 1);
}

/* Every block of the input once, in a shuffled order. */
static int write_random(struct probe *p)
{
	struct stat st;
	uint64_t nblocks, *order;
	int rc = 0;

	if (fstat(p->in_fd, &st) != 0 || !S_ISREG(st.st_mode))
		return fail(p, "usage: random needs -i FILE", EINVAL);
	nblocks = ((uint64_t)st.st_size + p->block - 1) / p->block;
	order = calloc(nblocks ? nblocks : 1, sizeof(*order));
	if (!order)
		return fail(p, "input", ENOMEM);
	srand(p->seed);
	for (uint64_t i = 0; i < nblocks; i++)
		order[i] = i;
	for (uint64_t i = nblocks; i > 1; i--) {
		uint64_t j = (uint64_t)rand() % i, t = order[i - 1];

		order[i - 1] = order[j];
		order[j] = t;
	}
	for (uint64_t i = 0; !rc && i < nblocks; i++) {
		uint64_t off = order[i] * p->block;
		ssize_t n = input_read(p, p->buf, p->block, off);

		rc = n < 0 ? fail(p, "input", errno)
			   : write_block(p, (size_t)n, off, 0);
	}
	free(order);
	return rc;
}

/* Compare what upload_read gives with the input. */
static int read_back(struct probe *p)
{
	char *want = malloc(p->block);
	uint64_t off = 0;
	size_t got;
	int rc = 0;

	if (!want)
		return fail(p, "read", ENOMEM);
	while (!rc) {
		ssize_t n = input_read(p, want, p->block, off);

		if (n < 0) {
			rc = fail(p, "input", errno);
			break;
		}
		rc = upload_read(p->up, p->buf, p->block, off, &got);
		if (rc)
			rc = fail(p, "read", rc);
		else if (got != (size_t)n || memcmp(want, p->buf, got) != 0)
			rc = fail(p, "read: content differs", EBADMSG);
		if (got == 0)
			break;
		off += got;
	}
	free(want);
	return rc;
}

static int truncate_to(struct probe *p)
{
	int rc = upload_truncate(p->up, p->trunc_size);

	return rc ? fail(p, "truncate", rc) : 0;
}

static int commit(struct probe *p)
{
	int rc;

	if (p->no_commit)
		return 0;
	rc = upload_commit(p->up, p->etag);

	return rc ? fail(p, "commit", rc) : 0;
}

/* Append mode: the object's current size is where the input goes. */
static int create_upload(struct probe *p, uint64_t *base)
{
	struct store_object obj;
	int existing = p->mode == MODE_APPEND, rc;

	*base = 0;
	if (existing) {
		rc = store_head(s3_store(p->s3), p->key, &obj);
		if (rc && rc != ENOENT)
			return fail(p, "head", rc);
		*base = rc ? 0 : obj.size;
	}
	p->up = upload_create(s3_store(p->s3), p->metrics, &p->uc, p->key, existing,
			      *base);
	return p->up ? 0 : fail(p, "create", errno);
}

static int run(struct probe *p)
{
	uint64_t base, half = 0;
	struct stat st;

	if (create_upload(p, &base) != 0)
		return -1;
	if (p->mode == MODE_RANDOM)
		return write_random(p) || (p->read_back && read_back(p)) ||
		       commit(p);
	if (p->mode == MODE_TWICE) {
		if (!p->input || fstat(p->in_fd, &st) != 0)
			return fail(p, "usage: twice needs -i FILE", EINVAL);
		half = (uint64_t)st.st_size / 2;
		if (write_sequential(p, 0, half, 0) || commit(p))
			return -1;
	}
	if (write_sequential(p, half, 0, base))
		return -1;
	if (p->mode == MODE_PATCH && write_patch(p))
		return -1;
	if (p->truncate && truncate_to(p))
		return -1;
	if (p->read_back && read_back(p))
		return -1;
	return commit(p);
}

/* The ETag without its quotes, for JSON. */
static void etag_plain(const char *etag, char out[STORE_ETAG_MAX])
{
	size_t n = 0;

	for (const char *c = etag; *c && n + 1 < STORE_ETAG_MAX; c++)
		if (*c != '"' && *c != '\\')
			out[n++] = *c;
	out[n] = '\0';
}

/*
 * This process's peak RSS in KiB: VmHWM, not getrusage()'s ru_maxrss, which
 * keeps the high-water mark of whatever process exec'd us (a Python test
 * runner spawning the probe would otherwise be measured instead).
 */
static long peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmHWM:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib;
}

static void report(const struct probe *p, double seconds)
{
	char etag[STORE_ETAG_MAX];
	static const enum metrics_op ops[] = {
		MOP_PUT, MOP_GET, MOP_MPU_CREATE, MOP_MPU_PART,
		MOP_MPU_COMPLETE, MOP_MPU_ABORT};

	etag_plain(p->err ? "" : p->etag, etag);
	printf("{\"result\": \"%s\", \"stage\": \"%s\", \"errno\": %d, "
	       "\"error\": \"%s\", \"close_errno\": %d, \"bytes\": %" PRIu64 ", \"size\": %" PRIu64
	       ", \"seconds\": %.3f, \"mib_per_s\": %.1f, "
	       "\"peak_rss_kib\": %ld, \"etag\": \"%s\", \"uploads\": %" PRIu64
	       ", \"upload_errors\": %" PRIu64 ", \"requests\": {",
	       p->err ? "error" : "ok", p->stage ? p->stage : "", p->err,
	       p->err ? strerror(p->err) : "", p->close_err, p->written,
	       p->up ? upload_size(p->up) : 0, seconds,
	       seconds > 0 ? (double)p->written / 1048576.0 / seconds : 0.0,
	       peak_rss_kib(), etag,
	       metrics_get(p->metrics, MC_UPLOADS),
	       metrics_get(p->metrics, MC_UPLOAD_ERRORS));
	for (unsigned i = 0; i < sizeof(ops) / sizeof(*ops); i++)
		printf("%s\"%s\": %" PRIu64, i ? ", " : "",
		       metrics_op_name(ops[i]),
		       metrics_requests(p->metrics, ops[i]));
	printf("}}\n");
}

static void teardown(struct probe *p)
{
	upload_destroy(p->up);
	s3_destroy(p->s3);
	metrics_destroy(p->metrics);
	creds_destroy(p->creds);
	mime_destroy(p->uc.mime);
	free(p->buf);
	if (p->input && p->in_fd >= 0)
		close(p->in_fd);
}

int main(int argc, char **argv)
{
	struct probe p = {.in_fd = 0, .block = 1 << 20, .patch_len = 4096,
		.uc = {.part_size = 8 << 20, .parts_in_flight = 4}};
	const char *tmp = getenv("TMPDIR");
	double t0;

	p.uc.spool_dir = tmp ? tmp : "/tmp";
	log_setup(LOG_LVL_INFO, 0);
	if (parse_args(&p, argc, argv) != 0) {
		usage();
		return 2;
	}
	if (p.input && (p.in_fd = open(p.input, O_RDONLY | O_CLOEXEC)) < 0) {
		perror(p.input);
		return 2;
	}
	p.buf = malloc(p.block);
	if (!p.buf || setup_s3(&p) != 0) {
		teardown(&p);
		return 2;
	}
	t0 = mono_s();
	if (run(&p) != 0 && p.up && (strcmp(p.stage, "write") == 0 ||
				     strcmp(p.stage, "truncate") == 0))
		p.close_err = upload_commit(p.up, p.etag);
	report(&p, mono_s() - t0);
	teardown(&p);
	return p.err ? 1 : 0;
}
