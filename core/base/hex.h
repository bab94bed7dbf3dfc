/*
 * hex: hexadecimal digits, both ways, for digests, ETags and %XX escapes.
 *
 * Pure functions, no allocation; thread-safe.
 */
#ifndef IMGFS_HEX_H
#define IMGFS_HEX_H

#include <stddef.h>

/* The value of one hex digit (either case), or -1 when c is none. */
int hex_digit(unsigned char c);

/* Write n bytes as 2n lowercase hex digits and a NUL into out (2n + 1
 * bytes). */
void hex_encode(const void *in, size_t n, char *out);

/* Decode exactly 2n hex digits at in (len bytes, not NUL-terminated) into
 * n bytes at out. 0, or EINVAL when len is not 2n or a digit is not hex. */
int hex_decode(const char *in, size_t len, void *out, size_t n);

#endif
