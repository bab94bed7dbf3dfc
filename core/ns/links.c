/*
 * links: presigned URLs behind .links/, and the gallery page (see links.h).
 *
 * Signing is s3_presign_get()'s job; this module chooses what to sign (the
 * key, the expiry cut to the credentials' lifetime, an optional
 * Content-Disposition). The gallery's pages are links_gallery.c's.
 */
#include "ns/links_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

struct links *links_create(const struct link_conf *conf,
			   const struct fs_conf *fconf, struct s3_client *s3,
			   struct store *store, struct creds *creds, struct thumbs *thumbs,
			   struct metrics *m)
{
	struct links *l;

	if (!conf || !fconf || !s3 || !store || !creds || !thumbs || !m) {
		errno = EINVAL;
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		errno = ENOMEM;
		return NULL;
	}
	l->conf = conf;
	l->store = store;
	l->fconf = fconf;
	l->s3 = s3;
	l->creds = creds;
	l->thumbs = thumbs;
	l->m = m;
	atomic_init(&l->cap_warned, 0);
	return l;
}

void links_destroy(struct links *l)
{
	free(l);
}

/* ---- pure helpers ------------------------------------------------------ */

unsigned links_expiry_cap(unsigned want, time_t now, time_t creds_expiry)
{
	if (creds_expiry == 0 || creds_expiry - now >= (time_t)want)
		return want;
	if (creds_expiry <= now)
		return 0;
	return (unsigned)(creds_expiry - now);
}

int links_html_escape(const char *s, struct buf *out)
{
	const char *run = s;
	const char *ent;
	int err = 0;

	for (; *s && !err; s++) {
		switch (*s) {
		case '&': ent = "&amp;"; break;
		case '<': ent = "&lt;"; break;
		case '>': ent = "&gt;"; break;
		case '"': ent = "&quot;"; break;
		case '\'': ent = "&#39;"; break;
		default: continue;
		}
		err = buf_add(out, run, (size_t)(s - run));
		if (!err)
			err = buf_adds(out, ent);
		run = s + 1;
	}
	if (!err)
		err = buf_add(out, run, (size_t)(s - run));
	return err;
}

/* RFC 8187 attr-char: what may stand unencoded in filename*. */
static int is_attr_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || (c && strchr("!#$&+-.^_`|~", c));
}

/* Does name need the extended filename* parameter? Non-ASCII, controls,
 * and '%', which some clients decode in a plain filename. */
static int needs_ext_filename(const char *name)
{
	for (; *name; name++) {
		unsigned char c = (unsigned char)*name;

		if (c < 0x20 || c >= 0x7f || c == '%')
			return 1;
	}
	return 0;
}

/* The quoted-string fallback: printable ASCII, '"' and '\' escaped. */
static int add_ascii_filename(const char *name, struct buf *out)
{
	int err = buf_adds(out, "filename=\"");

	for (; *name && !err; name++) {
		unsigned char c = (unsigned char)*name;

		if (c == '"' || c == '\\')
			err = buf_addf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f || c == '%')
			err = buf_adds(out, "_");
		else
			err = buf_add(out, name, 1);
	}
	return err ? err : buf_adds(out, "\"");
}

static int add_ext_filename(const char *name, struct buf *out)
{
	int err = buf_adds(out, "; filename*=UTF-8''");

	for (; *name && !err; name++) {
		unsigned char c = (unsigned char)*name;

		if (is_attr_char(c))
			err = buf_add(out, name, 1);
		else
			err = buf_addf(out, "%%%02X", c);
	}
	return err;
}

int links_disposition(const char *name, struct buf *out)
{
	int err = buf_adds(out, "attachment; ");

	if (!err)
		err = add_ascii_filename(name, out);
	if (!err && needs_ext_filename(name))
		err = add_ext_filename(name, out);
	return err;
}

const char *links_base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* ---- links -------------------------------------------------------------- */

int links_signing_expiry(struct creds *creds, unsigned want, time_t now,
			 atomic_int *warned, const char *who,
			 unsigned *expires)
{
	struct aws_creds *c;
	int err;

	c = malloc(sizeof(*c));
	if (!c)
		return ENOMEM;
	err = creds_get(creds, c);
	if (!err) {
		*expires = links_expiry_cap(want, now, c->expiry);
		if (*expires == 0)
			err = EACCES;
	}
	explicit_bzero(c, sizeof(*c));
	free(c);
	if (err) {
		log_error("%s: no valid credentials to sign with: %s", who,
			  strerror(err));
		return err;
	}
	if (*expires < want && !atomic_exchange(warned, 1))
		log_warn("%s: link_expiry %u s cut to %u s, the lifetime left "
			 "of the temporary credentials", who, want, *expires);
	return 0;
}

int links_sign_expiry(struct links *l, time_t now, unsigned *expires)
{
	return links_signing_expiry(l->creds, l->conf->expiry, now,
				    &l->cap_warned, "links", expires);
}

/* Presign key; with the attachment setting, name it after the key's last
 * segment. Appends the URL (no newline). */
int links_sign(struct links *l, const char *key, time_t now,
	       unsigned expires, int attach, struct buf *out)
{
	struct buf disp = BUF_INIT;
	int err = 0;

	if (attach)
		err = links_disposition(links_base_name(key), &disp);
	if (!err)
		err = s3_presign_get(l->s3, key, now, expires,
				     attach ? disp.data : NULL, out);
	buf_release(&disp);
	return err;
}

/* A link file's content for key: "URL\n". */
static int link_file(struct links *l, const char *key, time_t now,
		     struct buf *out)
{
	size_t mark = out->len;
	unsigned expires;
	int err;

	err = links_sign_expiry(l, now, &expires);
	if (!err)
		err = links_sign(l, key, now, expires, l->conf->attachment, out);
	if (!err)
		err = buf_adds(out, "\n");
	if (err) {
		out->len = mark;
		if (out->data)
			out->data[mark] = '\0';
	}
	return err;
}

int links_object(struct links *l, const char *key, time_t now,
		 struct buf *out)
{
	return link_file(l, key, now, out);
}

int links_thumb(struct links *l, const char *src_key, const char *src_etag,
		time_t now, struct buf *out)
{
	return links_thumb_n(l, 0, src_key, src_etag, now, out);
}

int links_thumb_n(struct links *l, unsigned idx, const char *src_key,
		  const char *src_etag, time_t now, struct buf *out)
{
	struct buf tkey = BUF_INIT;
	int err;

	err = thumbs_ensure_stored_n(l->thumbs, idx, src_key, src_etag);
	if (!err)
		err = thumbs_key_for_n(l->thumbs, idx, src_key, &tkey);
	if (!err)
		err = link_file(l, tkey.data, now, out);
	buf_release(&tkey);
	return err;
}
