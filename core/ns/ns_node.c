/*
 * ns_node: the nodes of uploads/ that are neither files nor folders —
 * symbolic links, FIFOs, sockets and devices, each an object as s3fs
 * stores one — and hard links, which no object can be (see ns.h).
 */
#include "ns/ns_int.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

uint32_t ns_stored_type(const struct store_attrs *p)
{
	uint32_t type = p->mode & S_IFMT;

	if (!(p->have & STORE_ATTR_MODE))
		return S_IFREG;
	switch (type) {
	case S_IFLNK:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		return type;
	default:
		return S_IFREG;
	}
}

uint32_t ns_attr_type(const struct ns_attr *a)
{
	struct store_attrs p = {.have = a->have, .mode = a->mode};

	return a->is_dir ? S_IFDIR : ns_stored_type(&p);
}

/* Make the object for a new node at path: body, and init's attributes
 * with the mtime now. The name must be free: no object, folder or open
 * writer has it (the kernel asked first; If-None-Match settles a race). */
static int new_node(struct ns *ns, const char *path, const void *body,
		    size_t len, const struct store_attrs *init)
{
	struct store_attrs a = *init;
	struct store_put_opts o = {.if_none_match = "*", .attrs = &a};
	char etag[STORE_ETAG_MAX] = "";
	struct buf key = BUF_INIT;
	struct timespec now;
	const char *rel;
	int rc = ns_free_name(ns, path, &rel);

	if (rc)
		return rc;
	clock_gettime(CLOCK_REALTIME, &now);
	a.have |= STORE_ATTR_MTIME;
	a.mtime_sec = now.tv_sec;
	a.mtime_nsec = now.tv_nsec;
	rc = ns_upload_key(ns, rel, &key);
	if (!rc)
		rc = store_put(ns->store, key.data, body, len, &o, etag);
	if (!rc)
		ns_note_upload(ns, key.data, len, etag, &a);
	buf_release(&key);
	return rc;
}

int ns_symlink(struct ns *ns, const char *path, const char *target,
	       const struct store_attrs *init)
{
	struct store_attrs a = *init;
	size_t len = strlen(target);

	if (len >= NS_LINK_MAX)
		return ENAMETOOLONG;
	a.have = (a.have & (STORE_ATTR_UID | STORE_ATTR_GID)) | STORE_ATTR_MODE;
	a.mode = S_IFLNK | 0777;
	return new_node(ns, path, target, len, &a);
}

int ns_mknod(struct ns *ns, const char *path, const struct store_attrs *init)
{
	struct store_attrs a = *init;
	uint32_t type = a.mode & S_IFMT;

	if (!(a.have & STORE_ATTR_MODE) || type == S_IFLNK ||
	    ns_stored_type(&a) == S_IFREG)
		return EINVAL;
	a.have &= STORE_ATTR_MODE | STORE_ATTR_UID | STORE_ATTR_GID;
	if (type == S_IFCHR || type == S_IFBLK)
		a.have |= STORE_ATTR_RDEV;
	return new_node(ns, path, NULL, 0, &a);
}

struct target {
	char *buf;
	size_t size, len; /* room (with the NUL) and bytes held */
};

static int take_target(void *arg, const void *data, size_t len)
{
	struct target *t = arg;
	size_t room = t->size - 1 - t->len;

	memcpy(t->buf + t->len, data, len < room ? len : room);
	t->len += len < room ? len : room;
	return 0;
}

/* GET the target of the link at key, as it was when m was learnt. */
static int read_target(struct ns *ns, const char *key,
		       const struct meta_attr *m, struct target *t)
{
	int rc = 0;

	if (m->size >= NS_LINK_MAX)
		return EIO; /* no link holds so long a target */
	if (m->size)
		rc = store_get(ns->store, key, 0, 0, m->etag, take_target, t,
			       NULL);
	if (rc == EAGAIN || rc == ENOENT)
		ns_forget_source(ns, key); /* replaced or removed since */
	return rc;
}

int ns_readlink(struct ns *ns, const char *path, char *buf, size_t size)
{
	struct target t = {buf, size, 0};
	struct buf key = BUF_INIT;
	struct meta_attr m;
	const char *rel;
	int rc = size ? ns_upload_rel(ns, path, &rel) : EINVAL;

	if (rc == EROFS || rc == EBUSY)
		return EINVAL; /* no other area holds a link */
	for (int tries = 0; !rc; tries++) {
		rc = ns_upload_attr_posix(ns, rel, &m);
		if (!rc && (m.is_dir || ns_stored_type(&m.posix) != S_IFLNK))
			return EINVAL;
		if (!rc && !key.len)
			rc = ns_upload_key(ns, rel, &key);
		if (!rc)
			rc = read_target(ns, key.data, &m, &t);
		if (rc != EAGAIN || tries)
			break;
		rc = 0; /* the link was replaced: once more, as it is now */
		t.len = 0;
	}
	buf_release(&key);
	if (!rc)
		buf[t.len] = '\0';
	return rc == EAGAIN ? EIO : rc;
}

int ns_link(struct ns *ns, const char *to)
{
	const char *rel;
	int rc = ns_upload_rel(ns, to, &rel);

	if (rc)
		return rc == EBUSY ? EEXIST : rc;
	return EPERM;
}
