/*
 * clock: the monotonic clock, for deadlines and durations (never for the
 * time of day: log.c stamps lines with the wall clock).
 *
 * Thread-safe.
 */
#ifndef IMGFS_CLOCK_H
#define IMGFS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Seconds since an arbitrary point, to the nanosecond. */
static inline double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds since the same point. */
static inline uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
