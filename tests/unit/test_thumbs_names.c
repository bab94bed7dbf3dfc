/*
 * test_thumbs_names: the thumbnail service's names and keys, which need
 * no network: which names are images, source name <-> thumbnail name,
 * source key -> thumbnail key, and a peek at an empty cache.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "image/worker.h"
#include "base/buf.h"
#include "image/thumb.h"
#include "image/thumbs.h"
#include "tests/unit/check.h"

static void test_is_image(void)
{
	CHECK(thumbs_is_image("a.jpg"));
	CHECK(thumbs_is_image("A.JPEG"));
	CHECK(thumbs_is_image("x.y.PnG"));
	CHECK(thumbs_is_image("cat.webp"));
	CHECK(thumbs_is_image("anim.gif"));
	CHECK(thumbs_is_image("scan.tif"));
	CHECK(thumbs_is_image("scan.TIFF"));
	CHECK(thumbs_is_image("phone.heic"));
	CHECK(thumbs_is_image("phone.heif"));
	CHECK(thumbs_is_image("new.avif"));
	CHECK(!thumbs_is_image("notes.txt"));
	CHECK(!thumbs_is_image("jpg"));
	CHECK(!thumbs_is_image(".jpg"));
	CHECK(!thumbs_is_image("a.jpg.txt"));
	CHECK(!thumbs_is_image("a.jp"));
	CHECK(!thumbs_is_image(""));
}

static void check_name(const char *src, const char *want)
{
	struct buf t = BUF_INIT, s = BUF_INIT;

	CHECK_INT(thumbs_name_for(src, &t), 0);
	CHECK_STR(t.data, want);
	CHECK_INT(thumbs_source_for(t.data, &s), 0);
	CHECK_STR(s.data, src);
	buf_release(&t);
	buf_release(&s);
}

static void test_names(void)
{
	struct buf b = BUF_INIT;

	check_name("a.jpg", "a.jpg");
	check_name("b c+d%.PNG", "b c+d%.PNG");
	check_name("x.webp", "x.webp");
	check_name("phone.heic", "phone.heic.jpg"); /* never written as HEIC */
	check_name("phone.HEIF", "phone.HEIF.jpg");
	check_name("snow \xe2\x9d\x84.gif", "snow \xe2\x9d\x84.gif");
	if (thumb_can_save(THUMB_FMT_AVIF))
		check_name("n.avif", "n.avif");
	else
		check_name("n.avif", "n.avif.jpg");
	CHECK_INT(thumbs_name_for("readme.md", &b), EINVAL);
	CHECK_INT(thumbs_source_for("readme.md", &b), ENOENT);
	CHECK_INT(thumbs_source_for("a.txt.heic", &b), ENOENT);
	/* "x.jpg.jpg" is the thumbnail of itself, not of "x.jpg". */
	CHECK_INT(thumbs_source_for("x.jpg.jpg", &b), 0);
	CHECK_STR(b.data, "x.jpg.jpg");
	buf_release(&b);
}

static void check_key(struct thumbs *t, const char *src, const char *want)
{
	struct buf k = BUF_INIT;
	int rc = thumbs_key_for(t, src, &k);

	if (want) {
		CHECK_INT(rc, 0);
		CHECK_STR(k.data, want);
	} else {
		CHECK_INT(rc, EINVAL);
	}
	buf_release(&k);
}

static void test_keys(const char *dir)
{
	struct thumb_conf tc = {.size = 128, .crop = THUMB_CROP_NONE,
				.max_pixels = 100000000, .concurrency = 2};
	struct cache_conf cc = {.dir = (char *)dir, .max_bytes = 1 << 20};
	char up[] = "uploads/", th[] = "thumbnails/";
	struct fs_conf fc = {.uploads_prefix = up, .thumbs_prefix = th};
	struct thumbs *t = thumbs_create(&tc, &cc, &fc, NULL, NULL);
	uint64_t size = 1;

	CHECK(t != NULL);
	if (!t)
		return;
	check_key(t, "uploads/a.jpg", "thumbnails/a.jpg");
	check_key(t, "uploads/x/y z/b.png", "thumbnails/x/y z/b.png");
	check_key(t, "uploads/deep/p.heic", "thumbnails/deep/p.heic.jpg");
	check_key(t, "elsewhere/a.jpg", NULL);
	check_key(t, "uploads/", NULL);
	check_key(t, "uploads/folder/", NULL);
	check_key(t, "uploads/notes.txt", NULL);
	CHECK_INT(thumbs_peek_size(t, "uploads/a.jpg", "\"e\"", &size), ENOENT);
	CHECK_INT(thumbs_get(t, "uploads/a.jpg", "", NULL), EINVAL);
	thumbs_destroy(t);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/imgfs-test-thumbs-XXXXXX";
	struct buf cmd = BUF_INIT;

	/* The thumbnail workers this test starts are this binary. */
	if (worker_dispatch(argc, argv) >= 0)
		return 1;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_is_image();
	test_names();
	test_keys(dir);
	buf_addf(&cmd, "rm -rf '%s'", dir);
	if (system(cmd.data) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	buf_release(&cmd);
	return check_done("thumbs_names");
}
