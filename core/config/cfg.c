/*
 * cfg: command line, environment, INI file and defaults (see cfg.h).
 *
 * Every option is one row of key_table: its name, the field it sets, the
 * environment variables that may supply it, its default and its bounds.
 * Parsing collects raw strings in three layers (-o, environment, file),
 * then resolves each key once, highest layer first, and converts it into
 * struct cfg. Values that depend on others (endpoint, addressing, cache
 * directory, shared-file paths) are derived afterwards.
 */
#include "config/cfg.h"

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

#define KIB 1024ull
/* A config file is small; refuse devices and anything huge. */
#define CFG_MAX_FILE (1024 * 1024)
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

enum key_kind {
	KIND_STR,   /* char *, optionally one of choices */
	KIND_UINT,  /* unsigned within min..max */
	KIND_SIZE,  /* uint64_t with a binary unit, within min..max */
	KIND_U64,   /* uint64_t, plain number within min..max */
	KIND_SECS,  /* double seconds within min..max */
	KIND_BOOL,  /* int 0/1; "-o name" alone means true */
	KIND_ENUM,  /* int: the index of the value in choices */
};

struct key_def {
	const char *name;
	enum key_kind kind;
	size_t off;                 /* field in struct cfg */
	const char *env[2];         /* environment variables, first wins */
	const char *def;            /* default text; NULL: none or derived */
	uint64_t min, max;          /* bounds of numeric kinds */
	const char *const *choices; /* NULL-terminated accepted values */
	const char *help;           /* one line for --help */
	const char *def_text;       /* --help's words for a derived default */
};

static const char *const addressing_names[] = {"auto", "path", "virtual", NULL};
static const char *const crop_names[] = {"none", "attention", "centre", NULL};
static const char *const disposition_names[] = {"inline", "attachment", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const sse_names[] = {"AES256", "aws:kms", NULL};
static const char *const bool_names[] = {"false", "true", NULL};

#define F(field) offsetof(struct cfg, field)

static const struct key_def key_table[] = {
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
	{"thumb_size", KIND_UINT, F(thumb.size), {NULL, NULL}, "128", 16, 4096,
	 NULL, "thumbnail bounding box edge in pixels", NULL},
	{"thumb_crop", KIND_ENUM, F(thumb.crop), {NULL, NULL}, "none", 0, 0,
	 crop_names, "none fits inside the box; attention/centre fill it", NULL},
	{"max_pixels", KIND_U64, F(thumb.max_pixels), {NULL, NULL}, "100000000",
	 1, 1000000000000ull, NULL, "largest source image in pixels", NULL},
	{"thumb_concurrency", KIND_UINT, F(thumb.concurrency), {NULL, NULL},
	 NULL, 1, 256, NULL, "thumbnails decoded at once",
	 "the number of CPU cores"},
	{"link_expiry", KIND_UINT, F(link.expiry), {NULL, NULL}, "3600", 1,
	 604800, NULL, "presigned link lifetime in seconds", NULL},
	{"link_disposition", KIND_ENUM, F(link.attachment), {NULL, NULL},
	 "inline", 0, 0, disposition_names,
	 "attachment makes browsers download linked files", NULL},
	{"part_size", KIND_SIZE, F(fs.part_size), {NULL, NULL}, "8M", 5 * MIB,
	 5 * GIB, NULL, "multipart upload part size", NULL},
	{"parts_in_flight", KIND_UINT, F(fs.parts_in_flight), {NULL, NULL}, "4",
	 1, 64, NULL, "parts uploading at once per file", NULL},
	{"max_connections", KIND_UINT, F(s3.max_connections), {NULL, NULL}, "16",
	 1, 1024, NULL, "concurrent requests to S3", NULL},
	{"metadata_ttl", KIND_SECS, F(fs.metadata_ttl), {NULL, NULL}, "5", 0,
	 86400, NULL, "seconds listings and attributes are cached", NULL},
	{"retries", KIND_UINT, F(s3.retries), {NULL, NULL}, "5", 0, 100, NULL,
	 "retries of a failed request", NULL},
	{"connect_timeout", KIND_UINT, F(s3.connect_timeout), {NULL, NULL}, "10",
	 1, 3600, NULL, "seconds to connect to S3", NULL},
	{"request_timeout", KIND_UINT, F(s3.request_timeout), {NULL, NULL}, "30",
	 1, 86400, NULL, "seconds without progress before a request fails", NULL},
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

#define KEY_COUNT (sizeof(key_table) / sizeof(*key_table))

enum layer { LAYER_OPT, LAYER_ENV, LAYER_FILE, LAYER_COUNT };

/* One raw value and where it came from. */
struct raw {
	char *value;     /* owned */
	const char *env; /* LAYER_ENV: the variable's name */
	int line;        /* LAYER_FILE: its line */
};

/* Mount options for FUSE (each checked against libfuse 3.14). */
static const char *const fuse_flags[] = {
	"allow_other", "allow_root", "default_permissions", "auto_unmount",
	"ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec",
	"async", "sync", "dirsync", "noatime", NULL};
static const char *const fuse_prefixes[] = {"fsname=", "subtype=",
					    "max_read=", NULL};
/* Options mount(8) and mount.fuse3 pass that nobody downstream needs. */
static const char *const ignored_flags[] = {
	"_netdev", "auto", "noauto", "user", "nouser", "users", "owner",
	"group", "defaults", "nofail", "nonempty", "atime", "diratime",
	"nodiratime", "relatime", "strictatime", "lazytime", NULL};
static const char *const ignored_prefixes[] = {"x-", "comment=", NULL};

struct parse_ctx {
	struct cfg *c;
	char **envp;
	char *err;
	size_t errlen;
	int failed;                         /* err holds a message */
	struct raw raw[LAYER_COUNT][KEY_COUNT];
	const char *pos[2];                 /* BUCKET, MOUNTPOINT */
	int npos;
	char *config_path;                  /* owned */
	char **fuse;                        /* owned, NULL-terminated */
	size_t nfuse;
	int help, version;
	/* while reading the INI file */
	const char *ini_path;
	int ini_line;                       /* line of the key at hand */
	int ini_err_line;                   /* first handler error, or 0 */
	char ini_msg[256];                  /* and its message */
	int in_imgfs;                       /* current section is [imgfs] */
};

__attribute__((format(printf, 2, 3)))
static int fail(struct parse_ctx *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->failed)
		return EINVAL;
	p->failed = 1;
	n = snprintf(p->err, p->errlen, "imgfs: ");
	if (n < 0 || (size_t)n >= p->errlen)
		return EINVAL;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	/* one line, whatever bytes the user's input held */
	for (char *s = p->err; *s; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			*s = '?';
	return EINVAL;
}

static int in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

static int has_prefix_in(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strncmp(s, *list, strlen(*list)) == 0)
			return 1;
	return 0;
}

static const struct key_def *key_find(const char *name, size_t *idx)
{
	for (size_t i = 0; i < KEY_COUNT; i++) {
		if (strcmp(key_table[i].name, name) == 0) {
			*idx = i;
			return &key_table[i];
		}
	}
	return NULL;
}

const char *cfg_getenv(char **envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++) {
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return (*envp)[n + 1] ? *envp + n + 1 : NULL;
	}
	return NULL;
}

/* ---- numbers ---------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return errno;
	if (*end)
		return EINVAL;
	*out = v;
	return 0;
}

static int unit_shift(const char *u, unsigned *shift)
{
	static const char units[] = "KMGTPE";
	const char *at;

	if (*u == '\0') {
		*shift = 0;
		return 0;
	}
	at = strchr(units, *u >= 'a' && *u <= 'z' ? *u - 'a' + 'A' : *u);
	if (!at || *at == '\0')
		return EINVAL;
	u++;
	if (*u == 'i')
		u++;
	if (*u == 'B' || *u == 'b')
		u++;
	if (*u)
		return EINVAL;
	*shift = 10u * (unsigned)(at - units + 1);
	return 0;
}

int cfg_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift;

	if (!s || *s < '0' || *s > '9')
		return EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return errno;
	if (unit_shift(end, &shift))
		return EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_secs(const char *s, double *out)
{
	char *end;
	double v;

	if ((*s < '0' || *s > '9') && *s != '.')
		return EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v))
		return EINVAL;
	*out = v;
	return 0;
}

static int parse_choice(const char *s, const char *const *choices, int *out)
{
	for (int i = 0; choices[i]; i++) {
		if (strcmp(s, choices[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return EINVAL;
}

static int parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on", NULL};
	static const char *const no[] = {"0", "false", "no", "off", NULL};

	if (in_list(s, yes))
		*out = 1;
	else if (in_list(s, no))
		*out = 0;
	else
		return EINVAL;
	return 0;
}

/* ---- converting one value --------------------------------------------- */

/* Append n bytes in the largest binary unit that divides it. */
static void add_size(struct buf *b, uint64_t n)
{
	static const char units[] = "KMGTPE";
	int u = -1;

	while (n && n % 1024 == 0 && u < 5) {
		n /= 1024;
		u++;
	}
	if (u < 0)
		buf_addf(b, "%llu", (unsigned long long)n);
	else
		buf_addf(b, "%llu%c", (unsigned long long)n, units[u]);
}

/* Describe the accepted values of k into buf, for an error message. */
static void key_expect(const struct key_def *k, char *buf, size_t len)
{
	struct buf b = BUF_INIT;

	if (k->choices && k->kind != KIND_BOOL) {
		for (int i = 0; k->choices[i]; i++)
			buf_addf(&b, "%s%s", i ? "|" : "", k->choices[i]);
	} else if (k->kind == KIND_BOOL) {
		buf_adds(&b, "true|false");
	} else if (k->kind == KIND_SIZE) {
		buf_adds(&b, "a size from ");
		add_size(&b, k->min);
		buf_adds(&b, " to ");
		add_size(&b, k->max);
	} else if (k->kind != KIND_STR) {
		buf_addf(&b, "%s %llu..%llu",
			 k->kind == KIND_SECS ? "seconds" : "a number",
			 (unsigned long long)k->min, (unsigned long long)k->max);
	} else {
		buf_adds(&b, "a non-empty value");
	}
	snprintf(buf, len, "%s", b.data ? b.data : "");
	buf_release(&b);
}

static int convert_number(const struct key_def *k, const char *v, void *field)
{
	uint64_t n = 0;
	double d = 0;
	int rc;

	if (k->kind == KIND_SECS) {
		rc = parse_secs(v, &d);
		if (rc || d < (double)k->min || d > (double)k->max)
			return EINVAL;
		*(double *)field = d;
		return 0;
	}
	rc = k->kind == KIND_SIZE ? cfg_parse_size(v, &n) : parse_u64(v, &n);
	if (rc || n < k->min || n > k->max)
		return EINVAL;
	if (k->kind == KIND_UINT)
		*(unsigned *)field = (unsigned)n;
	else
		*(uint64_t *)field = n;
	return 0;
}

/* Store v into the field of k. 0, EINVAL or ENOMEM. */
static int convert(struct cfg *c, const struct key_def *k, const char *v)
{
	void *field = (char *)c + k->off;
	char **sp = field;
	int i;

	switch (k->kind) {
	case KIND_STR:
		if (*v == '\0' || (k->choices && parse_choice(v, k->choices, &i)))
			return EINVAL;
		free(*sp);
		*sp = strdup(v);
		return *sp ? 0 : ENOMEM;
	case KIND_BOOL:
		return parse_bool(v, field);
	case KIND_ENUM:
		return parse_choice(v, k->choices, field);
	default:
		return convert_number(k, v, field);
	}
}

/* Say where a value came from, for error messages. */
static void origin(const struct parse_ctx *p, enum layer l, size_t i,
		   char *buf, size_t len)
{
	const struct raw *r = &p->raw[l][i];

	if (l == LAYER_ENV)
		snprintf(buf, len, " (from %s)", r->env);
	else if (l == LAYER_FILE)
		snprintf(buf, len, " (%s:%d)", p->ini_path ? p->ini_path : "",
			 r->line);
	else
		buf[0] = '\0';
}

/* Resolve key i through the layers and convert it. */
static int resolve_key(struct parse_ctx *p, size_t i)
{
	const struct key_def *k = &key_table[i];
	char where[PATH_MAX + 32], expect[96];
	const char *v = k->def;
	enum layer l;
	int rc;

	for (l = LAYER_OPT; l < LAYER_COUNT; l++) {
		if (p->raw[l][i].value) {
			v = p->raw[l][i].value;
			break;
		}
	}
	if (!v)
		return 0;
	rc = convert(p->c, k, v);
	if (rc == ENOMEM)
		return fail(p, "out of memory");
	if (rc == 0)
		return 0;
	if (l == LAYER_COUNT)
		return fail(p, "bad default for option '%s'", k->name);
	origin(p, l, i, where, sizeof(where));
	key_expect(k, expect, sizeof(expect));
	return fail(p, "bad value '%s' for option '%s'%s: expected %s", v,
		    k->name, where, expect);
}

static int key_is_set(const struct parse_ctx *p, const char *name)
{
	size_t i;

	if (!key_find(name, &i))
		return 0;
	for (int l = 0; l < LAYER_COUNT; l++)
		if (p->raw[l][i].value)
			return 1;
	return 0;
}

/* ---- INI files of any line length -------------------------------------- */

/*
 * inih reads a file in lines of at most INI_MAX_LINE bytes (200 in
 * Debian's build), which a session token easily exceeds. The reader below
 * hands inih a long line in pieces: the first as it starts, the rest as
 * indented continuation lines, which inih gives back under the same key;
 * the pieces are joined again before the caller's handler sees the value.
 * Pieces are cut where neither side is blank and the next byte cannot
 * start a comment or section, so the joins lose nothing.
 */
struct ini_reader {
	struct buf file;         /* the whole file; lines are cut in place */
	size_t next;             /* offset of the next physical line */
	char *line;              /* the physical line being handed out */
	size_t len, pos;         /* its length, and what inih has had */
	int lineno;              /* its number, from 1 */
	int piece;               /* index of the piece inih has now */
	int last;                /* that piece ends the physical line */
	int chunks;              /* lines given to inih so far */
	int *extra;              /* inih line numbers of continuation pieces */
	size_t nextra, extra_cap;
	struct buf value;        /* the value being joined */
	int joining;             /* value holds this line's first piece */
	int refused;             /* first line the handler refused, or 0 */
	int nomem;
	cfg_ini_handler handler;
	void *user;
};

static int piece_cut_ok(const char *s, size_t k)
{
	return !strchr(" \t", s[k - 1]) && !strchr(" \t;#[", s[k]);
}

/* How many bytes of s (n left) fit in room, cut where piece_cut_ok. */
static size_t piece_len(const char *s, size_t n, size_t room)
{
	if (n <= room)
		return n;
	for (size_t k = room; k > room / 2; k--)
		if (piece_cut_ok(s, k))
			return k;
	return room;
}

static int note_extra(struct ini_reader *r)
{
	if (r->nextra == r->extra_cap) {
		size_t cap = r->extra_cap ? 2 * r->extra_cap : 16;
		int *grown = realloc(r->extra, cap * sizeof(*grown));

		if (!grown)
			return ENOMEM;
		r->extra = grown;
		r->extra_cap = cap;
	}
	r->extra[r->nextra++] = r->chunks;
	return 0;
}

static int next_physical_line(struct ini_reader *r)
{
	char *start = r->file.data + r->next, *nl;

	if (r->next >= r->file.len)
		return EOF;
	nl = memchr(start, '\n', r->file.len - r->next);
	if (nl)
		*nl = '\0';
	r->next = nl ? (size_t)(nl - r->file.data) + 1 : r->file.len;
	r->line = start;
	r->len = strlen(start);
	while (r->len && r->line[r->len - 1] == '\r')
		r->line[--r->len] = '\0';
	r->pos = 0;
	r->lineno++;
	r->piece = 0;
	r->joining = 0;
	return 0;
}

/* Read the whole file, at most CFG_MAX_FILE bytes (files in /proc claim a
 * size of 0, so count what is really read). */
static int slurp(FILE *f, struct buf *b)
{
	char chunk[8192];
	size_t n;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b->len + n > CFG_MAX_FILE)
			return EFBIG;
		if (buf_add(b, chunk, n))
			return ENOMEM;
	}
	return ferror(f) ? EIO : 0;
}

static char *ini_read_piece(char *str, int num, void *stream)
{
	struct ini_reader *r = stream;
	size_t room, n, lead;
	char first;

	if (num < 8 || r->nomem)
		return NULL;
	if (r->piece < 0 || r->pos >= r->len) {
		if (next_physical_line(r))
			return NULL;
		/* a comment needs no continuation: drop what does not fit */
		first = r->line[strspn(r->line, " \t")];
		if ((first == ';' || first == '#') && r->len > (size_t)num - 2)
			r->len = (size_t)num - 2;
	} else {
		r->piece++;
	}
	r->chunks++;
	lead = r->piece > 0;
	if (lead && note_extra(r)) {
		r->nomem = 1;
		return NULL;
	}
	room = (size_t)num - 2 - lead;
	n = piece_len(r->line + r->pos, r->len - r->pos, room);
	snprintf(str, (size_t)num, "%s%.*s\n", lead ? " " : "", (int)n,
		 r->line + r->pos);
	r->pos += n;
	r->last = r->pos >= r->len;
	return str;
}

static int ini_join(void *user, const char *section, const char *name,
		    const char *value)
{
	struct ini_reader *r = user;

	if (r->piece == 0) {
		buf_reset(&r->value);
		r->joining = 1;
	} else if (!r->joining) {
		return 1; /* the rest of a long line that held no key */
	}
	if (buf_adds(&r->value, value)) {
		r->nomem = 1;
		return 1;
	}
	if (!r->last)
		return 1;
	r->joining = 0;
	if (!r->handler(r->user, section, name, r->value.data ? r->value.data
							       : "",
			r->lineno) &&
	    !r->refused)
		r->refused = r->lineno;
	return 1;
}

/* The physical line of inih's line number c. */
static int physical_line(const struct ini_reader *r, int c)
{
	int before = 0;

	for (size_t i = 0; i < r->nextra && r->extra[i] <= c; i++)
		before++;
	return c - before;
}

static int ini_open(const char *path, struct buf *file)
{
	FILE *f = fopen(path, "re");
	struct stat st;
	int rc;

	if (!f)
		return errno;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > CFG_MAX_FILE)
		rc = EFBIG;
	else
		rc = slurp(f, file);
	fclose(f);
	return rc;
}

int cfg_ini_read(const char *path, cfg_ini_handler handler, void *user,
		 int *bad_line)
{
	struct ini_reader r = {.handler = handler, .user = user, .piece = -1};
	int rc, syntax = 0;

	*bad_line = 0;
	rc = ini_open(path, &r.file);
	if (!rc && r.file.len) {
		rc = ini_parse_stream(ini_read_piece, &r, ini_join, &r);
		syntax = rc > 0 ? physical_line(&r, rc) : 0;
		rc = r.nomem || rc < 0 ? ENOMEM : 0;
	}
	buf_release(&r.file);
	free(r.extra);
	buf_release(&r.value);
	if (rc)
		return rc;
	*bad_line = r.refused && (!syntax || r.refused <= syntax) ? r.refused
								 : syntax;
	return *bad_line ? EBADMSG : 0;
}

/* ---- layers ----------------------------------------------------------- */

static int raw_set(struct parse_ctx *p, enum layer l, size_t i, const char *v)
{
	char *dup = strdup(v);

	if (!dup)
		return fail(p, "out of memory");
	free(p->raw[l][i].value);
	p->raw[l][i].value = dup;
	return 0;
}

static int collect_env(struct parse_ctx *p)
{
	for (size_t i = 0; i < KEY_COUNT; i++) {
		for (int e = 0; e < 2 && key_table[i].env[e]; e++) {
			const char *v = cfg_getenv(p->envp, key_table[i].env[e]);

			if (!v)
				continue;
			if (raw_set(p, LAYER_ENV, i, v))
				return EINVAL;
			p->raw[LAYER_ENV][i].env = key_table[i].env[e];
			break;
		}
	}
	return 0;
}

static int fuse_add(struct parse_ctx *p, const char *opt)
{
	char **grown = realloc(p->fuse, (p->nfuse + 2) * sizeof(*grown));

	if (!grown)
		return fail(p, "out of memory");
	p->fuse = grown;
	p->fuse[p->nfuse] = strdup(opt);
	if (!p->fuse[p->nfuse])
		return fail(p, "out of memory");
	p->fuse[++p->nfuse] = NULL;
	return 0;
}

static int set_config_path(struct parse_ctx *p, const char *path)
{
	free(p->config_path);
	p->config_path = strdup(path);
	return p->config_path ? 0 : fail(p, "out of memory");
}

/* One item of -o: name or name=value. */
static int handle_opt_item(struct parse_ctx *p, char *item)
{
	char *eq = strchr(item, '=');
	const struct key_def *k;
	size_t i;

	if (in_list(item, fuse_flags) || has_prefix_in(item, fuse_prefixes))
		return fuse_add(p, item);
	if (in_list(item, ignored_flags) || has_prefix_in(item, ignored_prefixes))
		return 0;
	if (eq)
		*eq = '\0';
	if (strcmp(item, "config") == 0)
		return eq && eq[1] ? set_config_path(p, eq + 1)
				   : fail(p, "option 'config' needs a file name");
	k = key_find(item, &i);
	if (!k)
		return fail(p, "unknown option '%s'", item);
	if (!eq && k->kind != KIND_BOOL)
		return fail(p, "option '%s' needs a value (-o %s=VALUE)", item,
			    item);
	return raw_set(p, LAYER_OPT, i, eq ? eq + 1 : "true");
}

/* Split an -o argument at commas; a backslash escapes the next byte. */
static int handle_opt_arg(struct parse_ctx *p, const char *arg)
{
	struct buf item = BUF_INIT;
	int rc = 0;

	for (const char *s = arg;; s++) {
		if (*s == '\\' && s[1]) {
			rc = buf_add(&item, ++s, 1);
		} else if (*s == ',' || *s == '\0') {
			if (item.len)
				rc = handle_opt_item(p, item.data);
			buf_reset(&item);
			if (*s == '\0')
				break;
		} else {
			rc = buf_add(&item, s, 1);
		}
		if (rc)
			break;
	}
	buf_release(&item);
	if (rc == ENOMEM)
		return fail(p, "out of memory");
	return rc;
}


/* Options that take the next argument: -o VALUE, --config FILE. */
static int handle_valued(struct parse_ctx *p, const char *a, const char *next,
			 int *used)
{
	*used = 0;
	if (strcmp(a, "-o") == 0 || strcmp(a, "--config") == 0) {
		if (!next)
			return fail(p, "option '%s' needs a value", a);
		*used = 1;
		return a[1] == 'o' ? handle_opt_arg(p, next)
				   : set_config_path(p, next);
	}
	if (strncmp(a, "-o", 2) == 0)
		return handle_opt_arg(p, a + 2);
	if (strncmp(a, "--config=", 9) == 0)
		return set_config_path(p, a + 9);
	return fail(p, "unknown option '%s'", a);
}

static int handle_flag(struct parse_ctx *p, const char *a)
{
	if (strcmp(a, "-f") == 0)
		p->c->fs.foreground = 1;
	else if (strcmp(a, "-d") == 0 || strcmp(a, "--debug") == 0)
		p->c->fs.debug = p->c->fs.foreground = 1;
	else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
		p->help = 1;
	else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0)
		p->version = 1;
	else
		return 0;
	return 1;
}

static int parse_args(struct parse_ctx *p, int argc, char **argv)
{
	int only_positional = 0, used;

	for (int i = 1; i < argc && !p->help && !p->version; i++) {
		const char *a = argv[i];

		if (only_positional || a[0] != '-' || a[1] == '\0') {
			if (p->npos == 2)
				return fail(p, "unexpected argument '%s' "
					    "(usage: imgfs [options] BUCKET "
					    "MOUNTPOINT)", a);
			p->pos[p->npos++] = a;
		} else if (strcmp(a, "--") == 0) {
			only_positional = 1;
		} else if (!handle_flag(p, a)) {
			if (handle_valued(p, a, i + 1 < argc ? argv[i + 1]
							     : NULL, &used))
				return EINVAL;
			i += used;
		}
	}
	return 0;
}

/* ---- the INI file ----------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static int ini_error(struct parse_ctx *p, const char *fmt, ...)
{
	va_list ap;

	if (p->ini_err_line)
		return 0;
	p->ini_err_line = p->ini_line;
	va_start(ap, fmt);
	vsnprintf(p->ini_msg, sizeof(p->ini_msg), fmt, ap);
	va_end(ap);
	return 0;
}

static int on_ini_key(void *user, const char *section, const char *name,
		      const char *value, int line)
{
	struct parse_ctx *p = user;
	const struct key_def *k;
	size_t i;

	p->ini_line = line;
	if (strcmp(section, "imgfs") != 0) {
		if (*section == '\0')
			return ini_error(p, "key '%s' outside the [imgfs] section",
					 name);
		return ini_error(p, "unknown section [%s] (expected [imgfs])",
				 section);
	}
	k = key_find(name, &i);
	if (!k)
		return ini_error(p, "unknown key '%s'", name);
	if (raw_set(p, LAYER_FILE, i, value))
		return 0;
	p->raw[LAYER_FILE][i].line = p->ini_line;
	return 1;
}

static int read_config(struct parse_ctx *p)
{
	int rc, line;

	p->ini_path = p->config_path;
	rc = cfg_ini_read(p->config_path, on_ini_key, p, &line);
	if (p->failed)
		return EINVAL;
	if (rc == EBADMSG && line == p->ini_err_line)
		return fail(p, "%s:%d: %s", p->config_path, line, p->ini_msg);
	if (rc == EBADMSG)
		return fail(p, "%s:%d: syntax error (expected [imgfs] or "
			    "key = value)", p->config_path, line);
	if (rc == EFBIG)
		return fail(p, "config file %s: not a regular file of at most "
			    "1 MiB", p->config_path);
	if (rc)
		return fail(p, "cannot read config file %s: %s", p->config_path,
			    strerror(rc));
	p->c->config_file = strdup(p->config_path);
	return p->c->config_file ? 0 : fail(p, "out of memory");
}

/* ---- derived values and cross-checks ---------------------------------- */

static int home_dir(struct parse_ctx *p, char *buf, size_t len)
{
	const char *home = cfg_getenv(p->envp, "HOME");
	struct passwd pw, *res = NULL;
	char tmp[4096];

	if (!home && getpwuid_r(geteuid(), &pw, tmp, sizeof(tmp), &res) == 0 &&
	    res)
		home = res->pw_dir;
	if (!home)
		return fail(p, "cannot find the home directory (HOME is unset)");
	snprintf(buf, len, "%s", home);
	return 0;
}

static int set_fmt(struct parse_ctx *p, char **field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int set_fmt(struct parse_ctx *p, char **field, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vaddf(&b, fmt, ap);
	va_end(ap);
	if (rc) {
		buf_release(&b);
		return fail(p, "out of memory");
	}
	free(*field);
	*field = buf_detach(&b, NULL);
	return *field ? 0 : fail(p, "out of memory");
}

static int derive_paths(struct parse_ctx *p)
{
	struct cfg *c = p->c;
	const char *xdg = cfg_getenv(p->envp, "XDG_CACHE_HOME");
	char home[PATH_MAX];

	if (c->creds.credentials_file && c->creds.config_file &&
	    (c->cache.dir || geteuid() == 0 || (xdg && xdg[0] == '/')))
		home[0] = '\0';
	else if (home_dir(p, home, sizeof(home)))
		return EINVAL;
	if (!c->creds.credentials_file &&
	    set_fmt(p, &c->creds.credentials_file, "%s/.aws/credentials", home))
		return EINVAL;
	if (!c->creds.config_file &&
	    set_fmt(p, &c->creds.config_file, "%s/.aws/config", home))
		return EINVAL;
	if (c->cache.dir)
		return 0;
	if (geteuid() == 0)
		return set_fmt(p, &c->cache.dir, "/var/cache/imgfs/%s",
			       c->s3.bucket);
	if (xdg && xdg[0] == '/')
		return set_fmt(p, &c->cache.dir, "%s/imgfs/%s", xdg, c->s3.bucket);
	return set_fmt(p, &c->cache.dir, "%s/.cache/imgfs/%s", home,
		       c->s3.bucket);
}

static int is_host_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || strchr("-.:[]_", ch);
}

/* scheme://host[:port] with nothing after it but slashes. */
static int check_endpoint(struct parse_ctx *p)
{
	char *e = p->c->s3.endpoint;
	size_t n = strlen(e), skip;

	while (n > 0 && e[n - 1] == '/')
		e[--n] = '\0';
	if (strncasecmp(e, "https://", 8) == 0)
		skip = 8;
	else if (strncasecmp(e, "http://", 7) == 0)
		skip = 7;
	else
		return fail(p, "bad value '%s' for option 'endpoint': expected "
			    "http://HOST[:PORT] or https://HOST[:PORT]", e);
	for (size_t i = 0; i < skip; i++)
		e[i] = e[i] >= 'A' && e[i] <= 'Z' ? (char)(e[i] - 'A' + 'a')
						  : e[i];
	if (e[skip] == '\0' || e[skip] == ':')
		return fail(p, "bad value '%s' for option 'endpoint': no host",
			    e);
	for (const char *s = e + skip; *s; s++)
		if (!is_host_char(*s))
			return fail(p, "bad value '%s' for option 'endpoint': "
				    "expected scheme://HOST[:PORT] without a "
				    "path", e);
	return 0;
}

static int check_region(struct parse_ctx *p)
{
	const char *r = p->c->s3.region;

	for (const char *s = r; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return fail(p, "bad value '%s' for option 'region'", r);
	}
	return strlen(r) > 64 ? fail(p, "bad value '%s' for option 'region'", r)
			      : 0;
}

/* The host of the endpoint, without scheme and port. */
static void endpoint_host(const char *endpoint, char *buf, size_t len)
{
	const char *h = strstr(endpoint, "://");
	size_t n;

	h = h ? h + 3 : endpoint;
	n = h[0] == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":");
	snprintf(buf, len, "%.*s", (int)n, h);
}

static int bucket_dns_safe(const char *b, int https)
{
	for (const char *s = b; *s; s++) {
		if ((*s >= 'A' && *s <= 'Z') || *s == '_')
			return 0;
		if (*s == '.' && https)
			return 0;
	}
	return 1;
}

static void derive_addressing(struct cfg *c)
{
	char host[256];
	size_t n;

	c->link.bucket = c->s3.bucket; /* the gallery's title */
	if (c->s3.addressing != S3_ADDR_AUTO)
		return;
	endpoint_host(c->s3.endpoint, host, sizeof(host));
	n = strlen(host);
	c->s3.addressing = S3_ADDR_PATH;
	if ((n >= 14 && strcasecmp(host + n - 14, ".amazonaws.com") == 0) &&
	    bucket_dns_safe(c->s3.bucket,
			    strncmp(c->s3.endpoint, "https:", 6) == 0))
		c->s3.addressing = S3_ADDR_VIRTUAL;
}

static int derive_s3(struct parse_ctx *p)
{
	struct cfg *c = p->c;

	if (check_region(p))
		return EINVAL;
	if (!c->s3.endpoint &&
	    set_fmt(p, &c->s3.endpoint, "https://s3.%s.amazonaws.com",
		    c->s3.region))
		return EINVAL;
	if (check_endpoint(p))
		return EINVAL;
	derive_addressing(c);
	if (c->s3.ca_file && access(c->s3.ca_file, R_OK) != 0)
		return fail(p, "bad value '%s' for option 'ca_file': %s",
			    c->s3.ca_file, strerror(errno));
	if (c->s3.sse_kms_key_id &&
	    (!c->s3.sse || strcmp(c->s3.sse, "aws:kms") != 0))
		return fail(p, "option 'sse_kms_key_id' needs sse=aws:kms");
	return 0;
}

/* "uploads" -> "uploads/"; "/a/b/" -> "a/b/". */
static int normalise_prefix(struct parse_ctx *p, char **prefix,
			    const char *name)
{
	const char *s = *prefix;
	size_t n;

	while (*s == '/')
		s++;
	n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		n--;
	if (n == 0)
		return fail(p, "bad value '%s' for option '%s': expected a "
			    "non-empty prefix", *prefix, name);
	return set_fmt(p, prefix, "%.*s/", (int)n, s);
}

static int derive_fs(struct parse_ctx *p)
{
	struct fs_conf *f = &p->c->fs;
	size_t nu, nt;

	if (normalise_prefix(p, &f->uploads_prefix, "uploads_prefix") ||
	    normalise_prefix(p, &f->thumbs_prefix, "thumbs_prefix"))
		return EINVAL;
	nu = strlen(f->uploads_prefix);
	nt = strlen(f->thumbs_prefix);
	if (strncmp(f->uploads_prefix, f->thumbs_prefix, nu < nt ? nu : nt) == 0)
		return fail(p, "options 'uploads_prefix' (%s) and "
			    "'thumbs_prefix' (%s) overlap", f->uploads_prefix,
			    f->thumbs_prefix);
	if (!p->c->thumb.concurrency) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		p->c->thumb.concurrency = n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
	}
	if (f->debug && !key_is_set(p, "log_level"))
		p->c->log_level = LOG_LVL_DEBUG;
	return 0;
}

static int check_bucket(struct parse_ctx *p, const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 255)
		return fail(p, "bad bucket name '%s': expected 3 to 255 "
			    "characters", b);
	for (const char *s = b; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("-._", *s)))
			return fail(p, "bad bucket name '%s': letters, digits, "
				    "'.', '-' and '_' only", b);
	}
	return 0;
}

static int set_positionals(struct parse_ctx *p)
{
	struct stat st;
	char real[PATH_MAX];

	if (p->npos < 2)
		return fail(p, "missing %s (usage: imgfs [options] BUCKET "
			    "MOUNTPOINT; imgfs --help for more)",
			    p->npos ? "MOUNTPOINT" : "BUCKET and MOUNTPOINT");
	if (check_bucket(p, p->pos[0]))
		return EINVAL;
	p->c->s3.bucket = strdup(p->pos[0]);
	if (!p->c->s3.bucket)
		return fail(p, "out of memory");
	if (!realpath(p->pos[1], real) || stat(real, &st) != 0)
		return fail(p, "mountpoint %s: %s%s", p->pos[1], strerror(errno),
			    errno == ENOTCONN ? " (a stale mount? try "
						"fusermount3 -u)" : "");
	if (!S_ISDIR(st.st_mode))
		return fail(p, "mountpoint %s: %s", p->pos[1],
			    strerror(ENOTDIR));
	p->c->fs.mountpoint = strdup(real);
	return p->c->fs.mountpoint ? 0 : fail(p, "out of memory");
}

/* ---- help ------------------------------------------------------------- */

static void help_key(struct buf *b, const struct key_def *k)
{
	const char *def = k->def ? k->def : k->def_text;
	char expect[96];

	buf_addf(b, "    -o %-20s %s\n%28sdefault %s", k->name, k->help, "",
		 def ? def : "none");
	if (k->kind != KIND_STR || k->choices) {
		key_expect(k, expect, sizeof(expect));
		buf_addf(b, "; %s", expect);
	}
	if (k->env[0])
		buf_addf(b, "\n%28senv %s%s%s", "", k->env[0],
			 k->env[1] ? ", " : "", k->env[1] ? k->env[1] : "");
	buf_adds(b, "\n");
}

static char *help_text(void)
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
		 "    -V, --version           print the version\n\n"
		 "imgfs options (precedence: -o, environment, file, default):\n");
	for (size_t i = 0; i < KEY_COUNT; i++)
		help_key(&b, &key_table[i]);
	buf_adds(&b,
		 "\nFUSE options passed through: allow_other, allow_root, "
		 "default_permissions,\n"
		 "    auto_unmount, ro, rw, nosuid, nodev, noexec, noatime, "
		 "fsname=, subtype=,\n"
		 "    max_read=.\n"
		 "Ignored mount(8) options: _netdev, auto, noauto, user, "
		 "users, defaults, nofail,\n"
		 "    x-*, comment=.\n"
		 "See imgfs(1) for details.\n");
	return buf_detach(&b, NULL);
}

/* ---- entry points ----------------------------------------------------- */

static void ctx_release(struct parse_ctx *p)
{
	for (int l = 0; l < LAYER_COUNT; l++)
		for (size_t i = 0; i < KEY_COUNT; i++)
			free(p->raw[l][i].value);
	free(p->config_path);
	if (p->fuse) {
		for (size_t i = 0; i < p->nfuse; i++)
			free(p->fuse[i]);
		free(p->fuse);
	}
}

static enum cfg_result finish_exit(struct parse_ctx *p, char **out)
{
	char *text;

	if (p->help)
		text = help_text();
	else
		text = strdup("imgfs " IMGFS_VERSION "\n");
	if (out)
		*out = text;
	else
		free(text);
	return CFG_EXIT_OK;
}

static int resolve_all(struct parse_ctx *p)
{
	for (size_t i = 0; i < KEY_COUNT; i++)
		if (resolve_key(p, i))
			return EINVAL;
	return 0;
}

enum cfg_result cfg_parse(struct cfg *c, int argc, char **argv, char **envp,
			  char *err, size_t errlen, char **out)
{
	struct parse_ctx *p = calloc(1, sizeof(*p));
	enum cfg_result res = CFG_ERROR;

	memset(c, 0, sizeof(*c));
	if (out)
		*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (!p) {
		snprintf(err, errlen, "imgfs: out of memory");
		return CFG_ERROR;
	}
	*p = (struct parse_ctx){.c = c, .envp = envp, .err = err,
				.errlen = errlen};
	if (parse_args(p, argc, argv))
		goto out_free_ctx;
	if (p->help || p->version) {
		res = finish_exit(p, out);
		goto out_free_ctx;
	}
	if (collect_env(p) || (p->config_path && read_config(p)) ||
	    set_positionals(p) || resolve_all(p) || derive_paths(p) ||
	    derive_s3(p) || derive_fs(p))
		goto out_free_ctx;
	c->fuse_opts = p->fuse;
	p->fuse = NULL;
	if (!c->fuse_opts && !(c->fuse_opts = calloc(1, sizeof(char *)))) {
		fail(p, "out of memory");
		goto out_free_ctx;
	}
	res = CFG_OK;
out_free_ctx:
	ctx_release(p);
	free(p);
	return res;
}

void cfg_release(struct cfg *c)
{
	for (size_t i = 0; i < KEY_COUNT; i++) {
		if (key_table[i].kind == KIND_STR) {
			char **sp = (char **)((char *)c + key_table[i].off);
			free(*sp);
			*sp = NULL;
		}
	}
	free(c->s3.bucket);
	free(c->fs.mountpoint);
	free(c->config_file);
	if (c->fuse_opts) {
		for (char **o = c->fuse_opts; *o; o++)
			free(*o);
		free(c->fuse_opts);
	}
	memset(c, 0, sizeof(*c));
}
