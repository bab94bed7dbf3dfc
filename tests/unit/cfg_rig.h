/*
 * cfg_rig: what the cfg unit tests share: argument vectors, one parse
 * with its results, and the check of a one-line start-up error.
 */
#ifndef IMGFS_TEST_CFG_RIG_H
#define IMGFS_TEST_CFG_RIG_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config/cfg.h"

#define DATA "tests/unit/data/cfg/"

/* A NULL-terminated vector of copies of the given strings. */
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

struct run {
	struct cfg c;
	enum cfg_result res;
	char err[512];
	char *out;
};

/* Parse argv (a vec, freed here) with envp (a vec, freed here). */
static inline void run(struct run *r, char **argv, char **envp)
{
	memset(r, 0, sizeof(*r));
	r->res = cfg_parse(&r->c, vec_len(argv), argv, envp, r->err,
			   sizeof(r->err), &r->out);
	vec_free(argv);
	vec_free(envp);
}

static inline void done(struct run *r)
{
	free(r->out);
	cfg_release(&r->c);
}

/* A minimal environment: no AWS variables from the caller. */
static inline char **base_env(void)
{
	return vec("HOME=/home/tester", NULL);
}

/* Expect CFG_ERROR with a message holding every given fragment. */
static inline void expect_error(char **argv, char **envp, const char *frag1,
			 const char *frag2)
{
	struct run r;

	run(&r, argv, envp);
	CHECK_INT(r.res, CFG_ERROR);
	CHECK(strncmp(r.err, "imgfs: ", 7) == 0);
	CHECK(strchr(r.err, '\n') == NULL);
	if (frag1 && !strstr(r.err, frag1))
		fprintf(stderr, "  error '%s' lacks '%s'\n", r.err, frag1);
	CHECK(!frag1 || strstr(r.err, frag1));
	if (frag2 && !strstr(r.err, frag2))
		fprintf(stderr, "  error '%s' lacks '%s'\n", r.err, frag2);
	CHECK(!frag2 || strstr(r.err, frag2));
	done(&r);
}

#endif
