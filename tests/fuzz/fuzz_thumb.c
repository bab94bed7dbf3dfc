/*
 * libFuzzer target: the thumbnail engine on arbitrary bytes. The first
 * byte picks the file name (and so the output format); the rest is the
 * source. Every input must give a thumbnail or EIO, never a crash, and
 * the pixel limit is kept small so that no input decodes for long.
 * fuzz-sources: core/image/thumb.c core/base/buf.c core/base/log.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/buf.h"
#include "image/thumb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_names[] = {
	"a.jpg", "a.png", "a.webp", "a.gif", "a.tif", "a.heic", "a.avif",
	"a.JPEG",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct thumb_engine *e;
	struct thumb_conf conf = {.size = 64, .crop = THUMB_CROP_NONE,
				  .max_pixels = 4000000, .concurrency = 1};
	struct buf out = BUF_INIT, err = BUF_INIT;
	enum thumb_format fmt;
	int rc;

	if (!e)
		e = thumb_engine_create(&conf);
	if (!e || size < 1)
		return 0;
	rc = thumb_make(e, data + 1, size - 1,
			fuzz_names[data[0] % (sizeof(fuzz_names) /
					      sizeof(fuzz_names[0]))],
			&out, &fmt, &err);
	if (rc != 0 && rc != EIO && rc != ENOMEM)
		abort();
	if (rc == 0 && out.len == 0)
		abort();
	buf_release(&out);
	buf_release(&err);
	return 0;
}
