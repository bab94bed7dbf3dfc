/*
 * thumb: the thumbnail engine on libvips.
 *
 * Turns the bytes of a source image into the bytes of its thumbnail:
 * shrink-on-load, fit inside size x size (or fill it exactly when
 * cropping), never upscaled, EXIF orientation applied, converted to sRGB,
 * 8 bits per sample, all metadata stripped (EXIF, XMP, ICC; WebP too),
 * animations (GIF, WebP) kept as animations of at most 64 frames within
 * max_pixels unless conf->first_frame, transparency kept where the output
 * format has it and flattened on white for JPEG, PNG palette-quantised.
 * The output format follows the source's file name extension; where
 * libvips cannot write that format on this machine (and always for HEIC
 * and TIFF, which browsers cannot show) the output is JPEG and ".jpg" is
 * appended to the name.
 *
 * Safety: libvips' untrusted loaders are blocked, its operation cache is
 * off, a source over conf->max_pixels is refused from its header before
 * any pixel is decoded, and truncated data is an error: any damage libvips
 * reports during the pipeline (its error buffer, or a loader's warning
 * such as "error in tile") fails the decode, also when every call
 * succeeded. That check counts warnings process-wide, so it is exact only
 * while one decode runs at a time, as in a worker (worker.h), where the
 * daemon runs every decode.
 *
 * libvips is initialised once per process, the first time any function
 * here needs it (thumb_engine_create or thumb_output_name); do that after
 * daemonising. The same initialisation fixes glibc's mmap threshold at
 * 256 KiB (process-wide), so that large decode buffers are returned to
 * the system when freed. Every libvips call leaves per-thread state behind: a thread
 * that calls thumb_make() and that libvips did not create must call
 * thumb_thread_done() before it exits (the thumbs service runs decodes on
 * its own worker threads for this reason).
 *
 * Thread safety: an engine is immutable after creation; thumb_make() may
 * run on several threads at once.
 */
#ifndef IMGFS_THUMB_H
#define IMGFS_THUMB_H

#include <stddef.h>

#include "base/buf.h"
#include "config/cfg.h"

enum thumb_format {
	THUMB_FMT_JPEG,
	THUMB_FMT_PNG,
	THUMB_FMT_WEBP,
	THUMB_FMT_GIF,
	THUMB_FMT_TIFF,
	THUMB_FMT_HEIC, /* HEIF with HEVC: .heic, .heif; read, never written */
	THUMB_FMT_AVIF, /* HEIF with AV1 */
	THUMB_FMT__COUNT
};

struct thumb_engine;

/* Initialise libvips (once per process) and make an engine for conf,
 * which is copied. NULL with errno set (and a log line) on failure. */
struct thumb_engine *thumb_engine_create(const struct thumb_conf *conf);
void thumb_engine_destroy(struct thumb_engine *e);

/* The cache spec of this engine's output, e.g. "128/none/v2": two engines
 * with the same spec make the same thumbnails. Owned by the engine. */
const char *thumb_engine_spec(const struct thumb_engine *e);

/* The sizes this engine makes (conf->sizes, at least one) and the cache
 * spec of size i ("256/none/v2"); NULL / 0 past the last. */
unsigned thumb_engine_nsizes(const struct thumb_engine *e);
unsigned thumb_engine_size(const struct thumb_engine *e, unsigned i);
const char *thumb_engine_spec_n(const struct thumb_engine *e, unsigned i);

/* The format a file name's extension names (case-insensitive): 0 or
 * ENOENT when it is not one of jpg jpeg png webp gif tif tiff heic heif
 * avif. */
int thumb_format_of_name(const char *name, enum thumb_format *out);
/* Can libvips write fmt on this machine? (a real trial encode, done once
 * per process). */
int thumb_can_save(enum thumb_format fmt);
/* "jpeg", "png", ...: a short stable name, and its MIME type. */
const char *thumb_format_name(enum thumb_format fmt);
const char *thumb_format_mime(enum thumb_format fmt);
/* Parse a short name back; 0 or EINVAL. */
int thumb_format_parse(const char *name, enum thumb_format *out);

/* The thumbnail's file name for src_name, appended to out: the same, or
 * with ".jpg" appended when the format cannot be written here. 0, EINVAL
 * (not an image name) or ENOMEM. */
int thumb_output_name(const char *src_name, struct buf *out);
/* The inverse: the source file name for a thumbnail file name. When both
 * "a.heic" and "a.heic.jpg" could map to "a.heic.jpg", the appended form
 * wins ("a.heic"). 0, ENOENT (no source maps to it) or ENOMEM. */
int thumb_source_name(const char *thumb_name, struct buf *out);

/*
 * Make the thumbnail (the first size) of the len bytes at src, whose file name (for the
 * output format and for log lines) is src_name. On success appends the
 * encoded thumbnail to out, sets *fmt and returns 0. On failure returns
 * EIO (undecodable, truncated, not an image, over the pixel limit, or an
 * encoder error) with libvips' reason in err (appended, one line, may be
 * NULL), or ENOMEM. Logs nothing: the caller decides what to log.
 */
int thumb_make(const struct thumb_engine *e, const void *src, size_t len,
	       const char *src_name, struct buf *out, enum thumb_format *fmt,
	       struct buf *err);

/*
 * thumb_make() for the first n sizes of the engine at once (n = 0: all of
 * them) from one decode: the source is shrunk on load to the largest and
 * the smaller ones are made from that. outs[i] gets size i appended; on
 * failure the contents of outs are unspecified. Same returns as
 * thumb_make().
 */
int thumb_make_sizes(const struct thumb_engine *e, const void *src,
		     size_t len, const char *src_name, unsigned n,
		     struct buf *outs, enum thumb_format *fmt, struct buf *err);

/* What the header of a source said. */
struct thumb_source_info {
	unsigned width, height; /* as shown: EXIF orientation applied; the
				   first frame of an animation */
};

/* thumb_make_sizes(), and on success the source's size in *info. */
int thumb_make_sizes_info(const struct thumb_engine *e, const void *src,
			  size_t len, const char *src_name, unsigned n,
			  struct buf *outs, enum thumb_format *fmt,
			  struct buf *err, struct thumb_source_info *info);

/* Release libvips' per-thread state of the calling thread; call before a
 * thread that ran thumb_make() exits. */
void thumb_thread_done(void);

#endif
