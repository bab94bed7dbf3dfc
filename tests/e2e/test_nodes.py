"""Symbolic links, FIFOs, sockets and devices in uploads/ (issue 10,
docs/SEMANTICS.md "Links and special files"): each is an object as s3fs
stores one (the target as the body, the type in x-amz-meta-mode, a
device's number in x-amz-meta-rdev), so ln -s, mkfifo, tar and rsync -a
work in the mount and s3fs mounting the same bucket shows the same nodes.
"""

import os
import shutil
import socket
import stat
import subprocess
import threading

import pytest

from helpers import get_bytes, run
from test_attrs import meta, mount_s3fs


def test_a_symlink_is_an_object_holding_its_target(rgw, bucket, mount):
    m = mount(bucket)
    (m.uploads / "d").mkdir()
    (m.uploads / "d" / "real.txt").write_bytes(b"real\n")
    link = m.uploads / "ln"
    os.symlink("d/real.txt", link)
    st = os.lstat(link)
    assert stat.S_ISLNK(st.st_mode) and st.st_size == len("d/real.txt")
    assert os.readlink(link) == "d/real.txt"
    assert link.read_bytes() == b"real\n"  # followed by the kernel
    assert get_bytes(rgw.s3, bucket, "uploads/ln") == b"d/real.txt"
    assert int(meta(rgw, bucket, "uploads/ln")["mode"]) == stat.S_IFLNK | 0o777
    out = run(["ls", "-l", str(m.uploads)]).stdout.decode()
    assert any(line.startswith("l") and "ln -> d/real.txt" in line
               for line in out.splitlines()), out
    # a dangling link, and a link to a folder
    os.symlink("nowhere", m.uploads / "dangling")
    assert not (m.uploads / "dangling").exists()
    os.symlink("d", m.uploads / "dl")
    assert os.listdir(m.uploads / "dl") == ["real.txt"]
    m.remount()  # from the bucket, not the daemon's cache
    assert stat.S_ISLNK(os.lstat(m.uploads / "dl").st_mode)
    # a listing carries no mode: it shows the link as a file, and the open
    # finds it is a link and has the kernel look it up again
    run(["ls", "-l", str(m.uploads)])
    assert stat.S_ISLNK(os.lstat(m.uploads / "dl").st_mode)  # as it was stat'ed
    assert (m.uploads / "ln").read_bytes() == b"real\n"
    assert os.readlink(m.uploads / "ln") == "d/real.txt"
    os.rename(m.uploads / "ln", m.uploads / "d" / "ln2")
    assert os.readlink(m.uploads / "d" / "ln2") == "d/real.txt"
    os.unlink(m.uploads / "d" / "ln2")
    assert (m.uploads / "d" / "real.txt").read_bytes() == b"real\n"


def test_fifo_socket_and_device_nodes(rgw, bucket, mount):
    m = mount(bucket)
    fifo = m.uploads / "pipe"
    os.mkfifo(fifo, 0o640)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert stat.S_IMODE(os.stat(fifo).st_mode) == 0o640 & ~current_umask()
    # the kernel carries the bytes: a FIFO in the mount works as one
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with open(fifo, "wb") as w:
        w.write(b"through the pipe")
    reader.join(timeout=30)
    assert got == [b"through the pipe"]
    os.chmod(fifo, 0o600)  # keeps the type
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert int(meta(rgw, bucket, "uploads/pipe")["mode"]) == stat.S_IFIFO | 0o600

    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(m.uploads / "sock"))
    assert stat.S_ISSOCK(os.stat(m.uploads / "sock").st_mode)

    os.mknod(m.uploads / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    md = meta(rgw, bucket, "uploads/null")
    assert stat.S_IFMT(int(md["mode"])) == stat.S_IFCHR
    assert int(md["rdev"]) == os.makedev(1, 3)
    m.remount()
    st = os.stat(m.uploads / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.stat(m.uploads / "pipe").st_mode)


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_tree(root):
    """A tree with links of every kind tar and rsync carry."""
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_bytes(b"a" * 1000)
    os.symlink("sub/a.txt", root / "rel")
    os.symlink("/etc/hostname", root / "abs")
    os.symlink("sub", root / "subdir")
    os.symlink("missing", root / "broken")
    for p in (root / "sub" / "a.txt",):
        os.utime(p, (1_500_000_000, 1_500_000_000))


def describe(root):
    """Each path below root: its type, and a link's target or a file's bytes."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir", None)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", f.read())
    return out


def test_tar_and_rsync_carry_links(bucket, mount, tmp_path):
    m = mount(bucket)
    src = tmp_path / "src"
    make_tree(src)
    archive = tmp_path / "t.tar"
    run(["tar", "-C", str(src), "-cf", str(archive), "."])
    (m.uploads / "untarred").mkdir()
    run(["tar", "-C", str(m.uploads / "untarred"), "-xf", str(archive)])
    assert describe(m.uploads / "untarred") == describe(src)
    back = tmp_path / "back"
    back.mkdir()
    run(["tar", "-C", str(m.uploads / "untarred"), "-cf", str(tmp_path / "b.tar"), "."])
    run(["tar", "-C", str(back), "-xf", str(tmp_path / "b.tar")])
    assert describe(back) == describe(src)

    if not shutil.which("rsync"):
        pytest.fail("rsync is a test dependency (make deps)")
    dst = m.uploads / "synced"
    cmd = ["rsync", "-a", "--itemize-changes", f"{src}/", f"{dst}/"]
    run(cmd)
    assert describe(dst) == describe(src)
    again = run(cmd).stdout.decode().strip()
    assert again == "", again  # nothing copied the second time


def test_s3fs_shows_the_links_imgfs_writes_and_the_other_way(rgw, bucket, mount, tmp_path):
    if not shutil.which("s3fs"):
        pytest.fail("s3fs is a test dependency (make deps)")
    m = mount(bucket)
    os.symlink("target-of-imgfs", m.uploads / "by-imgfs")
    os.mkfifo(m.uploads / "fifo-of-imgfs")
    theirs = tmp_path / "s3fs"
    mount_s3fs(rgw, bucket, theirs, tmp_path)
    try:
        assert os.readlink(theirs / "uploads" / "by-imgfs") == "target-of-imgfs"
        assert stat.S_ISFIFO(os.stat(theirs / "uploads" / "fifo-of-imgfs").st_mode)
        os.symlink("target-of-s3fs", theirs / "uploads" / "by-s3fs")
        m.remount()
        assert os.readlink(m.uploads / "by-s3fs") == "target-of-s3fs"
        assert stat.S_ISLNK(os.lstat(m.uploads / "by-s3fs").st_mode)
    finally:
        subprocess.run(["fusermount3", "-u", str(theirs)], check=False)
