/*
 * links: presigned URLs behind .links/, and the gallery page (see links.h).
 *
 * Signing is s3_presign_get()'s job; this module chooses what to sign (the
 * key, the expiry cut to the credentials' lifetime, an optional
 * Content-Disposition) and builds the gallery. The gallery is streamed into
 * the caller's buffer figure by figure; only the list of image keys is held
 * in memory while it is built.
 *
 * Invariant of struct links: every pointer is borrowed and outlives it;
 * cap_warned only ever goes from 0 to 1.
 */
#include "ns/links.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "base/log.h"

struct links {
	const struct link_conf *conf;
	const struct fs_conf *fconf;
	struct s3_client *s3;   /* signs URLs */
	struct store *store;    /* lists the gallery */
	struct creds *creds;
	struct thumbs *thumbs;
	struct metrics *m;      /* link reads are counted by the caller */
	atomic_int cap_warned;  /* 1 once the credential cap was logged */
};

/* One image of the gallery. */
struct gallery_item {
	char *key;                /* source key */
	char *thumb_key;          /* its thumbnail's key */
	time_t mtime;             /* source's LastModified */
	char etag[STORE_ETAG_MAX];   /* source's ETag */
	int need_thumb;           /* 1: the thumbnail object must be made */
	int thumb_ok;             /* 1: the thumbnail object exists */
};

/* A listing kept for the gallery. */
struct gallery_list {
	struct gallery_item *items;
	size_t n, cap;
};

/* Thumbnail keys found in the bucket, sorted as S3 lists them. */
struct thumb_index {
	char **keys;
	time_t *mtimes;
	size_t n, cap;
};

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

/* ---- the page ---------------------------------------------------------- */

/* Everything the page needs is inline: no external resource is loaded but
 * the signed images themselves. */
static const char page_style[] =
	":root{color-scheme:light dark;font-family:system-ui,sans-serif}\n"
	"body{margin:0;padding:1rem 1.5rem}\n"
	"header h1{font-size:1.3rem;margin:0 0 .2rem}\n"
	"header p{margin:0 0 1rem;opacity:.75;font-size:.9rem}\n"
	".grid{display:grid;gap:1rem;"
	"grid-template-columns:repeat(auto-fill,minmax(160px,1fr))}\n"
	"figure{margin:0;padding:.5rem;border-radius:8px;"
	"background:rgba(127,127,127,.12)}\n"
	"figure a{display:block;aspect-ratio:1/1}\n"
	"figure img{display:block;width:100%;height:100%;object-fit:contain}\n"
	".none{display:flex;align-items:center;justify-content:center;"
	"height:100%;font-size:.8rem;opacity:.6}\n"
	"figcaption{margin-top:.4rem;font-size:.8rem;overflow-wrap:anywhere}\n";

int links_page_head(const char *bucket, size_t count, time_t expires_at,
		    struct buf *out)
{
	char iso[32] = "", human[32] = "";
	struct tm tm;
	int err;

	if (gmtime_r(&expires_at, &tm)) {
		strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
		strftime(human, sizeof(human), "%Y-%m-%d %H:%M:%S UTC", &tm);
	}
	err = buf_adds(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
		       "<meta charset=\"utf-8\">\n"
		       "<meta name=\"viewport\" content=\"width=device-width, "
		       "initial-scale=1\">\n"
		       "<meta name=\"referrer\" content=\"no-referrer\">\n"
		       "<title>");
	if (!err)
		err = links_html_escape(bucket ? bucket : "imgfs", out);
	if (!err)
		err = buf_addf(out, " - imgfs gallery</title>\n<style>\n%s"
			       "</style>\n</head>\n<body>\n<header><h1>",
			       page_style);
	if (!err)
		err = links_html_escape(bucket ? bucket : "imgfs", out);
	if (!err)
		err = buf_addf(out, "</h1><p>%zu image%s &middot; links valid "
			       "until <time datetime=\"%s\">%s</time></p>"
			       "</header>\n<main class=\"grid\">\n",
			       count, count == 1 ? "" : "s", iso, human);
	return err;
}

/* The last path segment of a key or path. */
static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

int links_page_figure(const char *path, const char *href,
		      const char *thumb_url, struct buf *out)
{
	int err = buf_adds(out, "<figure><a href=\"");

	if (!err)
		err = links_html_escape(href, out);
	if (!err && thumb_url) {
		err = buf_adds(out, "\"><img loading=\"lazy\" decoding=\"async\" "
			       "width=\"160\" height=\"160\" src=\"");
		if (!err)
			err = links_html_escape(thumb_url, out);
		if (!err)
			err = buf_adds(out, "\" alt=\"");
		if (!err)
			err = links_html_escape(base_name(path), out);
		if (!err)
			err = buf_adds(out, "\"></a>");
	} else if (!err) {
		err = buf_adds(out, "\"><span class=\"none\">no preview</span>"
			       "</a>");
	}
	if (!err)
		err = buf_adds(out, "<figcaption>");
	if (!err)
		err = links_html_escape(path, out);
	if (!err)
		err = buf_adds(out, "</figcaption></figure>\n");
	return err;
}

int links_page_tail(size_t count, struct buf *out)
{
	int err = 0;

	if (count == 0)
		err = buf_adds(out, "<p>No images in uploads/ yet.</p>\n");
	if (!err)
		err = buf_adds(out, "</main>\n</body>\n</html>\n");
	return err;
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

static int link_expiry(struct links *l, time_t now, unsigned *expires)
{
	return links_signing_expiry(l->creds, l->conf->expiry, now,
				    &l->cap_warned, "links", expires);
}

/* Presign key; with the attachment setting, name it after the key's last
 * segment. Appends the URL (no newline). */
static int presign(struct links *l, const char *key, time_t now,
		   unsigned expires, int attach, struct buf *out)
{
	struct buf disp = BUF_INIT;
	int err = 0;

	if (attach)
		err = links_disposition(base_name(key), &disp);
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

	err = link_expiry(l, now, &expires);
	if (!err)
		err = presign(l, key, now, expires, l->conf->attachment, out);
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

/* ---- the gallery: listings --------------------------------------------- */

static void gallery_list_release(struct gallery_list *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->items[i].key);
		free(g->items[i].thumb_key);
	}
	free(g->items);
	memset(g, 0, sizeof(*g));
}

static void thumb_index_release(struct thumb_index *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->keys[i]);
	free(t->keys);
	free(t->mtimes);
	memset(t, 0, sizeof(*t));
}

/* Keep e if it is an image: its key, ETag and thumbnail key. */
static int gallery_add(struct links *l, struct gallery_list *g,
		       const struct store_list_entry *e)
{
	struct gallery_item *it;
	struct buf tkey = BUF_INIT;
	int err;

	if (!thumbs_is_image(base_name(e->key)))
		return 0;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 256;
		void *p = reallocarray(g->items, cap, sizeof(*g->items));

		if (!p)
			return ENOMEM;
		g->items = p;
		g->cap = cap;
	}
	err = thumbs_key_for(l->thumbs, e->key, &tkey);
	if (err)
		return err == ENOENT ? 0 : err;
	it = &g->items[g->n];
	memset(it, 0, sizeof(*it));
	it->key = strdup(e->key);
	it->thumb_key = buf_detach(&tkey, NULL);
	if (!it->key || !it->thumb_key) {
		free(it->key);
		free(it->thumb_key);
		return ENOMEM;
	}
	it->mtime = e->mtime;
	memcpy(it->etag, e->etag, sizeof(it->etag));
	g->n++;
	return 0;
}

static int thumb_index_add(struct thumb_index *t,
			   const struct store_list_entry *e)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		char **keys = reallocarray(t->keys, cap, sizeof(*keys));
		time_t *mtimes;

		if (!keys)
			return ENOMEM;
		t->keys = keys;
		mtimes = reallocarray(t->mtimes, cap, sizeof(*mtimes));
		if (!mtimes)
			return ENOMEM;
		t->mtimes = mtimes;
		t->cap = cap;
	}
	t->keys[t->n] = strdup(e->key);
	if (!t->keys[t->n])
		return ENOMEM;
	t->mtimes[t->n++] = e->mtime;
	return 0;
}

typedef int (*list_fn)(struct links *l, void *arg,
		       const struct store_list_entry *e);

/* Every object under prefix, page by page, handed to fn. */
static int list_all(struct links *l, const char *prefix, list_fn fn,
		    void *arg)
{
	struct store_list_page page;
	char *token = NULL;
	int err;

	do {
		memset(&page, 0, sizeof(page));
		err = store_list(l->store, prefix, NULL, token, 0, &page);
		free(token);
		token = NULL;
		for (size_t i = 0; !err && i < page.nentries; i++)
			err = fn(l, arg, &page.entries[i]);
		if (!err && page.next_token) {
			token = strdup(page.next_token);
			if (!token)
				err = ENOMEM;
		}
		store_list_page_release(&page);
	} while (!err && token);
	free(token);
	return err;
}

static int collect_image(struct links *l, void *arg,
			 const struct store_list_entry *e)
{
	return gallery_add(l, arg, e);
}

static int collect_thumb(struct links *l, void *arg,
			 const struct store_list_entry *e)
{
	return thumb_index_add(arg, e);
}

/* Index in t of key, or -1. t is in S3's order, which is byte order. */
static ssize_t thumb_index_find(const struct thumb_index *t, const char *key)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->keys[mid], key);

		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Mark the images whose thumbnail object is missing or older than the
 * source (a source replaced behind imgfs's back). Returns how many. */
static size_t mark_missing(struct gallery_list *g,
			   const struct thumb_index *t)
{
	size_t missing = 0;

	for (size_t i = 0; i < g->n; i++) {
		struct gallery_item *it = &g->items[i];
		ssize_t at = thumb_index_find(t, it->thumb_key);

		it->need_thumb = at < 0 || t->mtimes[at] < it->mtime;
		it->thumb_ok = !it->need_thumb;
		missing += (size_t)it->need_thumb;
	}
	return missing;
}

/* ---- the gallery: making the missing thumbnails ------------------------ */

struct ensure_job {
	struct links *l;
	struct gallery_list *g;
	atomic_size_t next;  /* next item to look at */
};

static void *ensure_worker(void *arg)
{
	struct ensure_job *job = arg;
	size_t i;

	while ((i = atomic_fetch_add(&job->next, 1)) < job->g->n) {
		struct gallery_item *it = &job->g->items[i];

		if (!it->need_thumb)
			continue;
		/* Each item is written by the one worker that took it. */
		it->thumb_ok = thumbs_ensure_stored(job->l->thumbs, it->key,
						    it->etag) == 0;
	}
	/* thumbs may have run libvips on this thread. */
	vips_thread_shutdown();
	return NULL;
}

/* Make the marked thumbnails, LINKS_GALLERY_WORKERS at a time. Images
 * that fail keep thumb_ok 0 and show without a preview. */
static void ensure_missing(struct links *l, struct gallery_list *g,
			   size_t missing)
{
	pthread_t tids[LINKS_GALLERY_WORKERS];
	struct ensure_job job = {.l = l, .g = g};
	size_t want = missing < LINKS_GALLERY_WORKERS ? missing
						      : LINKS_GALLERY_WORKERS;
	size_t started = 0;

	atomic_init(&job.next, 0);
	for (; started < want; started++)
		if (pthread_create(&tids[started], NULL, ensure_worker, &job))
			break;
	if (started == 0)
		ensure_worker(&job);
	for (size_t i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
}

/* ---- the gallery: the page --------------------------------------------- */

static int render_item(struct links *l, const struct gallery_item *it,
		       time_t now, unsigned expires, struct buf *href,
		       struct buf *src, struct buf *out)
{
	size_t plen = strlen(l->fconf->uploads_prefix);
	int err;

	buf_reset(href);
	buf_reset(src);
	err = presign(l, it->key, now, expires, l->conf->attachment, href);
	if (!err && it->thumb_ok)
		err = presign(l, it->thumb_key, now, expires, 0, src);
	if (!err)
		err = links_page_figure(it->key + plen, href->data,
					it->thumb_ok ? src->data : NULL, out);
	return err;
}

static int render_page(struct links *l, const struct gallery_list *g,
		       time_t now, unsigned expires, struct buf *out)
{
	struct buf href = BUF_INIT, src = BUF_INIT;
	int err;

	err = links_page_head(l->conf->bucket, g->n, now + (time_t)expires,
			      out);
	for (size_t i = 0; !err && i < g->n; i++)
		err = render_item(l, &g->items[i], now, expires, &href, &src,
				  out);
	if (!err)
		err = links_page_tail(g->n, out);
	buf_release(&href);
	buf_release(&src);
	return err;
}

int links_gallery(struct links *l, time_t now, struct buf *out)
{
	struct gallery_list g = {0};
	struct thumb_index t = {0};
	size_t mark = out->len, missing;
	unsigned expires;
	int err;

	err = list_all(l, l->fconf->uploads_prefix, collect_image, &g);
	if (!err)
		err = list_all(l, l->fconf->thumbs_prefix, collect_thumb, &t);
	if (!err) {
		missing = mark_missing(&g, &t);
		if (missing)
			ensure_missing(l, &g, missing);
	}
	if (!err)
		err = link_expiry(l, now, &expires);
	if (!err)
		err = render_page(l, &g, now, expires, out);
	if (err) {
		struct log_key k;

		log_error("links: gallery of %s: %s",
			  log_key(&k, l->fconf->uploads_prefix), strerror(err));
		out->len = mark;
		if (out->data)
			out->data[mark] = '\0';
	}
	thumb_index_release(&t);
	gallery_list_release(&g);
	return err;
}
