/*
 * mime: a Content-Type for an object, from its content.
 *
 * The content decides (libmagic, MIME type only); the file name's extension
 * is used only when the content is not recognised (libmagic says
 * application/octet-stream, or the data is empty). Images come out as
 * image/jpeg, image/png, image/webp, image/gif, image/tiff, image/heic,
 * image/avif, whatever their names say.
 *
 * A struct mime holds one libmagic cookie, loaded once by mime_create().
 * libmagic cookies are not thread-safe, so mime_sniff() serialises on a
 * mutex inside the struct: any thread may call it at any time. Sniffing
 * looks at most MIME_SNIFF_BYTES of the data, so a call costs well under a
 * millisecond and callers may pass a whole part buffer.
 */
#ifndef IMGFS_MIME_H
#define IMGFS_MIME_H

#include <stddef.h>

#define MIME_TYPE_MAX 128            /* room for any type mime_sniff() gives */
#define MIME_SNIFF_BYTES (256 * 1024) /* leading bytes the content test reads */
#define MIME_DEFAULT "application/octet-stream"

struct mime;

/* Open and load libmagic's default database. NULL with errno set (ENOMEM,
 * or ENOENT/EINVAL when the database cannot be loaded; logged). */
struct mime *mime_create(void);
/* Free the cookie. NULL is allowed. */
void mime_destroy(struct mime *m);

/*
 * Write the Content-Type of len bytes of data (the start of the object;
 * len may be 0) named name (a key or file name, may be NULL) into out,
 * NUL-terminated. m may be NULL: then the name alone decides. Never fails
 * to produce a type: the fallback is MIME_DEFAULT.
 */
void mime_sniff(struct mime *m, const void *data, size_t len,
		const char *name, char out[MIME_TYPE_MAX]);

/* The type the extension of name suggests (case-insensitive), or NULL
 * when the extension is unknown. A static string. */
const char *mime_from_name(const char *name);

#endif
