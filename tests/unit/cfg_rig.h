/*
 * cfg_rig: what the cfg unit tests share: one parse of argument vectors
 * (vec.h) with its results, and the check of a one-line start-up error.
 */
#ifndef IMGFS_TEST_CFG_RIG_H
#define IMGFS_TEST_CFG_RIG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "vec.h"
#include "config/cfg.h"

#define DATA "tests/unit/data/cfg/"

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
