/*
 * membudget: one bound on the daemon's big buffers (upload part buffers,
 * read-ahead blocks), shared by every writer and reader (memory_max). A
 * second one, without a gauge, bounds the bytes of spool files (spool_max).
 *
 * A holder takes bytes before it allocates a buffer and gives them back
 * when it frees it. Three ways to take:
 * - membudget_try: only if the bytes fit; optional buffers (read-ahead).
 * - membudget_take: waits while the bytes do not fit and some buffer is in
 *   flight (membudget_flight: e.g. a part being sent), since its end gives
 *   bytes back. When nothing is in flight nobody would give any back, so
 *   it takes them anyway (over the bound) rather than deadlock: the bound
 *   is exceeded only by buffers whose holders could not proceed otherwise.
 * - membudget_force: at once, always (a reader's block for the read it
 *   serves, which it reuses after).
 * membudget_short() tells holders of spare buffers to give them back.
 *
 * A NULL budget is unbounded: every call succeeds and does nothing.
 * Thread-safe. The gauge MG_MEMORY_BYTES (when given metrics) follows the
 * bytes taken.
 */
#ifndef IMGFS_MEMBUDGET_H
#define IMGFS_MEMBUDGET_H

#include <stdint.h>

#include "base/metrics.h"

struct membudget;

/* max bytes; m (may be NULL) gets the gauge and must outlive it. NULL with
 * errno set. */
struct membudget *membudget_create(uint64_t max, struct metrics *m);
void membudget_destroy(struct membudget *b);

/* 1 if n bytes were taken, 0 if they do not fit. */
int membudget_try(struct membudget *b, uint64_t n);
/* Take n bytes, waiting as described above. */
void membudget_take(struct membudget *b, uint64_t n);
/* Take n bytes at once. */
void membudget_force(struct membudget *b, uint64_t n);
void membudget_give(struct membudget *b, uint64_t n);

/* A buffer starts (+1) or ends (-1) being in flight: it will be given back
 * without anyone waiting on the budget doing anything. */
void membudget_flight(struct membudget *b, int delta);

/* Does someone wait, or is more than max taken? Spares should go back. */
int membudget_short(struct membudget *b);

/* Bytes taken now, and the most taken at once. */
uint64_t membudget_used(struct membudget *b);
uint64_t membudget_peak(struct membudget *b);
/* The bound given to membudget_create; UINT64_MAX for a NULL budget. */
uint64_t membudget_max(const struct membudget *b);

#endif
