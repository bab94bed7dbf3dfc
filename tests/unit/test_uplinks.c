/*
 * test_uplinks: the upload page and size text of core/ns/uplinks (the pure
 * parts; test_upload_links.py runs the page in a browser against RGW).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "ns/uplinks.h"
#include "tests/unit/check.h"

static void check_size(uint64_t n, const char *want)
{
	struct buf b = BUF_INIT;

	CHECK_INT(uplinks_size_text(n, &b), 0);
	CHECK_STR(b.data, want);
	buf_release(&b);
}

static void test_size_text(void)
{
	check_size(0, "0 bytes");
	check_size(1, "1 byte");
	check_size(1023, "1023 bytes");
	check_size(1024, "1 KiB");
	check_size(12390, "12.1 KiB");
	check_size(50ull << 20, "50 MiB");
	check_size(3ull << 29, "1.5 GiB");
	check_size(5ull << 30, "5 GiB");
}

/* A form as s3_presign_post() makes it, with values that need escaping. */
static void make_form(struct post_form *f)
{
	static const char *const names[] = {"key", "x-amz-algorithm", "policy",
					    "x-amz-signature"};
	static const char *const values[] = {
		"uploads/<b>\"x\"&'y'/${filename}", "AWS4-HMAC-SHA256",
		"eyJ4Ijoi+/=", "abc123"};

	memset(f, 0, sizeof(*f));
	f->url = strdup("http://127.0.0.1:7480/bkt?a=1&b=2");
	for (size_t i = 0; i < 4; i++) {
		f->fields[i].name = names[i];
		f->fields[i].value = strdup(values[i]);
	}
	f->nfields = 4;
}

static const char *after(const char *hay, const char *needle)
{
	const char *p = hay ? strstr(hay, needle) : NULL;

	return p ? p + strlen(needle) : NULL;
}

static void test_page(void)
{
	struct post_form f;
	struct buf b = BUF_INIT;
	const char *p, *form_end, *file;

	make_form(&f);
	/* 2026-12-01 21:15:49 UTC */
	CHECK_INT(uplinks_page_render(&f, "my<bkt>", "uploads/<b>\"x\"&'y'/",
				      50ull << 20, 1796159749, &b), 0);
	CHECK(strncmp(b.data, "<!DOCTYPE html>", 15) == 0);
	/* every value escaped, nothing raw */
	CHECK(strstr(b.data, "<b>") == NULL);
	CHECK(strstr(b.data, "my<bkt>") == NULL);
	CHECK(strstr(b.data, "my&lt;bkt&gt;") != NULL);
	CHECK(strstr(b.data, "uploads/&lt;b&gt;&quot;x&quot;&amp;&#39;y&#39;/")
	      != NULL);
	CHECK(strstr(b.data, "action=\"http://127.0.0.1:7480/bkt?a=1&amp;b=2\"")
	      != NULL);
	/* the signed fields as hidden inputs, in order, then the file, last */
	p = after(b.data, "<form id=\"upload\"");
	p = after(p, "name=\"key\" value=\"uploads/&lt;b&gt;&quot;x&quot;"
		  "&amp;&#39;y&#39;/${filename}\"");
	p = after(p, "name=\"x-amz-algorithm\" value=\"AWS4-HMAC-SHA256\"");
	p = after(p, "name=\"policy\" value=\"eyJ4Ijoi+/=\"");
	p = after(p, "name=\"x-amz-signature\" value=\"abc123\"");
	CHECK(p != NULL);
	p = after(p, "name=\"Content-Type\"");
	file = p ? strstr(p, "type=\"file\" name=\"file\"") : NULL;
	form_end = p ? strstr(p, "</form>") : NULL;
	CHECK(file && form_end && file < form_end);
	CHECK(file && !strstr(file, "type=\"hidden\""));
	/* limit and expiry, shown and for the script */
	CHECK(strstr(b.data, "data-max-bytes=\"52428800\"") != NULL);
	CHECK(strstr(b.data, "<b id=\"limit\">50 MiB</b>") != NULL);
	CHECK(strstr(b.data, "data-expires=\"2026-12-01T21:15:49Z\"") != NULL);
	CHECK(strstr(b.data, ">2026-12-01 21:15:49 UTC</time>") != NULL);
	/* self-contained */
	CHECK(strstr(b.data, "<script src") == NULL);
	CHECK(strstr(b.data, "<link") == NULL);
	CHECK(strstr(b.data, "url(") == NULL);
	CHECK(strstr(b.data, "</html>\n") != NULL);
	buf_release(&b);
	/* no bucket name: none shown */
	CHECK_INT(uplinks_page_render(&f, NULL, "uploads/", 1, 0, &b), 0);
	CHECK(strstr(b.data, "Bucket <code>") == NULL);
	CHECK(strstr(b.data, "1 byte</b>") != NULL);
	buf_release(&b);
	post_form_release(&f);
}

int main(void)
{
	test_size_text();
	test_page();
	return check_done("test_uplinks");
}
