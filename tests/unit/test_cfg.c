/*
 * Unit tests of core/cfg: defaults, every option, precedence (-o over the
 * environment over the INI file over defaults), bad values, unknown
 * options, the mount.fuse3 argument shape and FUSE pass-through (the INI
 * file's own errors are in test_cfg_ini.c). Fixtures live in
 * tests/unit/data/cfg; run from the repo root.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config/cfg.h"
#include "base/log.h"

#include "cfg_rig.h"

static void test_defaults(void)
{
	struct run r;

	run(&r, vec("imgfs", "photos", "/tmp", NULL), base_env());
	CHECK_INT(r.res, CFG_OK);
	CHECK_STR(r.c.s3.bucket, "photos");
	CHECK_STR(r.c.fs.mountpoint, "/tmp");
	CHECK_STR(r.c.s3.region, "us-east-1");
	CHECK_STR(r.c.s3.endpoint, "https://s3.us-east-1.amazonaws.com");
	CHECK_INT(r.c.s3.addressing, S3_ADDR_VIRTUAL);
	CHECK(r.c.s3.ca_file == NULL);
	CHECK_INT(r.c.s3.insecure, 0);
	CHECK_INT(r.c.s3.max_connections, 16);
	CHECK_INT(r.c.s3.retries, 30);
	CHECK_INT(r.c.s3.retry_window, 60);
	CHECK_INT(r.c.s3.connect_timeout, 10);
	CHECK_INT(r.c.s3.request_timeout, 30);
	CHECK(r.c.s3.sse == NULL && r.c.s3.sse_kms_key_id == NULL);
	CHECK_STR(r.c.creds.profile, "default");
	CHECK_STR(r.c.creds.credentials_file, "/home/tester/.aws/credentials");
	CHECK_STR(r.c.creds.config_file, "/home/tester/.aws/config");
	CHECK_STR(r.c.cache.dir, geteuid() == 0 ? "/var/cache/imgfs/photos"
						: "/home/tester/.cache/imgfs/photos");
	CHECK_INT(r.c.cache.max_bytes, 1ull << 30);
	CHECK_INT(r.c.thumb.size, 128);
	CHECK_INT(r.c.thumb.crop, THUMB_CROP_NONE);
	CHECK_INT(r.c.thumb.max_pixels, 100000000);
	CHECK(r.c.thumb.concurrency >= 1);
	CHECK_INT(r.c.thumb.nsizes, 1);
	CHECK_INT(r.c.thumb.sizes[0], 128);
	CHECK_INT(r.c.thumb.eager, 1);
	CHECK_INT(r.c.link.expiry, 3600);
	CHECK_INT(r.c.link.attachment, 0);
	CHECK_INT(r.c.link.upload_max, 50ull << 20);
	CHECK_STR(r.c.fs.uploads_prefix, "uploads/");
	CHECK_STR(r.c.fs.thumbs_prefix, "thumbnails/");
	CHECK_INT(r.c.fs.part_size, 8ull << 20);
	CHECK_INT(r.c.fs.parts_in_flight, 4);
	CHECK(r.c.fs.metadata_ttl == 5.0);
	CHECK_INT(r.c.fs.foreground, 0);
	CHECK_INT(r.c.fs.debug, 0);
	CHECK_INT(r.c.log_level, LOG_LVL_INFO);
	CHECK(r.c.config_file == NULL);
	CHECK(r.c.fuse_opts != NULL && r.c.fuse_opts[0] == NULL);
	done(&r);
}

static void test_every_option(void)
{
	struct run r;

	run(&r, vec("imgfs", "-f", "-o",
		    "endpoint=http://127.0.0.1:8000/,region=eu-west-3,"
		    "addressing=virtual,profile=p1,credentials_file=/c,"
		    "aws_config_file=/a,insecure,cache_dir=/var/tmp/x,"
		    "cache_max=512M,thumb_size=64,thumb_crop=centre",
		    "-o", "max_pixels=1000,thumb_concurrency=7,link_expiry=60,"
		    "link_disposition=attachment,upload_max=7M,part_size=5M,"
		    "parts_in_flight=2,max_connections=3,metadata_ttl=0.25",
		    "-oretries=0,connect_timeout=2,request_timeout=9,"
		    "log_level=error,sse=AES256",
		    "-o", "uploads_prefix=in/,thumbs_prefix=th", "bkt", "/tmp",
		    NULL),
	    base_env());
	CHECK_INT(r.res, CFG_OK);
	CHECK_STR(r.c.s3.endpoint, "http://127.0.0.1:8000");
	CHECK_STR(r.c.s3.region, "eu-west-3");
	CHECK_INT(r.c.s3.addressing, S3_ADDR_VIRTUAL);
	CHECK_STR(r.c.creds.profile, "p1");
	CHECK_STR(r.c.creds.credentials_file, "/c");
	CHECK_STR(r.c.creds.config_file, "/a");
	CHECK_INT(r.c.s3.insecure, 1);
	CHECK_STR(r.c.cache.dir, "/var/tmp/x");
	CHECK_INT(r.c.cache.max_bytes, 512ull << 20);
	CHECK_INT(r.c.thumb.size, 64);
	CHECK_INT(r.c.thumb.crop, THUMB_CROP_CENTRE);
	CHECK_INT(r.c.thumb.max_pixels, 1000);
	CHECK_INT(r.c.thumb.concurrency, 7);
	CHECK_INT(r.c.link.expiry, 60);
	CHECK_INT(r.c.link.attachment, 1);
	CHECK_INT(r.c.link.upload_max, 7ull << 20);
	CHECK_INT(r.c.fs.part_size, 5ull << 20);
	CHECK_INT(r.c.fs.parts_in_flight, 2);
	CHECK_INT(r.c.s3.max_connections, 3);
	CHECK(r.c.fs.metadata_ttl == 0.25);
	CHECK_INT(r.c.s3.retries, 0);
	CHECK_INT(r.c.s3.connect_timeout, 2);
	CHECK_INT(r.c.s3.request_timeout, 9);
	CHECK_INT(r.c.log_level, LOG_LVL_ERROR);
	CHECK_STR(r.c.s3.sse, "AES256");
	CHECK_STR(r.c.fs.uploads_prefix, "in/");
	CHECK_STR(r.c.fs.thumbs_prefix, "th/");
	CHECK_INT(r.c.fs.foreground, 1);
	done(&r);
}

static void test_full_file(void)
{
	struct run r;

	run(&r, vec("imgfs", "--config", DATA "full.ini", "b-1", "/tmp", NULL),
	    base_env());
	CHECK_INT(r.res, CFG_OK);
	CHECK_STR(r.c.config_file, DATA "full.ini");
	CHECK_STR(r.c.s3.endpoint, "https://objects.example.net");
	CHECK_STR(r.c.s3.region, "ap-south-1");
	CHECK_INT(r.c.s3.addressing, S3_ADDR_VIRTUAL);
	CHECK_STR(r.c.creds.profile, "fileprofile");
	CHECK_STR(r.c.creds.credentials_file, "/etc/imgfs/credentials");
	CHECK_STR(r.c.creds.config_file, "/etc/imgfs/aws-config");
	CHECK_INT(r.c.s3.insecure, 1);
	CHECK_STR(r.c.cache.dir, "/var/tmp/imgfs-cache");
	CHECK_INT(r.c.cache.max_bytes, 2ull << 30);
	CHECK_INT(r.c.thumb.size, 256);
	CHECK_INT(r.c.thumb.crop, THUMB_CROP_ATTENTION);
	CHECK_INT(r.c.thumb.max_pixels, 50000000);
	CHECK_INT(r.c.thumb.concurrency, 3);
	CHECK_INT(r.c.link.expiry, 600);
	CHECK_INT(r.c.link.attachment, 1);
	CHECK_INT(r.c.fs.part_size, 16ull << 20);
	CHECK_INT(r.c.fs.parts_in_flight, 6);
	CHECK_INT(r.c.s3.max_connections, 32);
	CHECK(r.c.fs.metadata_ttl == 2.5);
	CHECK_INT(r.c.s3.retries, 7);
	CHECK_INT(r.c.s3.connect_timeout, 4);
	CHECK_INT(r.c.s3.request_timeout, 60);
	CHECK_INT(r.c.log_level, LOG_LVL_DEBUG);
	CHECK_STR(r.c.s3.sse, "aws:kms");
	CHECK_STR(r.c.s3.sse_kms_key_id,
		  "arn:aws:kms:ap-south-1:123456789012:key/abcd");
	CHECK_STR(r.c.fs.uploads_prefix, "incoming/");
	CHECK_STR(r.c.fs.thumbs_prefix, "thumbs/");
	done(&r);
}

static void test_precedence(void)
{
	struct run r;

	/* default < file */
	run(&r, vec("imgfs", "--config=" DATA "basic.ini", "bkt", "/tmp", NULL),
	    base_env());
	CHECK_INT(r.res, CFG_OK);
	CHECK_STR(r.c.s3.region, "eu-central-1");
	CHECK_STR(r.c.s3.endpoint, "http://file.example:9000");
	CHECK_INT(r.c.s3.addressing, S3_ADDR_PATH);
	CHECK_INT(r.c.thumb.size, 200);
	CHECK_INT(r.c.log_level, LOG_LVL_WARN);
	done(&r);
	/* file < environment */
	run(&r, vec("imgfs", "-o", "config=" DATA "basic.ini", "bkt", "/tmp",
		    NULL),
	    vec("HOME=/h", "AWS_REGION=eu-north-1",
		"AWS_ENDPOINT_URL=http://env.example:1", NULL));
	CHECK_INT(r.res, CFG_OK);
	CHECK_STR(r.c.s3.region, "eu-north-1");
	CHECK_STR(r.c.s3.endpoint, "http://env.example:1");
	CHECK_INT(r.c.thumb.size, 200);
	done(&r);
	/* environment < -o, wherever -o stands */
	run(&r, vec("imgfs", "bkt", "/tmp", "-o",
		    "region=sa-east-1,config=" DATA "basic.ini,thumb_size=300",
		    NULL),
	    vec("HOME=/h", "AWS_REGION=eu-north-1", NULL));
	CHECK_INT(r.res, CFG_OK);
	CHECK_STR(r.c.s3.region, "sa-east-1");
	CHECK_INT(r.c.thumb.size, 300);
	CHECK_STR(r.c.s3.endpoint, "http://file.example:9000");
	done(&r);
	/* the first variable of a pair wins; a later -o wins over an earlier */
	run(&r, vec("imgfs", "-o", "thumb_size=20", "-o", "thumb_size=30",
		    "bkt", "/tmp", NULL),
	    vec("HOME=/h", "AWS_DEFAULT_REGION=us-west-1",
		"AWS_REGION=us-west-2", "AWS_ENDPOINT_URL=http://generic:1",
		"AWS_ENDPOINT_URL_S3=http://s3only:2", "AWS_PROFILE=envprof",
		"AWS_CA_BUNDLE=" DATA "basic.ini",
		"AWS_SHARED_CREDENTIALS_FILE=/sc", "AWS_CONFIG_FILE=/ac", NULL));
	CHECK_INT(r.res, CFG_OK);
	CHECK_INT(r.c.thumb.size, 30);
	CHECK_STR(r.c.s3.region, "us-west-2");
	CHECK_STR(r.c.s3.endpoint, "http://s3only:2");
	CHECK_STR(r.c.creds.profile, "envprof");
	CHECK_STR(r.c.s3.ca_file, DATA "basic.ini");
	CHECK_STR(r.c.creds.credentials_file, "/sc");
	CHECK_STR(r.c.creds.config_file, "/ac");
	done(&r);
	/* an empty variable counts as unset */
	run(&r, vec("imgfs", "bkt", "/tmp", NULL),
	    vec("HOME=/h", "AWS_REGION=", "AWS_DEFAULT_REGION=eu-west-2", NULL));
	CHECK_INT(r.res, CFG_OK);
	CHECK_STR(r.c.s3.region, "eu-west-2");
	CHECK_STR(r.c.s3.endpoint, "https://s3.eu-west-2.amazonaws.com");
	done(&r);
}

static void test_bad_values(void)
{
	static const char *const bad[][2] = {
		{"thumb_size=15", "thumb_size"}, {"thumb_size=4097", "thumb_size"},
		{"thumb_size=12x", "thumb_size"}, {"thumb_size=-1", "thumb_size"},
		{"thumb_crop=middle", "thumb_crop"},
		{"addressing=dns", "addressing"}, {"max_pixels=0", "max_pixels"},
		{"link_disposition=download", "link_disposition"},
		{"part_size=4M", "part_size"}, {"part_size=6G", "part_size"},
		{"part_size=lots", "part_size"}, {"cache_max=1Q", "cache_max"},
		{"parts_in_flight=0", "parts_in_flight"},
		{"max_connections=0", "max_connections"},
		{"metadata_ttl=-1", "metadata_ttl"},
		{"metadata_ttl=nan", "metadata_ttl"},
		{"metadata_ttl=1e9", "metadata_ttl"}, {"retries=many", "retries"},
		{"connect_timeout=0", "connect_timeout"},
		{"request_timeout=", "request_timeout"},
		{"log_level=verbose", "log_level"}, {"sse=des", "sse"},
		{"insecure=maybe", "insecure"},
		{"endpoint=127.0.0.1:8000", "endpoint"},
		{"endpoint=ftp://host", "endpoint"},
		{"endpoint=http://host/path", "endpoint"},
		{"endpoint=http://", "endpoint"},
		{"region=us east", "region"}, {"region", "region"},
		{"uploads_prefix=/", "uploads_prefix"},
		{"uploads_prefix=x/,thumbs_prefix=x/", "thumbs_prefix"},
		{"uploads_prefix=a/,thumbs_prefix=a/b", "uploads_prefix"},
		{"sse_kms_key_id=k", "sse_kms_key_id"},
		{"sse=AES256,sse_kms_key_id=k", "sse_kms_key_id"},
		{"ca_file=/nonexistent/ca.pem", "ca_file"},
		{"config=", "config"},
		{"thumb_concurrency=0", "thumb_concurrency"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		expect_error(vec("imgfs", "-o", bad[i][0], "bkt", "/tmp", NULL),
			     base_env(), bad[i][1], NULL);
	/* the value is named too */
	expect_error(vec("imgfs", "-o", "thumb_size=9999", "bkt", "/tmp", NULL),
		     base_env(), "'thumb_size'", "'9999'");
	/* and a bad environment value says where it came from */
	expect_error(vec("imgfs", "bkt", "/tmp", NULL),
		     vec("HOME=/h", "AWS_ENDPOINT_URL=s3.example", NULL),
		     "endpoint", "s3.example");
	expect_error(vec("imgfs", "bkt", "/tmp", NULL),
		     vec("HOME=/h", "AWS_CA_BUNDLE=/nonexistent.pem", NULL),
		     "ca_file", "/nonexistent.pem");
}

static void test_link_expiry_bounds(void)
{
	static const struct {
		const char *v;
		int ok;
	} cases[] = {{"0", 0}, {"1", 1}, {"3600", 1}, {"604800", 1},
		     {"604801", 0}, {"-5", 0}, {"1h", 0}, {"", 0},
		     {"99999999999999999999", 0}};
	char opt[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct run r;

		snprintf(opt, sizeof(opt), "link_expiry=%s", cases[i].v);
		run(&r, vec("imgfs", "-o", opt, "bkt", "/tmp", NULL),
		    base_env());
		CHECK_INT(r.res, cases[i].ok ? CFG_OK : CFG_ERROR);
		CHECK(cases[i].ok || strstr(r.err, "link_expiry"));
		CHECK(cases[i].ok || strstr(r.err, "604800"));
		done(&r);
	}
}

static void test_upload_max_bounds(void)
{
	static const struct {
		const char *v;
		unsigned long long want; /* 0: refused */
	} cases[] = {{"0", 0}, {"1", 1}, {"50M", 50ull << 20},
		     {"5G", 5ull << 30}, {"6G", 0}, {"-1", 0}, {"lots", 0}};
	char opt[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct run r;

		snprintf(opt, sizeof(opt), "upload_max=%s", cases[i].v);
		run(&r, vec("imgfs", "-o", opt, "bkt", "/tmp", NULL),
		    base_env());
		CHECK_INT(r.res, cases[i].want ? CFG_OK : CFG_ERROR);
		CHECK(!cases[i].want || r.c.link.upload_max == cases[i].want);
		CHECK(cases[i].want || strstr(r.err, "upload_max"));
		done(&r);
	}
}

static void test_sizes(void)
{
	static const struct {
		const char *s;
		int rc;
		uint64_t v;
	} cases[] = {
		{"0", 0, 0}, {"128", 0, 128}, {"1K", 0, 1024}, {"1k", 0, 1024},
		{"8M", 0, 8ull << 20}, {"1G", 0, 1ull << 30},
		{"5MiB", 0, 5ull << 20}, {"3GB", 0, 3ull << 30},
		{"2T", 0, 2ull << 40}, {"15E", 0, 15ull << 60},
		{"16E", ERANGE, 0}, {"99999999999999999999", ERANGE, 0},
		{"", EINVAL, 0}, {"M", EINVAL, 0}, {"-1", EINVAL, 0},
		{" 1", EINVAL, 0}, {"1 M", EINVAL, 0}, {"1X", EINVAL, 0},
		{"1MM", EINVAL, 0}, {"1.5G", EINVAL, 0}, {"+1", EINVAL, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		uint64_t v = 12345;
		int rc = cfg_parse_size(cases[i].s, &v);

		if (rc != cases[i].rc)
			fprintf(stderr, "  size '%s'\n", cases[i].s);
		CHECK_INT(rc, cases[i].rc);
		if (rc == 0)
			CHECK_INT(v, cases[i].v);
	}
	CHECK_INT(cfg_parse_size(NULL, NULL), EINVAL);
}

static void test_unknown_and_usage(void)
{
	struct run r;

	expect_error(vec("imgfs", "-o", "foo", "bkt", "/tmp", NULL), base_env(),
		     "imgfs: unknown option 'foo'", NULL);
	expect_error(vec("imgfs", "-o", "colour=blue", "bkt", "/tmp", NULL),
		     base_env(), "unknown option 'colour'", NULL);
	expect_error(vec("imgfs", "--frobnicate", "bkt", "/tmp", NULL),
		     base_env(), "unknown option '--frobnicate'", NULL);
	expect_error(vec("imgfs", "-x", "bkt", "/tmp", NULL), base_env(),
		     "'-x'", NULL);
	expect_error(vec("imgfs", NULL), base_env(), "BUCKET", "usage");
	expect_error(vec("imgfs", "bkt", NULL), base_env(), "MOUNTPOINT", NULL);
	expect_error(vec("imgfs", "bkt", "/tmp", "extra", NULL), base_env(),
		     "'extra'", NULL);
	expect_error(vec("imgfs", "bkt", "/tmp", "-o", NULL), base_env(),
		     "'-o'", NULL);
	expect_error(vec("imgfs", "bkt", "/tmp", "--config", NULL), base_env(),
		     "--config", NULL);
	expect_error(vec("imgfs", "-o", "region", "bkt", "/tmp", NULL),
		     base_env(), "region", "needs a value");
	expect_error(vec("imgfs", "b", "/tmp", NULL), base_env(), "bucket",
		     NULL);
	expect_error(vec("imgfs", "bad/bucket", "/tmp", NULL), base_env(),
		     "bucket", NULL);
	expect_error(vec("imgfs", "bkt", "/nonexistent/mnt", NULL), base_env(),
		     "/nonexistent/mnt", NULL);
	expect_error(vec("imgfs", "bkt", DATA "basic.ini", NULL), base_env(),
		     "Not a directory", NULL);
	/* "--" ends the options */
	run(&r, vec("imgfs", "-f", "--", "bkt", "/tmp", NULL), base_env());
	CHECK_INT(r.res, CFG_OK);
	done(&r);
	/* a relative mountpoint becomes absolute */
	run(&r, vec("imgfs", "bkt", "tests/unit/data", NULL), base_env());
	CHECK_INT(r.res, CFG_OK);
	CHECK(r.c.fs.mountpoint && r.c.fs.mountpoint[0] == '/');
	CHECK(r.c.fs.mountpoint &&
	      strstr(r.c.fs.mountpoint, "/tests/unit/data") != NULL);
	done(&r);
}

static void test_help_version(void)
{
	static const char *const names[] = {
		"endpoint", "region", "addressing", "profile", "ca_file",
		"insecure", "cache_dir", "cache_max", "thumb_size", "thumb_crop",
		"max_pixels", "thumb_concurrency", "link_expiry",
		"link_disposition", "upload_max", "part_size", "parts_in_flight",
		"max_connections", "metadata_ttl", "retries", "connect_timeout",
		"request_timeout", "log_level", "sse", "sse_kms_key_id",
		"uploads_prefix", "thumbs_prefix", "AWS_ENDPOINT_URL_S3",
		"AWS_REGION", "AWS_PROFILE", "AWS_CA_BUNDLE", "--config", "-f",
		"-d", "allow_other"};
	struct run r;

	run(&r, vec("imgfs", "-h", NULL), base_env());
	CHECK_INT(r.res, CFG_EXIT_OK);
	CHECK(r.out && strstr(r.out, "usage: imgfs"));
	for (size_t i = 0; r.out && i < sizeof(names) / sizeof(*names); i++) {
		if (!strstr(r.out, names[i]))
			fprintf(stderr, "  help lacks %s\n", names[i]);
		CHECK(strstr(r.out, names[i]) != NULL);
	}
	CHECK(r.out && strstr(r.out, "default 3600") &&
	      strstr(r.out, "default 128"));
	done(&r);
	run(&r, vec("imgfs", "bkt", "/tmp", "--help", NULL), base_env());
	CHECK_INT(r.res, CFG_EXIT_OK);
	done(&r);
	run(&r, vec("imgfs", "-V", NULL), base_env());
	CHECK_INT(r.res, CFG_EXIT_OK);
	CHECK_STR(r.out, "imgfs " IMGFS_VERSION "\n");
	done(&r);
	run(&r, vec("imgfs", "--version", NULL), base_env());
	CHECK_INT(r.res, CFG_EXIT_OK);
	done(&r);
}

/* How mount.fuse3 runs us from an fstab line. */
static void test_mount_helper_shape(void)
{
	struct run r;

	run(&r, vec("imgfs", "photos-bucket", "/tmp", "-o",
		    "rw,nosuid,nodev,noexec,noatime,nodiratime,relatime,"
		    "_netdev,auto,user,nofail,"
		    "x-systemd.automount,comment=hello,defaults,"
		    "config=" DATA "basic.ini,allow_other",
		    NULL),
	    base_env());
	CHECK_INT(r.res, CFG_OK);
	CHECK_STR(r.c.s3.bucket, "photos-bucket");
	CHECK_STR(r.c.s3.region, "eu-central-1");
	CHECK_STR(r.c.config_file, DATA "basic.ini");
	CHECK(r.c.fuse_opts != NULL);
	if (r.c.fuse_opts) {
		static const char *const want[] = {"rw", "nosuid", "nodev",
						   "noexec", "noatime",
						   "allow_other", NULL};
		int n = 0;

		for (; r.c.fuse_opts[n]; n++)
			CHECK_STR(r.c.fuse_opts[n], want[n] ? want[n] : "?");
		CHECK_INT(n, 6);
	}
	done(&r);
}

static void test_fuse_passthrough(void)
{
	struct run r;

	/* nonempty is imgfs' own (libfuse 3 has none), off by default */
	run(&r, vec("imgfs", "bkt", "/tmp", NULL), base_env());
	CHECK_INT(r.c.fs.nonempty, 0);
	done(&r);
	run(&r, vec("imgfs", "-o", "nonempty,allow_other", "bkt", "/tmp", NULL),
	    base_env());
	CHECK_INT(r.res, CFG_OK);
	CHECK_INT(r.c.fs.nonempty, 1);
	CHECK(r.c.fuse_opts && r.c.fuse_opts[0] &&
	      strcmp(r.c.fuse_opts[0], "allow_other") == 0 &&
	      r.c.fuse_opts[1] == NULL);
	done(&r);

	run(&r, vec("imgfs", "-d", "-o",
		    "allow_root,default_permissions,auto_unmount,ro,"
		    "fsname=imgfs#bkt,subtype=imgfs,max_read=131072",
		    "bkt", "/tmp", NULL),
	    base_env());
	CHECK_INT(r.res, CFG_OK);
	CHECK_INT(r.c.fs.debug, 1);
	CHECK_INT(r.c.fs.foreground, 1);
	CHECK_INT(r.c.log_level, LOG_LVL_DEBUG);
	CHECK(r.c.fuse_opts && r.c.fuse_opts[0]);
	if (r.c.fuse_opts && r.c.fuse_opts[0]) {
		CHECK_STR(r.c.fuse_opts[0], "allow_root");
		CHECK_STR(r.c.fuse_opts[4], "fsname=imgfs#bkt");
		CHECK_STR(r.c.fuse_opts[6], "max_read=131072");
		CHECK(r.c.fuse_opts[7] == NULL);
	}
	done(&r);
	/* -d keeps an explicit log level; backslash escapes a comma */
	run(&r, vec("imgfs", "-d", "-o",
		    "log_level=warn,sse=aws:kms,sse_kms_key_id=a\\,b", "bkt",
		    "/tmp", NULL),
	    base_env());
	CHECK_INT(r.res, CFG_OK);
	CHECK_INT(r.c.log_level, LOG_LVL_WARN);
	CHECK_STR(r.c.s3.sse_kms_key_id, "a,b");
	done(&r);
}

static void test_addressing(void)
{
	static const struct {
		const char *bucket, *opt;
		enum s3_addressing want;
	} cases[] = {
		{"photos", "region=eu-west-1", S3_ADDR_VIRTUAL},
		{"my.photos", "region=eu-west-1", S3_ADDR_PATH},
		{"my.photos", "endpoint=http://s3.eu-west-1.amazonaws.com",
		 S3_ADDR_VIRTUAL},
		{"My_Photos", "region=eu-west-1", S3_ADDR_PATH},
		{"photos", "endpoint=http://127.0.0.1:7480", S3_ADDR_PATH},
		{"photos", "endpoint=https://minio.example.com", S3_ADDR_PATH},
		{"photos", "endpoint=http://127.0.0.1:7480,addressing=virtual",
		 S3_ADDR_VIRTUAL},
		{"photos", "addressing=path", S3_ADDR_PATH},
		{"photos", "endpoint=HTTPS://S3.US-EAST-1.AMAZONAWS.COM",
		 S3_ADDR_VIRTUAL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct run r;

		run(&r, vec("imgfs", "-o", cases[i].opt, cases[i].bucket,
			    "/tmp", NULL),
		    base_env());
		CHECK_INT(r.res, CFG_OK);
		CHECK_INT(r.c.s3.addressing, cases[i].want);
		CHECK(r.c.s3.endpoint &&
		      strncmp(r.c.s3.endpoint, "http", 4) == 0);
		done(&r);
	}
}

static void test_cache_dir(void)
{
	struct run r;

	if (geteuid() == 0) {
		run(&r, vec("imgfs", "bkt", "/tmp", NULL),
		    vec("HOME=/h", "XDG_CACHE_HOME=/xdg", NULL));
		CHECK_STR(r.c.cache.dir, "/var/cache/imgfs/bkt");
		done(&r);
		return;
	}
	run(&r, vec("imgfs", "bkt", "/tmp", NULL),
	    vec("HOME=/h", "XDG_CACHE_HOME=/xdg", NULL));
	CHECK_STR(r.c.cache.dir, "/xdg/imgfs/bkt");
	done(&r);
	run(&r, vec("imgfs", "bkt", "/tmp", NULL),
	    vec("HOME=/h", "XDG_CACHE_HOME=relative", NULL));
	CHECK_STR(r.c.cache.dir, "/h/.cache/imgfs/bkt");
	done(&r);
}

static void test_getenv(void)
{
	char **env = vec("A=1", "AB=2", "EMPTY=", "B", NULL);

	CHECK_STR(cfg_getenv(env, "A"), "1");
	CHECK_STR(cfg_getenv(env, "AB"), "2");
	CHECK(cfg_getenv(env, "EMPTY") == NULL);
	CHECK(cfg_getenv(env, "B") == NULL);
	CHECK(cfg_getenv(NULL, "A") == NULL);
	vec_free(env);
}

static void test_thumb_sizes(void)
{
	static const char *const bad[][2] = {
		{"thumb_sizes=128,,256", "256"},
		{"thumb_sizes=128,15", "thumb_sizes"},
		{"thumb_sizes=128,x", "x"},
		{"thumb_sizes=128,128", "twice"},
		{"thumb_sizes=16,17,18,19,20,21,22,23,24", "more than"},
		{"thumb_size=64,thumb_sizes=128,256", "disagree"},
	};
	struct run r;

	run(&r, vec("imgfs", "-o", "thumb_sizes=128,256,thumb_eager=false",
		    "b1x", "/tmp", NULL), base_env());
	CHECK_INT(r.res, CFG_OK);
	CHECK_INT(r.c.thumb.nsizes, 2);
	CHECK_INT(r.c.thumb.sizes[0], 128);
	CHECK_INT(r.c.thumb.sizes[1], 256);
	CHECK_INT(r.c.thumb.size, 128);
	CHECK_INT(r.c.thumb.eager, 0);
	done(&r);
	run(&r, vec("imgfs", "-o", "thumb_sizes=200", "b1x", "/tmp", NULL),
	    base_env());
	CHECK_INT(r.res, CFG_OK);
	CHECK_INT(r.c.thumb.size, 200);
	done(&r);
	run(&r, vec("imgfs", "-o", "thumb_size=64", "b1x", "/tmp", NULL),
	    base_env());
	CHECK_INT(r.c.thumb.nsizes, 1);
	CHECK_INT(r.c.thumb.sizes[0], 64);
	done(&r);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run(&r, vec("imgfs", "-o", bad[i][0], "b1x", "/tmp", NULL),
		    base_env());
		CHECK_INT(r.res, CFG_ERROR);
		CHECK(strstr(r.err, bad[i][1]) != NULL);
		done(&r);
	}
}

int main(void)
{
	test_defaults();
	test_thumb_sizes();
	test_every_option();
	test_full_file();
	test_precedence();
	test_bad_values();
	test_link_expiry_bounds();
	test_upload_max_bounds();
	test_sizes();
	test_unknown_and_usage();
	test_help_version();
	test_mount_helper_shape();
	test_fuse_passthrough();
	test_addressing();
	test_cache_dir();
	test_getenv();
	return check_done("test_cfg");
}
