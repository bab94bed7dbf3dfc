/*
 * wire: the protocol between the daemon and a thumbnail worker
 * (imgfs --thumb-worker, see worker.h) over a Unix stream socket.
 *
 * A request is a struct wire_req followed by name_len bytes of the
 * source's file name; with WIRE_OP_MAKE it carries, as SCM_RIGHTS, one
 * file descriptor (a memfd) holding the src_len bytes of the source, which
 * the worker maps read-only. The reply is a struct wire_rep followed by
 * err_len bytes of error text and then lens[0], lens[1], ... bytes of the
 * thumbnails, in size order. Both sides are the same binary, so the
 * structs travel in host byte order; every length is bounded (WIRE_*_MAX)
 * and checked by the reader, so that neither side trusts the other for
 * memory.
 *
 * Thread safety: the functions keep no state; one connection is used by
 * one thread at a time.
 */
#ifndef IMGFS_WIRE_H
#define IMGFS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "config/cfg.h"

#define WIRE_MAGIC 0x696d6731u        /* "img1" */
#define WIRE_NAME_MAX 4096u
#define WIRE_ERR_MAX 1024u
#define WIRE_THUMB_MAX (16u << 20)    /* bytes of one thumbnail */

enum wire_op {
	WIRE_OP_MAKE = 1,  /* make thumbnails of the source in the fd */
	WIRE_OP_PROBE = 2, /* try to open a file and a socket; report */
};

struct wire_req {
	uint32_t magic;
	uint32_t op;
	uint64_t src_len;
	uint64_t max_pixels;
	uint32_t crop;             /* enum thumb_crop */
	uint32_t first_frame;
	uint32_t nsizes;           /* 1..THUMB_SIZES_MAX */
	uint32_t name_len;         /* <= WIRE_NAME_MAX */
	uint32_t sizes[THUMB_SIZES_MAX];
};

struct wire_rep {
	uint32_t magic;
	int32_t status;            /* 0, EIO, ENOMEM or EINVAL */
	uint32_t fmt;              /* enum thumb_format of the thumbnails */
	uint32_t nsizes;           /* as many as asked, when status is 0 */
	uint64_t cpu_ms;           /* CPU the worker used so far */
	uint32_t err_len;          /* <= WIRE_ERR_MAX */
	uint32_t width, height;    /* the source as shown (EXIF orientation
				      applied), when status is 0 */
	uint32_t lens[THUMB_SIZES_MAX]; /* each <= WIRE_THUMB_MAX */
};

/* Send all n bytes (and, when fd >= 0, the descriptor with the first
 * byte); no SIGPIPE. 0 or errno. */
int wire_send(int sock, const void *p, size_t n, int fd);

/* Receive exactly n bytes; with deadline_ms (mono_ms() of base/clock.h;
 * 0: none) give up with ETIMEDOUT. A descriptor that comes with them is stored in
 * *fd (when fd is not NULL; else closed), -1 when none. 0, ETIMEDOUT,
 * EPIPE (the peer closed) or errno. */
int wire_recv(int sock, void *p, size_t n, uint64_t deadline_ms, int *fd);

/* Is a request's or reply's fixed part within bounds? 0 or EPROTO. */
int wire_req_check(const struct wire_req *r);
int wire_rep_check(const struct wire_rep *r, uint32_t nsizes);

#endif
