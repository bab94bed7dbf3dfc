"""uploads/ behaves like a local disk for the calls tools make (issue 10,
docs/SEMANTICS.md "Open files and names"): unlink and rename of a file
that is open for writing, a second descriptor reading what another is
writing, git clone into the mount, a refused ftruncate, and fstat of an
open file whose name is gone.
"""

import errno
import os
import stat
import subprocess

import pytest

from helpers import MIB, get_bytes, list_keys, run


def test_unlink_of_a_file_open_for_writing(rgw, bucket, mount):
    """The name goes at once; the descriptor keeps working (write, read,
    fstat) and its close uploads nothing."""
    m = mount(bucket)
    path = m.uploads / "gone.txt"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"first part\n")
        os.unlink(path)
        assert not path.exists()
        assert "gone.txt" not in os.listdir(m.uploads)
        os.write(fd, b"second part\n")
        # A documented limit (docs/SEMANTICS.md): libfuse's high-level API
        # forgets the path of a removed node and the kernel's fstat sends
        # no file handle, so fstat after unlink is ESTALE.
        with pytest.raises(OSError) as e:
            os.fstat(fd)
        assert e.value.errno == errno.ESTALE
        assert os.pread(fd, 100, 0) == b"first part\nsecond part\n"
        os.fsync(fd)
    finally:
        os.close(fd)
    assert not path.exists()
    assert list_keys(rgw.s3, bucket) == {}


def test_unlink_of_an_uploaded_file_still_open(rgw, bucket, mount):
    """An object already in the bucket: unlink removes it, and a later
    close of the descriptor that wrote it does not bring it back."""
    m = mount(bucket)
    path = m.uploads / "was.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"uploaded by fsync\n")
        os.fsync(fd)
        assert list_keys(rgw.s3, bucket) == {"uploads/was.txt": 18}
        os.unlink(path)
        os.write(fd, b"more\n")
    finally:
        os.close(fd)
    assert list_keys(rgw.s3, bucket) == {}
    assert not path.exists()


def test_rename_of_a_file_open_for_writing(rgw, bucket, mount):
    """(echo foo; mv g g.new) > g: the writer's bytes end up under the new
    name, and the old name is gone, in the mount and in the bucket."""
    m = mount(bucket)
    run(["bash", "-c", "cd '%s' && (echo foo; mv g g.new; echo bar) > g"
         % m.uploads])
    assert not (m.uploads / "g").exists()
    assert (m.uploads / "g.new").read_bytes() == b"foo\nbar\n"
    assert list_keys(rgw.s3, bucket) == {"uploads/g.new": 8}
    assert get_bytes(rgw.s3, bucket, "uploads/g.new") == b"foo\nbar\n"


def test_rename_of_a_streaming_multipart_file(rgw, bucket, mount):
    """A file that had begun its multipart upload under the old name moves
    to the new one and is complete there."""
    m = mount(bucket, opts={"part_size": str(5 * MIB)})
    data = os.urandom(12 * MIB + 5)
    src, dst = m.uploads / "big.bin", m.uploads / "moved.bin"
    with open(src, "wb") as f:
        f.write(data[: 11 * MIB])
        f.flush()
        os.rename(src, dst)
        f.write(data[11 * MIB:])
    assert list_keys(rgw.s3, bucket) == {"uploads/moved.bin": len(data)}
    assert get_bytes(rgw.s3, bucket, "uploads/moved.bin") == data
    assert rgw.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_rename_over_a_file_open_for_writing(rgw, bucket, mount):
    """The file replaced by a rename keeps living in its descriptor, and
    its close does not overwrite the file moved over it."""
    m = mount(bucket)
    (m.uploads / "new").write_bytes(b"the new one\n")
    fd = os.open(m.uploads / "old", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"the old one, still open\n")
        os.rename(m.uploads / "new", m.uploads / "old")
        os.write(fd, b"more\n")
    finally:
        os.close(fd)
    assert (m.uploads / "old").read_bytes() == b"the new one\n"
    assert get_bytes(rgw.s3, bucket, "uploads/old") == b"the new one\n"


def test_second_descriptor_reads_what_another_is_writing(rgw, bucket, mount):
    m = mount(bucket, opts={"part_size": str(5 * MIB)})
    path = m.uploads / "pack"
    data = os.urandom(7 * MIB)
    w = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(w, data)
        r = os.open(path, os.O_RDONLY)
        try:
            assert os.fstat(r).st_size == len(data)
            assert os.pread(r, 4096, 0) == data[:4096]
            assert os.pread(r, 1000, 6 * MIB) == data[6 * MIB: 6 * MIB + 1000]
            os.write(w, b"tail")
            assert os.pread(r, 10, len(data)) == b"tail"
        finally:
            os.close(r)
    finally:
        os.close(w)
    assert path.read_bytes() == data + b"tail"


def make_repo(root):
    root.mkdir()
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e")
    run(["git", "init", "-q", "-b", "main", str(root)], env=env)
    for i in range(5):
        (root / f"f{i}.txt").write_text(f"file {i}\n" * (i * 100 + 1))
        (root / "blob.bin").write_bytes(os.urandom(3 * MIB + i))
        run(["git", "-C", str(root), "add", "-A"], env=env)
        run(["git", "-C", str(root), "commit", "-q", "-m", f"commit {i}"],
            env=env)
    return env


def test_git_clone_into_the_mount(rgw, bucket, mount, tmp_path):
    """git clone writes a pack while index-pack reads it, renames files it
    still has open, and appends to its config: all as on a disk."""
    m = mount(bucket)
    env = make_repo(tmp_path / "origin")
    dst = m.uploads / "clone"
    run(["git", "clone", "-q", "--no-local", str(tmp_path / "origin"),
         str(dst)], env=env)
    run(["git", "-C", str(dst), "fsck", "--full", "--strict"], env=env)
    log = subprocess.run(["git", "-C", str(dst), "log", "--format=%s"],
                         capture_output=True, text=True, check=True, env=env)
    assert log.stdout.split("\n")[:5] == [f"commit {i}" for i in range(4, -1, -1)]
    assert (dst / "f4.txt").read_text() == "file 4\n" * 401


def test_refused_ftruncate_keeps_the_file(rgw, bucket, mount):
    """An ftruncate past S3's largest object (5 TiB) fails with EFBIG and
    leaves the file as written; close uploads it."""
    m = mount(bucket)
    path = m.uploads / "kept.bin"
    data = os.urandom(MIB)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        with pytest.raises(OSError) as e:
            os.ftruncate(fd, 20 << 40)
        assert e.value.errno == errno.EFBIG
        os.write(fd, b"after")
    finally:
        os.close(fd)
    assert get_bytes(rgw.s3, bucket, "uploads/kept.bin") == data + b"after"


def test_append_with_shell_redirection(rgw, bucket, mount):
    m = mount(bucket)
    path = m.uploads / "log.txt"
    for i in range(3):
        run(["bash", "-c", "echo line %d >> '%s'" % (i, path)])
    assert path.read_bytes() == b"line 0\nline 1\nline 2\n"
    assert get_bytes(rgw.s3, bucket, "uploads/log.txt") == b"line 0\nline 1\nline 2\n"


def test_hard_links_are_eperm_and_taken_names_eexist(rgw, bucket, mount):
    """No object is a second name of another: link(2) is refused with EPERM,
    as it specifies for a file system without hard links (not ENOSYS).
    Every node, link or not, is EEXIST where the name is taken and EROFS in
    the read-only areas; nothing of these reaches the bucket (the nodes
    that are objects: test_nodes.py)."""
    m = mount(bucket)
    (m.uploads / "f.txt").write_bytes(b"x")
    with pytest.raises(OSError) as e:
        os.link(m.uploads / "f.txt", m.uploads / "n")
    assert e.value.errno == errno.EPERM
    attempts = [
        lambda p: os.symlink("f.txt", p),
        lambda p: os.mkfifo(p),
        lambda p: os.mknod(p, stat.S_IFCHR | 0o644, os.makedev(1, 3)),
        lambda p: os.link(m.uploads / "f.txt", p),
    ]
    for make in attempts:
        for path, want in ((m.uploads / "f.txt", errno.EEXIST),
                           (m.thumbs / "n", errno.EROFS)):
            with pytest.raises(OSError) as e:
                make(path)
            assert e.value.errno == want, (path, e.value)
    assert sorted(os.listdir(m.uploads)) == ["f.txt"]
    assert list(list_keys(rgw.s3, bucket)) == ["uploads/f.txt"]
