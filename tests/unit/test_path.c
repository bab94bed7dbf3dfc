/* Unit tests: mount path mapping (core/path.h). */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "ns/path.h"

static void check_area(const char *path, enum path_area area, const char *rel)
{
	struct path_info pi;
	int rc = path_parse(path, 8, &pi);

	CHECK_INT(rc, 0);
	if (rc)
		return;
	CHECK_INT(pi.area, area);
	CHECK_STR(pi.rel, rel);
}

static void test_areas(void)
{
	check_area("/", PA_ROOT, "");
	check_area("/uploads", PA_UPLOADS, "");
	check_area("/uploads/a/b c.jpg", PA_UPLOADS, "a/b c.jpg");
	check_area("/thumbnails/x.png", PA_THUMBS, "x.png");
	check_area("/.links", PA_LINKS, "");
	check_area("/.links/uploads/a", PA_LINKS_UPLOADS, "a");
	check_area("/.links/thumbnails", PA_LINKS_THUMBS, "");
	check_area("/.links/index.html", PA_LINKS_INDEX, "");
	check_area("/.links/upload", PA_LINKS_UPLOAD, "");
	check_area("/.links/upload/post.json", PA_LINKS_UPLOAD, "post.json");
	check_area("/.links/upload/a b/index.html", PA_LINKS_UPLOAD,
		   "a b/index.html");
	check_area("/.links/gallery", PA_LINKS_GALLERY, "");
	check_area("/.links/gallery/index-2.html", PA_LINKS_GALLERY,
		   "index-2.html");
	check_area("/.links/gallery/a b/c/index.html", PA_LINKS_GALLERY,
		   "a b/c/index.html");
	check_area("/.metrics", PA_METRICS, "");
	check_area("/thumbnails-256/a/x.png", PA_THUMBS, "a/x.png");
	check_area("/.links/thumbnails-64", PA_LINKS_THUMBS, "");
}

static void test_sized_thumbs(void)
{
	struct path_info pi;

	CHECK_INT(path_parse("/thumbnails-256/x.png", 8, &pi), 0);
	CHECK_INT(pi.thumb_size, 256);
	CHECK_INT(path_parse("/thumbnails/x.png", 8, &pi), 0);
	CHECK_INT(pi.thumb_size, 0);
	CHECK_INT(path_parse("/.links/thumbnails-512/x", 8, &pi), 0);
	CHECK_INT(pi.thumb_size, 512);
	CHECK_INT(path_parse("/thumbnails-", 8, &pi), ENOENT);
	CHECK_INT(path_parse("/thumbnails-0256", 8, &pi), ENOENT);
	CHECK_INT(path_parse("/thumbnails-25x", 8, &pi), ENOENT);
	CHECK_INT(path_parse("/thumbnails-123456", 8, &pi), ENOENT);
	CHECK_INT(path_parse("/uploads-256", 8, &pi), ENOENT);
	CHECK_INT(path_parse("/.links/uploads-256", 8, &pi), ENOENT);
}

static void test_unknown(void)
{
	struct path_info pi;

	CHECK_INT(path_parse("/nope", 8, &pi), ENOENT);
	CHECK_INT(path_parse("/uploadsx", 8, &pi), ENOENT);
	CHECK_INT(path_parse("/.metrics/x", 8, &pi), ENOENT);
	CHECK_INT(path_parse("/.links/other", 8, &pi), ENOENT);
	CHECK_INT(path_parse("/.links/uploadx", 8, &pi), ENOENT);
	CHECK_INT(path_parse("/.links/index.html/x", 8, &pi), ENOENT);
}

static void test_too_long(void)
{
	char path[1200] = "/uploads/";
	struct path_info pi;

	memset(path + 9, 'a', 1016);
	for (int i = 9 + 200; i < 9 + 1016; i += 201)
		path[i] = '/'; /* names of 200 bytes */
	path[9 + 1016] = '\0';
	CHECK_INT(path_parse(path, 8, &pi), 0); /* 8 + 1016 = 1024 */
	strcat(path, "b");
	CHECK_INT(path_parse(path, 8, &pi), ENAMETOOLONG);
	/* one name over NAME_MAX, in any area */
	memset(path + 9, 'a', 256);
	path[9 + 256] = '\0';
	CHECK_INT(path_parse(path, 8, &pi), ENAMETOOLONG);
	path[9 + 255] = '\0';
	CHECK_INT(path_parse(path, 8, &pi), 0);
	memcpy(path, "/thumbnails/a/", 14);
	memset(path + 14, 'x', 256);
	path[14 + 256] = '\0';
	CHECK_INT(path_parse(path, 8, &pi), ENAMETOOLONG);
}

static void test_split(void)
{
	char parent[64];

	CHECK_STR(path_split("a/b/c.jpg", parent), "c.jpg");
	CHECK_STR(parent, "a/b");
	CHECK_STR(path_split("c.jpg", parent), "c.jpg");
	CHECK_STR(parent, "");
}

static void test_names(void)
{
	CHECK(path_name_ok("a.jpg", 5));
	CHECK(path_name_ok("line\nbreak", 10));
	CHECK(!path_name_ok("", 0));
	CHECK(!path_name_ok(".", 1));
	CHECK(!path_name_ok("..", 2));
	CHECK(!path_name_ok("a/b", 3));
	CHECK(path_name_ok("...", 3));
}

static void test_utf8(void)
{
	CHECK(path_utf8_ok("caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.jpg"));
	CHECK(path_utf8_ok("\xf0\x9f\x98\x80"));
	CHECK(!path_utf8_ok("\xff"));
	CHECK(!path_utf8_ok("\xc3"));
	CHECK(!path_utf8_ok("\xc0\xaf"));       /* overlong '/' */
	CHECK(!path_utf8_ok("\xed\xa0\x80"));   /* surrogate */
	CHECK(!path_utf8_ok("\xf4\x90\x80\x80")); /* past U+10FFFF */
}

int main(void)
{
	test_sized_thumbs();
	test_areas();
	test_unknown();
	test_too_long();
	test_split();
	test_names();
	test_utf8();
	return check_done("test_path");
}
