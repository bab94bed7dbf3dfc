/*
 * fs: the FUSE layer. The only place that includes the FUSE headers and
 * the only place where an errno becomes negative.
 */
#ifndef IMGFS_FS_H
#define IMGFS_FS_H

#define FUSE_USE_VERSION 314
#include <fuse.h>

#include "config/cfg.h"
#include "ns/ns.h"

/* What the FUSE callbacks find in fuse_get_context()->private_data. */
struct fs_state {
	const struct cfg *cfg;
	struct ns *ns;
	int start_error; /* ns_start() failed in init: the mount stops */
	unsigned max_read; /* -o max_read=N (also told to the kernel in init), or 0 */
	struct readahead *readahead; /* setting the kernel's window, or NULL */
};

/* The operations table. */
const struct fuse_operations *fs_operations(void);

#endif
