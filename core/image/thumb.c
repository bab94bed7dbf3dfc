/*
 * thumb: the thumbnail engine on libvips (see thumb.h).
 *
 * The pipeline of thumb_make(): refuse empty input; open the source's
 * header only (sequential access reads no pixels) and refuse it over the
 * pixel limit; vips_thumbnail_buffer() with shrink-on-load, autorotation
 * and fail_on=truncated for the loader, converting through the embedded
 * ICC profile to sRGB when there is one (libvips converts CMYK itself; an
 * sRGB transform of an untagged image would shift its colours); normalise
 * to 8 bits sRGB (or grey), flatten alpha on white for JPEG; encode with
 * metadata stripped.
 *
 * The only process-wide state is libvips' own initialisation, the set of
 * formats it can write, and a fixed malloc mmap threshold so that the
 * memory of a decode goes back to the system; all set once (pthread_once)
 * and never changed afterwards.
 */
#define _GNU_SOURCE /* strcasestr */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <vips/vips.h>

#include "base/log.h"
#include "image/thumb.h"
#include "image/thumb_save.h"

/* v2: TIFF sources give JPEG, animations stay animated, PNG is
 * palette-quantised, WebP has no EXIF; "/first" marks thumb_first_frame. */
#define THUMB_SPEC_VERSION "v2"
#define THUMB_PROBE_EDGE 16
#define THUMB_VIPS_THREADS_MAX 4
#define THUMB_FRAMES_MAX 64 /* frames of an animated thumbnail */

struct thumb_engine {
	struct thumb_conf conf;
	char spec[THUMB_SIZES_MAX][64]; /* one per size */
};

/* libvips' process-wide initialisation: written once under vips_once. */
static pthread_once_t vips_once = PTHREAD_ONCE_INIT;
static int vips_init_err;      /* 0 or the errno of a failed init */
static unsigned vips_savable;  /* bit per enum thumb_format */
/* Warnings of libvips' loaders that mean pixels are missing (truncated or
 * corrupt data): libvips reports them from its own threads and still
 * succeeds, so thumb_make_sizes() compares the count before and after. The
 * one piece of mutable process-wide state, forced by GLib's log handler;
 * exact only while one decode runs at a time (as in a worker). */
static atomic_uint vips_damage;

static const struct {
	const char *ext;
	enum thumb_format fmt;
} thumb_exts[] = {
	{"jpg", THUMB_FMT_JPEG}, {"jpeg", THUMB_FMT_JPEG},
	{"png", THUMB_FMT_PNG},  {"webp", THUMB_FMT_WEBP},
	{"gif", THUMB_FMT_GIF},  {"tif", THUMB_FMT_TIFF},
	{"tiff", THUMB_FMT_TIFF}, {"heic", THUMB_FMT_HEIC},
	{"heif", THUMB_FMT_HEIC}, {"avif", THUMB_FMT_AVIF},
};

static const struct {
	const char *name;
	const char *mime;
} thumb_fmts[THUMB_FMT__COUNT] = {
	[THUMB_FMT_JPEG] = {"jpeg", "image/jpeg"},
	[THUMB_FMT_PNG] = {"png", "image/png"},
	[THUMB_FMT_WEBP] = {"webp", "image/webp"},
	[THUMB_FMT_GIF] = {"gif", "image/gif"},
	[THUMB_FMT_TIFF] = {"tiff", "image/tiff"},
	[THUMB_FMT_HEIC] = {"heic", "image/heic"},
	[THUMB_FMT_AVIF] = {"avif", "image/avif"},
};

const char *thumb_format_name(enum thumb_format fmt)
{
	return fmt < THUMB_FMT__COUNT ? thumb_fmts[fmt].name : "jpeg";
}

const char *thumb_format_mime(enum thumb_format fmt)
{
	return fmt < THUMB_FMT__COUNT ? thumb_fmts[fmt].mime : "image/jpeg";
}

int thumb_format_parse(const char *name, enum thumb_format *out)
{
	for (int f = 0; f < THUMB_FMT__COUNT; f++) {
		if (strcmp(name, thumb_fmts[f].name) == 0) {
			*out = (enum thumb_format)f;
			return 0;
		}
	}
	return EINVAL;
}

int thumb_format_of_name(const char *name, enum thumb_format *out)
{
	const char *dot = strrchr(name, '.');

	if (!dot || dot == name || strchr(dot, '/'))
		return ENOENT;
	for (size_t i = 0; i < sizeof(thumb_exts) / sizeof(thumb_exts[0]); i++) {
		if (strcasecmp(dot + 1, thumb_exts[i].ext) == 0) {
			*out = thumb_exts[i].fmt;
			return 0;
		}
	}
	return ENOENT;
}

/* Can fmt be written? A real encode of a small image, not a registry
 * look-up: a saver can be registered while its codec is missing. HEIC is
 * never written: browsers do not display it (the gallery would show
 * nothing) and x265 leaks memory on every encode; a .heic source gets a
 * JPEG thumbnail named NAME.heic.jpg. */
static int thumb_probe(VipsImage *sample, enum thumb_format fmt)
{
	void *data = NULL;
	size_t len = 0;
	int ok = thumb_save(sample, fmt, &data, &len) == 0 && len > 0;

	g_free(data);
	vips_error_clear();
	return ok;
}

/* Does a libvips warning say that the decoded pixels are incomplete? */
static int thumb_damage_warning(const char *message)
{
	static const char *const damage[] = {
		"read gave", "not enough data", "unexpected end",
		"error in tile", "truncated", "premature end", "corrupt",
		"read error", "incomplete", "unable to", "invalid",
		"inconsistent", "bogus",
	};

	for (size_t i = 0; i < sizeof(damage) / sizeof(damage[0]); i++)
		if (strcasestr(message, damage[i]))
			return 1;
	return 0;
}

/* libvips' warnings (about EXIF oddities, tiles of a truncated file...)
 * go to the log at debug level instead of stderr; those that mean damage
 * are counted. */
static void thumb_glib_log(const char *domain, GLogLevelFlags level,
			   const char *message, void *arg)
{
	(void)level;
	(void)arg;
	if (message && thumb_damage_warning(message))
		atomic_fetch_add(&vips_damage, 1);
	log_debug("%s: %s", domain ? domain : "glib", message);
}

static void *thumb_init_main(void *arg)
{
	VipsImage *sample = NULL;

	(void)arg;
	if (VIPS_INIT("imgfs")) {
		vips_init_err = EIO;
		log_error("thumbnails: libvips init failed: %s",
			  vips_error_buffer());
		vips_error_clear();
		return NULL;
	}
	g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE |
				  G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG,
			  thumb_glib_log, NULL);
	vips_block_untrusted_set(TRUE);
	vips_cache_set_max(0);
	vips_cache_set_max_mem(0);
	vips_cache_set_max_files(0);
	if (vips_black(&sample, THUMB_PROBE_EDGE, THUMB_PROBE_EDGE, "bands", 3,
		       NULL) == 0) {
		/* TIFF, like HEIC, is never written: browsers do not show
		 * it; such sources get JPEG thumbnails named NAME.tif.jpg. */
		for (int f = 0; f < THUMB_FMT__COUNT; f++)
			if (f != THUMB_FMT_TIFF &&
			    thumb_probe(sample, (enum thumb_format)f))
				vips_savable |= 1u << f;
		g_object_unref(sample);
	}
	vips_error_clear();
	vips_thread_shutdown();
	return NULL;
}

/* libvips is initialised on a short-lived thread of its own, so that its
 * per-thread state does not stay with whichever caller came first. */
static void thumb_init_once(void)
{
	pthread_t th;
	int rc = pthread_create(&th, NULL, thumb_init_main, NULL);

	if (rc) {
		vips_init_err = rc;
		log_error("thumbnails: cannot start libvips init thread: %s",
			  strerror(rc));
		return;
	}
	pthread_join(th, NULL);
}

static int thumb_init(void)
{
	pthread_once(&vips_once, thumb_init_once);
	return vips_init_err;
}

int thumb_can_save(enum thumb_format fmt)
{
	if (thumb_init() || fmt >= THUMB_FMT__COUNT)
		return 0;
	return (vips_savable >> fmt) & 1u;
}

void thumb_thread_done(void)
{
	vips_thread_shutdown();
}

static const char *thumb_crop_name(enum thumb_crop crop)
{
	switch (crop) {
	case THUMB_CROP_ATTENTION:
		return "attention";
	case THUMB_CROP_CENTRE:
		return "centre";
	default:
		return "none";
	}
}

static int thumb_vips_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > THUMB_VIPS_THREADS_MAX ? THUMB_VIPS_THREADS_MAX : (int)n;
}

struct thumb_engine *thumb_engine_create(const struct thumb_conf *conf)
{
	struct thumb_engine *e;
	int rc = thumb_init();

	if (rc) {
		errno = rc;
		return NULL;
	}
	if (conf->size == 0 || conf->max_pixels == 0) {
		log_error("thumbnails: size and max_pixels must be positive");
		errno = EINVAL;
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->conf = *conf;
	e->conf.sizes_text = NULL; /* not owned, and not needed */
	if (e->conf.nsizes == 0 || e->conf.nsizes > THUMB_SIZES_MAX) {
		e->conf.nsizes = 1;
		e->conf.sizes[0] = conf->size;
	}
	for (unsigned i = 0; i < e->conf.nsizes; i++)
		snprintf(e->spec[i], sizeof(e->spec[i]), "%u/%s/%s%s",
			 e->conf.sizes[i], thumb_crop_name(conf->crop),
			 THUMB_SPEC_VERSION, conf->first_frame ? "/first" : "");
	vips_concurrency_set(thumb_vips_threads());
	return e;
}

void thumb_engine_destroy(struct thumb_engine *e)
{
	free(e);
}

const char *thumb_engine_spec(const struct thumb_engine *e)
{
	return e->spec[0];
}

unsigned thumb_engine_nsizes(const struct thumb_engine *e)
{
	return e->conf.nsizes;
}

unsigned thumb_engine_size(const struct thumb_engine *e, unsigned i)
{
	return i < e->conf.nsizes ? e->conf.sizes[i] : 0;
}

const char *thumb_engine_spec_n(const struct thumb_engine *e, unsigned i)
{
	return i < e->conf.nsizes ? e->spec[i] : NULL;
}

int thumb_output_name(const char *src_name, struct buf *out)
{
	enum thumb_format fmt;

	if (thumb_format_of_name(src_name, &fmt))
		return EINVAL;
	if (buf_adds(out, src_name))
		return ENOMEM;
	if (!thumb_can_save(fmt) && buf_adds(out, ".jpg"))
		return ENOMEM;
	return 0;
}

/* Is name "<stem>.jpg" for a stem whose format cannot be written? Then
 * append the stem to out: 0, ENOENT or ENOMEM. */
static int thumb_appended_stem(const char *name, struct buf *out)
{
	size_t n = strlen(name);
	struct buf stem = BUF_INIT;
	enum thumb_format fmt;
	int rc = ENOENT;

	if (n <= 4 || strcmp(name + n - 4, ".jpg") != 0)
		return ENOENT;
	if (buf_add(&stem, name, n - 4))
		return ENOMEM;
	if (thumb_format_of_name(stem.data, &fmt) == 0 && !thumb_can_save(fmt))
		rc = buf_add(out, stem.data, stem.len) ? ENOMEM : 0;
	buf_release(&stem);
	return rc;
}

int thumb_source_name(const char *thumb_name, struct buf *out)
{
	enum thumb_format fmt;
	int rc = thumb_appended_stem(thumb_name, out);

	if (rc != ENOENT)
		return rc;
	if (thumb_format_of_name(thumb_name, &fmt) || !thumb_can_save(fmt))
		return ENOENT;
	return buf_adds(out, thumb_name) ? ENOMEM : 0;
}

/* Move libvips' error text (or fallback) into err as one line. */
static int thumb_fail(struct buf *err, const char *fallback)
{
	char *msg = vips_error_buffer_copy();
	const char *text = msg && *msg ? msg : fallback;
	size_t start = err ? err->len : 0;

	if (err && buf_adds(err, text) == 0) {
		for (size_t i = start; i < err->len; i++)
			if (err->data[i] == '\n' || err->data[i] == '\r')
				err->data[i] = ' ';
		while (err->len > start && err->data[err->len - 1] == ' ')
			err->data[--err->len] = '\0';
	}
	g_free(msg);
	return EIO;
}

/* The source's size as shown: its header's, turned by EXIF orientations
 * 5 to 8 (a quarter turn). */
static void thumb_shown_size(VipsImage *im, struct thumb_source_info *shown)
{
	int o = 1;

	if (!shown)
		return;
	if (vips_image_get_typeof(im, VIPS_META_ORIENTATION))
		vips_image_get_int(im, VIPS_META_ORIENTATION, &o);
	shown->width = (unsigned)vips_image_get_width(im);
	shown->height = (unsigned)vips_image_get_height(im);
	if (o >= 5 && o <= 8) {
		unsigned w = shown->width;

		shown->width = shown->height;
		shown->height = w;
	}
}

/* What the header of a source says. */
struct thumb_src_info {
	int has_icc;     /* embeds an ICC profile */
	int frames;      /* frames to decode: 1, or more for an animation */
};

/* Frames of an animation to decode: bounded by THUMB_FRAMES_MAX and by
 * the pixel limit over all of them; 1 when the output is a still. */
static int thumb_frames(const struct thumb_engine *e, VipsImage *im,
			enum thumb_format out)
{
	uint64_t frame = (uint64_t)vips_image_get_width(im) *
			 (uint64_t)vips_image_get_height(im);
	int pages = vips_image_get_n_pages(im), n;

	if (e->conf.first_frame || pages <= 1 || frame == 0 ||
	    (out != THUMB_FMT_GIF && out != THUMB_FMT_WEBP))
		return 1;
	n = pages < THUMB_FRAMES_MAX ? pages : THUMB_FRAMES_MAX;
	if ((uint64_t)n * frame > e->conf.max_pixels)
		n = (int)(e->conf.max_pixels / frame);
	return n > 1 ? n : 1;
}

/* Read the header only and refuse a source over the pixel limit; tell
 * whether it embeds an ICC profile, how many frames to decode, and its
 * size as shown (shown may be NULL). */
static int thumb_check_header(const struct thumb_engine *e, const void *src,
			      size_t len, enum thumb_format out,
			      struct thumb_src_info *info,
			      struct thumb_source_info *shown, struct buf *err)
{
	VipsImage *im = vips_image_new_from_buffer(
		src, len, "", "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
		VIPS_FAIL_ON_TRUNCATED, NULL);
	uint64_t pixels;

	if (!im)
		return thumb_fail(err, "unknown image format");
	pixels = (uint64_t)vips_image_get_width(im) *
		 (uint64_t)vips_image_get_height(im);
	if (pixels > e->conf.max_pixels) {
		if (err)
			buf_addf(err,
				 "image is %dx%d, over the limit of %llu pixels",
				 vips_image_get_width(im),
				 vips_image_get_height(im),
				 (unsigned long long)e->conf.max_pixels);
		g_object_unref(im);
		return EIO;
	}
	info->has_icc = vips_image_get_typeof(im, VIPS_META_ICC_NAME) != 0;
	info->frames = thumb_frames(e, im, out);
	thumb_shown_size(im, shown);
	g_object_unref(im);
	return 0;
}

static VipsInteresting thumb_interesting(enum thumb_crop crop)
{
	switch (crop) {
	case THUMB_CROP_ATTENTION:
		return VIPS_INTERESTING_ATTENTION;
	case THUMB_CROP_CENTRE:
		return VIPS_INTERESTING_CENTRE;
	default:
		return VIPS_INTERESTING_NONE;
	}
}

/* Replace *im by next after an operation that made it: 0, or -1 when
 * the operation failed (rc != 0; *im is kept). */
static int thumb_step(VipsImage **im, VipsImage *next, int rc)
{
	if (rc)
		return -1;
	g_object_unref(*im);
	*im = next;
	return 0;
}

/* 8-bit sRGB (or 8-bit grey), alpha flattened on white for JPEG. */
static int thumb_normalise(VipsImage **im, enum thumb_format fmt)
{
	VipsInterpretation type = vips_image_get_interpretation(*im);
	int grey = type == VIPS_INTERPRETATION_B_W ||
		   type == VIPS_INTERPRETATION_GREY16;
	VipsInterpretation want = grey ? VIPS_INTERPRETATION_B_W
				       : VIPS_INTERPRETATION_sRGB;
	VipsImage *next = NULL;
	int rc;

	if ((*im)->BandFmt != VIPS_FORMAT_UCHAR || type != want) {
		rc = vips_colourspace(*im, &next, want, NULL);
		if (thumb_step(im, next, rc))
			return -1;
	}
	if ((*im)->BandFmt != VIPS_FORMAT_UCHAR) {
		rc = vips_cast(*im, &next, VIPS_FORMAT_UCHAR, NULL);
		if (thumb_step(im, next, rc))
			return -1;
	}
	if (fmt == THUMB_FMT_JPEG && vips_image_hasalpha(*im)) {
		VipsArrayDouble *white = vips_array_double_newv(1, 255.0);

		rc = vips_flatten(*im, &next, "background", white, NULL);
		vips_area_unref(VIPS_AREA(white));
		if (thumb_step(im, next, rc))
			return -1;
	}
	return 0;
}

static int thumb_encode(VipsImage *im, enum thumb_format fmt,
			struct buf *out, struct buf *err)
{
	void *data = NULL;
	size_t len = 0;
	int rc;

	if (thumb_save(im, fmt, &data, &len))
		return thumb_fail(err, "encoder failed");
	rc = buf_add(out, data, len) ? ENOMEM : 0;
	g_free(data);
	return rc;
}

/* The largest of the first n sizes. */
static unsigned thumb_edge_max(const struct thumb_engine *e, unsigned n)
{
	unsigned edge = 0;

	for (unsigned i = 0; i < n; i++)
		if (e->conf.sizes[i] > edge)
			edge = e->conf.sizes[i];
	return edge;
}

/* Decode src once, shrunk on load to fit edge, normalised, and (when
 * other sizes are made from it) rendered to memory so that they do not
 * decode again. */
static int thumb_decode(const struct thumb_engine *e, const void *src,
			size_t len, unsigned edge,
			const struct thumb_src_info *info, int to_memory,
			enum thumb_format f, VipsImage **out, struct buf *err)
{
	VipsImage *im = NULL, *mem;
	char opts[64];

	/* Only the loaders of animations know "n". */
	if (info->frames > 1)
		snprintf(opts, sizeof(opts), "fail_on=truncated,n=%d",
			 info->frames);
	else
		snprintf(opts, sizeof(opts), "fail_on=truncated");
	if (vips_thumbnail_buffer((void *)src, len, &im, (int)edge, "height",
				  (int)edge, "size", VIPS_SIZE_DOWN, "crop",
				  thumb_interesting(e->conf.crop),
				  "export_profile",
				  info->has_icc ? "srgb" : NULL,
				  "option_string", opts, NULL))
		return thumb_fail(err, "cannot decode image");
	if (thumb_normalise(&im, f)) {
		g_object_unref(im);
		return thumb_fail(err, "cannot convert image");
	}
	if (to_memory) {
		mem = vips_image_copy_memory(im);
		g_object_unref(im);
		if (!mem)
			return thumb_fail(err, "cannot decode image");
		im = mem;
	}
	*out = im;
	return 0;
}

/* Encode the size edge of the decoded image big into out. */
static int thumb_emit(const struct thumb_engine *e, VipsImage *big,
		      unsigned edge, enum thumb_format f, struct buf *out,
		      struct buf *err)
{
	VipsImage *im = NULL;
	int rc;

	if (edge >= (unsigned)vips_image_get_width(big) &&
	    edge >= (unsigned)vips_image_get_page_height(big))
		return thumb_encode(big, f, out, err);
	if (vips_thumbnail_image(big, &im, (int)edge, "height", (int)edge,
				 "size", VIPS_SIZE_DOWN, "crop",
				 thumb_interesting(e->conf.crop), "no_rotate",
				 TRUE, NULL))
		return thumb_fail(err, "cannot resize image");
	rc = thumb_normalise(&im, f) ? thumb_fail(err, "cannot convert image")
				     : thumb_encode(im, f, out, err);
	g_object_unref(im);
	return rc;
}

/* Did libvips report damage during the pipeline, although every call
 * succeeded? (truncated data: "error in tile", "read gave N warnings",
 * "not enough data"...; in its error buffer or as a warning. Not every
 * error it records is one: the HEIF loader's probing leaves "bad seek".) */
static int thumb_damaged(unsigned damage0, struct buf *err)
{
	const char *msg = vips_error_buffer();

	if (msg && *msg && thumb_damage_warning(msg))
		return thumb_fail(err, "decoder error");
	if (atomic_load(&vips_damage) == damage0)
		return 0;
	if (err)
		buf_adds(err, "damaged or truncated image data");
	return EIO;
}

int thumb_make_sizes(const struct thumb_engine *e, const void *src,
		     size_t len, const char *src_name, unsigned n,
		     struct buf *outs, enum thumb_format *fmt, struct buf *err)
{
	return thumb_make_sizes_info(e, src, len, src_name, n, outs, fmt, err,
				     NULL);
}

int thumb_make_sizes_info(const struct thumb_engine *e, const void *src,
			  size_t len, const char *src_name, unsigned n,
			  struct buf *outs, enum thumb_format *fmt,
			  struct buf *err, struct thumb_source_info *shown)
{
	enum thumb_format f = THUMB_FMT_JPEG;
	struct thumb_src_info info = {0, 1};
	VipsImage *big = NULL;
	unsigned edge, damage0;
	int rc;

	if (n == 0 || n > e->conf.nsizes)
		n = e->conf.nsizes;
	if (thumb_format_of_name(src_name, &f) || !thumb_can_save(f))
		f = THUMB_FMT_JPEG;
	if (len == 0) {
		if (err)
			buf_adds(err, "empty file");
		return EIO;
	}
	vips_error_clear();
	damage0 = atomic_load(&vips_damage);
	rc = thumb_check_header(e, src, len, f, &info, shown, err);
	edge = thumb_edge_max(e, n);
	if (!rc)
		rc = thumb_decode(e, src, len, edge, &info, n > 1, f, &big,
				  err);
	for (unsigned i = 0; !rc && i < n; i++)
		rc = thumb_emit(e, big, e->conf.sizes[i], f, &outs[i], err);
	if (big)
		g_object_unref(big);
	if (rc == 0)
		rc = thumb_damaged(damage0, err);
	vips_error_clear();
	if (rc == 0)
		*fmt = f;
	return rc;
}

int thumb_make(const struct thumb_engine *e, const void *src, size_t len,
	       const char *src_name, struct buf *out, enum thumb_format *fmt,
	       struct buf *err)
{
	return thumb_make_sizes(e, src, len, src_name, 1, out, fmt, err);
}
