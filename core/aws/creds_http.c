/*
 * creds_http: temporary credentials over HTTP, from the container
 * endpoint or EC2 instance metadata (IMDSv2), see creds_int.h.
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

#include <curl/curl.h>
#include <ini.h>
#include <json-c/json.h>

#include "base/buf.h"
#include "base/loopback.h"
#include "base/log.h"

/* ---- HTTP: container credentials and EC2 instance metadata -------------- */

#define HTTP_MAX_BODY (64 * 1024)
#define CONTAINER_HOST "http://169.254.170.2"
#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
#define IMDS_TOKEN_TTL_HEADER "X-aws-ec2-metadata-token-ttl-seconds: 21600"
#define IMDS_CREDS_PATH "/latest/meta-data/iam/security-credentials/"

/* One request: what to send and what came back. */
struct http_call {
	const char *method;          /* "GET" or "PUT" */
	const char *url;
	const char *header;          /* one extra request header, or NULL */
	long connect_ms, total_ms;   /* timeouts */
	struct buf body;             /* the response body */
	long status;                 /* the HTTP status */
};

static size_t on_body(char *ptr, size_t size, size_t n, void *user)
{
	struct buf *b = user;
	size_t len = size * n;

	if (b->len + len > HTTP_MAX_BODY || buf_add(b, ptr, len))
		return 0;
	return len;
}

static CURLcode http_setup(CURL *e, struct http_call *h,
			   struct curl_slist *hdrs)
{
	CURLcode cc = CURLE_OK;

	if (!cc) cc = curl_easy_setopt(e, CURLOPT_URL, h->url);
	if (!cc) cc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	if (!cc) cc = curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	if (!cc) cc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (!cc) cc = curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_ms);
	if (!cc) cc = curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->total_ms);
	if (!cc) cc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	if (!cc) cc = curl_easy_setopt(e, CURLOPT_WRITEDATA, &h->body);
	if (!cc) cc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	if (!cc && strcmp(h->method, "PUT") == 0) {
		cc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
		if (!cc) cc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
	}
	return cc;
}

/* Perform h. 0 with h->status and h->body set, or EIO with why. */
static int http_do(struct http_call *h, char *why, size_t whylen)
{
	struct curl_slist *hdrs = NULL;
	CURLcode cc = CURLE_OUT_OF_MEMORY;
	CURL *e = curl_easy_init();

	if (e && h->header)
		hdrs = curl_slist_append(NULL, h->header);
	if (e && (hdrs || !h->header))
		cc = http_setup(e, h, hdrs);
	if (!cc)
		cc = curl_easy_perform(e);
	if (!cc)
		cc = curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &h->status);
	if (cc)
		snprintf(why, whylen, "%s %s: %s", h->method, h->url,
			 curl_easy_strerror(cc));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(e);
	return cc ? EIO : 0;
}

static void http_call_release(struct http_call *h)
{
	if (h->body.data)
		explicit_bzero(h->body.data, h->body.len);
	buf_release(&h->body);
}

static const char *json_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* "2026-11-25T18:00:00Z", with optional fractions and a numeric offset. */
static int parse_iso8601(const char *s, time_t *out)
{
	struct tm tm = {0};
	const char *r = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	long off = 0;
	time_t t;

	if (!r)
		return EINVAL;
	if (*r == '.')
		for (r++; *r >= '0' && *r <= '9'; r++)
			;
	if ((*r == '+' || *r == '-') && strlen(r) == 6 && r[3] == ':') {
		struct tm o = {0};
		if (!strptime(r + 1, "%H:%M", &o))
			return EINVAL;
		off = (*r == '-' ? -1 : 1) * (o.tm_hour * 3600L + o.tm_min * 60L);
		r += 6;
	} else if (*r == 'Z') {
		r++;
	}
	if (*r)
		return EINVAL;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return EINVAL;
	*out = t - off;
	return 0;
}

/* Fill out from the JSON both services send. imds: Code must be Success. */
static int creds_from_json(struct json_object *o, int imds,
			   struct aws_creds *out, char *why, size_t whylen)
{
	const char *code = json_str(o, "Code");
	const char *ak = json_str(o, "AccessKeyId");
	const char *sk = json_str(o, "SecretAccessKey");
	const char *tok = json_str(o, "Token");
	const char *exp = json_str(o, "Expiration");

	if (imds && (!code || strcmp(code, "Success") != 0)) {
		snprintf(why, whylen, "instance metadata answered Code %.64s",
			 code ? code : "(none)");
		return EIO;
	}
	if (!ak || !sk || !*ak || !*sk) {
		snprintf(why, whylen, "no AccessKeyId or SecretAccessKey");
		return EIO;
	}
	if (creds_put_field(out->access_key, sizeof(out->access_key), ak) ||
	    creds_put_field(out->secret_key, sizeof(out->secret_key), sk) ||
	    creds_put_field(out->token, sizeof(out->token), tok ? tok : "")) {
		snprintf(why, whylen, "credentials too long or not printable");
		return EIO;
	}
	out->expiry = 0;
	if (exp && parse_iso8601(exp, &out->expiry)) {
		snprintf(why, whylen, "bad Expiration '%.64s'", exp);
		return EIO;
	}
	return 0;
}

static int parse_creds_body(const struct http_call *h, int imds,
			    struct aws_creds *out, char *why, size_t whylen)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = NULL;
	int rc = EIO;

	if (!tok) {
		snprintf(why, whylen, "out of memory");
		return ENOMEM;
	}
	if (h->body.len)
		o = json_tokener_parse_ex(tok, h->body.data, (int)h->body.len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(o, json_type_object))
		snprintf(why, whylen, "%s: the answer is not a JSON object",
			 h->url);
	else
		rc = creds_from_json(o, imds, out, why, whylen);
	json_object_put(o);
	json_tokener_free(tok);
	return rc;
}

/* Perform h and insist on 200. */
static int http_ok(struct http_call *h, char *why, size_t whylen)
{
	int rc = http_do(h, why, whylen);

	if (!rc && h->status != 200) {
		snprintf(why, whylen, "%s %s: HTTP %ld", h->method, h->url,
			 h->status);
		rc = EIO;
	}
	return rc;
}

static int has_line_break(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* The Authorization value: the token file (re-read each time, it may
 * rotate) or the environment's token. *out is NULL when there is none. */
static int container_token(const struct creds_http *h, char **out, char *why,
			   size_t whylen)
{
	struct buf b = BUF_INIT;
	char chunk[1024];
	size_t n;
	FILE *f;

	*out = NULL;
	if (!h->auth_token_file)
		return h->auth_token && !(*out = strdup(h->auth_token)) ? ENOMEM : 0;
	f = fopen(h->auth_token_file, "re");
	if (!f) {
		snprintf(why, whylen, "cannot read %s: %s", h->auth_token_file,
			 strerror(errno));
		return EIO;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len < 16384)
		buf_add(&b, chunk, n);
	fclose(f);
	while (b.len && strchr("\r\n \t", b.data[b.len - 1]))
		b.data[--b.len] = '\0';
	if (!b.len || has_line_break(b.data) || b.len >= 16384) {
		snprintf(why, whylen, "%s: not a valid authorization token",
			 h->auth_token_file);
		buf_release(&b);
		return EIO;
	}
	*out = buf_detach(&b, NULL);
	return *out ? 0 : ENOMEM;
}

int creds_http_container(struct creds_http *h, struct aws_creds *out,
				char *why, size_t whylen)
{
	struct http_call call = {.method = "GET", .url = h->url,
				 .connect_ms = 2000, .total_ms = 5000};
	struct buf hdr = BUF_INIT;
	char *token;
	int rc;

	rc = container_token(h, &token, why, whylen);
	if (rc)
		return rc;
	if (token && buf_addf(&hdr, "Authorization: %s", token))
		rc = ENOMEM;
	call.header = hdr.data;
	if (!rc)
		rc = http_ok(&call, why, whylen);
	if (!rc)
		rc = parse_creds_body(&call, 0, out, why, whylen);
	if (token)
		explicit_bzero(token, strlen(token));
	free(token);
	if (hdr.data)
		explicit_bzero(hdr.data, hdr.len);
	buf_release(&hdr);
	http_call_release(&call);
	return rc;
}

/* The role name: the first line of the listing, checked for IAM's
 * character set so that it can go into a URL path as it is. */
static int imds_role(struct creds_http *h, const char *token_hdr, char *why,
		     size_t whylen)
{
	struct buf url = BUF_INIT;
	struct http_call call = {.method = "GET", .header = token_hdr,
				 .connect_ms = 1000, .total_ms = 2000};
	size_t n;
	int rc;

	if (buf_addf(&url, "%s%s", h->imds_endpoint, IMDS_CREDS_PATH))
		return ENOMEM;
	call.url = url.data;
	rc = http_ok(&call, why, whylen);
	n = rc ? 0 : strcspn(call.body.data ? call.body.data : "", "\r\n");
	if (!rc && (n == 0 || n >= sizeof(h->role) ||
		    strspn(call.body.data, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				"abcdefghijklmnopqrstuvwxyz0123456789+=,.@_-") != n)) {
		snprintf(why, whylen, "%s: no usable role name", url.data);
		rc = EIO;
	}
	if (!rc)
		snprintf(h->role, sizeof(h->role), "%.*s", (int)n,
			 call.body.data);
	http_call_release(&call);
	buf_release(&url);
	return rc;
}

/* PUT for a session token; *hdr becomes the header that carries it. */
static int imds_session(struct creds_http *h, struct buf *hdr, char *why,
			size_t whylen)
{
	struct buf url = BUF_INIT;
	struct http_call call = {.method = "PUT", .header = IMDS_TOKEN_TTL_HEADER,
				 .connect_ms = 1000, .total_ms = 2000};
	int rc;

	if (buf_addf(&url, "%s/latest/api/token", h->imds_endpoint))
		return ENOMEM;
	call.url = url.data;
	rc = http_ok(&call, why, whylen);
	if (!rc && (!call.body.len || has_line_break(call.body.data))) {
		snprintf(why, whylen, "%s: no usable session token", url.data);
		rc = EIO;
	}
	if (!rc && buf_addf(hdr, "X-aws-ec2-metadata-token: %s",
			    call.body.data))
		rc = ENOMEM;
	http_call_release(&call);
	buf_release(&url);
	return rc;
}

int creds_http_imds(struct creds_http *h, struct aws_creds *out,
			   char *why, size_t whylen)
{
	struct buf hdr = BUF_INIT, url = BUF_INIT;
	struct http_call call = {.method = "GET", .connect_ms = 1000,
				 .total_ms = 2000};
	int rc;

	rc = imds_session(h, &hdr, why, whylen);
	if (!rc)
		rc = imds_role(h, hdr.data, why, whylen);
	if (!rc && buf_addf(&url, "%s%s%s", h->imds_endpoint, IMDS_CREDS_PATH,
			    h->role))
		rc = ENOMEM;
	call.url = url.data;
	call.header = hdr.data;
	if (!rc)
		rc = http_ok(&call, why, whylen);
	if (!rc)
		rc = parse_creds_body(&call, 1, out, why, whylen);
	http_call_release(&call);
	if (hdr.data)
		explicit_bzero(hdr.data, hdr.len);
	buf_release(&hdr);
	buf_release(&url);
	return rc;
}

static int is_container_host(const char *host)
{
	static const char *const hosts[] = {"169.254.170.2", "169.254.170.23",
					    "[fd00:ec2::23]", NULL};

	for (const char *const *h = hosts; *h; h++)
		if (strcasecmp(host, *h) == 0)
			return 1;
	return host_is_loopback(host);
}

/* https anywhere; http only to loopback or the container agent's hosts. */
static int check_full_uri(const char *uri, char *why, size_t whylen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int ok = 0;

	if (u && curl_url_set(u, CURLUPART_URL, uri, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		ok = strcmp(scheme, "https") == 0 ||
		     (strcmp(scheme, "http") == 0 && is_container_host(host));
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	if (!ok)
		snprintf(why, whylen, "AWS_CONTAINER_CREDENTIALS_FULL_URI '%s' "
			 "must be https, or http to a loopback host", uri);
	return ok ? 0 : EINVAL;
}

static int container_setup(struct creds_http *h, char **envp, char *why,
			   size_t whylen)
{
	const char *rel = cfg_getenv(envp, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = cfg_getenv(envp, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *tok = cfg_getenv(envp, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
	const char *file = cfg_getenv(envp, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	struct buf url = BUF_INIT;

	h->container = 1;
	if (rel && rel[0] != '/') {
		snprintf(why, whylen, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI "
			 "must start with /");
		return EINVAL;
	}
	if (!rel && check_full_uri(full, why, whylen))
		return EINVAL;
	if (tok && !file && has_line_break(tok)) {
		snprintf(why, whylen, "AWS_CONTAINER_AUTHORIZATION_TOKEN holds "
			 "a line break");
		return EINVAL;
	}
	if ((rel ? buf_addf(&url, "%s%s", CONTAINER_HOST, rel)
		 : buf_adds(&url, full)) ||
	    (file && !(h->auth_token_file = strdup(file))) ||
	    (tok && !file && !(h->auth_token = strdup(tok)))) {
		buf_release(&url);
		snprintf(why, whylen, "out of memory");
		return ENOMEM;
	}
	h->url = buf_detach(&url, NULL);
	return h->url ? 0 : ENOMEM;
}

static int imds_setup(struct creds_http *h, char **envp, char *why,
		      size_t whylen)
{
	const char *ep = cfg_getenv(envp, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
	size_t n;

	if (!ep)
		ep = IMDS_DEFAULT_ENDPOINT;
	if (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) {
		snprintf(why, whylen, "AWS_EC2_METADATA_SERVICE_ENDPOINT '%s' "
			 "must start with http:// or https://", ep);
		return EINVAL;
	}
	h->imds_endpoint = strdup(ep);
	if (!h->imds_endpoint)
		return ENOMEM;
	n = strlen(h->imds_endpoint);
	while (n > 0 && h->imds_endpoint[n - 1] == '/')
		h->imds_endpoint[--n] = '\0';
	return 0;
}

/* Which HTTP provider the environment selects. 0, ENOENT (none) or EINVAL
 * with why. */
int creds_http_setup(struct creds_http *h, char **envp, char *why,
			    size_t whylen)
{
	const char *off = cfg_getenv(envp, "AWS_EC2_METADATA_DISABLED");

	if (cfg_getenv(envp, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") ||
	    cfg_getenv(envp, "AWS_CONTAINER_CREDENTIALS_FULL_URI"))
		return container_setup(h, envp, why, whylen);
	if (off && strcasecmp(off, "true") == 0)
		return ENOENT;
	return imds_setup(h, envp, why, whylen);
}

void creds_http_release(struct creds_http *h)
{
	free(h->url);
	if (h->auth_token)
		explicit_bzero(h->auth_token, strlen(h->auth_token));
	free(h->auth_token);
	free(h->auth_token_file);
	free(h->imds_endpoint);
}
