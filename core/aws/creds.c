/*
 * creds: the AWS credential provider chain (see creds.h and, for how,
 * creds_int.h): one-line errors, the chain, and refreshing temporary
 * credentials.
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
#define _GNU_SOURCE
#include "aws/creds_int.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <curl/curl.h>
#include <ini.h>
#include <json-c/json.h>

#include "base/buf.h"
#include "base/log.h"

__attribute__((format(printf, 3, 4)))
int creds_say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errlen)
		return EINVAL;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* one line, whatever bytes the files or environment held */
	for (char *s = err; *s; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			*s = '?';
	return EINVAL;
}

/* Copy s into a fixed field; EOVERFLOW when it does not fit, EILSEQ when
 * it holds a blank or a byte outside visible ASCII. */
int creds_put_field(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (n >= cap)
		return EOVERFLOW;
	/* these go into HTTP headers and URLs: visible ASCII only */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return EILSEQ;
	memcpy(dst, s, n + 1);
	return 0;
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
/* When to try again after a refresh at now: a quarter of the remaining
 * lifetime, between 1 and 30 seconds. Caller holds the lock (or owns c). */
static void schedule_retry(struct creds *c, time_t now)
{
	time_t left = (c->cur.expiry - now) / 4;

	c->next_attempt = now + (left > 30 ? 30 : left < 1 ? 1 : left);
}

/* The container or instance metadata provider. ENOENT when neither is
 * configured; *quiet set when IMDS was only tried by default. */
static int from_http(struct creds *c, char **envp, char *why, size_t whylen,
		     int *quiet)
{
	int rc;

	*quiet = 0;
	rc = creds_http_setup(&c->http, envp, why, whylen);
	if (rc)
		return rc;
	c->kind = c->http.container ? CREDS_CONTAINER : CREDS_IMDS;
	*quiet = !c->http.container &&
		 !cfg_getenv(envp, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
	rc = fetch(c, &c->cur, why, whylen);
	if (rc)
		return rc;
	schedule_retry(c, time(NULL));
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
	char why[512] = "";
	int rc, quiet;

	rc = creds_from_env(envp, &c->cur, err, errlen);
	if (rc == 0)
		snprintf(c->source, sizeof(c->source), "environment");
	if (rc != ENOENT)
		return rc;
	rc = creds_from_files(c, conf, err, errlen);
	if (rc != ENOENT)
		return rc;
	rc = from_http(c, envp, why, sizeof(why), &quiet);
	if (rc == 0)
		return 0;
	if (rc != ENOENT && !quiet)
		return creds_say(err, errlen, "%s credentials: %s",
			   c->http.container ? "container" : "instance metadata",
			   why);
	return creds_say(err, errlen, "no AWS credentials: set AWS_ACCESS_KEY_ID "
		   "and AWS_SECRET_ACCESS_KEY, or add profile '%s' to %s, or "
		   "run with container or instance credentials%s%s%s",
		   conf->profile, conf->credentials_file,
		   *why ? " (instance metadata: " : "", why, *why ? ")" : "");
}

struct creds *creds_create(const struct creds_conf *conf, char **envp,
			   char *err, size_t errlen)
{
	struct creds *c = calloc(1, sizeof(*c));
	int rc;

	if (!c) {
		creds_say(err, errlen, "out of memory");
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
	time_t now;
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
	/* Pause before the next attempt, also when the new credentials are
	 * already inside the margin. */
	schedule_retry(c, now);
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
