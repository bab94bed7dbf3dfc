/*
 * creds_files: credentials from the environment and from the shared
 * credentials and config files (profiles), see creds_int.h.
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

/* ---- environment ------------------------------------------------------ */

/* 0 with out filled, ENOENT when not configured, EINVAL with err. */
int creds_from_env(char **envp, struct aws_creds *out, char *err,
		    size_t errlen)
{
	const char *ak = cfg_getenv(envp, "AWS_ACCESS_KEY_ID");
	const char *sk = cfg_getenv(envp, "AWS_SECRET_ACCESS_KEY");
	const char *tok = cfg_getenv(envp, "AWS_SESSION_TOKEN");

	if (!ak && !sk)
		return ENOENT;
	if (!ak || !sk)
		return creds_say(err, errlen, "%s is set but %s is not",
			   ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
			   ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
	if (creds_put_field(out->access_key, sizeof(out->access_key), ak) ||
	    creds_put_field(out->secret_key, sizeof(out->secret_key), sk) ||
	    creds_put_field(out->token, sizeof(out->token), tok ? tok : ""))
		return creds_say(err, errlen, "AWS credentials in the environment "
			   "are too long or hold invalid characters");
	out->expiry = 0;
	return 0;
}

/* ---- shared credentials and config files ------------------------------ */

struct profile_scan {
	const char *path;
	const char *section;         /* the section that holds the profile */
	int found;                   /* the section exists */
	int err_line;                /* first bad line, or 0 */
	char err_what[96];
	char unsupported[40];        /* a key imgfs cannot act on */
	struct aws_creds *out;
	int have_ak, have_sk;
};

static int scan_bad(struct profile_scan *s, int line, const char *name,
		    const char *what)
{
	if (!s->err_line) {
		s->err_line = line;
		snprintf(s->err_what, sizeof(s->err_what), "%.40s: %s", name,
			 what);
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
			  const char *value, int line)
{
	struct profile_scan *s = user;
	struct aws_creds *o = s->out;
	int rc = 0;

	if (strcmp(section, s->section) != 0)
		return 1;
	s->found = 1;
	if (strcmp(name, "aws_access_key_id") == 0) {
		rc = creds_put_field(o->access_key, sizeof(o->access_key), value);
		s->have_ak = !rc && *value;
	} else if (strcmp(name, "aws_secret_access_key") == 0) {
		rc = creds_put_field(o->secret_key, sizeof(o->secret_key), value);
		s->have_sk = !rc && *value;
	} else if (strcmp(name, "aws_session_token") == 0) {
		rc = creds_put_field(o->token, sizeof(o->token), value);
	} else {
		note_unsupported(s, name);
	}
	return rc ? scan_bad(s, line, name, "value too long or not printable")
		  : 1;
}

/* Scan one file for a section. 0 (found or not), ENOENT when the file does
 * not exist, EINVAL with err on garbage. */
static int scan_file(struct profile_scan *s, char *err, size_t errlen)
{
	int line, rc = cfg_ini_read(s->path, on_profile_key, s, &line);

	if (rc == ENOENT)
		return ENOENT;
	if (rc == EBADMSG && line == s->err_line)
		return creds_say(err, errlen, "%s:%d: %s", s->path, line, s->err_what);
	if (rc == EBADMSG)
		return creds_say(err, errlen, "%s:%d: syntax error (expected "
			   "[section] or key = value)", s->path, line);
	if (rc == EFBIG)
		return creds_say(err, errlen, "%s: not a regular file of at most "
			   "1 MiB", s->path);
	if (rc)
		return creds_say(err, errlen, "cannot read %s: %s", s->path,
			   strerror(rc));
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
		return creds_say(err, errlen, "%s: profile '%s' has %s but no %s",
			   path, profile,
			   s.have_ak ? "aws_access_key_id" : "aws_secret_access_key",
			   s.have_ak ? "aws_secret_access_key" : "aws_access_key_id");
	if (s.unsupported[0])
		return creds_say(err, errlen, "%s: profile '%s' uses %s, which imgfs "
			   "does not support; give it static keys or use "
			   "environment, container or instance credentials",
			   path, profile, s.unsupported);
	return ENOENT;
}

int creds_from_files(struct creds *c, const struct creds_conf *conf,
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
		return creds_say(err, errlen, "profile '%s' not found in %s or %s",
			   conf->profile, conf->credentials_file,
			   conf->config_file);
	return rc;
}
