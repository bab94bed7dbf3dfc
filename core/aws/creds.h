/*
 * creds: AWS credentials from the standard provider chain.
 *
 * Order: environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN); the shared credentials and config files for the
 * profile; container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI or
 * _RELATIVE_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]); EC2 instance
 * metadata with IMDSv2. Temporary credentials are refreshed in the
 * background of creds_get() callers before they expire.
 *
 * Thread-safe: any thread may call creds_get() at any time.
 */
#ifndef IMGFS_CREDS_H
#define IMGFS_CREDS_H

#include <time.h>

#include "config/cfg.h"

struct aws_creds {
	char access_key[128];
	char secret_key[128];
	char token[4096];  /* session token, "" when none */
	time_t expiry;     /* 0 for long-term credentials */
};

struct creds;

/* Resolve the chain once. NULL with errno set and a one-line message in err
 * when no provider yields credentials. envp as in cfg_parse().
 * The message names the file, line or variable at fault, has no program
 * name in front and no newline, and never holds a secret or token. */
struct creds *creds_create(const struct creds_conf *conf, char **envp,
			   char *err, size_t errlen);
/* Copy the current credentials into out, refreshing them first when they
 * expire within five minutes. 0, or an errno when none can be had.
 * One caller refreshes while the others keep getting the current, still
 * valid credentials; a failed refresh is logged and retried, and only
 * once the credentials have really expired does this fail (EKEYEXPIRED).
 * The margin can be changed with IMGFS_CREDS_REFRESH_MARGIN (seconds) in
 * the envp given to creds_create(), for tests. */
int creds_get(struct creds *c, struct aws_creds *out);
/* Where the credentials came from ("environment", "profile default", ...). */
const char *creds_source(const struct creds *c);
void creds_destroy(struct creds *c);

#endif
