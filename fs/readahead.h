/*
 * readahead: the kernel's read-ahead window of this mount.
 *
 * A FUSE mount starts with the kernel's default read-ahead of 128 KiB (the
 * smaller of the bdi's default and what the daemon answers at INIT, which
 * can only lower it), so a sequential reader's pages arrive in requests of
 * at most 128 KiB, each a round trip through the daemon. The window is the
 * mount's bdi attribute /sys/class/bdi/MAJ:MIN/read_ahead_kb, which root
 * may raise once INIT has been answered; requests then grow up to
 * max_pages (1 MiB here, from max_write) with several in flight.
 *
 * readahead_start() does that on a thread of its own, started from the
 * init callback: it asks statfs of the mountpoint (a request the kernel
 * holds until INIT is answered and then sends to this daemon, so the loop
 * must be running), takes the mount's device from stat, and writes the
 * attribute. Not being root (EACCES) leaves the kernel's window, logged
 * at debug; any other failure is one warning. Nothing else depends on it.
 */
#ifndef IMGFS_FS_READAHEAD_H
#define IMGFS_FS_READAHEAD_H

#include <stdint.h>

struct readahead;

/* Start setting the window of the mount at mountpoint to bytes (rounded
 * down to KiB). NULL when bytes is 0 or the thread could not start
 * (logged); readahead_finish(NULL) is fine. mountpoint must outlive it. */
struct readahead *readahead_start(const char *mountpoint, uint64_t bytes);

/* Wait for the thread and free r. */
void readahead_finish(struct readahead *r);

/* The bdi attribute's path for a device: "/sys/class/bdi/MAJ:MIN/
 * read_ahead_kb" into out (size n). 0 or ENAMETOOLONG. */
int readahead_attr_path(unsigned long dev, char *out, unsigned n);

#endif
