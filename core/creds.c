/*
 * creds: the AWS credential provider chain (see creds.h).
 *
 * creds_create() walks the chain once and remembers which provider
 * answered. Long-term credentials (environment, shared files) never change.
 * Temporary ones (container, instance metadata) carry an expiry: the first
 * creds_get() caller to see them within the refresh margin of it fetches
 * new ones with the lock released, while every other caller keeps the
 * still-valid snapshot. A failed refresh is retried after a short pause and
 * the old credentials stay in use until they really expire.
 *
 * Invariants: c->cur always holds the last credentials fetched; at most one
 * thread refreshes at a time (c->refreshing). Nothing here logs a secret
 * key or a token.
 */
#include "creds.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <ini.h>

#include "buf.h"
#include "log.h"

/* Refresh temporary credentials this long before they expire. */
#define CREDS_DEFAULT_MARGIN 300

enum creds_kind { CREDS_STATIC, CREDS_CONTAINER, CREDS_IMDS };

/* Where temporary credentials come from. */
struct creds_http {
	int container;               /* 1: container endpoint, 0: IMDS */
	char *url;                   /* container credentials URL */
	char *auth_token;            /* container Authorization value */
	char *auth_token_file;       /* or the file holding it */
	char *imds_endpoint;         /* scheme://host[:port] */
	char role[256];              /* IMDS role name */
};

/* ---- HTTP providers (container, IMDS) ---------------------------------- */

static int creds_http_setup(struct creds_http *h, char **envp, char *why,
			    size_t whylen)
{
	return ENOENT;
}

static int creds_http_container(struct creds_http *h, struct aws_creds *out,
				char *why, size_t whylen)
{
	return ENOSYS;
}

static int creds_http_imds(struct creds_http *h, struct aws_creds *out,
			   char *why, size_t whylen)
{
	return ENOSYS;
}

static void creds_http_release(struct creds_http *h)
{
	free(h->url);
	free(h->auth_token);
	free(h->auth_token_file);
	free(h->imds_endpoint);
}

struct creds {
	pthread_mutex_t lock;
	pthread_cond_t refreshed;    /* broadcast when a refresh ends */
	struct aws_creds cur;        /* protected by lock */
	int refreshing;              /* protected by lock */
	time_t next_attempt;         /* protected by lock: after a failure */
	enum creds_kind kind;
	long margin;                 /* seconds before expiry to refresh */
	struct creds_http http;      /* container or IMDS settings */
	char source[256];
};

__attribute__((format(printf, 3, 4)))
static int say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!errlen)
		return EINVAL;
	n = snprintf(err, errlen, "imgfs: ");
	if (n < 0 || (size_t)n >= errlen)
		return EINVAL;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return EINVAL;
}

/* Copy s into a fixed field; EOVERFLOW when it does not fit. */
static int put_field(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (n >= cap)
		return EOVERFLOW;
	memcpy(dst, s, n + 1);
	return 0;
}

/* ---- environment ------------------------------------------------------ */

/* 0 with out filled, ENOENT when not configured, EINVAL with err. */
static int from_env(char **envp, struct aws_creds *out, char *err,
		    size_t errlen)
{
	const char *ak = cfg_getenv(envp, "AWS_ACCESS_KEY_ID");
	const char *sk = cfg_getenv(envp, "AWS_SECRET_ACCESS_KEY");
	const char *tok = cfg_getenv(envp, "AWS_SESSION_TOKEN");

	if (!ak && !sk)
		return ENOENT;
	if (!ak || !sk)
		return say(err, errlen, "%s is set but %s is not",
			   ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
			   ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
	if (put_field(out->access_key, sizeof(out->access_key), ak) ||
	    put_field(out->secret_key, sizeof(out->secret_key), sk) ||
	    put_field(out->token, sizeof(out->token), tok ? tok : ""))
		return say(err, errlen, "AWS credentials in the environment "
			   "are too long");
	out->expiry = 0;
	return 0;
}

/* ---- shared credentials and config files ------------------------------ */

struct profile_scan {
	const char *path;
	const char *section;         /* the section that holds the profile */
	FILE *fp;
	int line, next_line;         /* line being parsed */
	int found;                   /* the section exists */
	int err_line;                /* first bad line, or 0 */
	const char *err_what;
	char unsupported[40];        /* a key imgfs cannot act on */
	struct aws_creds *out;
	int have_ak, have_sk;
};

static char *scan_read_line(char *str, int num, void *stream)
{
	struct profile_scan *s = stream;
	char *r = fgets(str, num, s->fp);

	if (!r)
		return NULL;
	s->line = s->next_line;
	if (strchr(r, '\n'))
		s->next_line++;
	return r;
}

static int scan_bad(struct profile_scan *s, const char *what)
{
	if (!s->err_line) {
		s->err_line = s->line;
		s->err_what = what;
	}
	return 0;
}

static void note_unsupported(struct profile_scan *s, const char *name)
{
	static const char *const keys[] = {
		"role_arn", "credential_process", "sso_start_url",
		"sso_session", "web_identity_token_file", NULL};

	for (const char *const *k = keys; *k; k++)
		if (strcmp(name, *k) == 0 && !s->unsupported[0])
			snprintf(s->unsupported, sizeof(s->unsupported), "%s",
				 name);
}

static int on_profile_key(void *user, const char *section, const char *name,
			  const char *value)
{
	struct profile_scan *s = user;
	struct aws_creds *o = s->out;
	int rc = 0;

	if (strcmp(section, s->section) != 0)
		return 1;
	s->found = 1;
	if (strcmp(name, "aws_access_key_id") == 0) {
		rc = put_field(o->access_key, sizeof(o->access_key), value);
		s->have_ak = !rc && *value;
	} else if (strcmp(name, "aws_secret_access_key") == 0) {
		rc = put_field(o->secret_key, sizeof(o->secret_key), value);
		s->have_sk = !rc && *value;
	} else if (strcmp(name, "aws_session_token") == 0) {
		rc = put_field(o->token, sizeof(o->token), value);
	} else {
		note_unsupported(s, name);
	}
	return rc ? scan_bad(s, "value too long") : 1;
}

/* Scan one file for a section. 0 (found or not), ENOENT when the file does
 * not exist, EINVAL with err on garbage. */
static int scan_file(struct profile_scan *s, char *err, size_t errlen)
{
	int rc;

	s->fp = fopen(s->path, "re");
	if (!s->fp) {
		if (errno == ENOENT)
			return ENOENT;
		return say(err, errlen, "cannot read %s: %s", s->path,
			   strerror(errno));
	}
	s->next_line = 1;
	rc = ini_parse_stream(scan_read_line, s, on_profile_key, s);
	fclose(s->fp);
	s->fp = NULL;
	if (s->err_line)
		return say(err, errlen, "%s:%d: %s", s->path, s->err_line,
			   s->err_what);
	if (rc > 0)
		return say(err, errlen, "%s:%d: syntax error (expected "
			   "[section] or key = value)", s->path, rc);
	if (rc < 0)
		return say(err, errlen, "cannot parse %s", s->path);
	return 0;
}

static void warn_permissions(const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0 && (st.st_mode & 044))
		log_warn("credentials file %s is readable by group or others "
			 "(mode %03o); run chmod 600 %s", path,
			 (unsigned)(st.st_mode & 0777), path);
}

/* Look for the profile in one file. 0 with out filled, ENOENT when it is
 * not there, EINVAL with err. */
static int profile_in(const char *path, const char *section,
		      const char *profile, struct aws_creds *out, int *seen,
		      char *err, size_t errlen)
{
	struct profile_scan s = {.path = path, .section = section, .out = out};
	int rc;

	memset(out, 0, sizeof(*out));
	rc = scan_file(&s, err, errlen);
	if (rc)
		return rc;
	*seen |= s.found;
	if (s.have_ak && s.have_sk)
		return 0;
	if (s.have_ak || s.have_sk)
		return say(err, errlen, "%s: profile '%s' has %s but no %s",
			   path, profile,
			   s.have_ak ? "aws_access_key_id" : "aws_secret_access_key",
			   s.have_ak ? "aws_secret_access_key" : "aws_access_key_id");
	if (s.unsupported[0])
		return say(err, errlen, "%s: profile '%s' uses %s, which imgfs "
			   "does not support; give it static keys or use "
			   "environment, container or instance credentials",
			   path, profile, s.unsupported);
	return ENOENT;
}

static int from_files(struct creds *c, const struct creds_conf *conf,
		      char *err, size_t errlen)
{
	char section[300];
	int seen = 0, rc;

	rc = profile_in(conf->credentials_file, conf->profile, conf->profile,
			&c->cur, &seen, err, errlen);
	if (rc == 0) {
		warn_permissions(conf->credentials_file);
		snprintf(c->source, sizeof(c->source), "profile %s (%s)",
			 conf->profile, conf->credentials_file);
		return 0;
	}
	if (rc != ENOENT)
		return rc;
	if (strcmp(conf->profile, "default") == 0)
		snprintf(section, sizeof(section), "default");
	else
		snprintf(section, sizeof(section), "profile %s", conf->profile);
	rc = profile_in(conf->config_file, section, conf->profile, &c->cur,
			&seen, err, errlen);
	if (rc == 0) {
		warn_permissions(conf->config_file);
		snprintf(c->source, sizeof(c->source), "profile %s (%s)",
			 conf->profile, conf->config_file);
		return 0;
	}
	if (rc == ENOENT && !seen && strcmp(conf->profile, "default") != 0)
		return say(err, errlen, "profile '%s' not found in %s or %s",
			   conf->profile, conf->credentials_file,
			   conf->config_file);
	return rc;
}

/* ---- temporary credentials -------------------------------------------- */

static int fetch(struct creds *c, struct aws_creds *out, char *why,
		 size_t whylen)
{
	if (c->kind == CREDS_CONTAINER)
		return creds_http_container(&c->http, out, why, whylen);
	return creds_http_imds(&c->http, out, why, whylen);
}

static long margin_from_env(char **envp)
{
	const char *m = cfg_getenv(envp, "IMGFS_CREDS_REFRESH_MARGIN");
	char *end;
	long v;

	if (!m)
		return CREDS_DEFAULT_MARGIN;
	errno = 0;
	v = strtol(m, &end, 10);
	if (errno || *end || v < 0 || v > 86400) {
		log_warn("ignoring IMGFS_CREDS_REFRESH_MARGIN=%s: expected "
			 "seconds 0..86400", m);
		return CREDS_DEFAULT_MARGIN;
	}
	return v;
}

/* Try the container, then the instance metadata provider. */
static int from_http(struct creds *c, char **envp, char *err, size_t errlen)
{
	char why[512];
	int rc;

	rc = creds_http_setup(&c->http, envp, why, sizeof(why));
	if (rc == ENOENT)
		return ENOENT;
	if (rc)
		return say(err, errlen, "%s", why);
	c->kind = c->http.container ? CREDS_CONTAINER : CREDS_IMDS;
	rc = fetch(c, &c->cur, why, sizeof(why));
	if (rc)
		return say(err, errlen, "%s", why);
	if (c->kind == CREDS_CONTAINER)
		snprintf(c->source, sizeof(c->source), "container credentials");
	else
		snprintf(c->source, sizeof(c->source),
			 "instance metadata (role %s)", c->http.role);
	return 0;
}

static int resolve_chain(struct creds *c, const struct creds_conf *conf,
			 char **envp, char *err, size_t errlen)
{
	int rc;

	rc = from_env(envp, &c->cur, err, errlen);
	if (rc == 0)
		snprintf(c->source, sizeof(c->source), "environment");
	if (rc != ENOENT)
		return rc;
	rc = from_files(c, conf, err, errlen);
	if (rc != ENOENT)
		return rc;
	rc = from_http(c, envp, err, errlen);
	if (rc != ENOENT)
		return rc;
	return say(err, errlen, "no AWS credentials: set AWS_ACCESS_KEY_ID "
		   "and AWS_SECRET_ACCESS_KEY, or add profile '%s' to %s, or "
		   "run with container or instance credentials", conf->profile,
		   conf->credentials_file);
}

struct creds *creds_create(const struct creds_conf *conf, char **envp,
			   char *err, size_t errlen)
{
	struct creds *c = calloc(1, sizeof(*c));
	int rc;

	if (!c) {
		say(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	c->margin = margin_from_env(envp);
	rc = resolve_chain(c, conf, envp, err, errlen);
	if (rc)
		goto out_free;
	rc = pthread_mutex_init(&c->lock, NULL);
	if (rc)
		goto out_free;
	rc = pthread_cond_init(&c->refreshed, NULL);
	if (rc)
		goto out_destroy_lock;
	log_info("credentials from %s (access key %.4s...)", c->source,
		 c->cur.access_key);
	return c;
out_destroy_lock:
	pthread_mutex_destroy(&c->lock);
out_free:
	creds_http_release(&c->http);
	explicit_bzero(c, sizeof(*c));
	free(c);
	errno = rc == EINVAL ? ENOKEY : rc;
	return NULL;
}

/* Is a refresh due at now? Caller holds the lock. */
static int refresh_due(const struct creds *c, time_t now)
{
	if (c->kind == CREDS_STATIC || c->cur.expiry == 0)
		return 0;
	return now >= c->cur.expiry - c->margin && now >= c->next_attempt;
}

/* Fetch new credentials with the lock released. Caller holds the lock and
 * has set c->refreshing. */
static void refresh_locked(struct creds *c)
{
	struct aws_creds fresh;
	char why[512];
	time_t now, left;
	int rc;

	pthread_mutex_unlock(&c->lock);
	memset(&fresh, 0, sizeof(fresh));
	rc = fetch(c, &fresh, why, sizeof(why));
	pthread_mutex_lock(&c->lock);
	now = time(NULL);
	if (rc == 0) {
		c->cur = fresh;
		log_info("credentials from %s refreshed (access key %.4s..., "
			 "valid %llds)", c->source, fresh.access_key,
			 (long long)(fresh.expiry - now));
	} else {
		log_warn("refreshing credentials from %s: %s; the current ones "
			 "expire in %llds", c->source, why,
			 (long long)(c->cur.expiry - now));
	}
	/* Pause before the next attempt (also when the new credentials are
	 * already inside the margin), shorter as expiry nears. */
	left = c->cur.expiry - now;
	c->next_attempt = now + (left / 4 > 30 ? 30 : left / 4 < 1 ? 1 : left / 4);
	explicit_bzero(&fresh, sizeof(fresh));
}

int creds_get(struct creds *c, struct aws_creds *out)
{
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	while (refresh_due(c, time(NULL))) {
		if (!c->refreshing) {
			c->refreshing = 1;
			refresh_locked(c);
			c->refreshing = 0;
			pthread_cond_broadcast(&c->refreshed);
			break;
		}
		if (time(NULL) < c->cur.expiry)
			break;
		pthread_cond_wait(&c->refreshed, &c->lock);
	}
	if (c->cur.expiry != 0 && time(NULL) >= c->cur.expiry)
		rc = EKEYEXPIRED;
	else
		*out = c->cur;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

const char *creds_source(const struct creds *c)
{
	return c->source;
}

void creds_destroy(struct creds *c)
{
	if (!c)
		return;
	pthread_cond_destroy(&c->refreshed);
	pthread_mutex_destroy(&c->lock);
	creds_http_release(&c->http);
	explicit_bzero(c, sizeof(*c));
	free(c);
}
