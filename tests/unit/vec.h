/*
 * vec: NULL-terminated vectors of strings (argv, envp) for unit tests.
 * Each string is a copy; vec_free() frees them and the vector.
 */
#ifndef IMGFS_TEST_VEC_H
#define IMGFS_TEST_VEC_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* A NULL-terminated vector of copies of the given strings (at most 63),
 * the last argument NULL. */
static inline char **vec(const char *first, ...)
{
	char **v = calloc(64, sizeof(*v));
	va_list ap;
	int n = 0;

	va_start(ap, first);
	for (const char *s = first; s && n < 63; s = va_arg(ap, const char *))
		v[n++] = strdup(s);
	va_end(ap);
	return v;
}

static inline int vec_len(char **v)
{
	int n = 0;

	while (v[n])
		n++;
	return n;
}

static inline void vec_free(char **v)
{
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

#endif
