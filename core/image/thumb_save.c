/*
 * thumb_save: encoders with every piece of metadata removed (see
 * thumb_save.h).
 */
#include "image/thumb_save.h"

#include <string.h>

#include <webp/mux.h>

/* Drop EXIF, XMP and ICCP from the WebP in *data (replaced in place). */
static int thumb_webp_strip(void **data, size_t *len)
{
	WebPData in = {*data, *len}, out = {NULL, 0};
	WebPMux *mux = WebPMuxCreate(&in, 0);
	static const char *const chunks[] = {"EXIF", "XMP ", "ICCP"};
	void *copy;
	int rc = -1;

	if (!mux) {
		vips_error("thumbnails", "%s", "cannot parse the WebP written");
		return -1;
	}
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++)
		WebPMuxDeleteChunk(mux, chunks[i]);
	if (WebPMuxAssemble(mux, &out) == WEBP_MUX_OK && out.size > 0) {
		copy = g_malloc(out.size);
		memcpy(copy, out.bytes, out.size);
		g_free(*data);
		*data = copy;
		*len = out.size;
		rc = 0;
	} else {
		vips_error("thumbnails", "%s", "cannot reassemble the WebP");
	}
	WebPDataClear(&out);
	WebPMuxDelete(mux);
	return rc;
}

static int thumb_save_webp(VipsImage *im, void **data, size_t *len)
{
	if (vips_webpsave_buffer(im, data, len, "Q", 80, "strip", TRUE, NULL))
		return -1;
	if (thumb_webp_strip(data, len)) {
		g_free(*data);
		*data = NULL;
		return -1;
	}
	return 0;
}

int thumb_save(VipsImage *im, enum thumb_format fmt, void **data, size_t *len)
{
	switch (fmt) {
	case THUMB_FMT_JPEG:
		return vips_jpegsave_buffer(im, data, len, "Q", 80,
					    "optimize_coding", TRUE, "strip",
					    TRUE, NULL);
	case THUMB_FMT_PNG:
		return vips_pngsave_buffer(im, data, len, "compression", 9,
					   "palette", TRUE, "Q", 90, "effort",
					   7, "strip", TRUE, NULL);
	case THUMB_FMT_WEBP:
		return thumb_save_webp(im, data, len);
	case THUMB_FMT_GIF:
		return vips_gifsave_buffer(im, data, len, "strip", TRUE, NULL);
	case THUMB_FMT_TIFF:
		return vips_tiffsave_buffer(
			im, data, len, "compression",
			VIPS_FOREIGN_TIFF_COMPRESSION_DEFLATE, "strip", TRUE,
			NULL);
	case THUMB_FMT_AVIF:
		return vips_heifsave_buffer(
			im, data, len, "Q", 50, "compression",
			VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "effort", 2, "strip",
			TRUE, NULL);
	default:
		return -1;
	}
}
