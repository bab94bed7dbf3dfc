/* Unit tests for core/xml: S3 response bodies, good and hostile.
 * Fixtures live in tests/unit/data/xml (run from the repository root, or
 * name the directory as the first argument). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "base/buf.h"
#include "store/xml.h"

static const char *fixture_dir = "tests/unit/data/xml";

static int load(const char *name, struct buf *out)
{
	char path[512];
	char chunk[4096];
	size_t n;
	FILE *f;

	buf_reset(out);
	snprintf(path, sizeof(path), "%s/%s", fixture_dir, name);
	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "cannot open %s\n", path);
		return ENOENT;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(out, chunk, n);
	fclose(f);
	return 0;
}

static void test_list_page(void)
{
	struct buf b = BUF_INIT;
	struct store_list_page p;
	int truncated = -1;

	CHECK_INT(load("list_page1.xml", &b), 0);
	CHECK_INT(xml_parse_list(b.data, b.len, &p, &truncated), 0);
	CHECK_INT(truncated, 1);
	CHECK_INT(p.nentries, 2);
	CHECK_STR(p.entries[0].key, "uploads/a b+c%d.jpg");
	CHECK_INT(p.entries[0].size, 1234567);
	CHECK_INT(p.entries[0].mtime, 1795626390);
	CHECK_STR(p.entries[0].etag, "\"9b2cf535f27731c974343645a3985328\"");
	CHECK_STR(p.entries[1].key, "uploads/line\nbreak\xc3\xa9.png");
	CHECK_INT(p.entries[1].size, 0);
	CHECK_INT(p.entries[1].mtime, 1255369830);
	CHECK_STR(p.entries[1].etag, "\"3858f62230ac3c915f300c664312c11f-3\"");
	CHECK_INT(p.nprefixes, 2);
	CHECK_STR(p.prefixes[0], "uploads/big/");
	CHECK_STR(p.prefixes[1], "uploads/sp ace/");
	CHECK_STR(p.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	store_list_page_release(&p);
	CHECK(p.entries == NULL && p.nentries == 0 && p.next_token == NULL);
	buf_release(&b);
}

static void test_list_last_and_empty(void)
{
	struct buf b = BUF_INIT;
	struct store_list_page p;
	int truncated = -1;

	CHECK_INT(load("list_last.xml", &b), 0);
	CHECK_INT(xml_parse_list(b.data, b.len, &p, &truncated), 0);
	CHECK_INT(truncated, 0);
	CHECK_INT(p.nentries, 1);
	/* no EncodingType: '+' stays a plus */
	CHECK_STR(p.entries[0].key, "plain key+with plus.txt");
	CHECK(p.entries[0].size == UINT64_MAX);
	CHECK(p.next_token == NULL);
	store_list_page_release(&p);

	CHECK_INT(load("list_empty.xml", &b), 0);
	CHECK_INT(xml_parse_list(b.data, b.len, &p, NULL), 0);
	CHECK_INT(p.nentries, 0);
	CHECK_INT(p.nprefixes, 0);
	store_list_page_release(&p);
	buf_release(&b);
}

static void test_mpu_documents(void)
{
	struct buf b = BUF_INIT;
	struct xml_error xe = {{0}, {0}};
	char etag[STORE_ETAG_MAX] = "";
	char *id = NULL;

	CHECK_INT(load("initiate.xml", &b), 0);
	CHECK_INT(xml_parse_initiate(b.data, b.len, &id), 0);
	CHECK_STR(id, "2~iCw_lDY6vdDmt6TQ8c-TnE2UjPgi-Xx");
	free(id);

	CHECK_INT(load("complete.xml", &b), 0);
	CHECK_INT(xml_parse_complete(b.data, b.len, etag, &xe), 0);
	CHECK_STR(etag, "\"7fc2e5e3b4e9a1d8a2c1f0e9d8c7b6a5-128\"");
	/* the wrong root for the other parsers */
	CHECK_INT(xml_parse_copy(b.data, b.len, etag, &xe), EINVAL);
	CHECK_INT(xml_parse_initiate(b.data, b.len, &id), EINVAL);
	CHECK(id == NULL);

	CHECK_INT(load("complete_error.xml", &b), 0);
	CHECK_INT(xml_parse_complete(b.data, b.len, etag, &xe), EREMOTEIO);
	CHECK_STR(xe.code, "InternalError");
	CHECK_STR(xe.message,
		  "We encountered an internal error. Please try again.");
	CHECK_INT(xml_parse_copy(b.data, b.len, etag, NULL), EREMOTEIO);

	static const char rgw[] = "<CompleteMultipartUploadResult><Key>k</Key>"
				  "<ETag></ETag></CompleteMultipartUploadResult>";
	CHECK_INT(xml_parse_complete(rgw, sizeof(rgw) - 1, etag, &xe), 0);
	CHECK_STR(etag, "");
	static const char bare[] = "<CompleteMultipartUploadResult><ETag>"
				   "e4862329c3d2ae736875a6fa921f471f-3</ETag>"
				   "</CompleteMultipartUploadResult>";
	CHECK_INT(xml_parse_complete(bare, sizeof(bare) - 1, etag, &xe), 0);
	CHECK_STR(etag, "\"e4862329c3d2ae736875a6fa921f471f-3\"");

	CHECK_INT(load("copy.xml", &b), 0);
	CHECK_INT(xml_parse_copy(b.data, b.len, etag, &xe), 0);
	CHECK_STR(etag, "\"9b2cf535f27731c974343645a3985328\"");
	buf_release(&b);
}

static void test_error_and_uploads(void)
{
	struct buf b = BUF_INIT;
	struct xml_error xe;
	struct xml_uploads_page up;

	CHECK_INT(load("error_nosuchkey.xml", &b), 0);
	CHECK_INT(xml_parse_error(b.data, b.len, &xe), 0);
	CHECK_STR(xe.code, "NoSuchKey");
	CHECK_STR(xe.message, "The specified key does not exist.");
	CHECK_INT(load("copy.xml", &b), 0);
	CHECK_INT(xml_parse_error(b.data, b.len, &xe), EINVAL);

	CHECK_INT(load("uploads.xml", &b), 0);
	CHECK_INT(xml_parse_uploads(b.data, b.len, 0, &up), 0);
	CHECK_INT(up.nuploads, 2);
	CHECK_STR(up.uploads[0].key, "uploads/a.bin");
	CHECK_STR(up.uploads[0].upload_id, "2~first");
	CHECK_INT(up.uploads[0].initiated, 1795626000);
	CHECK_STR(up.uploads[1].upload_id, "2~second");
	CHECK_INT(up.truncated, 1);
	CHECK_STR(up.next_key_marker, "uploads/b.bin");
	CHECK_STR(up.next_upload_id_marker, "2~second");
	xml_uploads_page_release(&up);

	/* Ceph RGW encodes the keys without saying EncodingType */
	static const char rgw[] =
		"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
		"<Upload><Key>mp/two%20words%2B</Key><UploadId>2~x</UploadId>"
		"<Initiated>2026-11-25T17:25:43.948Z</Initiated></Upload>"
		"</ListMultipartUploadsResult>";
	CHECK_INT(xml_parse_uploads(rgw, sizeof(rgw) - 1, 1, &up), 0);
	CHECK_STR(up.uploads[0].key, "mp/two words+");
	xml_uploads_page_release(&up);
	CHECK_INT(xml_parse_uploads(rgw, sizeof(rgw) - 1, 0, &up), 0);
	CHECK_STR(up.uploads[0].key, "mp/two%20words%2B");
	CHECK(up.next_key_marker == NULL);
	xml_uploads_page_release(&up);
	buf_release(&b);
}

static void test_time(void)
{
	time_t t = 0;

	CHECK_INT(xml_parse_time("1970-01-01T00:00:00Z", &t), 0);
	CHECK_INT(t, 0);
	CHECK_INT(xml_parse_time("2026-11-25T17:06:30.5Z", &t), 0);
	CHECK_INT(t, 1795626390);
	CHECK_INT(xml_parse_time("2026-11-25T17:06:30", &t), EINVAL);
	CHECK_INT(xml_parse_time("2026-11-25T17:06:30.Z", &t), EINVAL);
	CHECK_INT(xml_parse_time("2026-13-25T17:06:30Z", &t), EINVAL);
	CHECK_INT(xml_parse_time("", &t), EINVAL);
}

/* Run every parser over one hostile body: none may succeed or crash. */
static void all_parsers_refuse(const char *name, const char *data,
			       size_t len)
{
	struct store_list_page p;
	struct xml_uploads_page up;
	char etag[STORE_ETAG_MAX];
	char *id = NULL;
	int rc;

	rc = xml_parse_list(data, len, &p, NULL);
	if (rc == 0)
		fprintf(stderr, "  accepted as a listing: %s\n", name);
	CHECK(rc != 0);
	CHECK(p.entries == NULL && p.nentries == 0);
	CHECK(xml_parse_uploads(data, len, 1, &up) != 0);
	CHECK(xml_parse_initiate(data, len, &id) != 0 && id == NULL);
	CHECK(xml_parse_complete(data, len, etag, NULL) != 0);
}

static void test_hostile_fixtures(void)
{
	char dir[512];
	struct buf b = BUF_INIT;
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/bad", fixture_dir);
	d = opendir(dir);
	CHECK(d != NULL);
	while (d && (de = readdir(d)) != NULL) {
		char name[300];

		if (de->d_name[0] == '.')
			continue;
		snprintf(name, sizeof(name), "bad/%s", de->d_name);
		if (load(name, &b) == 0) {
			all_parsers_refuse(name, b.data, b.len);
			n++;
		}
	}
	if (d)
		closedir(d);
	CHECK(n >= 15);
	buf_release(&b);
}

static void test_limits(void)
{
	struct buf b = BUF_INIT;
	struct store_list_page p;

	/* an element text over 64 KiB */
	buf_adds(&b, "<ListBucketResult><IsTruncated>false</IsTruncated>"
		     "<Contents><Key>");
	for (int i = 0; i < 70000; i++)
		buf_adds(&b, "k");
	buf_adds(&b, "</Key></Contents></ListBucketResult>");
	all_parsers_refuse("long text", b.data, b.len);

	/* more entries than any real page */
	buf_reset(&b);
	buf_adds(&b, "<ListBucketResult><IsTruncated>false</IsTruncated>");
	for (int i = 0; i < 100001; i++)
		buf_adds(&b, "<Contents><Key>k</Key></Contents>");
	buf_adds(&b, "</ListBucketResult>");
	CHECK_INT(xml_parse_list(b.data, b.len, &p, NULL), EINVAL);

	/* a NUL byte in the middle of the body */
	CHECK(xml_parse_list("<ListBucketResult>\0</ListBucketResult>", 37,
			     &p, NULL) != 0);
	CHECK(xml_parse_list(NULL, 0, &p, NULL) != 0);
	buf_release(&b);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		fixture_dir = argv[1];
	test_list_page();
	test_list_last_and_empty();
	test_mpu_documents();
	test_error_and_uploads();
	test_time();
	test_hostile_fixtures();
	test_limits();
	return check_done("xml");
}
