/*
 * test_thumb: the libvips thumbnail engine on real encoded images.
 *
 * Images with known pixels are made here with libvips and encoded for
 * real (JPEG with EXIF orientation and GPS, CMYK JPEG, 16-bit PNG, PNG
 * with alpha, animated GIF, ...); the real image set is Debian's
 * wallpapers; hostile inputs must fail with EIO in under a second.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "base/buf.h"
#include "base/clock.h"
#include "image/thumb.h"
#include "tests/unit/check.h"

#define EDGE 128

static struct thumb_engine *engine_for(unsigned size, enum thumb_crop crop)
{
	struct thumb_conf conf = {
		.size = size, .crop = crop, .max_pixels = 100000000,
		.concurrency = 1,
	};

	return thumb_engine_create(&conf);
}

/* A w x h image of one colour (vals[bands]) as 8 or 16 bit. */
static VipsImage *solid(int w, int h, int bands, const double *vals,
			VipsBandFormat fmt, VipsInterpretation type)
{
	VipsImage *black = NULL, *lin = NULL, *cast = NULL, *out = NULL;
	double a[4] = {0, 0, 0, 0};

	if (vips_black(&black, w, h, "bands", bands, NULL) ||
	    vips_linear(black, &lin, a, (double *)vals, bands, NULL) ||
	    vips_cast(lin, &cast, fmt, NULL) ||
	    vips_copy(cast, &out, "interpretation", type, NULL))
		fprintf(stderr, "solid: %s\n", vips_error_buffer());
	g_clear_object(&black);
	g_clear_object(&lin);
	g_clear_object(&cast);
	return out;
}

static VipsImage *solid_rgb(int w, int h, double r, double g, double b)
{
	double v[3] = {r, g, b};

	return solid(w, h, 3, v, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB);
}

/* Encode through a libvips saver into a struct buf. */
static void keep(struct buf *b, void *data, size_t len, int rc)
{
	buf_reset(b);
	if (rc == 0)
		buf_add(b, data, len);
	else
		fprintf(stderr, "save: %s\n", vips_error_buffer());
	g_free(data);
}

/* Run the engine; returns its result and the decoded thumbnail. */
static int make(struct thumb_engine *e, const struct buf *src,
		const char *name, struct buf *out, VipsImage **decoded)
{
	enum thumb_format fmt;
	struct buf err = BUF_INIT;
	int rc;

	buf_reset(out);
	rc = thumb_make(e, src->data, src->len, name, out, &fmt, &err);
	if (rc)
		fprintf(stderr, "  %s: %s\n", name, err.data ? err.data : "");
	buf_release(&err);
	if (decoded)
		*decoded = rc ? NULL
			      : vips_image_new_from_buffer(out->data, out->len,
							   "", NULL);
	return rc;
}

static double pixel(VipsImage *im, int x, int y, int band)
{
	double *v = NULL;
	int n = 0;
	double r = -1;

	if (vips_getpoint(im, &v, &n, x, y, NULL) == 0 && band < n)
		r = v[band];
	g_free(v);
	return r;
}

static const char *loader(VipsImage *im)
{
	const char *s = NULL;

	if (vips_image_get_string(im, "vips-loader", &s))
		return "";
	return s;
}

static void test_names(void)
{
	struct buf b = BUF_INIT;
	enum thumb_format f;

	CHECK_INT(thumb_output_name("a.JPG", &b), 0);
	CHECK_STR(b.data, "a.JPG");
	buf_reset(&b);
	CHECK_INT(thumb_output_name("notes.txt", &b), EINVAL);
	CHECK_INT(thumb_output_name(".png", &b), EINVAL);
	CHECK_INT(thumb_format_of_name("x.TiFf", &f), 0);
	CHECK_INT(f, THUMB_FMT_TIFF);
	CHECK_INT(thumb_format_of_name("x.heif", &f), 0);
	CHECK_INT(f, THUMB_FMT_HEIC);
	CHECK_INT(thumb_format_of_name("xjpg", &f), ENOENT);
	CHECK(thumb_can_save(THUMB_FMT_JPEG));
	CHECK(thumb_can_save(THUMB_FMT_PNG));
	CHECK(thumb_can_save(THUMB_FMT_WEBP));

	/* Every image extension round-trips through the name mapping. */
	const char *names[] = {"a.jpg", "b.jpeg", "c.png", "d.webp", "e.gif",
			       "f.tif", "g.tiff", "h.heic", "i.HEIF", "j.avif"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct buf t = BUF_INIT, s = BUF_INIT;

		CHECK_INT(thumb_output_name(names[i], &t), 0);
		CHECK_INT(thumb_format_of_name(names[i], &f), 0);
		if (!thumb_can_save(f))
			CHECK(t.len == strlen(names[i]) + 4);
		CHECK_INT(thumb_source_name(t.data, &s), 0);
		CHECK_STR(s.data, names[i]);
		buf_release(&t);
		buf_release(&s);
	}
	CHECK_INT(thumb_source_name("readme.txt", &b), ENOENT);
	printf("savable here:");
	for (int i = 0; i < THUMB_FMT__COUNT; i++)
		if (thumb_can_save((enum thumb_format)i))
			printf(" %s", thumb_format_name((enum thumb_format)i));
	printf("\n");
	CHECK_INT(thumb_format_parse("webp", &f), 0);
	CHECK_INT(f, THUMB_FMT_WEBP);
	CHECK_STR(thumb_format_mime(THUMB_FMT_PNG), "image/png");
	buf_release(&b);
}

/* EXIF orientation 6 on a landscape image: the thumbnail is portrait,
 * and so is the source size reported. */
static void test_orientation(struct thumb_engine *e)
{
	VipsImage *im = solid_rgb(400, 200, 200, 30, 30), *c = NULL, *t;
	struct buf src = BUF_INIT, out = BUF_INIT;
	void *data = NULL;
	size_t len = 0;

	vips_copy(im, &c, NULL);
	vips_image_set_int(c, "orientation", 6);
	keep(&src, data, len, vips_jpegsave_buffer(c, &data, &len, NULL));
	CHECK_INT(make(e, &src, "rot.jpg", &out, &t), 0);
	if (t) {
		CHECK_INT(vips_image_get_width(t), 64);
		CHECK_INT(vips_image_get_height(t), EDGE);
		CHECK(!vips_image_get_typeof(t, "exif-data"));
		g_object_unref(t);
	}
	/* The source's size as shown: turned too. */
	{
		struct thumb_source_info info = {0, 0};
		struct buf again = BUF_INIT;
		enum thumb_format fmt;

		CHECK_INT(thumb_make_sizes_info(e, src.data, src.len, "rot.jpg",
						1, &again, &fmt, NULL, &info), 0);
		CHECK_INT(info.width, 200);
		CHECK_INT(info.height, 400);
		buf_release(&again);
	}
	g_object_unref(c);
	g_object_unref(im);
	buf_release(&src);
	buf_release(&out);
}

/* A phone photo's GPS position never reaches the thumbnail. */
static void test_gps_stripped(struct thumb_engine *e)
{
	VipsImage *im = solid_rgb(300, 200, 10, 120, 200), *c = NULL, *t;
	struct buf src = BUF_INIT, out = BUF_INIT;
	void *data = NULL;
	size_t len = 0;

	vips_copy(im, &c, NULL);
	vips_image_set_string(c, "exif-ifd0-Make", "SecretCam");
	vips_image_set_string(c, "exif-ifd3-GPSLatitudeRef", "N");
	vips_image_set_string(c, "exif-ifd3-GPSLatitude", "48/1 51/1 2964/100");
	keep(&src, data, len, vips_jpegsave_buffer(c, &data, &len, NULL));
	CHECK(memmem(src.data, src.len, "SecretCam", 9) != NULL);
	CHECK_INT(make(e, &src, "gps.jpg", &out, &t), 0);
	CHECK(memmem(out.data, out.len, "SecretCam", 9) == NULL);
	CHECK(memmem(out.data, out.len, "Exif", 4) == NULL);
	if (t) {
		CHECK(!vips_image_get_typeof(t, "exif-data"));
		CHECK(!vips_image_get_typeof(t, "exif-ifd3-GPSLatitude"));
		CHECK(!vips_image_get_typeof(t, "icc-profile-data"));
		g_object_unref(t);
	}
	g_object_unref(c);
	g_object_unref(im);
	buf_release(&src);
	buf_release(&out);
}

/* CMYK 0/100/100/0 is red; it must come out as red sRGB. */
static void test_cmyk(struct thumb_engine *e)
{
	double v[4] = {0, 255, 255, 0};
	VipsImage *im = solid(256, 256, 4, v, VIPS_FORMAT_UCHAR,
			      VIPS_INTERPRETATION_CMYK),
		  *t;
	struct buf src = BUF_INIT, out = BUF_INIT;
	void *data = NULL;
	size_t len = 0;

	keep(&src, data, len, vips_jpegsave_buffer(im, &data, &len, NULL));
	CHECK_INT(make(e, &src, "cmyk.jpg", &out, &t), 0);
	if (t) {
		CHECK_INT(vips_image_get_bands(t), 3);
		CHECK_INT(vips_image_get_width(t), EDGE);
		CHECK(pixel(t, 64, 64, 0) > 180);
		CHECK(pixel(t, 64, 64, 1) < 90);
		CHECK(pixel(t, 64, 64, 2) < 90);
		g_object_unref(t);
	}
	g_object_unref(im);
	buf_release(&src);
	buf_release(&out);
}

/* 16-bit PNG: an 8-bit thumbnail of the same colour. */
static void test_png16(struct thumb_engine *e)
{
	double v[3] = {65535, 32768, 0};
	VipsImage *im = solid(300, 150, 3, v, VIPS_FORMAT_USHORT,
			      VIPS_INTERPRETATION_RGB16),
		  *t;
	struct buf src = BUF_INIT, out = BUF_INIT;
	void *data = NULL;
	size_t len = 0;

	keep(&src, data, len, vips_pngsave_buffer(im, &data, &len, NULL));
	CHECK_INT(make(e, &src, "deep.png", &out, &t), 0);
	if (t) {
		CHECK_STR(loader(t), "pngload_buffer");
		CHECK_INT(vips_image_get_format(t), VIPS_FORMAT_UCHAR);
		CHECK_INT(vips_image_get_width(t), EDGE);
		CHECK_INT(vips_image_get_height(t), 64);
		CHECK(fabs(pixel(t, 10, 10, 0) - 255) <= 2);
		CHECK(fabs(pixel(t, 10, 10, 1) - 128) <= 3);
		CHECK(pixel(t, 10, 10, 2) <= 2);
		g_object_unref(t);
	}
	g_object_unref(im);
	buf_release(&src);
	buf_release(&out);
}

/* Red, transparent on the left half, opaque on the right. */
static void alpha_png(struct buf *src)
{
	double v[4] = {255, 0, 0, 255};
	VipsImage *im = solid(200, 200, 4, v, VIPS_FORMAT_UCHAR,
			      VIPS_INTERPRETATION_sRGB);
	double clear[4] = {255, 0, 0, 0};
	void *data = NULL;
	size_t len = 0;

	vips_draw_rect(im, clear, 4, 0, 0, 100, 200, "fill", TRUE, NULL);
	keep(src, data, len, vips_pngsave_buffer(im, &data, &len, NULL));
	g_object_unref(im);
}

static void test_alpha(struct thumb_engine *e)
{
	struct buf src = BUF_INIT, out = BUF_INIT;
	VipsImage *t;

	alpha_png(&src);
	CHECK_INT(make(e, &src, "alpha.png", &out, &t), 0);
	if (t) {
		CHECK_INT(vips_image_get_bands(t), 4);
		CHECK(pixel(t, 10, 64, 3) < 5);
		CHECK(pixel(t, 118, 64, 3) > 250);
		CHECK(pixel(t, 118, 64, 0) > 250);
		g_object_unref(t);
	}
	/* The same bytes under a .jpg name: JPEG, flattened on white. */
	CHECK_INT(make(e, &src, "alpha.jpg", &out, &t), 0);
	if (t) {
		CHECK_STR(loader(t), "jpegload_buffer");
		CHECK_INT(vips_image_get_bands(t), 3);
		for (int b = 0; b < 3; b++)
			CHECK(pixel(t, 10, 64, b) > 245);
		CHECK(pixel(t, 118, 64, 0) > 240);
		CHECK(pixel(t, 118, 64, 1) < 15);
		g_object_unref(t);
	}
	/* WebP keeps alpha too. */
	CHECK_INT(make(e, &src, "alpha.webp", &out, &t), 0);
	if (t) {
		CHECK_STR(loader(t), "webpload_buffer");
		CHECK_INT(vips_image_get_bands(t), 4);
		CHECK(pixel(t, 10, 64, 3) < 5);
		g_object_unref(t);
	}
	buf_release(&src);
	buf_release(&out);
}

/* Two frames, red then blue: the thumbnail is one red frame. */
static void test_animated_gif(struct thumb_engine *e)
{
	VipsImage *f[2] = {solid_rgb(160, 100, 255, 0, 0),
			   solid_rgb(160, 100, 0, 0, 255)};
	VipsImage *strip = NULL, *t;
	struct buf src = BUF_INIT, out = BUF_INIT;
	void *data = NULL;
	size_t len = 0;
	int delay[2] = {100, 100};

	vips_arrayjoin(f, &strip, 2, "across", 1, NULL);
	vips_image_set_int(strip, "page-height", 100);
	vips_image_set_int(strip, "n-pages", 2);
	vips_image_set_array_int(strip, "delay", delay, 2);
	keep(&src, data, len, vips_gifsave_buffer(strip, &data, &len, NULL));
	CHECK_INT(make(e, &src, "anim.gif", &out, &t), 0);
	if (t) {
		CHECK_STR(loader(t), "gifload_buffer");
		CHECK_INT(vips_image_get_n_pages(t), 2); /* still animated */
		CHECK_INT(vips_image_get_width(t), EDGE);
		CHECK_INT(vips_image_get_height(t), 80);
		CHECK(pixel(t, 64, 40, 0) > 200);
		CHECK(pixel(t, 64, 40, 2) < 60);
		g_object_unref(t);
	}
	g_object_unref(f[0]);
	g_object_unref(f[1]);
	g_object_unref(strip);
	buf_release(&src);
	buf_release(&out);
}

/* Tiny sources are never upscaled; crop fills the box exactly. */
static void test_sizes(struct thumb_engine *e, struct thumb_engine *crop)
{
	VipsImage *one = solid_rgb(1, 1, 0, 255, 0), *wide, *t;
	struct buf src = BUF_INIT, out = BUF_INIT;
	void *data = NULL;
	size_t len = 0;

	keep(&src, data, len, vips_pngsave_buffer(one, &data, &len, NULL));
	CHECK_INT(make(e, &src, "dot.png", &out, &t), 0);
	if (t) {
		CHECK_INT(vips_image_get_width(t), 1);
		CHECK_INT(vips_image_get_height(t), 1);
		CHECK(pixel(t, 0, 0, 1) > 250);
		g_object_unref(t);
	}
	wide = solid_rgb(600, 200, 50, 50, 50);
	keep(&src, data, len, vips_jpegsave_buffer(wide, &data, &len, NULL));
	CHECK_INT(make(crop, &src, "wide.jpg", &out, &t), 0);
	if (t) {
		CHECK_INT(vips_image_get_width(t), EDGE);
		CHECK_INT(vips_image_get_height(t), EDGE);
		g_object_unref(t);
	}
	g_object_unref(one);
	g_object_unref(wide);
	buf_release(&src);
	buf_release(&out);
}

/* Each savable format comes out in its own format. */
static void test_formats(struct thumb_engine *e)
{
	const char *names[] = {"a.tif", "a.heic", "a.avif", "a.webp"};
	const char *loaders[] = {"tiffload_buffer", "heifload_buffer",
				 "heifload_buffer", "webpload_buffer"};
	VipsImage *im = solid_rgb(300, 300, 0, 0, 200), *t;
	struct buf src = BUF_INIT, out = BUF_INIT;
	void *data = NULL;
	size_t len = 0;

	keep(&src, data, len, vips_pngsave_buffer(im, &data, &len, NULL));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		enum thumb_format f;

		thumb_format_of_name(names[i], &f);
		CHECK_INT(make(e, &src, names[i], &out, &t), 0);
		if (!t)
			continue;
		CHECK_STR(loader(t),
			  thumb_can_save(f) ? loaders[i] : "jpegload_buffer");
		CHECK_INT(vips_image_get_width(t), EDGE);
		CHECK(pixel(t, 64, 64, 2) > 150);
		g_object_unref(t);
	}
	g_object_unref(im);
	buf_release(&src);
	buf_release(&out);
}

/* IMGFS_TIMEOUT_SCALE (sanitizer builds are slower), default 1. */
static double timeout_scale(void)
{
	const char *v = getenv("IMGFS_TIMEOUT_SCALE");
	double x = v ? atof(v) : 1.0;

	return x > 0 ? x : 1.0;
}

static void expect_eio_fast(struct thumb_engine *e, const struct buf *src,
			    const char *name)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	enum thumb_format fmt;
	double t0 = mono_s(), dt;
	int rc = thumb_make(e, src->data, src->len, name, &out, &fmt, &err);

	dt = mono_s() - t0;
	CHECK_INT(rc, EIO);
	/* refused from its header: far below the tens of seconds decoding
	 * such a file takes, loose enough for a loaded machine */
	CHECK(dt < 3.0 * timeout_scale());
	CHECK(err.len > 0 && !memchr(err.data, '\n', err.len));
	printf("hostile %s: %s (%.3f s)\n", name, err.data ? err.data : "", dt);
	buf_release(&out);
	buf_release(&err);
}

/* Noise, so that every format's data runs to the end of the file, cut
 * at two thirds. */
static void expect_truncated_fail(struct thumb_engine *e)
{
	const char *names[] = {"cut.png", "cut.webp", "cut.gif", "cut.tif"};
	VipsImage *noise = NULL, *im = NULL;
	struct buf src = BUF_INIT;
	void *data = NULL;
	size_t len = 0;

	vips_gaussnoise(&noise, 400, 300, "mean", 128.0, "sigma", 60.0, NULL);
	vips_cast(noise, &im, VIPS_FORMAT_UCHAR, NULL);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int rc = i == 0   ? vips_pngsave_buffer(im, &data, &len, NULL)
			 : i == 1 ? vips_webpsave_buffer(im, &data, &len, NULL)
			 : i == 2 ? vips_gifsave_buffer(im, &data, &len, NULL)
				  : vips_tiffsave_buffer(im, &data, &len, NULL);

		keep(&src, data, len, rc);
		src.len = src.len * 2 / 3;
		expect_eio_fast(e, &src, names[i]);
	}
	g_object_unref(noise);
	g_object_unref(im);
	buf_release(&src);
}

static void test_hostile(struct thumb_engine *e)
{
	VipsImage *im = solid_rgb(800, 600, 90, 10, 10), *big = NULL;
	struct buf src = BUF_INIT;
	void *data = NULL;
	size_t len = 0;

	keep(&src, data, len, vips_jpegsave_buffer(im, &data, &len, NULL));
	src.len /= 2;
	expect_eio_fast(e, &src, "truncated.jpg");
	buf_reset(&src);
	buf_adds(&src, "this is not an image, just some text\n");
	expect_eio_fast(e, &src, "text.jpg");
	buf_reset(&src);
	expect_eio_fast(e, &src, "empty.jpg");
	expect_truncated_fail(e);
	vips_black(&big, 30000, 30000, NULL);
	keep(&src, data, len,
	     vips_pngsave_buffer(big, &data, &len, "bitdepth", 1,
				 "compression", 9, NULL));
	CHECK(src.len > 0 && src.len < 1000000);
	expect_eio_fast(e, &src, "huge.png");
	g_object_unref(big);
	g_object_unref(im);
	buf_release(&src);
}

/* The real image set: every file fits the box, aspect kept. */
struct real_set {
	struct thumb_engine *e;
	int files;
	int bad;
};
static struct real_set *real_ctx; /* nftw() has no user pointer */

static int read_file(const char *path, struct buf *b)
{
	FILE *f = fopen(path, "rb");
	char chunk[65536];
	size_t n;

	if (!f)
		return errno;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(b, chunk, n);
	fclose(f);
	return 0;
}

/* Fits EDGE x EDGE, the long side exactly EDGE (or the source size when
 * smaller), the short side within one pixel of the source's aspect. */
static int check_fit(VipsImage *t, int sw, int sh)
{
	int tw = vips_image_get_width(t), th = vips_image_get_height(t);
	int wide = sw >= sh;
	int slong = wide ? sw : sh, sshort = wide ? sh : sw;
	int tlong = wide ? tw : th, tshort = wide ? th : tw;

	if (slong <= EDGE)
		return tw == sw && th == sh;
	return tlong == EDGE &&
	       fabs(tshort - (double)sshort * EDGE / slong) <= 1.0;
}

static int real_one(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	struct buf src = BUF_INIT, out = BUF_INIT;
	enum thumb_format f;
	VipsImage *hdr, *t = NULL;

	if (flag != FTW_F || thumb_format_of_name(path, &f))
		return 0;
	if (read_file(path, &src) == 0 &&
	    (hdr = vips_image_new_from_buffer(src.data, src.len, "", NULL))) {
		int sw = vips_image_get_width(hdr), sh = vips_image_get_height(hdr);

		real_ctx->files++;
		if (make(real_ctx->e, &src, path + ftw->base, &out, &t) ||
		    !t || !check_fit(t, sw, sh)) {
			real_ctx->bad++;
			fprintf(stderr, "  bad thumbnail: %s %dx%d -> %dx%d\n",
				path, sw, sh, t ? vips_image_get_width(t) : 0,
				t ? vips_image_get_height(t) : 0);
		}
		g_clear_object(&t);
		g_object_unref(hdr);
	}
	buf_release(&src);
	buf_release(&out);
	return 0;
}

static void test_real_set(struct thumb_engine *e)
{
	struct real_set rs = {.e = e};
	double t0 = mono_s();

	real_ctx = &rs;
	nftw("/usr/share/backgrounds", real_one, 16, FTW_PHYS);
	nftw("/usr/share/wallpapers", real_one, 16, FTW_PHYS);
	printf("real set: %d files, %d bad, %.2f s\n", rs.files, rs.bad,
	       mono_s() - t0);
	CHECK(rs.files >= 80);
	CHECK_INT(rs.bad, 0);
}

int main(void)
{
	struct thumb_engine *e = engine_for(EDGE, THUMB_CROP_NONE);
	struct thumb_engine *crop = engine_for(EDGE, THUMB_CROP_ATTENTION);

	CHECK(e && crop);
	if (!e || !crop)
		return check_done("thumb");
	CHECK_STR(thumb_engine_spec(e), "128/none/v2");
	CHECK_STR(thumb_engine_spec(crop), "128/attention/v2");
	test_names();
	test_orientation(e);
	test_gps_stripped(e);
	test_cmyk(e);
	test_png16(e);
	test_alpha(e);
	test_animated_gif(e);
	test_sizes(e, crop);
	test_formats(e);
	test_hostile(e);
	test_real_set(e);
	thumb_engine_destroy(crop);
	thumb_engine_destroy(e);
	thumb_thread_done();
	return check_done("thumb");
}
