/*
 * gallery_page: the HTML of a gallery page (see gallery_page.h).
 *
 * The style depends on the thumbnail size, so it is written per page and
 * its hash computed then; the script is fixed. Neither ever holds a value
 * from the bucket: the script reads the URL to copy from the button's
 * data-url attribute.
 */
#include "ns/gallery_page.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "ns/links.h"
#include "ns/path.h"

/* Copy-link buttons: the Clipboard API where the page is a secure
 * context, else a selected off-screen textarea and execCommand. */
static const char page_script[] =
	"(function () {\n"
	"  'use strict';\n"
	"  function viaSelection(text) {\n"
	"    var t = document.createElement('textarea'), ok = false;\n"
	"    t.value = text;\n"
	"    t.setAttribute('readonly', '');\n"
	"    t.className = 'offscreen';\n"
	"    document.body.appendChild(t);\n"
	"    t.select();\n"
	"    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }\n"
	"    document.body.removeChild(t);\n"
	"    return ok;\n"
	"  }\n"
	"  function show(b, ok) {\n"
	"    b.textContent = ok ? 'Copied' : 'Copy failed';\n"
	"    b.dataset.state = ok ? 'copied' : 'failed';\n"
	"    setTimeout(function () { b.textContent = 'Copy link'; }, 2000);\n"
	"  }\n"
	"  document.addEventListener('click', function (ev) {\n"
	"    var b = ev.target.closest && ev.target.closest('button.copy');\n"
	"    if (!b) return;\n"
	"    var url = b.dataset.url;\n"
	"    if (navigator.clipboard && window.isSecureContext) {\n"
	"      navigator.clipboard.writeText(url).then(function () {\n"
	"        show(b, true);\n"
	"      }, function () { show(b, viaSelection(url)); });\n"
	"    } else {\n"
	"      show(b, viaSelection(url));\n"
	"    }\n"
	"  });\n"
	"  document.documentElement.dataset.copy = 'ready';\n"
	"})();\n";

/* The style for thumbnails of box CSS px: each shown at its natural size
 * (never stretched) in a box of that height. */
static int page_style(unsigned box, struct buf *out)
{
	return buf_addf(out,
		":root{color-scheme:light dark;font-family:system-ui,sans-serif}\n"
		"body{margin:0;padding:1rem 1.5rem}\n"
		"header h1{font-size:1.3rem;margin:0 0 .2rem;"
		"overflow-wrap:anywhere}\n"
		"header h1 a{color:inherit}\n"
		".meta{margin:0 0 1rem;opacity:.75;font-size:.9rem}\n"
		".folders ul{list-style:none;padding:0;margin:0 0 1rem;"
		"display:flex;flex-wrap:wrap;gap:.5rem}\n"
		".folders a{display:block;padding:.3rem .6rem;border-radius:6px;"
		"background:rgba(127,127,127,.15);overflow-wrap:anywhere}\n"
		".pages{margin:1rem 0;display:flex;gap:1rem;align-items:center}\n"
		".grid{display:grid;gap:1rem;"
		"grid-template-columns:repeat(auto-fill,minmax(%upx,1fr))}\n"
		"figure{margin:0;padding:.5rem;border-radius:8px;"
		"background:rgba(127,127,127,.12);min-width:0}\n"
		".thumb{display:flex;align-items:center;justify-content:center;"
		"height:%upx}\n"
		".thumb img{display:block;max-width:none}\n"
		".wait{font-size:.8rem;opacity:.6;text-align:center}\n"
		"figcaption{margin-top:.4rem;font-size:.8rem}\n"
		".name{display:block;overflow-wrap:anywhere}\n"
		".info{display:block;opacity:.7}\n"
		".info time{white-space:nowrap}\n"
		".copy{margin-top:.3rem;font-size:.75rem}\n"
		".offscreen{position:fixed;left:-9999px;top:0}\n",
		box + 16, box);
}

/* Append the CSP source of text: 'sha256-BASE64'. */
static int add_hash_source(const char *text, size_t len, struct buf *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned char b64[2 * EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (!EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL))
		return ENOMEM;
	EVP_EncodeBlock(b64, md, (int)mdlen);
	return buf_addf(out, "'sha256-%s'", (const char *)b64);
}

static int add_csp(const struct buf *style, struct buf *out)
{
	int err = buf_adds(out, "<meta http-equiv=\"Content-Security-Policy\" "
			   "content=\"default-src 'none'; img-src http: https:; "
			   "style-src ");

	if (!err)
		err = add_hash_source(style->data, style->len, out);
	if (!err)
		err = buf_adds(out, "; script-src ");
	if (!err)
		err = add_hash_source(page_script, strlen(page_script), out);
	if (!err)
		err = buf_adds(out, "; base-uri 'none'; form-action 'none'\">\n");
	return err;
}

/* ---- names and paths --------------------------------------------------- */

size_t gallery_npages(size_t n)
{
	return n == 0 ? 1 : (n + GALLERY_PER_PAGE - 1) / GALLERY_PER_PAGE;
}

int gallery_page_name(size_t n, struct buf *out)
{
	if (n <= 1)
		return buf_adds(out, "index.html");
	return buf_addf(out, "index-%zu.html", n);
}

int gallery_parse_page(const char *name, size_t *n)
{
	const char *p;
	size_t v = 0;

	if (!strcmp(name, "index.html")) {
		*n = 1;
		return 0;
	}
	if (strncmp(name, "index-", 6) != 0)
		return ENOENT;
	p = name + 6;
	if (*p < '1' || *p > '9')
		return ENOENT;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (size_t)(*p - '0');
		if (v > GALLERY_PAGE_MAX)
			return ENOENT;
	}
	if (strcmp(p, ".html") != 0 || v < 2)
		return ENOENT;
	*n = v;
	return 0;
}

/* Is s (len bytes) valid UTF-8 with no control character? */
static int text_ok(const char *s, size_t len)
{
	char tmp[256];

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	if (len >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return path_utf8_ok(tmp);
}

int gallery_name_ok(const char *name, size_t len, int dir)
{
	char tmp[256];
	size_t page;

	if (!path_name_ok(name, len) || !text_ok(name, len))
		return 0;
	if (!dir)
		return 1;
	memcpy(tmp, name, len);
	tmp[len] = '\0';
	return gallery_parse_page(tmp, &page) != 0;
}

int gallery_url_path(const char *path, struct buf *out)
{
	static const char keep[] = "-._~/";
	int err = 0;

	for (; *path && !err; path++) {
		unsigned char c = (unsigned char)*path;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || strchr(keep, c))
			err = buf_add(out, path, 1);
		else
			err = buf_addf(out, "%%%02X", c);
	}
	return err;
}

int gallery_human_size(uint64_t n, struct buf *out)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	unsigned u = 0;

	if (n < 1024)
		return buf_addf(out, "%llu B", (unsigned long long)n);
	v /= 1024;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(*units)) {
		v /= 1024;
		u++;
	}
	return buf_addf(out, "%.1f %s", v, units[u]);
}

/* ---- pieces of the page ------------------------------------------------ */

/* href="ROOT + folder/ + page name" for page n of folder (len bytes of
 * it, the rest of a breadcrumb path ignored). */
static int add_page_href(const struct gallery_view *v, const char *folder,
			 size_t len, size_t n, struct buf *out)
{
	struct buf url = BUF_INIT, part = BUF_INIT;
	int err = buf_adds(&url, v->root);

	if (!err && len) {
		err = buf_add(&part, folder, len);
		if (!err)
			err = gallery_url_path(part.data, &url);
		if (!err)
			err = buf_adds(&url, "/");
	}
	if (!err)
		err = gallery_page_name(n, &url);
	if (!err)
		err = buf_adds(out, " href=\"");
	if (!err)
		err = links_html_escape(url.data, out);
	if (!err)
		err = buf_adds(out, "\"");
	buf_release(&url);
	buf_release(&part);
	return err;
}

/* The title bar: the bucket, then each folder of the path, the last one
 * (this folder) not a link. */
static int add_crumbs(const struct gallery_view *v, struct buf *out)
{
	const char *title = v->bucket ? v->bucket : "imgfs";
	const char *f = v->folder, *seg = f;
	int err = buf_adds(out, "<header><nav aria-label=\"Breadcrumbs\">"
			   "<h1 class=\"crumbs\">");

	if (!err && *f) {
		err = buf_adds(out, "<a class=\"crumb\"");
		if (!err)
			err = add_page_href(v, "", 0, 1, out);
		if (!err)
			err = buf_adds(out, ">");
	}
	if (!err)
		err = links_html_escape(title, out);
	if (!err && *f)
		err = buf_adds(out, "</a>");
	while (!err && *seg) {
		size_t len = strcspn(seg, "/");
		int last = seg[len] == '\0';
		struct buf name = BUF_INIT;

		err = buf_add(&name, seg, len);
		if (!err)
			err = buf_adds(out, " / ");
		if (!err && !last)
			err = buf_adds(out, "<a class=\"crumb\"");
		if (!err && !last)
			err = add_page_href(v, f, (size_t)(seg - f) + len, 1, out);
		if (!err)
			err = buf_adds(out, last ? "<span aria-current=\"page\">"
					       : ">");
		if (!err)
			err = links_html_escape(name.data, out);
		if (!err)
			err = buf_adds(out, last ? "</span>" : "</a>");
		buf_release(&name);
		seg += last ? len : len + 1;
	}
	if (!err)
		err = buf_adds(out, "</h1></nav>\n");
	return err;
}

static int add_counts(const struct gallery_view *v, struct buf *out)
{
	char iso[32] = "", human[32] = "";
	struct tm tm;
	int err;

	if (gmtime_r(&v->expires_at, &tm)) {
		strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
		strftime(human, sizeof(human), "%Y-%m-%d %H:%M:%S UTC", &tm);
	}
	err = buf_addf(out, "<p class=\"meta\">%zu image%s", v->nimages,
		       v->nimages == 1 ? "" : "s");
	if (!err && v->nsubdirs)
		err = buf_addf(out, " &middot; %zu folder%s", v->nsubdirs,
			       v->nsubdirs == 1 ? "" : "s");
	if (!err && v->npages > 1)
		err = buf_addf(out, " &middot; page %zu of %zu", v->page,
			       v->npages);
	if (!err)
		err = buf_addf(out, " &middot; links valid until <time "
			       "datetime=\"%s\">%s</time></p></header>\n",
			       iso, human);
	return err;
}

static int add_subdirs(const struct gallery_view *v, struct buf *out)
{
	struct buf path = BUF_INIT;
	int err = 0;

	if (!v->nsubdirs)
		return 0;
	err = buf_adds(out, "<nav class=\"folders\" aria-label=\"Folders\"><ul>\n");
	for (size_t i = 0; i < v->nsubdirs && !err; i++) {
		buf_reset(&path);
		err = buf_addf(&path, "%s%s%s", v->folder, *v->folder ? "/" : "",
			       v->subdirs[i]);
		if (!err)
			err = buf_adds(out, "<li><a class=\"folder\"");
		if (!err)
			err = add_page_href(v, path.data, path.len, 1, out);
		if (!err)
			err = buf_adds(out, ">");
		if (!err)
			err = links_html_escape(v->subdirs[i], out);
		if (!err)
			err = buf_adds(out, "/</a></li>\n");
	}
	if (!err)
		err = buf_adds(out, "</ul></nav>\n");
	buf_release(&path);
	return err;
}

/* Previous / "page x of y" / next, when there is more than one page. */
static int add_paging(const struct gallery_view *v, struct buf *out)
{
	size_t flen = strlen(v->folder);
	int err;

	if (v->npages <= 1)
		return 0;
	err = buf_adds(out, "<nav class=\"pages\" aria-label=\"Pages\">");
	if (!err && v->page > 1) {
		err = buf_adds(out, "<a rel=\"prev\"");
		if (!err)
			err = add_page_href(v, v->folder, flen, v->page - 1, out);
		if (!err)
			err = buf_adds(out, ">&larr; previous</a>");
	}
	if (!err)
		err = buf_addf(out, "<span>page %zu of %zu</span>", v->page,
			       v->npages);
	if (!err && v->page < v->npages) {
		err = buf_adds(out, "<a rel=\"next\"");
		if (!err)
			err = add_page_href(v, v->folder, flen, v->page + 1, out);
		if (!err)
			err = buf_adds(out, ">next &rarr;</a>");
	}
	if (!err)
		err = buf_adds(out, "</nav>\n");
	return err;
}

int gallery_page_head(const struct gallery_view *v, struct buf *out)
{
	struct buf style = BUF_INIT;
	int err = page_style(v->box, &style);

	if (!err)
		err = buf_adds(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
			       "<meta charset=\"utf-8\">\n");
	if (!err)
		err = add_csp(&style, out);
	if (!err)
		err = buf_adds(out, "<meta name=\"viewport\" content=\"width="
			       "device-width, initial-scale=1\">\n"
			       "<meta name=\"referrer\" content=\"no-referrer\">\n"
			       "<title>");
	if (!err && *v->folder) {
		err = links_html_escape(v->folder, out);
		if (!err)
			err = buf_adds(out, " - ");
	}
	if (!err)
		err = links_html_escape(v->bucket ? v->bucket : "imgfs", out);
	if (!err)
		err = buf_addf(out, " - imgfs gallery</title>\n<style>%s</style>\n"
			       "</head>\n<body>\n", style.data);
	if (!err)
		err = add_crumbs(v, out);
	if (!err)
		err = add_counts(v, out);
	if (!err)
		err = add_subdirs(v, out);
	if (!err)
		err = add_paging(v, out);
	if (!err)
		err = buf_adds(out, "<main class=\"grid\">\n");
	buf_release(&style);
	return err;
}

/* An escaped attribute: ` name="value"`. */
static int add_attr(const char *name, const char *value, struct buf *out)
{
	int err = buf_addf(out, " %s=\"", name);

	if (!err)
		err = links_html_escape(value, out);
	if (!err)
		err = buf_adds(out, "\"");
	return err;
}

static int add_thumb(const struct gallery_image *im, struct buf *out)
{
	struct buf set = BUF_INIT;
	int err;

	if (!im->src)
		return buf_addf(out, "<span class=\"wait\">%s</span>",
				im->failed ? "no preview"
					   : "thumbnail being made");
	err = buf_adds(out, "<img loading=\"lazy\" decoding=\"async\"");
	if (!err)
		err = add_attr("src", im->src, out);
	if (!err && im->src2x) {
		err = buf_addf(&set, "%s 1x, %s 2x", im->src, im->src2x);
		if (!err)
			err = add_attr("srcset", set.data, out);
	}
	if (!err)
		err = add_attr("alt", im->name, out);
	if (!err)
		err = buf_adds(out, ">");
	buf_release(&set);
	return err;
}

/* Size, dimensions where known, and the upload date. */
static int add_info(const struct gallery_image *im, struct buf *out)
{
	char iso[32] = "", human[32] = "";
	struct tm tm;
	int err = buf_adds(out, "<span class=\"info\"><span class=\"size\">");

	if (!err)
		err = gallery_human_size(im->size, out);
	if (!err)
		err = buf_adds(out, "</span>");
	if (!err && im->width && im->height)
		err = buf_addf(out, " &middot; <span class=\"dims\">%u&times;%u"
			       "</span>", im->width, im->height);
	if (!err && gmtime_r(&im->mtime, &tm)) {
		strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
		strftime(human, sizeof(human), "%Y-%m-%d %H:%M UTC", &tm);
		err = buf_addf(out, " &middot; <time datetime=\"%s\">%s</time>",
			       iso, human);
	}
	if (!err)
		err = buf_adds(out, "</span>");
	return err;
}

int gallery_page_image(const struct gallery_view *v,
		       const struct gallery_image *im, struct buf *out)
{
	int err = buf_adds(out, "<figure><a class=\"thumb\"");

	(void)v;
	if (!err)
		err = add_attr("href", im->href, out);
	if (!err)
		err = buf_adds(out, ">");
	if (!err)
		err = add_thumb(im, out);
	if (!err)
		err = buf_adds(out, "</a><figcaption><span class=\"name\">");
	if (!err)
		err = links_html_escape(im->name, out);
	if (!err)
		err = buf_adds(out, "</span>");
	if (!err)
		err = add_info(im, out);
	if (!err)
		err = buf_adds(out, "<button type=\"button\" class=\"copy\"");
	if (!err)
		err = add_attr("data-url", im->href, out);
	if (!err)
		err = buf_adds(out, ">Copy link</button></figcaption></figure>\n");
	return err;
}

int gallery_page_tail(const struct gallery_view *v, struct buf *out)
{
	int err = 0;

	if (v->nimages == 0)
		err = buf_adds(out, "<p class=\"empty\">No images in this folder "
			       "yet.</p>\n");
	if (!err)
		err = buf_adds(out, "</main>\n");
	if (!err)
		err = add_paging(v, out);
	if (!err)
		err = buf_addf(out, "<script>%s</script>\n</body>\n</html>\n",
			       page_script);
	return err;
}
