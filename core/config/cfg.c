/*
 * cfg: command line, environment, INI file and defaults (see cfg.h and,
 * for how, cfg_int.h): collecting the layers, deriving values that depend
 * on others, and the entry points.
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

/* ---- layers ----------------------------------------------------------- */

int cfg_raw_set(struct parse_ctx *p, enum layer l, size_t i, const char *v)
{
	char *dup = strdup(v);

	if (!dup)
		return cfg_fail(p, "out of memory");
	free(p->raw[l][i].value);
	p->raw[l][i].value = dup;
	return 0;
}

static int collect_env(struct parse_ctx *p)
{
	for (size_t i = 0; i < cfg_nkeys; i++) {
		for (int e = 0; e < 2 && cfg_keys[i].env[e]; e++) {
			const char *v = cfg_getenv(p->envp, cfg_keys[i].env[e]);

			if (!v)
				continue;
			if (cfg_raw_set(p, LAYER_ENV, i, v))
				return EINVAL;
			p->raw[LAYER_ENV][i].env = cfg_keys[i].env[e];
			break;
		}
	}
	return 0;
}

static int fuse_add(struct parse_ctx *p, const char *opt)
{
	char **grown = realloc(p->fuse, (p->nfuse + 2) * sizeof(*grown));

	if (!grown)
		return cfg_fail(p, "out of memory");
	p->fuse = grown;
	p->fuse[p->nfuse] = strdup(opt);
	if (!p->fuse[p->nfuse])
		return cfg_fail(p, "out of memory");
	p->fuse[++p->nfuse] = NULL;
	return 0;
}

static int set_config_path(struct parse_ctx *p, const char *path)
{
	free(p->config_path);
	p->config_path = strdup(path);
	return p->config_path ? 0 : cfg_fail(p, "out of memory");
}

/* One item of -o: name or name=value. */
static int handle_opt_item(struct parse_ctx *p, char *item)
{
	char *eq = strchr(item, '=');
	const struct key_def *k;
	size_t i;

	if (cfg_in_list(item, cfg_fuse_flags) || cfg_has_prefix_in(item, cfg_fuse_prefixes))
		return fuse_add(p, item);
	if (cfg_in_list(item, cfg_ignored_flags) || cfg_has_prefix_in(item, cfg_ignored_prefixes))
		return 0;
	if (eq)
		*eq = '\0';
	if (strcmp(item, "config") == 0)
		return eq && eq[1] ? set_config_path(p, eq + 1)
				   : cfg_fail(p, "option 'config' needs a file name");
	k = cfg_key_find(item, &i);
	if (!k)
		return cfg_fail(p, "unknown option '%s'", item);
	if (!eq && k->kind != KIND_BOOL)
		return cfg_fail(p, "option '%s' needs a value (-o %s=VALUE)", item,
			    item);
	return cfg_raw_set(p, LAYER_OPT, i, eq ? eq + 1 : "true");
}

/* Split an -o argument at commas; a backslash escapes the next byte. A
 * comma followed by a digit continues a value (no option or FUSE flag
 * starts with one), so lists read as written: -o thumb_sizes=128,256. */
static int handle_opt_arg(struct parse_ctx *p, const char *arg)
{
	struct buf item = BUF_INIT;
	int rc = 0;

	for (const char *s = arg;; s++) {
		if (*s == '\\' && s[1]) {
			rc = buf_add(&item, ++s, 1);
		} else if (*s == ',' && s[1] >= '0' && s[1] <= '9' &&
			   item.len && strchr(item.data, '=')) {
			rc = buf_add(&item, s, 1);
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
		return cfg_fail(p, "out of memory");
	return rc;
}


/* Options that take the next argument: -o VALUE, --config FILE. */
static int handle_valued(struct parse_ctx *p, const char *a, const char *next,
			 int *used)
{
	*used = 0;
	if (strcmp(a, "-o") == 0 || strcmp(a, "--config") == 0) {
		if (!next)
			return cfg_fail(p, "option '%s' needs a value", a);
		*used = 1;
		return a[1] == 'o' ? handle_opt_arg(p, next)
				   : set_config_path(p, next);
	}
	if (strncmp(a, "-o", 2) == 0)
		return handle_opt_arg(p, a + 2);
	if (strncmp(a, "--config=", 9) == 0)
		return set_config_path(p, a + 9);
	return cfg_fail(p, "unknown option '%s'", a);
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
				return cfg_fail(p, "unexpected argument '%s' "
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
		return cfg_fail(p, "cannot find the home directory (HOME is unset)");
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
		return cfg_fail(p, "out of memory");
	}
	free(*field);
	*field = buf_detach(&b, NULL);
	return *field ? 0 : cfg_fail(p, "out of memory");
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
		return cfg_fail(p, "bad value '%s' for option 'endpoint': expected "
			    "http://HOST[:PORT] or https://HOST[:PORT]", e);
	for (size_t i = 0; i < skip; i++)
		e[i] = e[i] >= 'A' && e[i] <= 'Z' ? (char)(e[i] - 'A' + 'a')
						  : e[i];
	if (e[skip] == '\0' || e[skip] == ':')
		return cfg_fail(p, "bad value '%s' for option 'endpoint': no host",
			    e);
	for (const char *s = e + skip; *s; s++)
		if (!is_host_char(*s))
			return cfg_fail(p, "bad value '%s' for option 'endpoint': "
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
			return cfg_fail(p, "bad value '%s' for option 'region'", r);
	}
	return strlen(r) > 64 ? cfg_fail(p, "bad value '%s' for option 'region'", r)
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
		return cfg_fail(p, "bad value '%s' for option 'ca_file': %s",
			    c->s3.ca_file, strerror(errno));
	if (c->s3.sse_kms_key_id &&
	    (!c->s3.sse || strcmp(c->s3.sse, "aws:kms") != 0))
		return cfg_fail(p, "option 'sse_kms_key_id' needs sse=aws:kms");
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
		return cfg_fail(p, "bad value '%s' for option '%s': expected a "
			    "non-empty prefix", *prefix, name);
	return set_fmt(p, prefix, "%.*s/", (int)n, s);
}

/* One size of thumb_sizes: digits within thumb_size's bounds. */
static int parse_thumb_size(struct parse_ctx *p, const char *s, size_t len,
			    unsigned *out)
{
	unsigned long v = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > 4096)
			len = 0;
		else
			v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (len == 0 || v < 16 || v > 4096)
		return cfg_fail(p, "bad value '%s' for option 'thumb_sizes': "
			    "expected sizes of 16 to 4096 pixels, separated "
			    "by commas", p->c->thumb.sizes_text);
	*out = (unsigned)v;
	return 0;
}

/* thumb_sizes ("128,256") into sizes[]; without it, thumb_size alone. */
static int derive_thumb(struct parse_ctx *p)
{
	struct thumb_conf *t = &p->c->thumb;
	const char *s = t->sizes_text;

	t->nsizes = 0;
	while (s && *s) {
		size_t len = strcspn(s, ",");
		unsigned v = 0;

		if (t->nsizes == THUMB_SIZES_MAX)
			return cfg_fail(p, "option 'thumb_sizes' lists more "
				    "than %d sizes", THUMB_SIZES_MAX);
		if (parse_thumb_size(p, s, len, &v))
			return EINVAL;
		for (unsigned i = 0; i < t->nsizes; i++)
			if (t->sizes[i] == v)
				return cfg_fail(p, "option 'thumb_sizes' lists "
					    "%u twice", v);
		t->sizes[t->nsizes++] = v;
		s += len + (s[len] == ',');
	}
	if (t->nsizes == 0)
		t->sizes[t->nsizes++] = t->size;
	else if (cfg_key_is_set(p, "thumb_size") && t->size != t->sizes[0])
		return cfg_fail(p, "options 'thumb_size' (%u) and 'thumb_sizes' "
			    "(%s) disagree", t->size, t->sizes_text);
	t->size = t->sizes[0];
	return 0;
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
		return cfg_fail(p, "options 'uploads_prefix' (%s) and "
			    "'thumbs_prefix' (%s) overlap", f->uploads_prefix,
			    f->thumbs_prefix);
	if (!p->c->thumb.concurrency) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		p->c->thumb.concurrency = n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
	}
	if (f->debug && !cfg_key_is_set(p, "log_level"))
		p->c->log_level = LOG_LVL_DEBUG;
	return 0;
}

static int check_bucket(struct parse_ctx *p, const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 255)
		return cfg_fail(p, "bad bucket name '%s': expected 3 to 255 "
			    "characters", b);
	for (const char *s = b; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("-._", *s)))
			return cfg_fail(p, "bad bucket name '%s': letters, digits, "
				    "'.', '-' and '_' only", b);
	}
	return 0;
}

static int set_positionals(struct parse_ctx *p)
{
	struct stat st;
	char real[PATH_MAX];

	if (p->npos < 2)
		return cfg_fail(p, "missing %s (usage: imgfs [options] BUCKET "
			    "MOUNTPOINT; imgfs --help for more)",
			    p->npos ? "MOUNTPOINT" : "BUCKET and MOUNTPOINT");
	if (check_bucket(p, p->pos[0]))
		return EINVAL;
	p->c->s3.bucket = strdup(p->pos[0]);
	if (!p->c->s3.bucket)
		return cfg_fail(p, "out of memory");
	if (!realpath(p->pos[1], real) || stat(real, &st) != 0)
		return cfg_fail(p, "mountpoint %s: %s%s", p->pos[1], strerror(errno),
			    errno == ENOTCONN ? " (a stale mount? try "
						"fusermount3 -u)" : "");
	if (!S_ISDIR(st.st_mode))
		return cfg_fail(p, "mountpoint %s: %s", p->pos[1],
			    strerror(ENOTDIR));
	p->c->fs.mountpoint = strdup(real);
	return p->c->fs.mountpoint ? 0 : cfg_fail(p, "out of memory");
}

/* ---- entry points ----------------------------------------------------- */

static void ctx_release(struct parse_ctx *p)
{
	for (int l = 0; l < LAYER_COUNT; l++)
		for (size_t i = 0; i < cfg_nkeys; i++)
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
		text = cfg_help_text();
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
	for (size_t i = 0; i < cfg_nkeys; i++)
		if (cfg_resolve_key(p, i))
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
	if (collect_env(p) || (p->config_path && cfg_read_config(p)) ||
	    set_positionals(p) || resolve_all(p) || derive_paths(p) ||
	    derive_s3(p) || derive_fs(p) || derive_thumb(p))
		goto out_free_ctx;
	c->fuse_opts = p->fuse;
	p->fuse = NULL;
	if (!c->fuse_opts && !(c->fuse_opts = calloc(1, sizeof(char *)))) {
		cfg_fail(p, "out of memory");
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
	for (size_t i = 0; i < cfg_nkeys; i++) {
		if (cfg_keys[i].kind == KIND_STR) {
			char **sp = (char **)((char *)c + cfg_keys[i].off);
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
