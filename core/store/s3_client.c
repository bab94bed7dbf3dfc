/*
 * s3_client: the S3 client itself (see s3.h, s3_int.h): creation, the
 * pool of CURL handles, and helpers every request uses.
 */
#define _GNU_SOURCE
#include "store/s3_int.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "aws/sigv4.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/loopback.h"
#include "store/xml.h"

/* ---- small helpers ----------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

struct s3_client *s3_client_of(struct store *st)
{
	return (struct s3_client *)st;
}

static void curl_init_once(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t next_random(struct s3_client *c)
{
	uint64_t z = atomic_fetch_add(&c->rng, 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Full jitter: a random pause in [0, min(cap, base * 2^attempt)]. */
void s3_backoff_sleep(struct s3_client *c, unsigned attempt, uint64_t max_ms,
		      unsigned *slept_ms)
{
	uint64_t ceiling = S3_BACKOFF_BASE_MS;
	struct timespec ts;

	for (unsigned i = 0; i < attempt && ceiling < S3_BACKOFF_CAP_MS; i++)
		ceiling *= 2;
	if (ceiling > S3_BACKOFF_CAP_MS)
		ceiling = S3_BACKOFF_CAP_MS;
	*slept_ms = (unsigned)(next_random(c) % (ceiling + 1));
	if (*slept_ms > max_ms)
		*slept_ms = (unsigned)max_ms;
	ts.tv_sec = *slept_ms / 1000;
	ts.tv_nsec = (long)(*slept_ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* A header value we send must not be able to end the header. */
int s3_value_is_safe(const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

int s3_req_header(struct s3_req *r, const char *name, const char *value)
{
	if (!value)
		return 0;
	if (r->nhdrs == S3_HDRS_MAX || !s3_value_is_safe(value))
		return EINVAL;
	r->hdrs[r->nhdrs].name = name;
	r->hdrs[r->nhdrs].value = value;
	r->nhdrs++;
	return 0;
}

/* Append "&name=value" (value encoded; no '=' when value is NULL). */
int s3_query_add(struct buf *q, const char *name, const char *value)
{
	int err = buf_addf(q, "%s%s", q->len ? "&" : "", name);

	if (!err && value)
		err = buf_adds(q, "=");
	if (!err && value)
		err = sigv4_uri_encode(value, strlen(value), 0, q);
	return err;
}

/* The encoded path of key ("/bucket/a%20b" or "/a%20b"), or the bucket's. */
int s3_object_path(const struct s3_client *c, const char *key,
		       struct buf *out)
{
	int err;

	if (!key)
		return buf_adds(out, *c->base ? c->base : "/");
	err = buf_addf(out, "%s/", c->base);
	if (!err)
		err = sigv4_uri_encode(key, strlen(key), 1, out);
	return err;
}

/* ---- the handle pool --------------------------------------------------- */

CURL *s3_handle_take(struct s3_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->lock);
	while (c->nidle == 0 && c->nhandles >= c->max_handles)
		pthread_cond_wait(&c->handle_freed, &c->lock);
	if (c->nidle) {
		h = c->idle[--c->nidle];
	} else {
		c->nhandles++;
		pthread_mutex_unlock(&c->lock);
		h = curl_easy_init();
		if (h)
			return h;
		pthread_mutex_lock(&c->lock);
		c->nhandles--;
		pthread_cond_signal(&c->handle_freed);
	}
	pthread_mutex_unlock(&c->lock);
	return h;
}

void s3_handle_give(struct s3_client *c, CURL *h)
{
	pthread_mutex_lock(&c->lock);
	c->idle[c->nidle++] = h;
	pthread_cond_signal(&c->handle_freed);
	pthread_mutex_unlock(&c->lock);
}

/* ---- client ------------------------------------------------------------ */

/* Split "scheme://host[:port]" (a trailing '/' tolerated). */
static int parse_endpoint(const char *ep, char **scheme, char **hostport)
{
	const char *sep = strstr(ep, "://"), *hp;
	size_t n;

	if (!sep || (size_t)(sep - ep) > 5)
		return EINVAL;
	if (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
		return EINVAL;
	hp = sep + 3;
	n = strlen(hp);
	if (n && hp[n - 1] == '/')
		n--;
	if (n == 0 || strcspn(hp, "/?#@ ") < n)
		return EINVAL;
	*scheme = strndup(ep, (size_t)(sep - ep));
	*hostport = strndup(hp, n);
	return *scheme && *hostport ? 0 : ENOMEM;
}

static int client_addresses(struct s3_client *c, const struct s3_conf *conf)
{
	char *hostport = NULL;
	int err = parse_endpoint(conf->endpoint, &c->scheme, &hostport);
	struct buf b = BUF_INIT;

	if (!err)
		c->sign_payload = strcmp(c->scheme, "https") != 0 &&
				  !hostport_is_loopback(hostport);
	if (!err && conf->addressing == S3_ADDR_VIRTUAL) {
		err = buf_addf(&b, "%s.%s", conf->bucket, hostport);
		c->host = err ? NULL : buf_detach(&b, NULL);
		c->base = strdup("");
	} else if (!err) {
		err = buf_addf(&b, "/%s", conf->bucket);
		c->base = err ? NULL : buf_detach(&b, NULL);
		c->host = hostport;
		hostport = NULL;
	}
	if (!err && (!c->host || !c->base))
		err = ENOMEM;
	buf_release(&b);
	free(hostport);
	return err;
}

static void client_free(struct s3_client *c)
{
	for (size_t i = 0; i < c->nidle; i++)
		curl_easy_cleanup(c->idle[i]);
	free(c->idle);
	free(c->scheme);
	free(c->host);
	free(c->base);
	free(c);
}

static int conf_is_valid(const struct s3_conf *conf)
{
	return conf && conf->bucket && *conf->bucket && conf->endpoint &&
	       conf->region && *conf->region &&
	       strspn(conf->bucket, "abcdefghijklmnopqrstuvwxyz0123456789.-_") ==
		       strlen(conf->bucket);
}

struct s3_client *s3_create(const struct s3_conf *conf, struct creds *creds,
			    struct metrics *m)
{
	struct s3_client *c;
	int err;

	pthread_once(&curl_once, curl_init_once);
	if (curl_init_result != CURLE_OK || !conf_is_valid(conf) || !creds) {
		errno = curl_init_result != CURLE_OK ? EIO : EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	c->store.ops = &s3_ops;
	c->conf = conf;
	c->creds = creds;
	c->m = m;
	c->max_handles = conf->max_connections ? conf->max_connections : 1;
	c->idle = calloc(c->max_handles, sizeof(*c->idle));
	err = c->idle ? client_addresses(c, conf) : ENOMEM;
	if (!err)
		err = pthread_mutex_init(&c->lock, NULL);
	if (!err && (err = pthread_cond_init(&c->handle_freed, NULL)) != 0)
		pthread_mutex_destroy(&c->lock);
	if (err) {
		client_free(c);
		errno = err;
		return NULL;
	}
	atomic_init(&c->rng, (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
				     (uint64_t)(uintptr_t)c);
	if (conf->insecure)
		log_warn("s3: TLS certificate verification is off for %s "
			 "(insecure)", conf->endpoint);
	return c;
}

void s3_destroy(struct s3_client *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->handle_freed);
	client_free(c);
}
