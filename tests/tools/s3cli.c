/*
 * s3cli: a command line over core/s3 for the tests.
 *
 *   s3cli put KEY FILE [CONTENT_TYPE [SOURCE_ETAG]]   prints the ETag
 *   s3cli get KEY [OFF LEN]                           object bytes to stdout
 *   s3cli head KEY                                    name=value lines
 *   s3cli ls PREFIX [DELIM [MAX_KEYS]]                "K size etag key" / "P prefix"
 *   s3cli rm KEY
 *   s3cli cp SRC DST
 *   s3cli mpu KEY FILE PARTSIZE [IN_FLIGHT]           multipart upload, threads
 *   s3cli mpu-create KEY                              prints the upload id
 *   s3cli mpu-abort KEY UPLOAD_ID
 *   s3cli mpu-ls PREFIX                               "key<TAB>upload-id<TAB>initiated"
 *   s3cli presign KEY EXPIRES [DISPOSITION]           prints the URL
 *
 * Keys in ls/mpu-ls output are escaped (\\, \n, \t, \r, \xNN) so that one
 * line is one entry. Configuration from the environment: IMGFS_ENDPOINT,
 * IMGFS_BUCKET, AWS_REGION (us-east-1), AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_CA_BUNDLE, and for tests
 * IMGFS_ADDRESSING (path|virtual), IMGFS_RETRIES, IMGFS_MAX_CONNECTIONS,
 * IMGFS_TIMEOUT, IMGFS_INSECURE=1, IMGFS_LOG_LEVEL, IMGFS_SSE and
 * IMGFS_SSE_KMS_KEY_ID, S3CLI_METRICS=1 (print the metrics to stderr at
 * exit). Exit status: 0, or 1 with a message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aws/creds.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "config/cfg.h"
#include "store/s3.h"

extern char **environ;

struct cli {
	struct s3_conf conf;
	struct creds_conf cconf;
	struct creds *creds;
	struct metrics *m;
	struct s3_client *s3;
};

static unsigned env_uint(const char *name, unsigned dflt)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return dflt;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || n > 1000000) {
		fprintf(stderr, "s3cli: bad %s\n", name);
		exit(1);
	}
	return (unsigned)n;
}

static int cli_open(struct cli *c)
{
	const char *addr = getenv("IMGFS_ADDRESSING"), *lvl = getenv("IMGFS_LOG_LEVEL");
	enum log_level level = LOG_LVL_WARN;
	char err[512];

	if (lvl && log_level_parse(lvl, &level)) {
		fprintf(stderr, "s3cli: bad IMGFS_LOG_LEVEL\n");
		return 1;
	}
	log_setup(level, 0);
	c->conf.endpoint = getenv("IMGFS_ENDPOINT");
	c->conf.bucket = getenv("IMGFS_BUCKET");
	c->conf.region = getenv("AWS_REGION") ? getenv("AWS_REGION") : (char *)"us-east-1";
	c->conf.addressing = addr && strcmp(addr, "virtual") == 0 ? S3_ADDR_VIRTUAL
								   : S3_ADDR_PATH;
	c->conf.ca_file = getenv("AWS_CA_BUNDLE");
	c->conf.insecure = (int)env_uint("IMGFS_INSECURE", 0);
	c->conf.max_connections = env_uint("IMGFS_MAX_CONNECTIONS", 8);
	c->conf.retries = env_uint("IMGFS_RETRIES", 4);
	c->conf.connect_timeout = env_uint("IMGFS_TIMEOUT", 10);
	c->conf.request_timeout = env_uint("IMGFS_TIMEOUT", 30);
	c->conf.sse = getenv("IMGFS_SSE");
	c->conf.sse_kms_key_id = getenv("IMGFS_SSE_KMS_KEY_ID");
	if (!c->conf.endpoint || !c->conf.bucket) {
		fprintf(stderr, "s3cli: set IMGFS_ENDPOINT and IMGFS_BUCKET\n");
		return 1;
	}
	c->cconf.profile = (char *)"default";
	c->cconf.credentials_file = (char *)"/dev/null";
	c->cconf.config_file = (char *)"/dev/null";
	c->creds = creds_create(&c->cconf, environ, err, sizeof(err));
	if (!c->creds) {
		fprintf(stderr, "s3cli: %s\n", err);
		return 1;
	}
	c->m = metrics_create();
	c->s3 = c->m ? s3_create(&c->conf, c->creds, c->m) : NULL;
	if (!c->s3) {
		fprintf(stderr, "s3cli: cannot create the client: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

static void cli_close(struct cli *c)
{
	struct buf out = BUF_INIT;

	if (c->m && getenv("S3CLI_METRICS") && metrics_render(c->m, &out) == 0)
		fputs(out.data, stderr);
	buf_release(&out);
	s3_destroy(c->s3);
	metrics_destroy(c->m);
	if (c->creds)
		creds_destroy(c->creds);
}

static int fail(const char *what, const char *key, int err)
{
	fprintf(stderr, "s3cli: %s %s: %s\n", what, key, strerror(err));
	return 1;
}

static int read_file(const char *path, struct buf *out)
{
	char chunk[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return errno;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_add(out, chunk, (size_t)n))
			break;
	close(fd);
	return n < 0 ? errno : 0;
}

static int cmd_put(struct cli *c, int argc, char **argv)
{
	struct store_put_opts o = {argc > 4 ? argv[4] : NULL,
				argc > 5 ? argv[5] : NULL, NULL, NULL};
	struct buf data = BUF_INIT;
	char etag[STORE_ETAG_MAX];
	int err = read_file(argv[3], &data);

	if (!err)
		err = store_put(s3_store(c->s3), argv[2], data.data ? data.data : "", data.len,
			     &o, etag);
	buf_release(&data);
	if (err)
		return fail("put", argv[2], err);
	printf("%s\n", etag);
	return 0;
}

static int stdout_sink(void *arg, const void *data, size_t len)
{
	(void)arg;
	return fwrite(data, 1, len, stdout) == len ? 0 : 1;
}

static int cmd_get(struct cli *c, int argc, char **argv)
{
	uint64_t off = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
	uint64_t len = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
	struct store_object info;
	int err = store_get(s3_store(c->s3), argv[2], off, len, NULL, stdout_sink, NULL, &info);

	if (err)
		return fail("get", argv[2], err);
	return fflush(stdout) ? 1 : 0;
}

static int cmd_head(struct cli *c, int argc, char **argv)
{
	struct store_object o;
	int err = store_head(s3_store(c->s3), argv[2], &o);

	(void)argc;
	if (err)
		return fail("head", argv[2], err);
	printf("size=%llu\nmtime=%lld\netag=%s\ncontent_type=%s\nsource_etag=%s\n",
	       (unsigned long long)o.size, (long long)o.mtime, o.etag,
	       o.content_type, o.source_etag);
	return 0;
}

static void print_escaped(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", stdout);
		else if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p == '\t')
			fputs("\\t", stdout);
		else if (*p == '\r')
			fputs("\\r", stdout);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
}

static int cmd_ls(struct cli *c, int argc, char **argv)
{
	const char *delim = argc > 3 && *argv[3] ? argv[3] : NULL;
	unsigned max_keys = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 0;
	struct store_list_page p;
	char *token = NULL;
	int err, pages = 0;

	do {
		err = store_list(s3_store(c->s3), argv[2], delim, token, max_keys, &p);
		free(token);
		token = NULL;
		if (err)
			return fail("ls", argv[2], err);
		pages++;
		for (size_t i = 0; i < p.nentries; i++) {
			printf("K %llu %s ", (unsigned long long)p.entries[i].size,
			       p.entries[i].etag);
			print_escaped(p.entries[i].key);
			putchar('\n');
		}
		for (size_t i = 0; i < p.nprefixes; i++) {
			fputs("P ", stdout);
			print_escaped(p.prefixes[i]);
			putchar('\n');
		}
		token = p.next_token;
		p.next_token = NULL;
		store_list_page_release(&p);
	} while (token);
	fprintf(stderr, "pages=%d\n", pages);
	return 0;
}

static int cmd_rm(struct cli *c, int argc, char **argv)
{
	int err = store_delete(s3_store(c->s3), argv[2]);

	(void)argc;
	return err ? fail("rm", argv[2], err) : 0;
}

static int cmd_cp(struct cli *c, int argc, char **argv)
{
	int err = argc > 3 ? store_copy(s3_store(c->s3), argv[2], argv[3], NULL, 0, NULL) : EINVAL;

	return err ? fail("cp", argv[2], err) : 0;
}

/* A multipart upload with several parts in flight from worker threads. */
struct mpu_job {
	struct cli *c;
	const char *key;
	const char *upload_id;
	int fd;
	uint64_t size, part_size;
	unsigned nparts;
	atomic_uint next;          /* next part index to send */
	atomic_int err;
	struct store_part *parts;
};

static void *mpu_worker(void *arg)
{
	struct mpu_job *j = arg;
	char *chunk = malloc(j->part_size ? j->part_size : 1);
	unsigned i;

	if (!chunk) {
		atomic_store(&j->err, ENOMEM);
		return NULL;
	}
	while (!atomic_load(&j->err) && (i = atomic_fetch_add(&j->next, 1)) < j->nparts) {
		uint64_t off = (uint64_t)i * j->part_size;
		size_t len = (size_t)(j->size - off < j->part_size ? j->size - off
								   : j->part_size);
		int err = pread(j->fd, chunk, len, (off_t)off) == (ssize_t)len ? 0 : EIO;

		j->parts[i].number = i + 1;
		if (!err)
			err = store_mpu_part(s3_store(j->c->s3), j->key, j->upload_id, i + 1,
					  chunk, len, j->parts[i].etag);
		if (err)
			atomic_store(&j->err, err);
	}
	free(chunk);
	return NULL;
}

static int mpu_run(struct mpu_job *j, unsigned inflight)
{
	pthread_t th[64];
	unsigned n = 0;

	for (; n < inflight && n < 64; n++)
		if (pthread_create(&th[n], NULL, mpu_worker, j))
			break;
	for (unsigned i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	return n ? atomic_load(&j->err) : EAGAIN;
}

static int cmd_mpu(struct cli *c, int argc, char **argv)
{
	struct mpu_job j = {.c = c, .key = argv[2]};
	unsigned inflight = argc > 5 ? (unsigned)strtoul(argv[5], NULL, 10) : 4;
	char *id = NULL, etag[STORE_ETAG_MAX];
	struct stat st;
	double t0 = mono_s();
	int err;

	j.part_size = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
	j.fd = open(argv[3], O_RDONLY);
	if (j.fd < 0 || fstat(j.fd, &st) || j.part_size < 1)
		return fail("mpu", argv[3], j.fd < 0 ? errno : EINVAL);
	j.size = (uint64_t)st.st_size;
	j.nparts = (unsigned)((j.size + j.part_size - 1) / j.part_size);
	j.nparts = j.nparts ? j.nparts : 1;
	j.parts = calloc(j.nparts, sizeof(*j.parts));
	err = j.parts ? store_mpu_create(s3_store(c->s3), j.key, NULL, &id) : ENOMEM;
	j.upload_id = id;
	if (!err)
		err = mpu_run(&j, inflight ? inflight : 1);
	if (!err)
		err = store_mpu_complete(s3_store(c->s3), j.key, id, j.parts, j.nparts, etag);
	if (err && id)
		store_mpu_abort(s3_store(c->s3), j.key, id);
	if (!err) {
		double dt = mono_s() - t0;
		printf("%s\n", etag);
		fprintf(stderr, "mpu: %llu bytes in %u parts, %.3f s, %.1f MiB/s\n",
			(unsigned long long)j.size, j.nparts, dt,
			(double)j.size / 1048576.0 / dt);
	}
	free(id);
	free(j.parts);
	close(j.fd);
	return err ? fail("mpu", argv[2], err) : 0;
}

static int cmd_mpu_create(struct cli *c, int argc, char **argv)
{
	char *id = NULL;
	int err = store_mpu_create(s3_store(c->s3), argv[2], NULL, &id);

	(void)argc;
	if (err)
		return fail("mpu-create", argv[2], err);
	printf("%s\n", id);
	free(id);
	return 0;
}

static int cmd_mpu_abort(struct cli *c, int argc, char **argv)
{
	int err = argc > 3 ? store_mpu_abort(s3_store(c->s3), argv[2], argv[3]) : EINVAL;

	return err ? fail("mpu-abort", argv[2], err) : 0;
}

static void print_upload(void *arg, const char *key, const char *upload_id,
			 time_t initiated)
{
	(void)arg;
	print_escaped(key);
	printf("\t%s\t%lld\n", upload_id, (long long)initiated);
}

static int cmd_mpu_ls(struct cli *c, int argc, char **argv)
{
	int err = store_mpu_list(s3_store(c->s3), argv[2], print_upload, NULL);

	(void)argc;
	return err ? fail("mpu-ls", argv[2], err) : 0;
}

static int cmd_presign(struct cli *c, int argc, char **argv)
{
	struct buf url = BUF_INIT;
	unsigned expires = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 0;
	int err = s3_presign_get(c->s3, argv[2], time(NULL), expires,
				 argc > 4 ? argv[4] : NULL, &url);

	if (err)
		return fail("presign", argv[2], err);
	printf("%s\n", url.data);
	buf_release(&url);
	return 0;
}

struct command {
	const char *name;
	int min_args;
	int (*fn)(struct cli *c, int argc, char **argv);
};

static const struct command commands[] = {
	{"put", 2, cmd_put},         {"get", 1, cmd_get},
	{"head", 1, cmd_head},       {"ls", 1, cmd_ls},
	{"rm", 1, cmd_rm},           {"cp", 2, cmd_cp},
	{"mpu", 3, cmd_mpu},         {"mpu-create", 1, cmd_mpu_create},
	{"mpu-abort", 2, cmd_mpu_abort}, {"mpu-ls", 1, cmd_mpu_ls},
	{"presign", 2, cmd_presign},
};

int main(int argc, char **argv)
{
	struct cli c = {0};
	int rc = 1;

	for (size_t i = 0; argc > 1 && i < sizeof(commands) / sizeof(*commands); i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		if (argc - 2 < commands[i].min_args)
			break;
		if (cli_open(&c) == 0)
			rc = commands[i].fn(&c, argc, argv);
		cli_close(&c);
		return rc;
	}
	fprintf(stderr, "usage: s3cli put|get|head|ls|rm|cp|mpu|mpu-create|"
			"mpu-abort|mpu-ls|presign ARGS (see tests/tools/s3cli.c)\n");
	return 2;
}
