/*
 * xml: parsers for the XML bodies S3 sends, on expat.
 *
 * Each parser takes a whole response body (data, len; not NUL-terminated)
 * and fills a result the caller owns. Input is untrusted: a malformed,
 * truncated or absurd document (a DTD or entity declaration, nesting deeper
 * than a few levels, an element text over 64 KiB, more than 100,000
 * entries, a number that does not parse, a missing required element) is
 * EINVAL, never a crash; on any error the result is left empty.
 *
 * Keys in listings are decoded when the document says
 * <EncodingType>url</EncodingType> (the client asks for it so that keys
 * holding control characters survive XML): %XX and '+' (a space) are
 * decoded; a key that decodes to a NUL byte is EINVAL.
 *
 * Returns: 0; EINVAL (not the expected document); ENOMEM; EREMOTEIO (the
 * body is a well-formed <Error> document: err, when given, holds its Code
 * and Message — S3 answers CompleteMultipartUpload and CopyObject with 200
 * and such a body when they fail late).
 *
 * Pure functions: no I/O, no shared state; thread-safe.
 */
#ifndef IMGFS_XML_H
#define IMGFS_XML_H

#include <stddef.h>
#include <time.h>

#include "store/store.h"

struct xml_error {
	char code[64];     /* "NoSuchKey", "SlowDown", ... ("" when absent) */
	char message[256]; /* truncated to fit */
};

/* <Error>: 0 when the body is an Error document, EINVAL otherwise. */
int xml_parse_error(const char *data, size_t len, struct xml_error *err);

/*
 * <ListBucketResult> of ListObjectsV2. out is overwritten (release it with
 * store_list_page_release()); out->next_token is set only when IsTruncated is
 * true (a truncated page without a token is EINVAL). truncated (may be
 * NULL) receives IsTruncated.
 */
int xml_parse_list(const char *data, size_t len, struct store_list_page *out,
		   int *truncated);

/* <InitiateMultipartUploadResult>: *upload_id is allocated (caller frees). */
int xml_parse_initiate(const char *data, size_t len, char **upload_id);

/* <CompleteMultipartUploadResult> or <CopyObjectResult>: the new ETag,
 * with quotes (as S3 sends it; added when a server leaves them out; the
 * same holds for the ETags of a listing). EREMOTEIO for an <Error> body. Ceph RGW
 * completes with an empty <ETag/>: then etag is "" (HEAD the object). */
int xml_parse_complete(const char *data, size_t len,
		       char etag[STORE_ETAG_MAX], struct xml_error *err);
int xml_parse_copy(const char *data, size_t len, char etag[STORE_ETAG_MAX],
		   struct xml_error *err);
/* <CopyPartResult> of UploadPartCopy: the part's ETag. */
int xml_parse_copy_part(const char *data, size_t len,
			char etag[STORE_ETAG_MAX], struct xml_error *err);

/* One page of <ListMultipartUploadsResult>. */
struct xml_upload {
	char *key;
	char *upload_id;
	time_t initiated;
};
struct xml_uploads_page {
	struct xml_upload *uploads;
	size_t nuploads;
	int truncated;
	char *next_key_marker;       /* set when truncated; decoded only
					when the document says EncodingType */
	char *next_upload_id_marker; /* set when truncated (may be "") */
};
/*
 * out is overwritten; release it with xml_uploads_page_release().
 * keys_encoded: the request asked for encoding-type=url, so decode the
 * Upload keys even when the document does not say <EncodingType> (Ceph RGW
 * encodes them silently, and leaves NextKeyMarker unencoded: callers
 * should page on the last upload's Key and UploadId instead).
 */
int xml_parse_uploads(const char *data, size_t len, int keys_encoded,
		      struct xml_uploads_page *out);
void xml_uploads_page_release(struct xml_uploads_page *p);

/* "2009-10-12T17:50:30.000Z" (fraction optional) to a Unix time.
 * 0 or EINVAL. */
int xml_parse_time(const char *s, time_t *out);

#endif
