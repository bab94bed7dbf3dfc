/*
 * s3_http: performing one request (see s3_int.h): each attempt signs
 * afresh, runs on a pooled handle and is classified as done, failed or
 * worth retrying with capped, jittered backoff.
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
#include "base/num.h"
#include "store/xml.h"

/* ---- response callbacks ------------------------------------------------ */

static void copy_bounded(char *dst, size_t size, const char *v, size_t n)
{
	if (n >= size)
		n = 0; /* too long to be real: treat as absent */
	memcpy(dst, v, n);
	dst[n] = '\0';
}

/* "bytes START-END/TOTAL" */
static void parse_content_range(struct s3_resp *r, const char *v)
{
	uint64_t start, last, total;
	const char *p;

	if (strncmp(v, "bytes ", 6) != 0 || num_parse_u64(v + 6, &p, &start) ||
	    *p != '-' || num_parse_u64(p + 1, &p, &last) || *p != '/' ||
	    num_parse_u64(p + 1, &p, &total) || *p || last < start ||
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
	else if (s3_parse_attr(&r->obj.attrs, name, v, n))
		; /* x-amz-meta-mtime, -mode, -uid, -gid */
	else if (strcasecmp(name, "last-modified") == 0)
		r->obj.mtime = curl_getdate(tmp, NULL);
	else if (strcasecmp(name, "content-length") == 0)
		r->have_length = num_parse_u64(tmp, &end, &r->content_length) == 0 &&
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
int s3_get_stream_start(struct s3_resp *r, struct s3_get_state *g)
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
		    s3_get_stream_start(r, g)) {
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
	int err = s3_object_path(c, req->key, &a->path);

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
		r->h = s3_handle_take(c);
		err = r->h ? 0 : ENOMEM;
	}
	if (!err) {
		setup_curl(c, r->h, req, r, &a);
		t0 = mono_s();
		r->cc = curl_easy_perform(r->h);
		if (r->cc != CURLE_OK)
			curl_easy_getinfo(r->h, CURLINFO_OS_ERRNO, &r->os_errno);
		if (!r->status_known)
			curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE,
					  &r->status);
		metrics_request(c->m, req->op,
				r->cc == CURLE_OK ? (int)r->status : 0,
				mono_s() - t0);
		s3_handle_give(c, r->h);
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

/* The cause of a failure with no HTTP answer, in a newcomer's words. */
static void transport_cause(const struct s3_resp *r, char *out, size_t n)
{
	const char *e = r->curl_err;

	switch (r->cc) {
	case CURLE_COULDNT_CONNECT:
		snprintf(out, n, "%s", r->os_errno == ECONNREFUSED
			 ? "connection refused" : e[0] ? e : "cannot connect");
		return;
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(out, n, "timed out (%s)", e[0] ? e : "no answer");
		return;
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(out, n, "cannot resolve host");
		return;
	case CURLE_SSL_CONNECT_ERROR:
		if (strstr(e, "wrong version number") || strstr(e, "packet length")) {
			snprintf(out, n, "TLS: wrong protocol (is the endpoint "
				 "http, not https?)");
			return;
		}
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
		if (strstr(e, "issuer") || strstr(e, "self-signed") ||
		    strstr(e, "self signed")) {
			snprintf(out, n, "TLS: certificate from an unknown CA "
				 "(set ca_file= or AWS_CA_BUNDLE)");
			return;
		}
		if (strstr(e, "subject name") || strstr(e, "host name") ||
		    strstr(e, "hostname")) {
			snprintf(out, n, "TLS: certificate for another host name");
			return;
		}
		break;
	default:
		break;
	}
	snprintf(out, n, "%s", e[0] ? e : curl_easy_strerror(r->cc));
}

static void note_transport_error(struct s3_client *c, const struct s3_resp *r)
{
	char cause[sizeof(c->transport_err)];

	if (r->cc == CURLE_OK || r->body_too_big || r->range_bad)
		return;
	transport_cause(r, cause, sizeof(cause));
	pthread_mutex_lock(&c->lock);
	snprintf(c->transport_err, sizeof(c->transport_err), "%s", cause);
	pthread_mutex_unlock(&c->lock);
}

int s3_last_transport_error(struct s3_client *c, char *out, size_t len)
{
	int found;

	pthread_mutex_lock(&c->lock);
	found = c->transport_err[0] != '\0';
	if (found)
		snprintf(out, len, "%s", c->transport_err);
	pthread_mutex_unlock(&c->lock);
	return found;
}

static void log_attempt(const struct s3_req *req, const struct s3_resp *r,
			int err, unsigned attempt, unsigned attempts,
			int final)
{
	char what[CURL_ERROR_SIZE + 64];
	struct log_key key;
	enum log_level lvl = final ? (quiet_errno(err) ? LOG_LVL_DEBUG
						       : LOG_LVL_ERROR)
				   : LOG_LVL_WARN;

	if (!log_enabled(lvl))
		return;
	describe(r, err, what, sizeof(what));
	log_msg(lvl, "s3: %s %s %s: %s (attempt %u of %u)",
		metrics_op_name(req->op),
		req->key ? log_key(&key, req->key) : "(bucket)", final ? "failed" : "will retry",
		what, attempt, attempts);
}

/* Milliseconds left of the retry window of a request first tried at
 * start (mono_s()), 0 when it has passed; a window of 0 has no end. */
static uint64_t window_left_ms(const struct s3_client *c, double start)
{
	double left;

	if (!c->conf->retry_window)
		return UINT64_MAX;
	left = (double)c->conf->retry_window - (mono_s() - start);

	return left > 0 ? (uint64_t)(left * 1000.0) : 0;
}

/* Run req with retries; on 0, r holds the successful response. */
int s3_run(struct s3_client *c, struct s3_req *req, struct s3_resp *r)
{
	unsigned attempts = c->conf->retries + 1, slept, i;
	double start = mono_s();
	int err = 0, retry = 0;

	r->req = req;
	r->c = c;
	/* A body that crosses a network in the clear is signed (its SHA-256
	 * in the signature); over TLS, which protects it, or to this machine
	 * it is sent UNSIGNED-PAYLOAD, sparing both ends a hash of every byte
	 * (as much CPU as the rest of a part upload on this side). */
	if (!req->payload_hash[0] && req->body_len && !c->sign_payload)
		snprintf(req->payload_hash, sizeof(req->payload_hash), "%s",
			 SIGV4_UNSIGNED_PAYLOAD);
	else if (!req->payload_hash[0])
		sigv4_sha256_hex(req->body ? req->body : "", req->body_len,
				 req->payload_hash);
	for (i = 0; i < attempts; i++) {
		if (i) {
			metrics_add(c->m, MC_RETRIES, 1);
			s3_backoff_sleep(c, i - 1, window_left_ms(c, start),
					 &slept);
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
		if (!err || !retry || i + 1 == attempts ||
		    !window_left_ms(c, start))
			break;
		log_attempt(req, r, err, i + 1, attempts, 0);
	}
	req->attempts = i < attempts ? i + 1 : attempts;
	if (err) {
		note_transport_error(c, r);
		log_attempt(req, r, err, req->attempts, attempts, 1);
	}
	return err;
}
