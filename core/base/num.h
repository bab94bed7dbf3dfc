/*
 * num: decimal numbers in protocol and configuration text.
 *
 * Pure functions; thread-safe (errno is per thread).
 */
#ifndef IMGFS_NUM_H
#define IMGFS_NUM_H

#include <stdint.h>

/*
 * Parse the unsigned decimal number at the start of s: a digit first (no
 * sign, no space, as HTTP and S3 write sizes). With end, *end is set just
 * after the digits; with end NULL nothing may follow them.
 * 0; EINVAL (no digit first, or something after it with end NULL);
 * ERANGE (more than UINT64_MAX).
 */
int num_parse_u64(const char *s, const char **end, uint64_t *out);

#endif
