/*
 * creds_int: the credential chain's private parts, shared by creds.c (the
 * chain and refreshing), creds_files.c (environment and shared files) and
 * creds_http.c (container credentials and instance metadata). Not for use
 * outside them.
 *
 * The chain (see creds.h):
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
 */#ifndef IMGFS_CREDS_INT_H
#define IMGFS_CREDS_INT_H

#include <pthread.h>
#include <stddef.h>

#include "aws/creds.h"

/* Refresh temporary credentials this long before they expire. */
#define CREDS_DEFAULT_MARGIN 300
/* Shared files are small; refuse devices and anything huge. */
#define CREDS_MAX_FILE (1024 * 1024)

enum creds_kind { CREDS_STATIC, CREDS_CONTAINER, CREDS_IMDS };

/* Where temporary credentials come from. */
struct creds_http {
	int container;               /* 1: container endpoint, 0: IMDS */
	char *url;                   /* container credentials URL */
	char *auth_token;            /* container Authorization value */
	char *auth_token_file;       /* or the file holding it */
	char *imds_endpoint;         /* scheme://host[:port] */
	char role[128];              /* IMDS role name (IAM: at most 64) */
};

struct creds {
	pthread_mutex_t lock;
	pthread_cond_t refreshed;    /* broadcast when a refresh ends */
	struct aws_creds cur;        /* protected by lock */
	int refreshing;              /* protected by lock */
	time_t next_attempt;         /* protected by lock: after a failure */
	enum creds_kind kind;
	long margin;                 /* seconds before expiry to refresh */
	struct creds_http http;      /* container or IMDS settings */
	char source[256];            /* set once by creds_create() */
};
__attribute__((format(printf, 3, 4)))
int creds_say(char *err, size_t errlen, const char *fmt, ...);

/* Copy s into a fixed field; EOVERFLOW when it does not fit, EILSEQ when
 * it holds a blank or a byte outside visible ASCII. */
int creds_put_field(char *dst, size_t cap, const char *s);

/* 0 with out filled, ENOENT when not configured, EINVAL with err. */
int creds_from_env(char **envp, struct aws_creds *out, char *err,
		    size_t errlen);

int creds_from_files(struct creds *c, const struct creds_conf *conf,
		      char *err, size_t errlen);

int creds_http_container(struct creds_http *h, struct aws_creds *out,
				char *why, size_t whylen);

int creds_http_imds(struct creds_http *h, struct aws_creds *out,
			   char *why, size_t whylen);

/* Which HTTP provider the environment selects. 0, ENOENT (none) or EINVAL
 * with why. */
int creds_http_setup(struct creds_http *h, char **envp, char *why,
			    size_t whylen);

void creds_http_release(struct creds_http *h);

/* PROTOTYPES */

#endif
