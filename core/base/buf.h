/*
 * buf: a growable byte buffer.
 *
 * Invariants: data is NULL or points to cap bytes; len <= cap; when data is
 * not NULL, data[len] is a NUL byte, so a buffer of text is a C string.
 * A zeroed struct buf is a valid empty buffer (BUF_INIT).
 * Not thread-safe; one owner at a time.
 */
#ifndef IMGFS_BUF_H
#define IMGFS_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;  /* owned; NUL-terminated when not NULL */
	size_t len;  /* bytes used, excluding the terminator */
	size_t cap;  /* bytes allocated */
};

#define BUF_INIT {NULL, 0, 0}

/* Make room for at least extra more bytes (plus the terminator). 0 or ENOMEM. */
int buf_reserve(struct buf *b, size_t extra);
/* Append n bytes. 0 or ENOMEM. */
int buf_add(struct buf *b, const void *p, size_t n);
/* Append a C string. 0 or ENOMEM. */
int buf_adds(struct buf *b, const char *s);
/* Append formatted text. 0, ENOMEM or EINVAL. */
int buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vaddf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Forget the contents, keep the memory. */
void buf_reset(struct buf *b);
/* Free the memory; the buffer is empty and reusable afterwards. */
void buf_release(struct buf *b);
/* Hand the data to the caller (who frees it); the buffer becomes empty.
 * Never NULL for an empty buffer: returns an allocated "" (NULL on ENOMEM). */
char *buf_detach(struct buf *b, size_t *len);

#endif
