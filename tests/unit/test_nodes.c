/*
 * Unit tests: symbolic links, FIFOs, sockets and devices in uploads/
 * (core/ns/ns_node.c) over the in-memory store: the objects they are, as
 * s3fs stores them, what stat and readlink show of them, and how chmod,
 * rename and thumbnails treat them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "check.h"
#include "image/worker.h"
#include "ns_rig.h"

static const struct store_attrs owner = {
	.have = STORE_ATTR_UID | STORE_ATTR_GID, .uid = 1001, .gid = 1002};

static struct store_attrs with_mode(uint32_t mode)
{
	struct store_attrs a = owner;

	a.have |= STORE_ATTR_MODE;
	a.mode = mode;
	return a;
}

static void test_symlink_is_an_object_holding_its_target(struct rig *r)
{
	struct store_object obj;
	struct buf body = BUF_INIT;
	struct ns_attr a;
	char target[64];

	CHECK_INT(ns_symlink(r->ns, "/uploads/ln", "../dir/t.jpg", &owner), 0);
	CHECK_INT(mem_peek(r->m, "uploads/ln", &body, &obj), 0);
	CHECK(body.len == 12 && !memcmp(body.data, "../dir/t.jpg", 12));
	CHECK_INT(obj.attrs.mode, S_IFLNK | 0777);
	CHECK(obj.attrs.have & STORE_ATTR_MTIME);
	CHECK_INT(obj.attrs.uid, 1001);
	CHECK_INT(obj.attrs.gid, 1002);
	buf_release(&body);

	CHECK_INT(ns_getattr(r->ns, "/uploads/ln", &a), 0);
	CHECK_INT(ns_attr_type(&a), S_IFLNK);
	CHECK_INT(a.size, 12);
	CHECK_INT(ns_readlink(r->ns, "/uploads/ln", target, sizeof(target)), 0);
	CHECK_STR(target, "../dir/t.jpg");
	/* cut as readlink(2) cuts, NUL included */
	CHECK_INT(ns_readlink(r->ns, "/uploads/ln", target, 4), 0);
	CHECK_STR(target, "../");
	/* the name is taken */
	CHECK_INT(ns_symlink(r->ns, "/uploads/ln", "x", &owner), EEXIST);
	CHECK_INT(ns_symlink(r->ns, "/thumbnails/ln", "x", &owner), EROFS);
}

static void test_readlink_of_what_is_no_link(struct rig *r)
{
	char target[16];

	CHECK_INT(mem_set(r->m, "uploads/o1/plain", "p", 1, NULL, NULL), 0);
	CHECK_INT(ns_readlink(r->ns, "/uploads/o1/plain", target, 16), EINVAL);
	CHECK_INT(ns_readlink(r->ns, "/uploads", target, 16), EINVAL);
	CHECK_INT(ns_readlink(r->ns, "/thumbnails", target, 16), EINVAL);
	CHECK_INT(ns_readlink(r->ns, "/uploads/none", target, 16), ENOENT);
}

/* Another client's link (s3fs writes them so) is read as it is now, also
 * after it was replaced behind the cache. */
static void test_a_link_written_elsewhere(struct rig *r)
{
	struct store_attrs lnk = with_mode(S_IFLNK | 0777);
	struct store_put_opts o = {.attrs = &lnk};
	char target[16];

	CHECK_INT(mem_set(r->m, "uploads/o2/theirs", "one", 3, &o, NULL), 0);
	CHECK_INT(ns_readlink(r->ns, "/uploads/o2/theirs", target, 16), 0);
	CHECK_STR(target, "one");
	CHECK_INT(mem_set(r->m, "uploads/o2/theirs", "two", 3, &o, NULL), 0);
	CHECK_INT(ns_readlink(r->ns, "/uploads/o2/theirs", target, 16), 0);
	CHECK_STR(target, "two");
}

static void test_fifo_socket_and_device(struct rig *r)
{
	struct store_attrs fifo = with_mode(S_IFIFO | 0640);
	struct store_attrs sock = with_mode(S_IFSOCK | 0600);
	struct store_attrs chr = with_mode(S_IFCHR | 0600);
	struct store_attrs reg = with_mode(S_IFREG | 0600);
	struct store_object obj;
	struct ns_attr a;

	chr.rdev = makedev(4, 5);
	CHECK_INT(ns_mknod(r->ns, "/uploads/fifo", &fifo), 0);
	CHECK_INT(ns_mknod(r->ns, "/uploads/sock", &sock), 0);
	CHECK_INT(ns_mknod(r->ns, "/uploads/tty", &chr), 0);
	CHECK_INT(ns_mknod(r->ns, "/uploads/reg", &reg), EINVAL);
	CHECK_INT(ns_mknod(r->ns, "/uploads/fifo", &fifo), EEXIST);
	CHECK_INT(mem_peek(r->m, "uploads/fifo", NULL, &obj), 0);
	CHECK_INT(obj.size, 0);
	CHECK_INT(obj.attrs.mode, S_IFIFO | 0640);
	CHECK(!(obj.attrs.have & STORE_ATTR_RDEV));
	CHECK_INT(mem_peek(r->m, "uploads/tty", NULL, &obj), 0);
	CHECK(obj.attrs.have & STORE_ATTR_RDEV);
	CHECK_INT(obj.attrs.rdev, makedev(4, 5));

	CHECK_INT(ns_getattr(r->ns, "/uploads/sock", &a), 0);
	CHECK_INT(ns_attr_type(&a), S_IFSOCK);
	CHECK_INT(ns_getattr(r->ns, "/uploads/tty", &a), 0);
	CHECK_INT(ns_attr_type(&a), S_IFCHR);
	CHECK_INT(a.rdev, makedev(4, 5));
}

/* chmod changes the permission bits only; a renamed node keeps its type. */
static void test_chmod_and_rename_keep_the_type(struct rig *r)
{
	struct store_attrs set = {.have = STORE_ATTR_MODE, .mode = 0604};
	struct store_object obj;
	struct ns_attr a;

	CHECK_INT(ns_setattr(r->ns, "/uploads/fifo", &set), 0);
	CHECK_INT(mem_peek(r->m, "uploads/fifo", NULL, &obj), 0);
	CHECK_INT(obj.attrs.mode, S_IFIFO | 0604);
	CHECK_INT(ns_rename(r->ns, "/uploads/fifo", "/uploads/fifo2", 0), 0);
	CHECK_INT(ns_getattr(r->ns, "/uploads/fifo2", &a), 0);
	CHECK_INT(ns_attr_type(&a), S_IFIFO);
	CHECK_INT(a.mode & 07777, 0604);
	CHECK_INT(ns_rename(r->ns, "/uploads/ln", "/uploads/ln2", 0), 0);
	CHECK_INT(ns_getattr(r->ns, "/uploads/ln2", &a), 0);
	CHECK_INT(ns_attr_type(&a), S_IFLNK);
}

struct find {
	const char *name;
	int found;
};

static int find_name(void *arg, const char *name, const struct ns_attr *a)
{
	struct find *f = arg;

	f->found |= !strcmp(name, f->name);
	return 0;
}

static int listed(struct rig *r, const char *dir, const char *name)
{
	struct find f = {name, 0};

	CHECK_INT(ns_readdir(r->ns, dir, find_name, &f), 0);
	return f.found;
}

/* A link named like an image has no thumbnail: its body is a path. */
static void test_no_thumbnail_of_a_link(struct rig *r)
{
	struct ns_attr a;

	CHECK_INT(ns_symlink(r->ns, "/uploads/pic.png", "real.png", &owner), 0);
	CHECK_INT(ns_getattr(r->ns, "/thumbnails/pic.png", &a), ENOENT);
	CHECK(!listed(r, "/thumbnails", "pic.png"));
	CHECK(listed(r, "/uploads", "pic.png"));
}

static void test_hard_links(struct rig *r)
{
	CHECK_INT(ns_link(r->ns, "/uploads/node"), EPERM);
	CHECK_INT(ns_link(r->ns, "/uploads/sub/node"), EPERM);
	CHECK_INT(ns_link(r->ns, "/thumbnails/node"), EROFS);
	CHECK_INT(ns_link(r->ns, "/node"), EROFS);
}

int main(int argc, char **argv)
{
	struct rig r;

	if (worker_dispatch(argc, argv) >= 0)
		return 1;
	if (rig_up(&r, 0) != 0) {
		fprintf(stderr, "test_nodes: cannot set up\n");
		return 1;
	}
	test_symlink_is_an_object_holding_its_target(&r);
	test_readlink_of_what_is_no_link(&r);
	test_a_link_written_elsewhere(&r);
	test_fifo_socket_and_device(&r);
	test_chmod_and_rename_keep_the_type(&r);
	test_no_thumbnail_of_a_link(&r);
	test_hard_links(&r);
	rig_down(&r);
	return check_done("nodes");
}
