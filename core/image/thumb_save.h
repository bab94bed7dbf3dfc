/*
 * thumb_save: the encoders of the thumbnail engine (private to thumb.c).
 *
 * thumb_save() encodes im as fmt into a g_malloc'ed buffer with no
 * metadata at all: libvips' strip for every format, and for WebP (whose
 * saver in libvips 8.14 writes an EXIF block even when stripping) the
 * EXIF, XMP and ICCP chunks removed afterwards with libwebpmux. PNG is
 * palette-quantised (libimagequant, when this libvips has it) at the
 * strongest compression; an image with a page-height of fewer rows than
 * its height is an animation and is written as one (GIF, WebP). 0, or -1
 * with libvips' error set.
 *
 * Thread safety: none needed; no state.
 */
#ifndef IMGFS_THUMB_SAVE_H
#define IMGFS_THUMB_SAVE_H

#include <stddef.h>

#include <vips/vips.h>

#include "image/thumb.h"

int thumb_save(VipsImage *im, enum thumb_format fmt, void **data,
	       size_t *len);

#endif
