/*
 * Unit tests for links: the pure helpers (expiry cap, HTML escaping,
 * Content-Disposition, the gallery pages' structure, names and paging), and links_object
 * through the daemon's real S3 client and credentials (signing needs no
 * network), compared with URLs botocore's presigner made.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>

#include "image/worker.h"
#include "check.h"
#include "base/buf.h"
#include "ns/gallery_page.h"
#include "ns/links.h"
#include "base/metrics.h"

/* How many times needle occurs in hay. */
static size_t count(const char *hay, const char *needle)
{
	size_t n = 0, len = strlen(needle);

	for (const char *p = hay; (p = strstr(p, needle)); p += len)
		n++;
	return n;
}

static void test_expiry_cap(void)
{
	time_t now = 1700000000;

	CHECK_INT(links_expiry_cap(3600, now, 0), 3600);
	CHECK_INT(links_expiry_cap(3600, now, now + 7200), 3600);
	CHECK_INT(links_expiry_cap(3600, now, now + 3600), 3600);
	CHECK_INT(links_expiry_cap(3600, now, now + 3599), 3599);
	CHECK_INT(links_expiry_cap(3600, now, now + 100), 100);
	CHECK_INT(links_expiry_cap(3600, now, now + 1), 1);
	CHECK_INT(links_expiry_cap(3600, now, now), 0);
	CHECK_INT(links_expiry_cap(3600, now, now - 10), 0);
	CHECK_INT(links_expiry_cap(604800, now, now + 604801), 604800);
	CHECK_INT(links_expiry_cap(1, now, now + 900), 1);
}

static void check_escape(const char *in, const char *want)
{
	struct buf b = BUF_INIT;

	CHECK_INT(links_html_escape(in, &b), 0);
	CHECK_STR(b.data ? b.data : "", want);
	buf_release(&b);
}

static void test_html_escape(void)
{
	check_escape("", "");
	check_escape("plain name.jpg", "plain name.jpg");
	check_escape("<script>alert(1)</script>.png",
		     "&lt;script&gt;alert(1)&lt;/script&gt;.png");
	check_escape("\"onerror=\"x'.jpg", "&quot;onerror=&quot;x&#39;.jpg");
	check_escape("a&b&amp;c", "a&amp;b&amp;amp;c");
	check_escape("&", "&amp;");
	check_escape("été/日本.jpg", "été/日本.jpg");
	check_escape("https://h/b/k?X-Amz-Date=1&X-Amz-Expires=2",
		     "https://h/b/k?X-Amz-Date=1&amp;X-Amz-Expires=2");
}

static void check_disposition(const char *name, const char *want)
{
	struct buf b = BUF_INIT;

	CHECK_INT(links_disposition(name, &b), 0);
	CHECK_STR(b.data, want);
	buf_release(&b);
}

static void test_disposition(void)
{
	check_disposition("cat.jpg", "attachment; filename=\"cat.jpg\"");
	check_disposition("a b+c=d&e~f#g?h.jpg",
			  "attachment; filename=\"a b+c=d&e~f#g?h.jpg\"");
	check_disposition("say \"hi\" \\ there.png",
			  "attachment; filename=\"say \\\"hi\\\" \\\\ there.png\"");
	check_disposition("été.jpg",
			  "attachment; filename=\"__t__.jpg\"; "
			  "filename*=UTF-8''%C3%A9t%C3%A9.jpg");
	check_disposition("100% off.jpg",
			  "attachment; filename=\"100_ off.jpg\"; "
			  "filename*=UTF-8''100%25%20off.jpg");
	check_disposition("日本.png",
			  "attachment; filename=\"______.png\"; "
			  "filename*=UTF-8''%E6%97%A5%E6%9C%AC.png");
	check_disposition("line\nbreak.jpg",
			  "attachment; filename=\"line_break.jpg\"; "
			  "filename*=UTF-8''line%0Abreak.jpg");
	check_disposition("q\"é.jpg",
			  "attachment; filename=\"q\\\"__.jpg\"; "
			  "filename*=UTF-8''q%22%C3%A9.jpg");
}

/* ---- the gallery's pages ------------------------------------------------ */

static const char *const hostile[] = {
	"<script>alert('x')</script>.jpg", "a \"quoted\" & 'ticked'.png",
	"<img src=x onerror=y>.gif", "plain.jpg",
};

/* Page `page` of a folder of n images (every fourth one without a
 * thumbnail, every second one with a 2x size), with two sub-folders. */
static void build_page(const char *bucket, const char *folder,
		       const char *root, size_t n, size_t page,
		       struct buf *out)
{
	static const char *const subdirs[] = {"<b>&sub", "été #1?"};
	struct gallery_view v = {
		.bucket = bucket, .folder = folder, .root = root,
		.page = page, .npages = gallery_npages(n), .nimages = n,
		.subdirs = subdirs, .nsubdirs = 2, .expires_at = 1700003600,
		.box = 128,
	};
	size_t from = (page - 1) * GALLERY_PER_PAGE;
	size_t to = from + GALLERY_PER_PAGE < n ? from + GALLERY_PER_PAGE : n;

	CHECK_INT(gallery_page_head(&v, out), 0);
	for (size_t i = from; i < to; i++) {
		struct gallery_image im = {
			.name = hostile[i % 4], .size = 1536 * i,
			.mtime = 1700000000, .width = i % 3 ? 640 : 0,
			.height = 480, .href = "http://127.0.0.1:1/b/o?a=1&b=2",
			.src = i % 4 == 3 ? NULL : "http://127.0.0.1:1/b/t?c=3&d=4",
			.src2x = i % 2 ? NULL : "http://127.0.0.1:1/b/t2?e=5",
		};

		CHECK_INT(gallery_page_image(&v, &im, out), 0);
	}
	CHECK_INT(gallery_page_tail(&v, out), 0);
}

/* The text between the first open and close after from. */
static void between(const char *s, const char *open, const char *close,
		    struct buf *out)
{
	const char *a = strstr(s, open), *b;

	CHECK(a != NULL);
	a += strlen(open);
	b = strstr(a, close);
	CHECK(b != NULL);
	buf_add(out, a, (size_t)(b - a));
}

/* The CSP names the SHA-256 of the inline style and script. */
static void check_csp(const char *page)
{
	const char *kinds[] = {"style", "script"};

	for (int k = 0; k < 2; k++) {
		struct buf text = BUF_INIT, open = BUF_INIT, close = BUF_INIT,
			   want = BUF_INIT;
		unsigned char md[EVP_MAX_MD_SIZE], b64[128];
		unsigned mdlen = 0;

		buf_addf(&open, "<%s>", kinds[k]);
		buf_addf(&close, "</%s>", kinds[k]);
		between(page, open.data, close.data, &text);
		CHECK(EVP_Digest(text.data, text.len, md, &mdlen, EVP_sha256(),
				 NULL));
		EVP_EncodeBlock(b64, md, (int)mdlen);
		buf_addf(&want, "%s-src 'sha256-%s'", kinds[k], (char *)b64);
		CHECK_INT(count(page, want.data), 1);
		buf_release(&text);
		buf_release(&open);
		buf_release(&close);
		buf_release(&want);
	}
	CHECK_INT(count(page, "default-src 'none'"), 1);
	CHECK_INT(count(page, "<script"), 1); /* only the page's own */
}

static void test_gallery_escaping(void)
{
	struct buf page = BUF_INIT;
	size_t n = 100, previews = n - n / 4;

	build_page("my<bucket>", "x&y/<z>", "../../", n, 1, &page);
	CHECK(strncmp(page.data, "<!DOCTYPE html>\n", 16) == 0);
	CHECK_INT(count(page.data, "</html>"), 1);
	CHECK_INT(count(page.data, "<figure>"), n);
	CHECK_INT(count(page.data, "href=\"http://127.0.0.1:1/b/o?a=1&amp;b=2\""), n);
	CHECK_INT(count(page.data, "data-url=\"http://127.0.0.1:1/b/o?a=1&amp;b=2\""), n);
	CHECK_INT(count(page.data, "<img "), previews);
	CHECK_INT(count(page.data, " src=\"http://127.0.0.1:1/b/t?c=3&amp;d=4\""), previews);
	CHECK_INT(count(page.data, "srcset=\"http://127.0.0.1:1/b/t?c=3&amp;d=4 1x, "
			"http://127.0.0.1:1/b/t2?e=5 2x\""), n / 2);
	CHECK_INT(count(page.data, "thumbnail being made"), n / 4);
	/* No size is forced on a thumbnail: it shows at its natural size. */
	CHECK_INT(count(page.data, "width=\""), 0);
	CHECK_INT(count(page.data, "object-fit"), 0);
	/* Hostile names never reach the page unescaped. */
	CHECK_INT(count(page.data, "<img src=x"), 0);
	CHECK_INT(count(page.data, "alert('x')"), 0);
	CHECK_INT(count(page.data, "<span class=\"name\">&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;.jpg</span>"), n / 4);
	CHECK_INT(count(page.data, "alt=\"a &quot;quoted&quot; &amp; &#39;ticked&#39;.png\""), n / 4);
	CHECK_INT(count(page.data, "<title>x&amp;y/&lt;z&gt; - my&lt;bucket&gt; - imgfs gallery</title>"), 1);
	/* Sub-folders: escaped text, percent-encoded links. */
	CHECK_INT(count(page.data, "href=\"../../x%26y/%3Cz%3E/%3Cb%3E%26sub/index.html\">&lt;b&gt;&amp;sub/</a>"), 1);
	CHECK_INT(count(page.data, "href=\"../../x%26y/%3Cz%3E/%C3%A9t%C3%A9%20%231%3F/index.html\">été #1?/</a>"), 1);
	/* Size, dimensions where known, date. */
	CHECK_INT(count(page.data, "<span class=\"size\">1.5 KiB</span>"), 1);
	CHECK_INT(count(page.data, "<span class=\"dims\">640&times;480</span>"), 66);
	CHECK_INT(count(page.data, "<time datetime=\"2023-11-14T22:13:20Z\">2023-11-14 22:13 UTC</time>"), n);
	check_csp(page.data);
	/* Self-contained: nothing loaded but the signed images. */
	CHECK_INT(count(page.data, "<link"), 0);
	CHECK_INT(count(page.data, "url("), 0);
	CHECK_INT(count(page.data, "<script src"), 0);
	buf_release(&page);
}

static void test_gallery_breadcrumbs(void)
{
	struct buf page = BUF_INIT;

	build_page("bkt", "a b/c#d/e", "../../../", 1, 1, &page);
	CHECK_INT(count(page.data, "<a class=\"crumb\" href=\"../../../index.html\">bkt</a>"), 1);
	CHECK_INT(count(page.data, "/ <a class=\"crumb\" href=\"../../../a%20b/index.html\">a b</a>"), 1);
	CHECK_INT(count(page.data, "/ <a class=\"crumb\" href=\"../../../a%20b/c%23d/index.html\">c#d</a>"), 1);
	CHECK_INT(count(page.data, "/ <span aria-current=\"page\">e</span>"), 1);
	CHECK_INT(count(page.data, "class=\"crumb\""), 3);
	buf_reset(&page);
	/* The top folder: the bucket is the only crumb, not a link. */
	build_page(NULL, "", "gallery/", 0, 1, &page);
	CHECK_INT(count(page.data, "<h1 class=\"crumbs\">imgfs</h1>"), 1);
	CHECK_INT(count(page.data, "href=\"gallery/%3Cb%3E%26sub/index.html\""), 1);
	CHECK_INT(count(page.data, "No images in this folder yet."), 1);
	CHECK_INT(count(page.data, "0 images &middot; 2 folders"), 1);
	CHECK_INT(count(page.data, "rel=\"next\""), 0);
	buf_release(&page);
}

static void test_gallery_paging(void)
{
	struct buf page = BUF_INIT;

	CHECK_INT(gallery_npages(0), 1);
	CHECK_INT(gallery_npages(1), 1);
	CHECK_INT(gallery_npages(100), 1);
	CHECK_INT(gallery_npages(101), 2);
	CHECK_INT(gallery_npages(250), 3);
	build_page("b", "f", "../", 250, 1, &page);
	CHECK_INT(count(page.data, "<figure>"), 100);
	CHECK_INT(count(page.data, "rel=\"prev\""), 0);
	CHECK_INT(count(page.data, "<a rel=\"next\" href=\"../f/index-2.html\">"), 2);
	CHECK_INT(count(page.data, "page 1 of 3"), 3);
	CHECK_INT(count(page.data, "250 images"), 1);
	buf_reset(&page);
	build_page("b", "f", "../", 250, 2, &page);
	CHECK_INT(count(page.data, "<a rel=\"prev\" href=\"../f/index.html\">"), 2);
	CHECK_INT(count(page.data, "<a rel=\"next\" href=\"../f/index-3.html\">"), 2);
	buf_reset(&page);
	build_page("b", "f", "../", 250, 3, &page);
	CHECK_INT(count(page.data, "<figure>"), 50);
	CHECK_INT(count(page.data, "<a rel=\"prev\" href=\"../f/index-2.html\">"), 2);
	CHECK_INT(count(page.data, "rel=\"next\""), 0);
	buf_release(&page);
}

static void check_parse(const char *name, int rc, size_t want)
{
	size_t n = 0;

	CHECK_INT(gallery_parse_page(name, &n), rc);
	if (!rc)
		CHECK_INT(n, want);
}

static void test_gallery_names(void)
{
	struct buf b = BUF_INIT;
	char longname[300];

	check_parse("index.html", 0, 1);
	check_parse("index-2.html", 0, 2);
	check_parse("index-10000000.html", 0, 10000000);
	check_parse("index-10000001.html", ENOENT, 0);
	check_parse("index-1.html", ENOENT, 0);
	check_parse("index-02.html", ENOENT, 0);
	check_parse("index-2.htm", ENOENT, 0);
	check_parse("index-.html", ENOENT, 0);
	check_parse("index-2x.html", ENOENT, 0);
	check_parse("other.html", ENOENT, 0);
	gallery_page_name(1, &b);
	gallery_page_name(7, &b);
	CHECK_STR(b.data, "index.htmlindex-7.html");
	buf_reset(&b);
	CHECK_INT(gallery_name_ok("a.jpg", 5, 0), 1);
	CHECK_INT(gallery_name_ok("été.jpg", strlen("été.jpg"), 0), 1);
	CHECK_INT(gallery_name_ok("..", 2, 0), 0);
	CHECK_INT(gallery_name_ok(".", 1, 1), 0);
	CHECK_INT(gallery_name_ok("", 0, 0), 0);
	CHECK_INT(gallery_name_ok("a/b.jpg", 7, 0), 0);
	CHECK_INT(gallery_name_ok("a\nb.jpg", 7, 0), 0);
	CHECK_INT(gallery_name_ok("a\x1b[31m.jpg", 9, 0), 0);
	CHECK_INT(gallery_name_ok("a\x7f.jpg", 6, 0), 0);
	CHECK_INT(gallery_name_ok("\xff\xfe.jpg", 6, 0), 0);
	memset(longname, 'x', sizeof(longname));
	CHECK_INT(gallery_name_ok(longname, 255, 0), 1);
	CHECK_INT(gallery_name_ok(longname, 256, 0), 0);
	/* A folder named like a page is hidden (the page has the name). */
	CHECK_INT(gallery_name_ok("index.html", 10, 1), 0);
	CHECK_INT(gallery_name_ok("index-3.html", 12, 1), 0);
	CHECK_INT(gallery_name_ok("index.html", 10, 0), 1);
	gallery_url_path("a b/%#?&<é~._-", &b);
	CHECK_STR(b.data, "a%20b/%25%23%3F%26%3C%C3%A9~._-");
	buf_reset(&b);
	gallery_human_size(0, &b);
	gallery_human_size(1023, &b);
	gallery_human_size(1024, &b);
	gallery_human_size(5u << 20, &b);
	CHECK_STR(b.data, "0 B1023 B1.0 KiB5.0 MiB");
	buf_release(&b);
}

/* ---- links_object with the real S3 client (signing only, no network) -- */

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define FIXED_NOW 1767323045  /* 2026-01-02T03:04:05Z */

/* The daemon's modules, wired as the namespace wires them. */
struct rig {
	struct s3_conf s3c;
	struct creds_conf cc;
	struct cache_conf cache;
	struct thumb_conf tc;
	struct link_conf lc;
	struct fs_conf fc;
	struct metrics *m;
	struct creds *creds;
	struct s3_client *s3;
	struct thumbs *thumbs;
	struct links *links;
	char dir[40];
};

static int rig_up(struct rig *r, const char *endpoint, const char *region,
		  enum s3_addressing addr, const char *token, int attach,
		  unsigned expiry)
{
	char ak[] = "AWS_ACCESS_KEY_ID=" AKID;
	char sk[] = "AWS_SECRET_ACCESS_KEY=" SECRET;
	char tok[256], err[256] = "";
	char *envp[] = {ak, sk, tok, NULL};

	memset(r, 0, sizeof(*r));
	snprintf(tok, sizeof(tok), "AWS_SESSION_TOKEN=%s", token ? token : "");
	if (!token)
		envp[2] = NULL;
	snprintf(r->dir, sizeof(r->dir), "/tmp/imgfs-test-links-XXXXXX");
	if (!mkdtemp(r->dir))
		return errno;
	r->s3c = (struct s3_conf){.bucket = (char *)(addr == S3_ADDR_PATH
				       ? "imgfs-test" : "my-bucket"),
		.endpoint = (char *)endpoint, .region = (char *)region,
		.addressing = addr, .max_connections = 2, .retries = 0,
		.connect_timeout = 5, .request_timeout = 10};
	r->cc = (struct creds_conf){.profile = (char *)"default",
		.credentials_file = (char *)"/nonexistent/credentials",
		.config_file = (char *)"/nonexistent/config"};
	r->cache = (struct cache_conf){.dir = r->dir, .max_bytes = 1 << 20};
	r->tc = (struct thumb_conf){.size = 128, .max_pixels = 100000000,
				    .concurrency = 1};
	r->lc = (struct link_conf){.expiry = expiry, .attachment = attach,
				   .bucket = r->s3c.bucket};
	r->fc = (struct fs_conf){.uploads_prefix = (char *)"uploads/",
		.thumbs_prefix = (char *)"thumbnails/"};
	r->m = metrics_create();
	r->creds = creds_create(&r->cc, envp, err, sizeof(err));
	if (!r->m || !r->creds) {
		fprintf(stderr, "rig: %s\n", err);
		return EIO;
	}
	r->s3 = s3_create(&r->s3c, r->creds, r->m);
	r->thumbs = r->s3 ? thumbs_create(&r->tc, &r->cache, &r->fc, s3_store(r->s3),
					  r->m) : NULL;
	r->links = r->thumbs ? links_create(&r->lc, &r->fc, r->s3, s3_store(r->s3), r->creds,
					    r->thumbs, r->m) : NULL;
	return r->links ? 0 : EIO;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	return remove(path);
}

static void rig_down(struct rig *r)
{
	links_destroy(r->links);
	thumbs_destroy(r->thumbs);
	s3_destroy(r->s3);
	creds_destroy(r->creds);
	metrics_destroy(r->m);
	if (r->dir[0])
		nftw(r->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort the &-separated parameters of the query in s (in place). */
static void sort_query(char *s, struct buf *out)
{
	char *q = strchr(s, '?'), *params[64], *p;
	size_t n = 0;

	if (!q) {
		buf_adds(out, s);
		return;
	}
	*q++ = '\0';
	buf_addf(out, "%s?", s);
	for (p = q; p && n < 64; n++) {
		params[n] = p;
		p = strchr(p, '&');
		if (p)
			*p++ = '\0';
	}
	qsort(params, n, sizeof(*params), cmp_str);
	for (size_t i = 0; i < n; i++)
		buf_addf(out, "%s%s", i ? "&" : "", params[i]);
}

/* got (a link file: URL and newline) is want, parameters in any order. */
static void check_same_url(const char *got, const char *want)
{
	struct buf g = BUF_INIT, w = BUF_INIT;
	char *gc = strdup(got), *wc = strdup(want);
	size_t len = strlen(gc);

	CHECK(len > 0 && gc[len - 1] == '\n' && !strchr(gc, ' '));
	if (len && gc[len - 1] == '\n')
		gc[len - 1] = '\0';
	sort_query(gc, &g);
	sort_query(wc, &w);
	CHECK_STR(g.data, w.data);
	buf_release(&g);
	buf_release(&w);
	free(gc);
	free(wc);
}

/* Both expected URLs were made by botocore 1.29's presigner with its clock
 * pinned to FIXED_NOW. */
static void test_links_object_matches_botocore(void)
{
	struct rig r;
	struct buf out = BUF_INIT;

	if (rig_up(&r, "http://127.0.0.1:7480", "us-east-1", S3_ADDR_PATH,
		   NULL, 0, 3600) == 0) {
		CHECK_INT(links_object(r.links, "uploads/été/a b+c%d#e?f=g&h~.png",
				       FIXED_NOW, &out), 0);
		check_same_url(out.data ? out.data : "",
			"http://127.0.0.1:7480/imgfs-test/uploads/%C3%A9t%C3%A9/a%20b%2Bc%25d%23e%3Ff%3Dg%26h~.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260102%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260102T030405Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=805a1245215e17cdff43b5fc9058a08a63530bbfc32324189d5abd3739b1b2bb");
		/* Appends: a second link follows the first. */
		CHECK_INT(links_object(r.links, "uploads/x.jpg", FIXED_NOW, &out), 0);
		CHECK(out.data && strchr(out.data, '\n') &&
		      strstr(strchr(out.data, '\n') + 1, "/imgfs-test/uploads/x.jpg?"));
	} else {
		CHECK(!"path-style rig");
	}
	rig_down(&r);
	buf_reset(&out);
	if (rig_up(&r, "https://s3.eu-west-1.amazonaws.com", "eu-west-1",
		   S3_ADDR_VIRTUAL, "FQoGZXIvYXdzEXAMPLE/TOKEN+==", 1, 604800) == 0) {
		CHECK_INT(links_object(r.links, "uploads/été.jpg", FIXED_NOW, &out), 0);
		check_same_url(out.data ? out.data : "",
			"https://my-bucket.s3.eu-west-1.amazonaws.com/uploads/%C3%A9t%C3%A9.jpg?response-content-disposition=attachment%3B%20filename%3D%22__t__.jpg%22%3B%20filename%2A%3DUTF-8%27%27%25C3%25A9t%25C3%25A9.jpg&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260102%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20260102T030405Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLE%2FTOKEN%2B%3D%3D&X-Amz-Signature=528db8a1f53b172f305689452a1b1588c3df27dd549d10c49d8af57076d2e4cc");
	} else {
		CHECK(!"virtual-hosted rig");
	}
	rig_down(&r);
	buf_release(&out);
}

int main(int argc, char **argv)
{
	/* The thumbnail workers this test starts are this binary. */
	if (worker_dispatch(argc, argv) >= 0)
		return 1;
	test_expiry_cap();
	test_html_escape();
	test_disposition();
	test_gallery_escaping();
	test_gallery_breadcrumbs();
	test_gallery_paging();
	test_gallery_names();
	test_links_object_matches_botocore();
	return check_done("test_links");
}
