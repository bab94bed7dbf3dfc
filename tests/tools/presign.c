/*
 * presign: print the presigned GET URL imgfs makes for a key.
 *
 *   presign --endpoint URL --region REGION --bucket BUCKET
 *           --addressing path|virtual --key KEY --time UNIX --expires SECONDS
 *           [--disposition VALUE]
 *
 * Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 * AWS_SESSION_TOKEN through the daemon's own credential chain; the URL is
 * what s3_presign_get() returns for the given clock reading. No network
 * request is made. Used by tests/e2e/test_presign_botocore.py to compare
 * with botocore's presigner. Exit status: 0, 1 on a signing error, 2 on bad
 * usage or missing credentials.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "config/cfg.h"
#include "aws/creds.h"
#include "base/metrics.h"
#include "store/s3.h"

extern char **environ;

struct presign_args {
	struct s3_conf s3;
	const char *key;
	const char *disposition;
	long long time;
	long long expires;
};

static void usage(void)
{
	fprintf(stderr, "usage: presign --endpoint URL --region REGION "
		"--bucket BUCKET --addressing path|virtual --key KEY "
		"--time UNIX --expires SECONDS [--disposition VALUE]\n");
}

/* A whole decimal number in [min, max]. 0 or EINVAL. */
static int parse_num(const char *s, long long min, long long max,
		     long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return EINVAL;
	*out = v;
	return 0;
}

static int parse_addressing(const char *s, enum s3_addressing *out)
{
	if (strcmp(s, "path") == 0)
		*out = S3_ADDR_PATH;
	else if (strcmp(s, "virtual") == 0)
		*out = S3_ADDR_VIRTUAL;
	else
		return EINVAL;
	return 0;
}

static int parse_option(int opt, const char *val, struct presign_args *a)
{
	switch (opt) {
	case 'e': a->s3.endpoint = (char *)val; return 0;
	case 'r': a->s3.region = (char *)val; return 0;
	case 'b': a->s3.bucket = (char *)val; return 0;
	case 'a': return parse_addressing(val, &a->s3.addressing);
	case 'k': a->key = val; return 0;
	case 't': return parse_num(val, 0, LLONG_MAX, &a->time);
	case 'x': return parse_num(val, 1, UINT_MAX, &a->expires);
	case 'd': a->disposition = val; return 0;
	default: return EINVAL;
	}
}

static int parse_args(int argc, char **argv, struct presign_args *a)
{
	static const struct option opts[] = {
		{"endpoint", required_argument, NULL, 'e'},
		{"region", required_argument, NULL, 'r'},
		{"bucket", required_argument, NULL, 'b'},
		{"addressing", required_argument, NULL, 'a'},
		{"key", required_argument, NULL, 'k'},
		{"time", required_argument, NULL, 't'},
		{"expires", required_argument, NULL, 'x'},
		{"disposition", required_argument, NULL, 'd'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	a->time = -1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (parse_option(opt, optarg, a))
			return EINVAL;
	if (optind != argc || !a->s3.endpoint || !a->s3.region ||
	    !a->s3.bucket || a->s3.addressing == S3_ADDR_AUTO || !a->key ||
	    a->time < 0 || a->expires == 0)
		return EINVAL;
	return 0;
}

/* Sign with a client built from a; prints the URL. 0 or errno. */
static int presign(struct presign_args *a, struct creds *cr)
{
	struct buf url = BUF_INIT;
	struct metrics *m = metrics_create();
	struct s3_client *c = m ? s3_create(&a->s3, cr, m) : NULL;
	int err = c ? 0 : errno;

	if (!err)
		err = s3_presign_get(c, a->key, (time_t)a->time,
				     (unsigned)a->expires, a->disposition, &url);
	if (!err)
		printf("%s\n", url.data);
	else
		fprintf(stderr, "presign: %s: %s\n", a->key, strerror(err));
	buf_release(&url);
	if (c)
		s3_destroy(c);
	if (m)
		metrics_destroy(m);
	return err;
}

int main(int argc, char **argv)
{
	struct presign_args a = {0};
	char profile[] = "default", no_file[] = "/dev/null";
	struct creds_conf cc = {profile, no_file, no_file};
	struct creds *cr;
	char err[256] = "";
	int rc;

	if (parse_args(argc, argv, &a)) {
		usage();
		return 2;
	}
	a.s3.max_connections = 1;
	a.s3.connect_timeout = 5;
	a.s3.request_timeout = 5;
	cr = creds_create(&cc, environ, err, sizeof(err));
	if (!cr) {
		fprintf(stderr, "presign: %s\n", err[0] ? err : strerror(errno));
		return 2;
	}
	rc = presign(&a, cr) ? 1 : 0;
	creds_destroy(cr);
	return rc;
}
