/*
 * check: a minimal unit-test harness.
 *
 * CHECK(cond) records one assertion; CHECK_STR/CHECK_INT print both sides
 * on failure. check_done() prints "N passed, N failed" and returns the
 * process exit status.
 */
#ifndef IMGFS_CHECK_H
#define IMGFS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

static inline void check_report(int ok, const char *file, int line,
				const char *what)
{
	if (ok) {
		check_passed++;
		return;
	}
	check_failed++;
	fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
}

#define CHECK(cond) check_report(!!(cond), __FILE__, __LINE__, #cond)

#define CHECK_STR(got, want)                                                  \
	do {                                                                  \
		const char *g_ = (got), *w_ = (want);                         \
		int ok_ = g_ && w_ && strcmp(g_, w_) == 0;                    \
		check_report(ok_, __FILE__, __LINE__, #got " == " #want);     \
		if (!ok_)                                                     \
			fprintf(stderr, "  got:  %s\n  want: %s\n",           \
				g_ ? g_ : "(null)", w_ ? w_ : "(null)");      \
	} while (0)

#define CHECK_INT(got, want)                                                  \
	do {                                                                  \
		long long g_ = (long long)(got), w_ = (long long)(want);      \
		check_report(g_ == w_, __FILE__, __LINE__, #got " == " #want);\
		if (g_ != w_)                                                 \
			fprintf(stderr, "  got:  %lld\n  want: %lld\n", g_, w_);\
	} while (0)

static inline int check_done(const char *suite)
{
	printf("%s: %d passed, %d failed\n", suite, check_passed, check_failed);
	return check_failed ? 1 : 0;
}

#endif
