/* mime: Content-Type by content (libmagic), name as a fallback (see mime.h). */
#include "io/mime.h"

#include <errno.h>
#include <magic.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"

struct mime {
	pthread_mutex_t lock; /* serialises every use of cookie */
	magic_t cookie;       /* protected by lock */
};

/* Extensions for content libmagic cannot name, or names more precisely
 * than its generic answer. */
static const struct {
	const char *ext;
	const char *type;
} mime_ext_types[] = {
	{"avif", "image/avif"},        {"bmp", "image/bmp"},
	{"css", "text/css"},           {"csv", "text/csv"},
	{"gif", "image/gif"},          {"heic", "image/heic"},
	{"heif", "image/heif"},        {"htm", "text/html"},
	{"html", "text/html"},         {"ico", "image/vnd.microsoft.icon"},
	{"jpe", "image/jpeg"},         {"jpeg", "image/jpeg"},
	{"jpg", "image/jpeg"},         {"js", "text/javascript"},
	{"json", "application/json"},  {"md", "text/markdown"},
	{"mov", "video/quicktime"},    {"mp3", "audio/mpeg"},
	{"mp4", "video/mp4"},          {"pdf", "application/pdf"},
	{"png", "image/png"},          {"svg", "image/svg+xml"},
	{"tif", "image/tiff"},         {"tiff", "image/tiff"},
	{"txt", "text/plain"},         {"webm", "video/webm"},
	{"webp", "image/webp"},        {"xml", "application/xml"},
	{"zip", "application/zip"},
};

struct mime *mime_create(void)
{
	struct mime *m = calloc(1, sizeof(*m));
	int err;

	if (!m)
		return NULL;
	err = pthread_mutex_init(&m->lock, NULL);
	if (err)
		goto out_free;
	m->cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
	if (!m->cookie) {
		err = errno ? errno : ENOMEM;
		goto out_mutex;
	}
	if (magic_load(m->cookie, NULL) != 0) {
		log_error("mime: cannot load the libmagic database: %s",
			  magic_error(m->cookie));
		err = magic_errno(m->cookie) ? magic_errno(m->cookie) : EINVAL;
		goto out_close;
	}
	return m;

out_close:
	magic_close(m->cookie);
out_mutex:
	pthread_mutex_destroy(&m->lock);
out_free:
	free(m);
	errno = err;
	return NULL;
}

void mime_destroy(struct mime *m)
{
	if (!m)
		return;
	magic_close(m->cookie);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

const char *mime_from_name(const char *name)
{
	const char *slash, *dot;

	if (!name)
		return NULL;
	slash = strrchr(name, '/');
	dot = strrchr(slash ? slash : name, '.');
	if (!dot || dot[1] == '\0')
		return NULL;
	for (size_t i = 0; i < sizeof(mime_ext_types) / sizeof(*mime_ext_types);
	     i++) {
		if (strcasecmp(dot + 1, mime_ext_types[i].ext) == 0)
			return mime_ext_types[i].type;
	}
	return NULL;
}

/* Copy libmagic's answer for data into out; 0, or ENOENT when the content
 * is not recognised (or libmagic failed, which is logged). */
static int mime_by_content(struct mime *m, const void *data, size_t len,
			   char out[MIME_TYPE_MAX])
{
	const char *type;
	int rc = ENOENT;

	if (len > MIME_SNIFF_BYTES)
		len = MIME_SNIFF_BYTES;
	pthread_mutex_lock(&m->lock);
	type = magic_buffer(m->cookie, data, len);
	if (!type)
		log_warn("mime: libmagic failed: %s", magic_error(m->cookie));
	else if (strcmp(type, MIME_DEFAULT) != 0 &&
		 strcmp(type, "application/x-empty") != 0 &&
		 strcmp(type, "inode/x-empty") != 0 &&
		 strlen(type) < MIME_TYPE_MAX) {
		memcpy(out, type, strlen(type) + 1);
		rc = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

void mime_sniff(struct mime *m, const void *data, size_t len,
		const char *name, char out[MIME_TYPE_MAX])
{
	const char *type;

	if (m && len > 0 && mime_by_content(m, data, len, out) == 0)
		return;
	type = mime_from_name(name);
	if (!type)
		type = MIME_DEFAULT;
	memcpy(out, type, strlen(type) + 1);
}
