/*
 * uplinks: upload links (see uplinks.h).
 *
 * This file chooses what to sign (the folder's prefix, the size limit, the
 * expiry cut to the credentials' lifetime) and has s3_presign_post() sign
 * it; uplinks_page.c renders the page.
 *
 * Invariant of struct uplinks: every pointer is borrowed and outlives it;
 * cap_warned only ever goes from 0 to 1.
 */
#include "ns/uplinks.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "ns/links.h"

struct uplinks {
	const struct link_conf *conf;
	struct s3_client *s3;   /* signs the policies */
	struct creds *creds;    /* their lifetime caps the expiry */
	atomic_int cap_warned;  /* 1 once the credential cap was logged */
};

struct uplinks *uplinks_create(const struct link_conf *conf,
			       struct s3_client *s3, struct creds *creds)
{
	struct uplinks *u;

	if (!conf || !s3 || !creds) {
		errno = EINVAL;
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		errno = ENOMEM;
		return NULL;
	}
	u->conf = conf;
	u->s3 = s3;
	u->creds = creds;
	atomic_init(&u->cap_warned, 0);
	return u;
}

void uplinks_destroy(struct uplinks *u)
{
	free(u);
}

static int policy_expiry(struct uplinks *u, time_t now, unsigned *expires)
{
	return links_signing_expiry(u->creds, u->conf->expiry, now,
				    &u->cap_warned, "upload links", expires);
}

/* The signed form for prefix; *expires gets its lifetime. */
static int sign(struct uplinks *u, const char *prefix, time_t now,
		unsigned *expires, struct post_form *f)
{
	int err = policy_expiry(u, now, expires);

	if (!err)
		err = s3_presign_post(u->s3, prefix, u->conf->upload_max,
				      UPLINKS_TYPE_PREFIX, now, *expires, f);
	if (err && err != EACCES)
		log_error("upload links: cannot sign a policy for '%s': %s",
			  prefix, strerror(err));
	return err;
}

/* Undo a partial append. */
static void truncate_to(struct buf *out, size_t mark)
{
	out->len = mark;
	if (out->data)
		out->data[mark] = '\0';
}

/* How a signed form is written out; expires_at is when it stops working. */
typedef int (*render_fn)(struct uplinks *u, const struct post_form *f,
			 const char *prefix, time_t expires_at,
			 struct buf *out);

/* Sign a form for prefix and append render's output of it to out; on
 * failure out is left as it was. */
static int signed_form(struct uplinks *u, const char *prefix, time_t now,
		       render_fn render, struct buf *out)
{
	struct post_form f;
	size_t mark = out->len;
	unsigned expires;
	int err = sign(u, prefix, now, &expires, &f);

	if (err)
		return err;
	err = render(u, &f, prefix, now + (time_t)expires, out);
	post_form_release(&f);
	if (err)
		truncate_to(out, mark);
	return err;
}

static int render_json(struct uplinks *u, const struct post_form *f,
		       const char *prefix, time_t expires_at, struct buf *out)
{
	return post_form_json(f, out);
}

static int render_page(struct uplinks *u, const struct post_form *f,
		       const char *prefix, time_t expires_at, struct buf *out)
{
	return uplinks_page_render(f, u->conf->bucket, prefix,
				   u->conf->upload_max, expires_at, out);
}

int uplinks_post_json(struct uplinks *u, const char *prefix, time_t now,
		      struct buf *out)
{
	return signed_form(u, prefix, now, render_json, out);
}

int uplinks_page(struct uplinks *u, const char *prefix, time_t now,
		 struct buf *out)
{
	return signed_form(u, prefix, now, render_page, out);
}
