/*
 * cfg_table: every option imgfs has, one row each (its name, the field it
 * sets, the environment variables that may supply it, its default and
 * bounds), the FUSE and mount(8) options it passes or ignores, and the
 * --help text made from them.
 */
#include "config/cfg_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "base/buf.h"
#include "base/log.h"

static const char *const addressing_names[] = {"auto", "path", "virtual", NULL};
static const char *const crop_names[] = {"none", "attention", "centre", NULL};
static const char *const disposition_names[] = {"inline", "attachment", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const sse_names[] = {"AES256", "aws:kms", NULL};
static const char *const bool_names[] = {"false", "true", NULL};

#define F(field) offsetof(struct cfg, field)

const struct key_def cfg_keys[] = {
	{"endpoint", KIND_STR, F(s3.endpoint),
	 {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}, NULL, 0, 0, NULL,
	 "S3 endpoint URL", "https://s3.REGION.amazonaws.com"},
	{"region", KIND_STR, F(s3.region), {"AWS_REGION", "AWS_DEFAULT_REGION"},
	 "us-east-1", 0, 0, NULL, "signing region", NULL},
	{"addressing", KIND_ENUM, F(s3.addressing), {NULL, NULL}, "auto", 0, 0,
	 addressing_names,
	 "auto: virtual-hosted on AWS, path-style elsewhere", NULL},
	{"profile", KIND_STR, F(creds.profile), {"AWS_PROFILE", NULL}, "default",
	 0, 0, NULL, "profile in the shared credentials and config files", NULL},
	{"credentials_file", KIND_STR, F(creds.credentials_file),
	 {"AWS_SHARED_CREDENTIALS_FILE", NULL}, NULL, 0, 0, NULL,
	 "shared credentials file", "~/.aws/credentials"},
	{"aws_config_file", KIND_STR, F(creds.config_file),
	 {"AWS_CONFIG_FILE", NULL}, NULL, 0, 0, NULL,
	 "shared AWS config file", "~/.aws/config"},
	{"ca_file", KIND_STR, F(s3.ca_file), {"AWS_CA_BUNDLE", NULL}, NULL, 0, 0,
	 NULL, "CA bundle for TLS", "the system's CAs"},
	{"insecure", KIND_BOOL, F(s3.insecure), {NULL, NULL}, "false", 0, 0,
	 bool_names, "do not verify TLS certificates (unsafe)", NULL},
	{"cache_dir", KIND_STR, F(cache.dir), {NULL, NULL}, NULL, 0, 0, NULL,
	 "cache directory (root's: /var/cache/imgfs/BUCKET)",
	 "$XDG_CACHE_HOME/imgfs/BUCKET"},
	{"cache_max", KIND_SIZE, F(cache.max_bytes), {NULL, NULL}, "1G", MIB,
	 1024 * 1024 * GIB, NULL, "thumbnail cache size bound", NULL},
	{"data_cache_max", KIND_SIZE, F(cache.data_max_bytes), {NULL, NULL}, "2G",
	 0, 1024 * 1024 * GIB, NULL,
	 "local cache of object data (0 disables it)", NULL},
	{"spool_max", KIND_SIZE, F(cache.spool_max), {NULL, NULL}, "1G", 0,
	 1024 * 1024 * GIB, NULL, "bytes the spool files of files being "
	 "written may hold in cache_dir (0: no bound)", NULL},
	{"thumb_size", KIND_UINT, F(thumb.size), {NULL, NULL}, "128", 16, 4096,
	 NULL, "thumbnail bounding box edge in pixels", NULL},
	{"thumb_sizes", KIND_STR, F(thumb.sizes_text), {NULL, NULL}, NULL, 0, 0,
	 NULL, "thumbnail sizes, comma-separated: thumbnails/, thumbnails-N/",
	 "thumb_size"},
	{"thumb_eager", KIND_BOOL, F(thumb.eager), {NULL, NULL}, "true", 0, 0,
	 bool_names, "make thumbnails of files written here at close", NULL},
	{"thumb_crop", KIND_ENUM, F(thumb.crop), {NULL, NULL}, "none", 0, 0,
	 crop_names, "none fits inside the box; attention/centre fill it", NULL},
	{"max_pixels", KIND_U64, F(thumb.max_pixels), {NULL, NULL}, "100000000",
	 1, 1000000000000ull, NULL, "largest source image in pixels", NULL},
	{"thumb_concurrency", KIND_UINT, F(thumb.concurrency), {NULL, NULL},
	 NULL, 1, 256, NULL, "thumbnails decoded at once",
	 "the number of CPU cores"},
	{"thumb_timeout", KIND_UINT, F(thumb.timeout), {NULL, NULL}, "10", 1,
	 600, NULL, "seconds a decode may take; then its worker is killed",
	 NULL},
	{"thumb_first_frame", KIND_BOOL, F(thumb.first_frame), {NULL, NULL},
	 "false", 0, 0, bool_names,
	 "animated sources give still thumbnails (the first frame)", NULL},
	{"link_expiry", KIND_UINT, F(link.expiry), {NULL, NULL}, "3600", 1,
	 604800, NULL, "presigned link lifetime in seconds", NULL},
	{"link_disposition", KIND_ENUM, F(link.attachment), {NULL, NULL},
	 "inline", 0, 0, disposition_names,
	 "attachment makes browsers download linked files", NULL},
	{"upload_max", KIND_SIZE, F(link.upload_max), {NULL, NULL}, "50M", 1,
	 5 * GIB, NULL, "largest file an upload link (.links/upload/) accepts",
	 NULL},
	{"part_size", KIND_SIZE, F(fs.part_size), {NULL, NULL}, "8M", 5 * MIB,
	 5 * GIB, NULL, "multipart upload part size", NULL},
	{"copy_max", KIND_SIZE, F(s3.copy_max), {NULL, NULL}, "5G", 5 * MIB,
	 5 * GIB, NULL, "objects larger than this are copied (mv, chmod, "
	 "touch) part by part; 5G is S3's CopyObject limit", NULL},
	{"memory_max", KIND_SIZE, F(fs.memory_max), {NULL, NULL}, "256M",
	 16 * MIB, 1024 * GIB, NULL,
	 "upload part and read-ahead buffers of all files together", NULL},
	{"parts_in_flight", KIND_UINT, F(fs.parts_in_flight), {NULL, NULL}, "4",
	 1, 64, NULL, "parts uploading at once per file", NULL},
	{"read_ahead", KIND_SIZE, F(fs.read_ahead), {NULL, NULL}, "4M", 0,
	 GIB, NULL, "the kernel's read-ahead window for this mount (root "
	 "only; 0 keeps the kernel's 128K)", NULL},
	{"max_connections", KIND_UINT, F(s3.max_connections), {NULL, NULL}, "16",
	 1, 1024, NULL, "concurrent requests to S3", NULL},
	{"metadata_ttl", KIND_SECS, F(fs.metadata_ttl), {NULL, NULL}, "5", 0,
	 86400, NULL, "seconds listings and attributes are cached", NULL},
	{"retries", KIND_UINT, F(s3.retries), {NULL, NULL}, "30", 0, 100, NULL,
	 "most retries of a failed request", NULL},
	{"retry_window", KIND_UINT, F(s3.retry_window), {NULL, NULL}, "60", 0,
	 86400, NULL, "seconds after a request's first attempt in which it "
	 "is retried (0: no limit but retries)", NULL},
	{"connect_timeout", KIND_UINT, F(s3.connect_timeout), {NULL, NULL}, "10",
	 1, 3600, NULL, "seconds to connect to S3", NULL},
	{"request_timeout", KIND_UINT, F(s3.request_timeout), {NULL, NULL}, "30",
	 1, 86400, NULL, "seconds without progress before a request fails", NULL},
	{"nonempty", KIND_BOOL, F(fs.nonempty), {NULL, NULL}, "false", 0, 0,
	 bool_names, "mount over a folder that holds files (hiding them)", NULL},
	{"log_level", KIND_ENUM, F(log_level), {NULL, NULL}, "info", 0, 0,
	 level_names, "error, warn, info or debug (-d: debug)", NULL},
	{"sse", KIND_STR, F(s3.sse), {NULL, NULL}, NULL, 0, 0, sse_names,
	 "server-side encryption of uploads", "none"},
	{"sse_kms_key_id", KIND_STR, F(s3.sse_kms_key_id), {NULL, NULL}, NULL, 0,
	 0, NULL, "KMS key for sse=aws:kms", "the bucket's key"},
	{"uploads_prefix", KIND_STR, F(fs.uploads_prefix), {NULL, NULL},
	 "uploads/", 0, 0, NULL, "S3 prefix shown as uploads/", NULL},
	{"thumbs_prefix", KIND_STR, F(fs.thumbs_prefix), {NULL, NULL},
	 "thumbnails/", 0, 0, NULL, "S3 prefix where thumbnails are stored", NULL},
};

#undef F

const size_t cfg_nkeys = sizeof(cfg_keys) / sizeof(*cfg_keys);
_Static_assert(sizeof(cfg_keys) / sizeof(*cfg_keys) <= CFG_KEY_MAX,
	       "raise CFG_KEY_MAX");

/* Mount options for FUSE (each checked against libfuse 3.14). */
const char *const cfg_fuse_flags[] = {
	"allow_other", "allow_root", "default_permissions", "auto_unmount",
	"ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec",
	"async", "sync", "dirsync", "noatime", NULL};
const char *const cfg_fuse_prefixes[] = {"fsname=", "subtype=",
					    "max_read=", NULL};
/* Options mount(8) and mount.fuse3 pass that nobody downstream needs. */
const char *const cfg_ignored_flags[] = {
	"_netdev", "auto", "noauto", "user", "nouser", "users", "owner",
	"group", "defaults", "nofail", "atime", "diratime",
	"nodiratime", "relatime", "strictatime", "lazytime", NULL};
const char *const cfg_ignored_prefixes[] = {"x-", "comment=", NULL};

/* ---- help ------------------------------------------------------------- */

static void help_key(struct buf *b, const struct key_def *k)
{
	const char *def = k->def ? k->def : k->def_text;
	char expect[96];

	buf_addf(b, "    -o %-20s %s\n%28sdefault %s", k->name, k->help, "",
		 def ? def : "none");
	if (k->kind != KIND_STR || k->choices) {
		cfg_key_expect(k, expect, sizeof(expect));
		buf_addf(b, "; %s", expect);
	}
	if (k->env[0])
		buf_addf(b, "\n%28senv %s%s%s", "", k->env[0],
			 k->env[1] ? ", " : "", k->env[1] ? k->env[1] : "");
	buf_adds(b, "\n");
}

/* title, then every name of flags and prefixes (each prefix followed by
 * tail), wrapped under 80 columns. */
static void help_list(struct buf *b, const char *title,
		      const char *const *flags, const char *const *prefixes,
		      const char *tail)
{
	size_t col = strlen(title);
	char word[64];

	buf_adds(b, title);
	for (int list = 0; list < 2; list++) {
		const char *const *names = list ? prefixes : flags;

		for (int i = 0; names[i]; i++) {
			int last = list && !names[i + 1];

			snprintf(word, sizeof(word), "%s%s%s", names[i],
				 list && names[i][strlen(names[i]) - 1] == '-'
					 ? tail : "",
				 last ? "." : ",");
			if (col + 1 + strlen(word) > 79) {
				buf_adds(b, "\n   ");
				col = 3;
			}
			buf_addf(b, " %s", word);
			col += 1 + strlen(word);
		}
	}
	buf_adds(b, "\n");
}

char *cfg_help_text(void)
{
	struct buf b = BUF_INIT;

	buf_adds(&b,
		 "usage: imgfs [options] BUCKET MOUNTPOINT\n"
		 "       imgfs BUCKET MOUNTPOINT -o opt[,opt...]   "
		 "(as mount.fuse3 runs it)\n\n"
		 "Mount an S3 bucket as an image workspace: uploads/, "
		 "thumbnails/, .links/.\n\n"
		 "general options:\n"
		 "    -f                      stay in the foreground\n"
		 "    -d                      FUSE debug output (implies -f "
		 "and log_level=debug)\n"
		 "    -o key=value[,...]      set options (repeatable)\n"
		 "    --config FILE           read the [imgfs] section of an "
		 "INI file\n"
		 "                            (also -o config=FILE)\n"
		 "    -h, --help              print this help\n"
		 "    -V, --version           print the version\n"
		 "    --thumb-worker-probe    start a sandboxed thumbnail "
		 "worker, show that it\n"
		 "                            cannot open a file or a socket\n\n"
		 "imgfs options (precedence: -o, environment, file, default):\n");
	for (size_t i = 0; i < cfg_nkeys; i++)
		help_key(&b, &cfg_keys[i]);
	help_list(&b, "\nFUSE options passed through:", cfg_fuse_flags,
		  cfg_fuse_prefixes, "");
	help_list(&b, "Ignored mount(8) options:", cfg_ignored_flags,
		  cfg_ignored_prefixes, "*");
	buf_adds(&b, "See imgfs(1) for details.\n");
	return buf_detach(&b, NULL);
}
