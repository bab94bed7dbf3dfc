/*
 * libFuzzer target: the configuration parser and the shared credentials
 * file reader. Each input is read as the INI file named by --config, as
 * the argument of -o, as a size, and as an AWS credentials file.
 * fuzz-sources: core/config/cfg.c core/config/cfg_table.c core/config/cfg_value.c core/config/cfg_ini.c core/aws/creds.c core/aws/creds_files.c core/aws/creds_http.c core/base/buf.c core/base/log.c
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/cfg.h"
#include "aws/creds.h"
#include "base/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_with(char *a1, char *a2)
{
	char prog[] = "imgfs", bucket[] = "fuzz-bucket", mnt[] = "/";
	char home[] = "HOME=/nonexistent";
	char *argv[] = {prog, a1, a2, bucket, mnt, NULL};
	char *envp[] = {home, NULL};
	char err[512], *out = NULL;
	struct cfg c;
	enum cfg_result r;

	r = cfg_parse(&c, 5, argv, envp, err, sizeof(err), &out);
	if (r == CFG_ERROR && (strncmp(err, "imgfs: ", 7) != 0 ||
			       strchr(err, '\n')))
		abort();
	if (r == CFG_OK && (!c.s3.endpoint || !c.s3.region || !c.cache.dir ||
			    !c.fuse_opts || c.link.expiry < 1 ||
			    c.link.expiry > 604800 ||
			    c.s3.addressing == S3_ADDR_AUTO))
		abort();
	free(out);
	cfg_release(&c);
}

/* The input as the credentials file of profile "default"; nothing but
 * the files is configured, so no request is ever sent. */
static void as_credentials(char *path)
{
	char profile[] = "default", none[] = "/nonexistent/config";
	char off[] = "AWS_EC2_METADATA_DISABLED=true";
	char *envp[] = {off, NULL};
	struct creds_conf conf = {profile, path, none};
	struct aws_creds a;
	char err[512];
	struct creds *c = creds_create(&conf, envp, err, sizeof(err));

	if (!c && strchr(err, '\n'))
		abort();
	if (c && (creds_get(c, &a) != 0 || !a.access_key[0]))
		abort();
	creds_destroy(c);
}

static void as_file(const uint8_t *data, size_t size)
{
	char path[64], opt[] = "--config";
	int fd = memfd_create("fuzz-cfg", 0);

	if (fd < 0)
		return;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		parse_with(opt, path);
		as_credentials(path);
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), opt[] = "-o";
	uint64_t v;

	if (!s)
		return 0;
	log_setup(LOG_LVL_ERROR, 0);
	memcpy(s, data, size);
	s[size] = '\0';
	as_file(data, size);
	parse_with(opt, s);
	cfg_parse_size(s, &v);
	free(s);
	return 0;
}
