/*
 * wire: sending and receiving the worker protocol (see wire.h).
 */
#define _GNU_SOURCE
#include "image/wire.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "image/thumb.h"

/* One sendmsg of p[0..n), with fd attached when fd >= 0. */
static ssize_t wire_sendmsg(int sock, const void *p, size_t n, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {(void *)p, n};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

int wire_send(int sock, const void *p, size_t n, int fd)
{
	const char *s = p;

	while (n > 0) {
		ssize_t k = wire_sendmsg(sock, s, n, fd);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? errno : EPIPE;
		fd = -1; /* sent with the first piece */
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Keep the first descriptor of msg in *fd (or close it); close others. */
static void wire_take_fds(struct msghdr *msg, int *fd)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c;
	     c = CMSG_NXTHDR(msg, c)) {
		size_t nfd;
		int *fds = (int *)(void *)CMSG_DATA(c);

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int got;

			memcpy(&got, fds + i, sizeof(int));
			if (fd && *fd < 0)
				*fd = got;
			else
				close(got);
		}
	}
}

/* Wait until sock is readable or the deadline passes. */
static int wire_wait(int sock, uint64_t deadline_ms)
{
	struct pollfd p = {.fd = sock, .events = POLLIN};
	int rc;

	if (!deadline_ms)
		return 0;
	for (;;) {
		uint64_t now = mono_ms();

		if (now >= deadline_ms)
			return ETIMEDOUT;
		rc = poll(&p, 1, (int)(deadline_ms - now));
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return errno;
	}
}

int wire_recv(int sock, void *p, size_t n, uint64_t deadline_ms, int *fd)
{
	char *d = p;

	if (fd)
		*fd = -1;
	while (n > 0) {
		union {
			char buf[CMSG_SPACE(4 * sizeof(int))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {d, n};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.buf,
				     .msg_controllen = sizeof(ctl.buf)};
		ssize_t k;
		int rc = wire_wait(sock, deadline_ms);

		if (rc)
			return rc;
		k = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno;
		wire_take_fds(&msg, fd);
		if (k == 0)
			return EPIPE;
		d += k;
		n -= (size_t)k;
	}
	return 0;
}

int wire_req_check(const struct wire_req *r)
{
	if (r->magic != WIRE_MAGIC || r->name_len > WIRE_NAME_MAX ||
	    r->nsizes < 1 || r->nsizes > THUMB_SIZES_MAX)
		return EPROTO;
	if (r->op != WIRE_OP_MAKE && r->op != WIRE_OP_PROBE)
		return EPROTO;
	for (uint32_t i = 0; i < r->nsizes; i++)
		if (r->sizes[i] == 0 || r->sizes[i] > 65535)
			return EPROTO;
	return 0;
}

int wire_rep_check(const struct wire_rep *r, uint32_t nsizes)
{
	if (r->magic != WIRE_MAGIC || r->err_len > WIRE_ERR_MAX)
		return EPROTO;
	if (r->status == 0 && r->nsizes != nsizes)
		return EPROTO;
	if (r->status == 0 && r->fmt >= THUMB_FMT__COUNT)
		return EPROTO;
	for (uint32_t i = 0; i < THUMB_SIZES_MAX; i++)
		if (r->lens[i] > WIRE_THUMB_MAX ||
		    (r->lens[i] && (r->status || i >= r->nsizes)))
			return EPROTO;
	return 0;
}
