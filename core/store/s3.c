/*
 * s3: the S3 client on libcurl (see s3.h).
 *
 * A request is described once (struct s3_req) and performed by s3_run():
 * each attempt takes a pooled CURL easy handle (its live connection is
 * reused), signs the request afresh with the current credentials, performs
 * it, and classifies the outcome as done, failed or worth retrying.
 *
 * Invariants of struct s3_client: at most conf->max_connections easy
 * handles ever exist, so taking one is also the in-flight limit; a handle
 * is used by one thread at a time; everything else in the client is
 * immutable after s3_create().
 *
 * Retries: up to conf->retries attempts after the first, on transport
 * errors (connect, reset, timeout), 500/502/503/504, and the SlowDown,
 * RequestTimeout, InternalError and ServiceUnavailable codes (also in a 200
 * <Error> body of CompleteMultipartUpload/CopyObject). Before attempt n the
 * client sleeps a uniformly random time in [0, min(5 s, 100 ms * 2^n)]
 * ("full jitter"), so many clients hitting a throttled bucket spread out.
 */
#define _GNU_SOURCE
#include "store/s3.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "base/log.h"
#include "aws/sigv4.h"
#include "store/xml.h"

#define S3_BACKOFF_BASE_MS 100
#define S3_BACKOFF_CAP_MS 5000
#define S3_BODY_MAX (16u << 20)   /* XML and error bodies kept in memory */
#define S3_HDRS_MAX 16
#define S3_LOG_KEY_MAX 200
#define S3_RECV_BUFFER (256 * 1024)
#define S3_SEND_BUFFER (1024 * 1024)
#define S3_STRAY_SLACK 60 /* seconds of clock skew allowed in Initiated */

struct s3_client {
	struct store store;    /* first: the interface it implements */
	const struct s3_conf *conf;
	struct creds *creds;
	struct metrics *m;
	char *scheme;          /* "http" or "https" */
	char *host;            /* URL authority and Host header */
	char *base;            /* path before the key: "/bucket" or "" */
	unsigned max_handles;
	pthread_mutex_t lock;
	pthread_cond_t handle_freed;
	CURL **idle;           /* protected by lock: handles not in use */
	size_t nidle;          /* protected by lock */
	unsigned nhandles;     /* protected by lock: handles created */
	atomic_uint_fast64_t rng;
};

/* State of a streamed GET across its attempts. */
struct s3_get_state {
	uint64_t off, len;        /* requested range; len 0: to the end */
	uint64_t done;            /* bytes handed to the sink so far */
	uint64_t skip;            /* bytes of this response to drop */
	const char *if_match;     /* caller's precondition, or NULL */
	char etag[STORE_ETAG_MAX];   /* first response's ETag, for resumes */
	store_sink_fn sink;
	void *arg;
	int cancelled;            /* the sink asked to stop */
	int have_info;
	struct store_object info;
};

struct s3_req {
	enum metrics_op op;
	const char *method;           /* GET, PUT, POST, HEAD, DELETE */
	const char *key;              /* object key, NULL for the bucket */
	const char *query;            /* encoded query, or NULL */
	struct sigv4_header hdrs[S3_HDRS_MAX]; /* extra headers, all signed */
	size_t nhdrs;
	const void *body;             /* PUT/POST body */
	size_t body_len;
	int error_in_200;             /* a 200 may carry an <Error> body */
	int err_412;                  /* errno for 412: EEXIST or EAGAIN */
	struct s3_get_state *get;     /* streamed GET, or NULL */
	char payload_hash[65];
	unsigned attempts;            /* attempts made, set by s3_run() */
};

struct s3_resp {
	long status;
	CURLcode cc;
	char curl_err[CURL_ERROR_SIZE];
	struct buf body;              /* kept body (not streamed), capped */
	int body_too_big;
	struct store_object obj;         /* from the headers */
	uint64_t content_length;
	int have_length;
	uint64_t range_start, range_total;
	int have_range;
	struct xml_error xerr;        /* Code/Message of an error body */
	size_t sent;                  /* body bytes handed to curl */
	int range_bad;                /* a 206 of another range than asked */
	int status_known;
	const struct s3_req *req;
	struct s3_client *c;
	CURL *h;
};

/* ---- small helpers ----------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static const struct store_ops s3_ops;

static struct s3_client *client_of(struct store *st)
{
	return (struct s3_client *)st;
}

static void curl_init_once(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A printable, bounded copy of a key for a log line. */
static void log_key(const char *key, char out[S3_LOG_KEY_MAX + 8])
{
	const unsigned char *p = (const unsigned char *)key;
	size_t w = 0;

	if (!key) {
		snprintf(out, S3_LOG_KEY_MAX + 8, "(bucket)");
		return;
	}
	for (; *p && w < S3_LOG_KEY_MAX; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			w += (size_t)snprintf(out + w, 5, "\\x%02x", *p);
		else
			out[w++] = (char)*p;
	}
	if (*p)
		w += (size_t)snprintf(out + w, 4, "...");
	out[w] = '\0';
}

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t next_random(struct s3_client *c)
{
	uint64_t z = atomic_fetch_add(&c->rng, 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Full jitter: a random pause in [0, min(cap, base * 2^attempt)]. */
static void backoff_sleep(struct s3_client *c, unsigned attempt,
			  unsigned *slept_ms)
{
	uint64_t ceiling = S3_BACKOFF_BASE_MS;
	struct timespec ts;

	for (unsigned i = 0; i < attempt && ceiling < S3_BACKOFF_CAP_MS; i++)
		ceiling *= 2;
	if (ceiling > S3_BACKOFF_CAP_MS)
		ceiling = S3_BACKOFF_CAP_MS;
	*slept_ms = (unsigned)(next_random(c) % (ceiling + 1));
	ts.tv_sec = *slept_ms / 1000;
	ts.tv_nsec = (long)(*slept_ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* A header value we send must not be able to end the header. */
static int value_is_safe(const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

static int req_header(struct s3_req *r, const char *name, const char *value)
{
	if (!value)
		return 0;
	if (r->nhdrs == S3_HDRS_MAX || !value_is_safe(value))
		return EINVAL;
	r->hdrs[r->nhdrs].name = name;
	r->hdrs[r->nhdrs].value = value;
	r->nhdrs++;
	return 0;
}

/* Append "&name=value" (value encoded; no '=' when value is NULL). */
static int query_add(struct buf *q, const char *name, const char *value)
{
	int err = buf_addf(q, "%s%s", q->len ? "&" : "", name);

	if (!err && value)
		err = buf_adds(q, "=");
	if (!err && value)
		err = sigv4_uri_encode(value, strlen(value), 0, q);
	return err;
}

/* The encoded path of key ("/bucket/a%20b" or "/a%20b"), or the bucket's. */
static int object_path(const struct s3_client *c, const char *key,
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

static CURL *handle_take(struct s3_client *c)
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

static void handle_give(struct s3_client *c, CURL *h)
{
	pthread_mutex_lock(&c->lock);
	c->idle[c->nidle++] = h;
	pthread_cond_signal(&c->handle_freed);
	pthread_mutex_unlock(&c->lock);
}

/* ---- response callbacks ------------------------------------------------ */

static void copy_bounded(char *dst, size_t size, const char *v, size_t n)
{
	if (n >= size)
		n = 0; /* too long to be real: treat as absent */
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static int parse_u64(const char *s, const char **end, uint64_t *out)
{
	unsigned long long v;
	char *e;

	if (*s < '0' || *s > '9')
		return EINVAL;
	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno)
		return EINVAL;
	*end = e;
	*out = v;
	return 0;
}

/* "bytes START-END/TOTAL" */
static void parse_content_range(struct s3_resp *r, const char *v)
{
	uint64_t start, last, total;
	const char *p;

	if (strncmp(v, "bytes ", 6) != 0 || parse_u64(v + 6, &p, &start) ||
	    *p != '-' || parse_u64(p + 1, &p, &last) || *p != '/' ||
	    parse_u64(p + 1, &p, &total) || *p || last < start ||
	    last >= total)
		return;
	r->range_start = start;
	r->range_total = total;
	r->have_range = 1;
}

static void header_value(struct s3_resp *r, const char *name, const char *v,
			 size_t n)
{
	char tmp[256];
	const char *end;

	copy_bounded(tmp, sizeof(tmp), v, n);
	if (strcasecmp(name, "etag") == 0)
		copy_bounded(r->obj.etag, sizeof(r->obj.etag), v, n);
	else if (strcasecmp(name, "content-type") == 0)
		copy_bounded(r->obj.content_type, sizeof(r->obj.content_type),
			     v, n);
	else if (strcasecmp(name, "x-amz-meta-source-etag") == 0)
		copy_bounded(r->obj.source_etag, sizeof(r->obj.source_etag),
			     v, n);
	else if (strcasecmp(name, "last-modified") == 0)
		r->obj.mtime = curl_getdate(tmp, NULL);
	else if (strcasecmp(name, "content-length") == 0)
		r->have_length = parse_u64(tmp, &end, &r->content_length) == 0 &&
				 *end == '\0';
	else if (strcasecmp(name, "content-range") == 0)
		parse_content_range(r, tmp);
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
	struct s3_resp *r = arg;
	size_t len = size * nmemb, nlen;
	const char *colon = memchr(line, ':', len), *v, *e = line + len;
	char name[64];

	if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		memset(&r->obj, 0, sizeof(r->obj));
		r->have_length = r->have_range = 0;
		return len;
	}
	if (!colon || (nlen = (size_t)(colon - line)) >= sizeof(name))
		return len;
	memcpy(name, line, nlen);
	name[nlen] = '\0';
	for (v = colon + 1; v < e && (*v == ' ' || *v == '\t'); v++)
		;
	while (e > v && isspace((unsigned char)e[-1]))
		e--;
	header_value(r, name, v, (size_t)(e - v));
	if (r->obj.mtime < 0)
		r->obj.mtime = 0;
	return len;
}

/* The first bytes of a streamed response: check it is the range asked,
 * of the object the earlier attempts read from. */
static int get_stream_start(struct s3_resp *r, struct s3_get_state *g)
{
	uint64_t want = g->off + g->done;
	const char *etag = g->if_match ? g->if_match : g->etag;

	if (r->status == 206 && (!r->have_range || r->range_start != want))
		return EIO;
	if (g->have_info && etag[0] && r->obj.etag[0] &&
	    strcmp(etag, r->obj.etag) != 0)
		return EIO;
	g->skip = r->status == 200 ? want : 0;
	if (!g->have_info) {
		g->info = r->obj;
		g->info.size = r->have_range ? r->range_total : r->content_length;
		g->have_info = 1;
		if (!g->if_match)
			copy_bounded(g->etag, sizeof(g->etag), r->obj.etag,
				     strlen(r->obj.etag));
	}
	return 0;
}

static size_t stream_body(struct s3_resp *r, struct s3_get_state *g,
			  const char *data, size_t len)
{
	size_t total = len;

	if (g->skip) {
		size_t n = g->skip < len ? (size_t)g->skip : len;
		g->skip -= n;
		data += n;
		len -= n;
	}
	if (g->len && len > g->len - g->done)
		len = (size_t)(g->len - g->done);
	if (len && g->sink(g->arg, data, len) != 0) {
		g->cancelled = 1;
		return 0;
	}
	g->done += len;
	return total;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct s3_resp *r = arg;
	size_t len = size * nmemb;
	struct s3_get_state *g = r->req->get;

	metrics_add(r->c->m, MC_BYTES_DOWN, len);
	if (!r->status_known) {
		r->status_known = 1;
		curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
		if (g && (r->status == 200 || r->status == 206) &&
		    get_stream_start(r, g)) {
			r->range_bad = 1;
			return 0;
		}
	}
	if (g && (r->status == 200 || r->status == 206))
		return stream_body(r, g, data, len);
	if (r->body.len + len > S3_BODY_MAX) {
		r->body_too_big = 1;
		return 0;
	}
	return buf_add(&r->body, data, len) ? 0 : len;
}

static size_t on_read(char *out, size_t size, size_t nmemb, void *arg)
{
	struct s3_resp *r = arg;
	size_t want = size * nmemb, left = r->req->body_len - r->sent;
	size_t n = want < left ? want : left;

	memcpy(out, (const char *)r->req->body + r->sent, n);
	r->sent += n;
	metrics_add(r->c->m, MC_BYTES_UP, n);
	return n;
}

/* curl rewinds the body to resend it on a fresh connection when a reused
 * one died; without this it fails with CURLE_SEND_FAIL_REWIND. */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
	struct s3_resp *r = arg;

	if (origin != SEEK_SET || offset < 0 ||
	    (uint64_t)offset > r->req->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	r->sent = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* ---- one attempt ------------------------------------------------------- */

/* What an attempt sends beyond the request itself; secrets wiped after. */
struct s3_attempt {
	struct sigv4_header hdrs[S3_HDRS_MAX + 6];
	size_t nhdrs;
	char date[17];
	char range[64];
	struct aws_creds creds;
	struct buf path, url, line, auth;
	struct curl_slist *list;
};

static void attempt_release(struct s3_attempt *a)
{
	explicit_bzero(&a->creds, sizeof(a->creds));
	buf_release(&a->path);
	buf_release(&a->url);
	if (a->line.data)
		explicit_bzero(a->line.data, a->line.cap);
	buf_release(&a->line);
	buf_release(&a->auth);
	curl_slist_free_all(a->list);
}

static void add_hdr(struct s3_attempt *a, const char *name, const char *value)
{
	a->hdrs[a->nhdrs].name = name;
	a->hdrs[a->nhdrs].value = value;
	a->nhdrs++;
}

/* Range and If-Match of a streamed GET, from where the sink left off. */
static void get_headers(struct s3_attempt *a, const struct s3_get_state *g)
{
	uint64_t start = g->off + g->done;

	if (g->len)
		snprintf(a->range, sizeof(a->range), "bytes=%llu-%llu",
			 (unsigned long long)start,
			 (unsigned long long)(g->off + g->len - 1));
	else if (start)
		snprintf(a->range, sizeof(a->range), "bytes=%llu-",
			 (unsigned long long)start);
	if (a->range[0])
		add_hdr(a, "range", a->range);
	if (g->if_match)
		add_hdr(a, "if-match", g->if_match);
	else if (g->etag[0] && g->done)
		add_hdr(a, "if-match", g->etag);
}

static int slist_add(struct s3_attempt *a, const char *name, const char *v)
{
	struct curl_slist *l;

	buf_reset(&a->line);
	if (buf_addf(&a->line, "%s: %s", name, v))
		return ENOMEM;
	l = curl_slist_append(a->list, a->line.data);
	if (!l)
		return ENOMEM;
	a->list = l;
	return 0;
}

/* Sign the request with fresh credentials and build the header list. */
static int attempt_sign(struct s3_client *c, const struct s3_req *req,
			struct s3_attempt *a)
{
	struct sigv4_signer s = {0};
	struct sigv4_request sr = {req->method, a->path.data, req->query,
				   a->hdrs, 0, req->payload_hash};
	int err = creds_get(c->creds, &a->creds);

	if (err)
		return err;
	sigv4_format_date(time(NULL), a->date);
	add_hdr(a, "host", c->host);
	add_hdr(a, "x-amz-date", a->date);
	add_hdr(a, "x-amz-content-sha256", req->payload_hash);
	if (a->creds.token[0])
		add_hdr(a, "x-amz-security-token", a->creds.token);
	for (size_t i = 0; i < req->nhdrs; i++)
		add_hdr(a, req->hdrs[i].name, req->hdrs[i].value);
	if (req->get)
		get_headers(a, req->get);
	sr.nheaders = a->nhdrs;
	s.access_key = a->creds.access_key;
	s.secret_key = a->creds.secret_key;
	s.token = a->creds.token;
	s.region = c->conf->region;
	s.service = "s3";
	memcpy(s.amz_date, a->date, sizeof(s.amz_date));
	for (size_t i = 0; !err && i < a->nhdrs; i++)
		err = slist_add(a, a->hdrs[i].name, a->hdrs[i].value);
	if (!err)
		err = sigv4_authorization(&s, &sr, &a->auth);
	if (!err)
		err = slist_add(a, "Authorization", a->auth.data);
	if (!err) {
		/* no "Expect: 100-continue" round trip before a body */
		struct curl_slist *l = curl_slist_append(a->list, "Expect:");
		err = l ? 0 : ENOMEM;
		a->list = l ? l : a->list;
	}
	return err;
}

static void setup_method(CURL *h, const struct s3_req *req,
			 struct s3_resp *r)
{
	if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(req->method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)req->body_len);
		curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE,
				 (long)S3_SEND_BUFFER);
	} else if (strcmp(req->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)req->body_len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS,
				 req->body ? req->body : "");
		metrics_add(r->c->m, MC_BYTES_UP, req->body_len);
	} else if (strcmp(req->method, "DELETE") == 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
	}
}

static void setup_curl(struct s3_client *c, CURL *h, const struct s3_req *req,
		       struct s3_resp *r, struct s3_attempt *a)
{
	const struct s3_conf *conf = c->conf;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, a->url.data);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "imgfs/" IMGFS_VERSION);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)conf->connect_timeout);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)conf->request_timeout);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, a->list);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_err);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, (long)S3_RECV_BUFFER);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (conf->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, conf->ca_file);
	if (conf->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	setup_method(h, req, r);
}

static int attempt_url(struct s3_client *c, const struct s3_req *req,
		       struct s3_attempt *a)
{
	int err = object_path(c, req->key, &a->path);

	if (!err)
		err = buf_addf(&a->url, "%s://%s%s%s%s", c->scheme, c->host,
			       a->path.data, req->query ? "?" : "",
			       req->query ? req->query : "");
	return err;
}

/* Perform one attempt. 0 when it got an answer (any status); an errno
 * when it could not be made. */
static int attempt_perform(struct s3_client *c, const struct s3_req *req,
			   struct s3_resp *r)
{
	struct s3_attempt a = {.nhdrs = 0};
	double t0;
	int err = attempt_url(c, req, &a);

	if (!err)
		err = attempt_sign(c, req, &a);
	if (!err) {
		r->h = handle_take(c);
		err = r->h ? 0 : ENOMEM;
	}
	if (!err) {
		setup_curl(c, r->h, req, r, &a);
		t0 = now_mono();
		r->cc = curl_easy_perform(r->h);
		if (!r->status_known)
			curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE,
					  &r->status);
		metrics_request(c->m, req->op,
				r->cc == CURLE_OK ? (int)r->status : 0,
				now_mono() - t0);
		handle_give(c, r->h);
		r->h = NULL;
	}
	attempt_release(&a);
	return err;
}

/* ---- outcome ----------------------------------------------------------- */

static int transport_retryable(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_FAIL_REWIND:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static int code_retryable(const char *code)
{
	static const char *const codes[] = {"SlowDown", "RequestTimeout",
					    "InternalError",
					    "ServiceUnavailable", NULL};

	for (size_t i = 0; codes[i]; i++)
		if (strcmp(code, codes[i]) == 0)
			return 1;
	return 0;
}

static int status_errno(const struct s3_req *req, long status)
{
	switch (status) {
	case 404:
		return ENOENT;
	case 403:
		return EACCES;
	case 412:
		return req->err_412 ? req->err_412 : EAGAIN;
	case 416:
		return ERANGE;
	default:
		return EIO;
	}
}

/* 0, or the errno of the outcome with *retry set when worth another go. */
static int classify(const struct s3_req *req, struct s3_resp *r, int *retry)
{
	int ok = r->status >= 200 && r->status < 300;

	*retry = 0;
	if (req->get && req->get->cancelled)
		return ECANCELED;
	if (r->range_bad || r->body_too_big)
		return EIO;
	if (r->cc != CURLE_OK) {
		*retry = transport_retryable(r->cc);
		return EIO;
	}
	if ((!ok || (req->error_in_200 && r->status == 200)) && r->body.len)
		(void)xml_parse_error(r->body.data, r->body.len, &r->xerr);
	if (ok && !r->xerr.code[0])
		return 0;
	if (code_retryable(r->xerr.code) || r->status == 500 ||
	    r->status == 502 || r->status == 503 || r->status == 504) {
		*retry = 1;
		return EIO;
	}
	return ok ? EIO : status_errno(req, r->status);
}

static void describe(const struct s3_resp *r, int err, char *out, size_t n)
{
	if (err == ECANCELED)
		snprintf(out, n, "stopped by the reader");
	else if (r->cc != CURLE_OK && !r->body_too_big && !r->range_bad)
		snprintf(out, n, "%s", r->curl_err[0] ? r->curl_err
				       : curl_easy_strerror(r->cc));
	else if (r->range_bad)
		snprintf(out, n, "HTTP %ld with an unexpected Content-Range",
			 r->status);
	else if (r->body_too_big)
		snprintf(out, n, "HTTP %ld with a body over %u bytes",
			 r->status, S3_BODY_MAX);
	else
		snprintf(out, n, "HTTP %ld%s%s", r->status,
			 r->xerr.code[0] ? " " : "", r->xerr.code);
}

static void resp_reset(struct s3_resp *r)
{
	struct buf body = r->body;

	buf_reset(&body);
	memset(r, 0, sizeof(*r));
	r->body = body;
}

/* Expected outcomes (a missing key, a failed precondition) are not errors
 * worth a line at error level. */
static int quiet_errno(int err)
{
	return err == ENOENT || err == EEXIST || err == EAGAIN ||
	       err == ERANGE || err == ECANCELED;
}

static void log_attempt(const struct s3_req *req, const struct s3_resp *r,
			int err, unsigned attempt, unsigned attempts,
			int final)
{
	char key[S3_LOG_KEY_MAX + 8], what[CURL_ERROR_SIZE + 64];
	enum log_level lvl = final ? (quiet_errno(err) ? LOG_LVL_DEBUG
						       : LOG_LVL_ERROR)
				   : LOG_LVL_WARN;

	if (!log_enabled(lvl))
		return;
	log_key(req->key, key);
	describe(r, err, what, sizeof(what));
	log_msg(lvl, "s3: %s %s %s: %s (attempt %u of %u)",
		metrics_op_name(req->op), key, final ? "failed" : "will retry",
		what, attempt, attempts);
}

/* Run req with retries; on 0, r holds the successful response. */
static int s3_run(struct s3_client *c, struct s3_req *req, struct s3_resp *r)
{
	unsigned attempts = c->conf->retries + 1, slept, i;
	int err = 0, retry = 0;

	r->req = req;
	r->c = c;
	if (!req->payload_hash[0])
		sigv4_sha256_hex(req->body ? req->body : "", req->body_len,
				 req->payload_hash);
	for (i = 0; i < attempts; i++) {
		if (i) {
			metrics_add(c->m, MC_RETRIES, 1);
			backoff_sleep(c, i - 1, &slept);
		}
		resp_reset(r);
		r->req = req;
		r->c = c;
		err = attempt_perform(c, req, r);
		if (err) {
			log_error("s3: %s: cannot make the request: %s",
				  metrics_op_name(req->op), strerror(err));
			return err;
		}
		err = classify(req, r, &retry);
		if (!err || !retry || i + 1 == attempts)
			break;
		log_attempt(req, r, err, i + 1, attempts, 0);
	}
	req->attempts = i < attempts ? i + 1 : attempts;
	if (err)
		log_attempt(req, r, err, req->attempts, attempts, 1);
	return err;
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

/* ---- operations -------------------------------------------------------- */

static void resp_release(struct s3_resp *r)
{
	buf_release(&r->body);
}

static int add_sse(struct s3_client *c, struct s3_req *req)
{
	int err = req_header(req, "x-amz-server-side-encryption", c->conf->sse);

	if (!err && c->conf->sse && c->conf->sse_kms_key_id)
		err = req_header(req, "x-amz-server-side-encryption-aws-kms-key-id",
				 c->conf->sse_kms_key_id);
	return err;
}

static int add_put_opts(struct s3_client *c, struct s3_req *req,
			const struct store_put_opts *opts)
{
	const char *ct = opts && opts->content_type ? opts->content_type
						    : "application/octet-stream";
	int err = req_header(req, "content-type", ct);

	if (!err && opts)
		err = req_header(req, "x-amz-meta-source-etag", opts->source_etag);
	if (!err && opts)
		err = req_header(req, "if-none-match", opts->if_none_match);
	if (!err)
		err = add_sse(c, req);
	return err;
}

static void etag_out_copy(char etag_out[STORE_ETAG_MAX], const char *etag)
{
	if (etag_out)
		snprintf(etag_out, STORE_ETAG_MAX, "%s", etag);
}

static int s3_head(struct store *st, const char *key, struct store_object *out)
{
	struct s3_client *c = client_of(st);
	struct s3_req req = {.op = MOP_HEAD, .method = "HEAD", .key = key};
	struct s3_resp r = {.status = 0};
	int err = s3_run(c, &req, &r);

	if (!err && !r.have_length) {
		/* S3 always sends it; without it the size would be a guess */
		log_error("s3: HEAD: a reply without a valid Content-Length");
		err = EIO;
	}
	if (!err && out) {
		*out = r.obj;
		out->size = r.content_length;
	}
	resp_release(&r);
	return err;
}

static int s3_get(struct store *st, const char *key, uint64_t off, uint64_t len,
	   const char *if_match, store_sink_fn sink, void *arg,
	   struct store_object *info)
{
	struct s3_client *c = client_of(st);
	struct s3_get_state g = {.off = off, .len = len, .if_match = if_match,
				 .sink = sink, .arg = arg};
	struct s3_req req = {.op = MOP_GET, .method = "GET", .key = key,
			     .get = &g, .err_412 = EAGAIN};
	struct s3_resp r = {.status = 0};
	int err;

	if (if_match && !value_is_safe(if_match))
		return EINVAL;
	err = s3_run(c, &req, &r);
	if (!err && !g.have_info) /* an empty body: no byte came through */
		err = get_stream_start(&r, &g);
	if (!err && info)
		*info = g.info;
	resp_release(&r);
	return err;
}

static int s3_put(struct store *st, const char *key, const void *data, size_t len,
	   const struct store_put_opts *opts, char etag_out[STORE_ETAG_MAX])
{
	struct s3_client *c = client_of(st);
	struct s3_req req = {.op = MOP_PUT, .method = "PUT", .key = key,
			     .body = data, .body_len = len, .err_412 = EEXIST};
	struct s3_resp r = {.status = 0};
	int err = add_put_opts(c, &req, opts);

	if (!err)
		err = s3_run(c, &req, &r);
	if (!err)
		etag_out_copy(etag_out, r.obj.etag);
	resp_release(&r);
	return err;
}

static int s3_delete(struct store *st, const char *key)
{
	struct s3_client *c = client_of(st);
	struct s3_req req = {.op = MOP_DELETE, .method = "DELETE", .key = key};
	struct s3_resp r = {.status = 0};
	int err = s3_run(c, &req, &r);

	resp_release(&r);
	return err == ENOENT ? 0 : err;
}

static int s3_copy(struct store *st, const char *src_key, const char *dst_key)
{
	struct s3_client *c = client_of(st);
	struct s3_req req = {.op = MOP_COPY, .method = "PUT", .key = dst_key,
			     .error_in_200 = 1};
	struct s3_resp r = {.status = 0};
	struct buf src = BUF_INIT;
	char etag[STORE_ETAG_MAX];
	int err = buf_addf(&src, "/%s/", c->conf->bucket);

	if (!err)
		err = sigv4_uri_encode(src_key, strlen(src_key), 1, &src);
	if (!err)
		err = req_header(&req, "x-amz-copy-source", src.data);
	if (!err)
		err = req_header(&req, "x-amz-metadata-directive", "COPY");
	if (!err)
		err = add_sse(c, &req);
	if (!err)
		err = s3_run(c, &req, &r);
	if (!err && xml_parse_copy(r.body.data, r.body.len, etag, NULL)) {
		log_error("s3: COPY: unreadable response");
		err = EIO;
	}
	buf_release(&src);
	resp_release(&r);
	return err;
}

static int list_query(const char *prefix, const char *delimiter,
		      const char *token, unsigned max_keys, struct buf *q)
{
	char mk[16];
	int err = query_add(q, "list-type", "2");

	if (!err && prefix && *prefix)
		err = query_add(q, "prefix", prefix);
	if (!err && delimiter && *delimiter)
		err = query_add(q, "delimiter", delimiter);
	if (!err && token)
		err = query_add(q, "continuation-token", token);
	snprintf(mk, sizeof(mk), "%u", max_keys);
	if (!err && max_keys)
		err = query_add(q, "max-keys", mk);
	if (!err)
		err = query_add(q, "encoding-type", "url");
	return err;
}

static int s3_list(struct store *st, const char *prefix, const char *delimiter,
	    const char *token, unsigned max_keys, struct store_list_page *out)
{
	struct s3_client *c = client_of(st);
	struct s3_req req = {.op = MOP_LIST, .method = "GET"};
	struct s3_resp r = {.status = 0};
	struct buf q = BUF_INIT;
	int err = list_query(prefix, delimiter, token, max_keys, &q);

	memset(out, 0, sizeof(*out));
	req.query = q.data;
	if (!err)
		err = s3_run(c, &req, &r);
	if (!err) {
		err = xml_parse_list(r.body.data, r.body.len, out, NULL);
		if (err) {
			char what[S3_LOG_KEY_MAX + 8];
			log_key(prefix ? prefix : "", what);
			log_error("s3: LIST %s: unreadable response (%s)", what,
				  strerror(err));
		}
	}
	buf_release(&q);
	resp_release(&r);
	return err ? (err == ENOMEM || err == ENOENT || err == EACCES ? err
								      : EIO)
		   : 0;
}

/* ---- multipart upload -------------------------------------------------- */

struct mpu_stray {
	struct s3_client *c;
	const char *key;
	const char *keep;  /* the upload that is in use, or NULL */
	time_t since;
};

static void abort_stray(void *arg, const char *key, const char *upload_id,
			time_t initiated)
{
	struct mpu_stray *s = arg;
	char k[S3_LOG_KEY_MAX + 8];

	if (strcmp(key, s->key) != 0 || initiated < s->since ||
	    (s->keep && strcmp(upload_id, s->keep) == 0))
		return;
	if (store_mpu_abort(&s->c->store, key, upload_id) == 0) {
		log_key(key, k);
		log_warn("s3: aborted a multipart upload of %s whose creation "
			 "reply was lost", k);
	}
}

/*
 * A create whose reply was lost (a reset, a timeout, a 5xx) may still have
 * made an upload nobody knows the id of: abort the key's uploads begun
 * since the first attempt, except keep. Best effort; a lifecycle rule
 * catches what this misses.
 */
static void mpu_abort_strays(struct s3_client *c, const char *key,
			     const char *keep, time_t since)
{
	struct mpu_stray s = {c, key, keep, since - S3_STRAY_SLACK};

	(void)store_mpu_list(&c->store, key, abort_stray, &s);
}

static int s3_mpu_create(struct store *st, const char *key,
		  const struct store_put_opts *opts, char **upload_id)
{
	struct s3_client *c = client_of(st);
	struct s3_req req = {.op = MOP_MPU_CREATE, .method = "POST",
			     .key = key, .query = "uploads"};
	struct s3_resp r = {.status = 0};
	struct store_put_opts o = {0};
	time_t started = time(NULL);
	int err;

	*upload_id = NULL;
	if (opts) {
		o = *opts;
		o.if_none_match = NULL; /* not a multipart create header */
	}
	err = add_put_opts(c, &req, &o);
	if (!err)
		err = s3_run(c, &req, &r);
	if (!err && xml_parse_initiate(r.body.data, r.body.len, upload_id)) {
		log_error("s3: MPU_CREATE: unreadable response");
		err = EIO;
	}
	resp_release(&r);
	if (req.attempts > 1 || err == EIO)
		mpu_abort_strays(c, key, *upload_id, started);
	return err;
}

static int upload_query(const char *upload_id, unsigned part,
			struct buf *q)
{
	char num[16];
	int err = 0;

	snprintf(num, sizeof(num), "%u", part);
	if (part)
		err = query_add(q, "partNumber", num);
	if (!err)
		err = query_add(q, "uploadId", upload_id);
	return err;
}

static int s3_mpu_part(struct store *st, const char *key, const char *upload_id,
		unsigned part_number, const void *data, size_t len,
		char etag_out[STORE_ETAG_MAX])
{
	struct s3_client *c = client_of(st);
	struct s3_req req = {.op = MOP_MPU_PART, .method = "PUT", .key = key,
			     .body = data, .body_len = len};
	struct s3_resp r = {.status = 0};
	struct buf q = BUF_INIT;
	int err = part_number >= 1 && part_number <= 10000 ? 0 : EINVAL;

	if (!err)
		err = upload_query(upload_id, part_number, &q);
	req.query = q.data;
	if (!err)
		err = s3_run(c, &req, &r);
	if (!err && !r.obj.etag[0])
		err = EIO;
	if (!err)
		etag_out_copy(etag_out, r.obj.etag);
	buf_release(&q);
	resp_release(&r);
	return err;
}

/* Text for an XML element, with the five special characters escaped. */
static int xml_text(struct buf *out, const char *s)
{
	int err = 0;

	for (; *s && !err; s++) {
		switch (*s) {
		case '&': err = buf_adds(out, "&amp;"); break;
		case '<': err = buf_adds(out, "&lt;"); break;
		case '>': err = buf_adds(out, "&gt;"); break;
		case '"': err = buf_adds(out, "&quot;"); break;
		case '\'': err = buf_adds(out, "&apos;"); break;
		default: err = buf_add(out, s, 1); break;
		}
	}
	return err;
}

static int complete_body(const struct store_part *parts, size_t nparts,
			 struct buf *out)
{
	int err = nparts ? buf_adds(out, "<CompleteMultipartUpload>") : EINVAL;

	for (size_t i = 0; !err && i < nparts; i++) {
		if (parts[i].number < 1 || parts[i].number > 10000 ||
		    (i && parts[i].number <= parts[i - 1].number) ||
		    !value_is_safe(parts[i].etag))
			return EINVAL;
		err = buf_addf(out, "<Part><PartNumber>%u</PartNumber><ETag>",
			       parts[i].number);
		if (!err)
			err = xml_text(out, parts[i].etag);
		if (!err)
			err = buf_adds(out, "</ETag></Part>");
	}
	if (!err)
		err = buf_adds(out, "</CompleteMultipartUpload>");
	return err;
}

/* The ETag of a completed upload whose response did not carry one. */
static int complete_etag(struct s3_client *c, const char *key,
			 char etag[STORE_ETAG_MAX])
{
	struct store_object obj;
	int err = store_head(&c->store, key, &obj);

	if (!err)
		snprintf(etag, STORE_ETAG_MAX, "%s", obj.etag);
	return err;
}

/* The binary MD5 in a part's ETag ("\"<32 hex>\""). EINVAL when it is
 * not one (SSE-KMS parts have other ETags). */
static int etag_md5(const char *etag, unsigned char bin[16])
{
	size_t n = strlen(etag);

	if (n != 34 || etag[0] != '"' || etag[33] != '"')
		return EINVAL;
	for (size_t i = 0; i < 16; i++) {
		unsigned v;
		char hex[3] = {etag[1 + 2 * i], etag[2 + 2 * i], '\0'};

		if (!isxdigit((unsigned char)hex[0]) ||
		    !isxdigit((unsigned char)hex[1]) ||
		    sscanf(hex, "%2x", &v) != 1)
			return EINVAL;
		bin[i] = (unsigned char)v;
	}
	return 0;
}

/* The ETag S3 gives the completed upload of these parts: the MD5 of their
 * binary MD5s, a dash and the part count. */
static int mpu_expected_etag(const struct store_part *parts, size_t nparts,
			     char out[STORE_ETAG_MAX])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE], bin[16];
	unsigned int mdlen = 0;
	int err = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) ? 0 : ENOMEM;

	for (size_t i = 0; !err && i < nparts; i++) {
		err = etag_md5(parts[i].etag, bin);
		if (!err && !EVP_DigestUpdate(ctx, bin, sizeof(bin)))
			err = EIO;
	}
	if (!err && (!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 16))
		err = EIO;
	EVP_MD_CTX_free(ctx);
	if (err)
		return err;
	out[0] = '"';
	for (unsigned i = 0; i < 16; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
	snprintf(out + 33, STORE_ETAG_MAX - 33, "-%zu\"", nparts);
	return 0;
}

/*
 * A completion answered NoSuchUpload: an earlier attempt (ours, or curl's
 * own resend on a reused connection) may have completed the upload and
 * lost its reply. It did when the object now has exactly the ETag these
 * parts make.
 */
static int complete_confirm(struct s3_client *c, const char *key,
			    const struct store_part *parts, size_t nparts,
			    char etag[STORE_ETAG_MAX])
{
	char want[STORE_ETAG_MAX], k[S3_LOG_KEY_MAX + 8];
	struct store_object obj;

	if (mpu_expected_etag(parts, nparts, want) ||
	    store_head(&c->store, key, &obj) || strcmp(obj.etag, want) != 0)
		return ENOENT;
	log_key(key, k);
	log_info("s3: MPU_COMPLETE %s: the first reply was lost, the object "
		 "is complete", k);
	snprintf(etag, STORE_ETAG_MAX, "%s", want);
	return 0;
}

static int s3_mpu_complete(struct store *st, const char *key,
		    const char *upload_id, const struct store_part *parts,
		    size_t nparts, char etag_out[STORE_ETAG_MAX])
{
	struct s3_client *c = client_of(st);
	struct s3_req req = {.op = MOP_MPU_COMPLETE, .method = "POST",
			     .key = key, .error_in_200 = 1};
	struct s3_resp r = {.status = 0};
	struct buf q = BUF_INIT, body = BUF_INIT;
	char etag[STORE_ETAG_MAX];
	int err = upload_query(upload_id, 0, &q);

	if (!err)
		err = complete_body(parts, nparts, &body);
	if (!err)
		err = req_header(&req, "content-type", "application/xml");
	req.query = q.data;
	req.body = body.data;
	req.body_len = body.len;
	if (!err)
		err = s3_run(c, &req, &r);
	if (err == ENOENT) /* curl itself resends on a reused connection */
		err = complete_confirm(c, key, parts, nparts, etag);
	else if (!err && xml_parse_complete(r.body.data, r.body.len, etag,
					    NULL)) {
		log_error("s3: MPU_COMPLETE: unreadable response");
		err = EIO;
	}
	if (!err && !etag[0] && etag_out)
		err = complete_etag(c, key, etag);
	if (!err)
		etag_out_copy(etag_out, etag);
	buf_release(&q);
	buf_release(&body);
	resp_release(&r);
	return err;
}

static int s3_mpu_abort(struct store *st, const char *key, const char *upload_id)
{
	struct s3_client *c = client_of(st);
	struct s3_req req = {.op = MOP_MPU_ABORT, .method = "DELETE",
			     .key = key};
	struct s3_resp r = {.status = 0};
	struct buf q = BUF_INIT;
	int err = upload_query(upload_id, 0, &q);

	req.query = q.data;
	if (!err)
		err = s3_run(c, &req, &r);
	if (err == ENOENT && req.attempts > 1)
		err = 0; /* an earlier attempt aborted it and lost the reply */
	buf_release(&q);
	resp_release(&r);
	return err;
}

static int uploads_query(const char *prefix, const char *key_marker,
			 const char *id_marker, struct buf *q)
{
	int err = query_add(q, "uploads", NULL);

	if (!err)
		err = query_add(q, "encoding-type", "url");
	if (!err && prefix && *prefix)
		err = query_add(q, "prefix", prefix);
	if (!err && key_marker)
		err = query_add(q, "key-marker", key_marker);
	if (!err && key_marker && id_marker)
		err = query_add(q, "upload-id-marker", id_marker);
	return err;
}

/* One page of ListMultipartUploads after the given markers. */
static int mpu_list_page(struct s3_client *c, const char *prefix,
			 const char *key_marker, const char *id_marker,
			 struct xml_uploads_page *page)
{
	struct s3_req req = {.op = MOP_MPU_LIST, .method = "GET"};
	struct s3_resp r = {.status = 0};
	struct buf q = BUF_INIT;
	int err = uploads_query(prefix, key_marker, id_marker, &q);

	req.query = q.data;
	if (!err)
		err = s3_run(c, &req, &r);
	if (!err && xml_parse_uploads(r.body.data, r.body.len, 1, page)) {
		log_error("s3: MPU_LIST: unreadable response");
		err = EIO;
	}
	buf_release(&q);
	resp_release(&r);
	return err;
}

/* The markers for the page after this one: its last upload. */
static int next_markers(const struct xml_uploads_page *page, char **key,
			char **id)
{
	const struct xml_upload *last;
	char *k, *i;

	if (!page->nuploads)
		return EIO; /* truncated yet empty: no way forward */
	last = &page->uploads[page->nuploads - 1];
	if (*key && *id && strcmp(*key, last->key) == 0 &&
	    strcmp(*id, last->upload_id) == 0)
		return EIO; /* no progress: the server is looping */
	k = strdup(last->key);
	i = strdup(last->upload_id);
	if (!k || !i) {
		free(k);
		free(i);
		return ENOMEM;
	}
	free(*key);
	free(*id);
	*key = k;
	*id = i;
	return 0;
}

static int s3_mpu_list(struct store *st, const char *prefix, store_mpu_fn fn,
		void *arg)
{
	struct s3_client *c = client_of(st);
	struct xml_uploads_page page = {0};
	char *key_marker = NULL, *id_marker = NULL;
	int err, more;

	do {
		err = mpu_list_page(c, prefix, key_marker, id_marker, &page);
		for (size_t i = 0; !err && i < page.nuploads; i++)
			fn(arg, page.uploads[i].key, page.uploads[i].upload_id,
			   page.uploads[i].initiated);
		more = !err && page.truncated;
		if (more)
			err = next_markers(&page, &key_marker, &id_marker);
		xml_uploads_page_release(&page);
	} while (more && !err);
	free(key_marker);
	free(id_marker);
	return err;
}

/* ---- presigned URLs ---------------------------------------------------- */

static const struct store_ops s3_ops = {
	.head = s3_head,
	.get = s3_get,
	.put = s3_put,
	.del = s3_delete,
	.copy = s3_copy,
	.list = s3_list,
	.mpu_create = s3_mpu_create,
	.mpu_part = s3_mpu_part,
	.mpu_complete = s3_mpu_complete,
	.mpu_abort = s3_mpu_abort,
	.mpu_list = s3_mpu_list,
};

struct store *s3_store(struct s3_client *c)
{
	return &c->store;
}

int s3_presign_get(struct s3_client *c, const char *key, time_t now,
		   unsigned expires, const char *disposition, struct buf *out)
{
	struct aws_creds ac;
	struct buf path = BUF_INIT, q = BUF_INIT, signed_q = BUF_INIT;
	struct sigv4_header host = {"host", c->host};
	struct sigv4_request sr = {"GET", NULL, NULL, &host, 1,
				   SIGV4_UNSIGNED_PAYLOAD};
	struct sigv4_signer s = {.region = c->conf->region, .service = "s3"};
	int err = creds_get(c->creds, &ac);

	if (!err)
		err = object_path(c, key, &path);
	if (!err && disposition)
		err = query_add(&q, "response-content-disposition", disposition);
	if (!err) {
		sr.path = path.data;
		sr.query = q.data;
		s.access_key = ac.access_key;
		s.secret_key = ac.secret_key;
		s.token = ac.token;
		sigv4_format_date(now, s.amz_date);
		err = sigv4_presign_query(&s, &sr, expires, &signed_q);
	}
	if (!err)
		err = buf_addf(out, "%s://%s%s?%s", c->scheme, c->host,
			       path.data, signed_q.data);
	explicit_bzero(&ac, sizeof(ac));
	buf_release(&path);
	buf_release(&q);
	buf_release(&signed_q);
	return err;
}
