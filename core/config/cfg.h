/*
 * cfg: the daemon's configuration, parsed once at start-up.
 *
 * Sources, highest precedence first: -o key=value on the command line, the
 * standard AWS environment variables, the [imgfs] section of the INI file
 * named by --config (or -o config=FILE), then built-in defaults.
 *
 * One sub-struct per module; each module is handed only its part. Strings
 * are owned by the struct cfg and freed by cfg_release(). After cfg_parse()
 * returns 0, every field is set and validated.
 */
#ifndef IMGFS_CFG_H
#define IMGFS_CFG_H

#include <stddef.h>
#include <stdint.h>

#ifndef IMGFS_VERSION
#define IMGFS_VERSION "0.1.0"
#endif

enum s3_addressing { S3_ADDR_AUTO, S3_ADDR_PATH, S3_ADDR_VIRTUAL };

struct s3_conf {
	char *bucket;             /* bucket name */
	char *endpoint;           /* scheme://host[:port], no trailing slash */
	char *region;             /* signing region */
	enum s3_addressing addressing; /* never AUTO after cfg_parse() */
	char *ca_file;            /* CA bundle, NULL for the system's */
	int insecure;             /* 1: do not verify TLS (logged loudly) */
	unsigned max_connections; /* concurrent requests to S3 */
	unsigned retries;         /* attempts after the first */
	unsigned retry_window;    /* seconds after a request's first attempt
				     in which a retry may start */
	unsigned connect_timeout; /* seconds */
	unsigned request_timeout; /* seconds without progress before giving up */
	char *sse;                /* NULL, "AES256" or "aws:kms" */
	char *sse_kms_key_id;     /* with sse=aws:kms, or NULL */
	uint64_t copy_max;        /* larger objects are copied part by part */
};

struct creds_conf {
	char *profile;            /* profile name in the shared files */
	char *credentials_file;   /* AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials */
	char *config_file;        /* AWS_CONFIG_FILE or ~/.aws/config */
};

struct cache_conf {
	char *dir;                /* cache directory (spools, SQLite database) */
	uint64_t max_bytes;       /* thumbnail cache bound */
	uint64_t data_max_bytes;  /* data cache bound; 0 disables it */
	uint64_t spool_max;       /* bytes all spool files may hold; 0: no bound */
};

enum thumb_crop { THUMB_CROP_NONE, THUMB_CROP_ATTENTION, THUMB_CROP_CENTRE };

#define THUMB_SIZES_MAX 8 /* sizes thumb_sizes may list */

struct thumb_conf {
	unsigned size;            /* bounding box edge in pixels: sizes[0] */
	enum thumb_crop crop;     /* none: fit inside; else fill the box exactly */
	uint64_t max_pixels;      /* refuse sources larger than this */
	unsigned concurrency;     /* decodes at once */
	unsigned sizes[THUMB_SIZES_MAX]; /* every size, the first for
				     thumbnails/, each further N for
				     thumbnails-N/; distinct */
	unsigned nsizes;          /* 1..THUMB_SIZES_MAX */
	char *sizes_text;         /* thumb_sizes as given, or NULL */
	int eager;                /* 1: thumbnails of files written through
				     the mount are made at close */
	unsigned timeout;         /* seconds a decode may take before its
				     worker is killed */
	int first_frame;          /* 1: animations give still thumbnails */
};

struct link_conf {
	unsigned expiry;          /* seconds, 1..604800 */
	int attachment;           /* 1: add response-content-disposition=attachment */
	uint64_t upload_max;      /* bytes an upload link's POST policy allows, 1..5 GiB */
	const char *bucket;       /* alias of s3.bucket (not owned), for the gallery's title; may be NULL */
};

struct fs_conf {
	char *uploads_prefix;     /* S3 prefix for uploads/, ends with '/' */
	char *thumbs_prefix;      /* S3 prefix for thumbnails/, ends with '/' */
	uint64_t part_size;       /* multipart part size in bytes */
	unsigned parts_in_flight; /* per file being written */
	uint64_t read_ahead;      /* the kernel's read-ahead window, bytes;
				     0 leaves the kernel's own */
	uint64_t memory_max;      /* bytes of part and read-ahead buffers, for
				     the whole daemon (base/membudget.h) */
	double metadata_ttl;      /* seconds listings and attributes are cached */
	int foreground;           /* -f */
	int debug;                /* -d: libfuse debug output */
	int nonempty;             /* 1: mount over a folder that holds files */
	char *mountpoint;         /* absolute path */
};

struct cfg {
	struct s3_conf s3;
	struct creds_conf creds;
	struct cache_conf cache;
	struct thumb_conf thumb;
	struct link_conf link;
	struct fs_conf fs;
	int log_level;            /* enum log_level */
	char *config_file;        /* the INI file read, or NULL */
	char **fuse_opts;         /* NULL-terminated "-o" options passed to FUSE */
};

enum cfg_result {
	CFG_OK,      /* parsed: mount */
	CFG_EXIT_OK, /* -h or -V was handled: exit 0 */
	CFG_ERROR,   /* a one-line error was written to err: exit non-zero */
};

/*
 * Parse argv (imgfs [options] BUCKET MOUNTPOINT) and the environment envp
 * (NULL-terminated, "NAME=value"). On CFG_ERROR, err holds a one-line message
 * naming the bad option; on CFG_EXIT_OK, out holds the help or version text.
 * In every case call cfg_release() afterwards.
 * err messages start with "imgfs: " and have no trailing newline; *out
 * (when out is not NULL) is allocated, ends with a newline, and the caller
 * frees it. Not thread-safe with respect to c; reads no global state but
 * envp (and the euid, for root's cache directory).
 */
enum cfg_result cfg_parse(struct cfg *c, int argc, char **argv, char **envp,
			  char *err, size_t errlen, char **out);
void cfg_release(struct cfg *c);

/* Parse sizes like "128", "8M", "1G" (binary units). 0 or EINVAL/ERANGE. */
int cfg_parse_size(const char *s, uint64_t *out);

/*
 * Read the INI file at path with inih, calling handler(user, section, name,
 * value, line) for each key, line being the key's line in the file; the
 * handler returns nonzero to go on, 0 to mark that line bad. Lines may be
 * of any length (values such as session tokens reach handler whole). Only
 * regular files of at most 1 MiB are read.
 * Returns 0; an errno from opening path; EFBIG when it is not a regular file
 * or too large; ENOMEM; or EBADMSG with *bad_line set to the first line that
 * is malformed or that handler refused. Thread-safe.
 */
typedef int (*cfg_ini_handler)(void *user, const char *section,
			       const char *name, const char *value, int line);
int cfg_ini_read(const char *path, cfg_ini_handler handler, void *user,
		 int *bad_line);

/* The value of NAME in envp ("NAME=value" strings), or NULL when unset or
 * empty. The result points into envp. */
const char *cfg_getenv(char **envp, const char *name);

#endif
