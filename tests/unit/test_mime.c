/* Unit tests for core/mime: real files from Debian's wallpaper packages,
 * images made with libvips, text, empty data, misleading names, threads. */
#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

#include "check.h"
#include "base/buf.h"
#include "io/mime.h"

/* Read the first file matching pattern into out; 0 when none. */
static int read_first(const char *pattern, struct buf *out)
{
	glob_t g;
	FILE *f;
	char chunk[65536];
	size_t n;
	int ok = 0;

	if (glob(pattern, 0, NULL, &g) != 0)
		return 0;
	f = fopen(g.gl_pathv[0], "rb");
	if (f) {
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			if (buf_add(out, chunk, n) != 0)
				break;
		ok = !ferror(f) && out->len > 0;
		fclose(f);
	}
	globfree(&g);
	return ok;
}

static void check_file(struct mime *m, const char *pattern, const char *name,
		       const char *want)
{
	struct buf b = BUF_INIT;
	char type[MIME_TYPE_MAX];

	CHECK(read_first(pattern, &b));
	mime_sniff(m, b.data, b.len, name, type);
	CHECK_STR(type, want);
	buf_release(&b);
}

static void test_real_files(struct mime *m)
{
	const char *jpg = "/usr/share/wallpapers/*/contents/images/*.jpg";
	const char *png = "/usr/share/wallpapers/*/contents/images/*.png";
	const char *webp = "/usr/share/backgrounds/gnome/*.webp";

	check_file(m, jpg, "uploads/photo.jpg", "image/jpeg");
	check_file(m, png, "uploads/art.png", "image/png");
	check_file(m, webp, "uploads/bg.webp", "image/webp");
	/* content wins over a misleading or missing extension */
	check_file(m, jpg, "uploads/really-a-jpeg.png", "image/jpeg");
	check_file(m, png, "uploads/noext", "image/png");
	check_file(m, webp, "uploads/x.txt", "image/webp");
}

/* Encode a small image with libvips in the format of suffix. */
static void check_vips_format(struct mime *m, const char *suffix,
			      const char *want)
{
	VipsImage *img = NULL;
	void *data = NULL;
	size_t len = 0;
	char type[MIME_TYPE_MAX];

	CHECK(vips_black(&img, 32, 24, "bands", 3, NULL) == 0);
	if (!img)
		return;
	CHECK(vips_image_write_to_buffer(img, suffix, &data, &len, NULL) == 0);
	g_object_unref(img);
	if (!data) {
		fprintf(stderr, "  libvips cannot write %s: %s\n", suffix,
			vips_error_buffer());
		vips_error_clear();
		return;
	}
	mime_sniff(m, data, len, "uploads/noext", type);
	CHECK_STR(type, want);
	g_free(data);
}

static void test_made_images(struct mime *m)
{
	check_vips_format(m, ".gif", "image/gif");
	check_vips_format(m, ".tif", "image/tiff");
	check_vips_format(m, ".avif", "image/avif");
	check_vips_format(m, ".jpg", "image/jpeg");
	check_vips_format(m, ".png", "image/png");
	check_vips_format(m, ".webp", "image/webp");
}

/*
 * HEIC: the ISO-BMFF file-type box that opens every HEIC file (brand heic,
 * compatible mif1/heic). Encoding one with libvips needs x265, which leaks
 * a global allocation that fails the ASan build; the box is what the
 * content test reads.
 */
static void test_heic_header(struct mime *m)
{
	static const unsigned char ftyp[] = {
		0x00, 0x00, 0x00, 0x18, 'f', 't', 'y', 'p', 'h', 'e', 'i', 'c',
		0x00, 0x00, 0x00, 0x00, 'm', 'i', 'f', '1', 'h', 'e', 'i', 'c',
		0x00, 0x00, 0x00, 0x08, 'm', 'e', 't', 'a'};
	char type[MIME_TYPE_MAX];

	mime_sniff(m, ftyp, sizeof(ftyp), "uploads/phone-photo", type);
	CHECK_STR(type, "image/heic");
}

static void test_text_and_empty(struct mime *m)
{
	const char *text = "hello, imgfs\nsecond line\n";
	const char *html = "<!DOCTYPE html>\n<html><body>hi</body></html>\n";
	const unsigned char junk[] = {0x00, 0x9f, 0x13, 0xfe, 0x00, 0x01, 0x80};
	char type[MIME_TYPE_MAX];

	mime_sniff(m, text, strlen(text), "uploads/notes", type);
	CHECK_STR(type, "text/plain");
	mime_sniff(m, html, strlen(html), "uploads/page", type);
	CHECK_STR(type, "text/html");
	/* empty: nothing to sniff, the name decides, else the default */
	mime_sniff(m, "", 0, "uploads/empty.jpg", type);
	CHECK_STR(type, "image/jpeg");
	mime_sniff(m, "", 0, "uploads/empty", type);
	CHECK_STR(type, MIME_DEFAULT);
	/* unrecognised bytes: the extension is the fallback */
	mime_sniff(m, junk, sizeof(junk), "uploads/d.PNG", type);
	CHECK_STR(type, "image/png");
	mime_sniff(m, junk, sizeof(junk), "uploads/d.unknownext", type);
	CHECK_STR(type, MIME_DEFAULT);
	mime_sniff(m, junk, sizeof(junk), NULL, type);
	CHECK_STR(type, MIME_DEFAULT);
	/* no cookie: the name alone */
	mime_sniff(NULL, text, strlen(text), "a/b.webp", type);
	CHECK_STR(type, "image/webp");
}

static void test_from_name(void)
{
	CHECK_STR(mime_from_name("x.JPG"), "image/jpeg");
	CHECK_STR(mime_from_name("a.b/c.tiff"), "image/tiff");
	CHECK(mime_from_name("a.jpg/noext") == NULL);
	CHECK(mime_from_name("trailingdot.") == NULL);
	CHECK(mime_from_name(".hidden") == NULL);
	CHECK(mime_from_name(NULL) == NULL);
}

struct sniff_job {
	struct mime *m;
	struct buf *jpeg;
	int wrong;
};

static void *sniff_many(void *arg)
{
	struct sniff_job *j = arg;
	const char *text = "plain words\n";
	char type[MIME_TYPE_MAX];

	for (int i = 0; i < 300; i++) {
		mime_sniff(j->m, j->jpeg->data, j->jpeg->len, "x.png", type);
		j->wrong += strcmp(type, "image/jpeg") != 0;
		mime_sniff(j->m, text, strlen(text), "x.jpg", type);
		j->wrong += strcmp(type, "text/plain") != 0;
	}
	return NULL;
}

/* One cookie shared by four threads gives the right answers. */
static void test_threads(struct mime *m)
{
	struct buf jpeg = BUF_INIT;
	struct sniff_job jobs[4];
	pthread_t t[4];

	CHECK(read_first("/usr/share/wallpapers/*/contents/images/*.jpg", &jpeg));
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct sniff_job){m, &jpeg, 0};
		CHECK(pthread_create(&t[i], NULL, sniff_many, &jobs[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(jobs[i].wrong, 0);
	}
	buf_release(&jpeg);
}

int main(int argc, char **argv)
{
	struct mime *m;

	(void)argc;
	if (VIPS_INIT(argv[0]) != 0)
		return 1;
	m = mime_create();
	CHECK(m != NULL);
	if (!m)
		return check_done("mime");
	test_real_files(m);
	test_made_images(m);
	test_heic_header(m);
	test_text_and_empty(m);
	test_from_name();
	test_threads(m);
	mime_destroy(m);
	vips_shutdown();
	return check_done("mime");
}
