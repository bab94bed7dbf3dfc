"""POSIX attributes in uploads/ (issue 10, docs/SEMANTICS.md "Attributes"):
mtime, mode, uid and gid are kept in the object's user metadata as s3fs
and rclone keep them (x-amz-meta-mtime, -mode, -uid, -gid), set by
utimensat, chmod and chown with a server-side copy, kept by cp -a and
rsync -a, and shown alike by imgfs, s3fs and rclone mounting the bucket.
Also: a rename records the copy's own ETag, and a copy over the server's
CopyObject limit goes part by part (UploadPartCopy).
"""

import os
import shutil
import stat
import subprocess

import pytest

from helpers import MIB, _mountinfo_has, run, sha256_file, sha256_object, wait_for


def meta(rgw, bucket, key):
    return rgw.s3.head_object(Bucket=bucket, Key=key)["Metadata"]


def test_touch_d_sets_a_stored_mtime(rgw, bucket, mount):
    m = mount(bucket)
    path = m.uploads / "t.txt"
    path.write_bytes(b"hello\n")
    os.utime(path, ns=(1_500_000_000_250_000_000, 1_500_000_000_250_000_000))
    st = os.stat(path)
    assert st.st_mtime_ns == 1_500_000_000_250_000_000
    assert meta(rgw, bucket, "uploads/t.txt")["mtime"] == "1500000000.250000000"
    run(["touch", "-d", "2001-02-03 04:05:06 UTC", str(path)])
    assert os.stat(path).st_mtime == 981173106
    assert meta(rgw, bucket, "uploads/t.txt")["mtime"] == "981173106"
    assert path.read_bytes() == b"hello\n"
    m.remount()  # from the bucket, not the daemon's cache
    assert os.stat(m.uploads / "t.txt").st_mtime == 981173106


def test_chmod_and_chown_are_stored(rgw, bucket, mount):
    m = mount(bucket)
    path = m.uploads / "c.bin"
    path.write_bytes(b"x" * 100)
    os.chmod(path, 0o640)
    os.chown(path, 1234, 5678)
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o640 and stat.S_ISREG(st.st_mode)
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    md = meta(rgw, bucket, "uploads/c.bin")
    assert int(md["mode"]) == stat.S_IFREG | 0o640
    assert (md["uid"], md["gid"]) == ("1234", "5678")
    # a rewrite keeps mode and owner, and takes a new mtime
    with open(path, "ab") as f:
        f.write(b"more")
    m.remount()
    st = os.stat(m.uploads / "c.bin")
    assert stat.S_IMODE(st.st_mode) == 0o640 and (st.st_uid, st.st_gid) == (1234, 5678)
    assert st.st_size == 104


def make_tree(root):
    (root / "sub" / "deep").mkdir(parents=True)
    files = {"a.txt": b"a\n", "sub/b.bin": os.urandom(300_000),
             "sub/deep/big.bin": os.urandom(12 * MIB + 3), "sub/deep/empty": b""}
    for i, (rel, data) in enumerate(sorted(files.items())):
        p = root / rel
        p.write_bytes(data)
        os.chmod(p, [0o600, 0o644, 0o755, 0o640][i % 4])
        os.utime(p, ns=(1_400_000_000_123_456_789 + i * 10**9,) * 2)
    return files


def tree_attrs(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.stat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return out


def test_a_new_file_shows_its_creation_mode_at_once(bucket, mount):
    # libfuse answers a create with the new handle's attributes and the
    # kernel keeps them for metadata_ttl: they must carry the mode asked for
    # (pjdfstest open/00.t); and fstat of a descriptor reading a file shows
    # its stored mode.
    m = mount(bucket)
    path = m.uploads / "made.sh"
    old = os.umask(0)
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o751)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o751
    finally:
        os.close(fd)
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o751 and stat.S_ISREG(st.st_mode)
    os.chmod(path, 0o600)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
    finally:
        os.close(fd)


def test_cp_a_keeps_mtimes_and_modes(rgw, bucket, mount, tmp_path):
    m = mount(bucket, opts={"part_size": "5M"})
    src = tmp_path / "src"
    make_tree(src)
    run(["cp", "-a", str(src), str(m.uploads / "dst")])
    assert tree_attrs(m.uploads / "dst") == tree_attrs(src)
    m.remount()
    # By name: a fresh mount's listing does not carry the stored attributes
    # (docs/SEMANTICS.md, "Attributes"); a stat by name does.
    want = tree_attrs(src)
    got = {}
    for rel in want:
        st = os.stat(m.uploads / "dst" / rel)
        got[rel] = (st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    assert got == want


def rsync_stats(src, dst):
    p = run(["rsync", "-a", "--itemize-changes", "--stats", f"{src}/", f"{dst}/"])
    out = p.stdout.decode()
    changed = [ln for ln in out.splitlines() if ln[:1] in ("<", ">", "c", "h", ".")
               and not ln.startswith(".d")]
    n = int(next(ln for ln in out.splitlines()
                 if ln.startswith("Number of regular files transferred")).split(":")[1].replace(",", ""))
    return n, changed


def test_rsync_a_twice_transfers_nothing_the_second_time(rgw, bucket, mount, tmp_path):
    m = mount(bucket, opts={"part_size": "5M"})
    src = tmp_path / "src"
    files = make_tree(src)
    n, _ = rsync_stats(src, m.uploads / "r")
    assert n == len(files)
    n, changed = rsync_stats(src, m.uploads / "r")
    assert n == 0 and changed == [], changed
    m.remount()
    n, changed = rsync_stats(src, m.uploads / "r")
    assert n == 0 and changed == [], changed


def mount_s3fs(rgw, bucket, path, tmp_path):
    pw = tmp_path / "s3fs.passwd"
    pw.write_text(f"{rgw.access_key}:{rgw.secret_key}\n")
    pw.chmod(0o600)
    path.mkdir()
    run(["s3fs", bucket, str(path), "-o", f"url={rgw.endpoint},use_path_request_style,"
         f"passwd_file={pw},stat_cache_expire=1"], check_clean=False)
    wait_for(lambda: _mountinfo_has(path), 20, what="s3fs to mount")


def mount_rclone(rgw, bucket, path, tmp_path):
    env = dict(os.environ, RCLONE_CONFIG_T_TYPE="s3", RCLONE_CONFIG_T_PROVIDER="Ceph",
               RCLONE_CONFIG_T_ENDPOINT=rgw.endpoint,
               RCLONE_CONFIG_T_ACCESS_KEY_ID=rgw.access_key,
               RCLONE_CONFIG_T_SECRET_ACCESS_KEY=rgw.secret_key,
               RCLONE_CONFIG_T_REGION=rgw.region)
    path.mkdir()
    proc = subprocess.Popen(["rclone", "mount", f"t:{bucket}", str(path), "--dir-cache-time", "1s",
                             "--config", "/dev/null"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "rclone.log", "wb"))
    wait_for(lambda: _mountinfo_has(path), 20, what="rclone to mount")
    return proc


def test_s3fs_and_rclone_show_the_same_mtimes(rgw, bucket, mount, tmp_path):
    if not shutil.which("s3fs") or not shutil.which("rclone"):
        pytest.fail("s3fs and rclone are test dependencies (make deps)")
    m = mount(bucket)
    src = tmp_path / "src"
    src.mkdir()
    for i, ns in enumerate([1_500_000_000_000_000_000, 1_600_000_000_500_000_000]):
        (src / f"f{i}").write_bytes(b"%d" % i)
        os.utime(src / f"f{i}", ns=(ns, ns))
    run(["cp", "-a", str(src / "f0"), str(src / "f1"), str(m.uploads)])
    s3fs_mnt, rclone_mnt = tmp_path / "s3fs", tmp_path / "rclone"
    mount_s3fs(rgw, bucket, s3fs_mnt, tmp_path)
    proc = mount_rclone(rgw, bucket, rclone_mnt, tmp_path)
    try:
        for i in range(2):
            ours = os.stat(m.uploads / f"f{i}")
            theirs_s3fs = os.stat(s3fs_mnt / "uploads" / f"f{i}")
            theirs_rclone = os.stat(rclone_mnt / "uploads" / f"f{i}")
            assert int(ours.st_mtime) == int(theirs_s3fs.st_mtime)
            assert ours.st_mtime_ns == theirs_rclone.st_mtime_ns
        # and what they write, imgfs shows with their mtimes
        (s3fs_mnt / "uploads" / "by-s3fs").write_bytes(b"s")
        os.utime(s3fs_mnt / "uploads" / "by-s3fs", (1_234_567_890, 1_234_567_890))
        (rclone_mnt / "uploads" / "by-rclone").write_bytes(b"r")
        os.utime(rclone_mnt / "uploads" / "by-rclone", ns=(1_234_567_890_500_000_000,) * 2)
        wait_for(lambda: "mtime" in meta(rgw, bucket, "uploads/by-rclone"), 20,
                 what="rclone to store the mtime")
        m.remount()
        assert os.stat(m.uploads / "by-s3fs").st_mtime == 1_234_567_890
        assert os.stat(m.uploads / "by-rclone").st_mtime_ns == 1_234_567_890_500_000_000
    finally:
        subprocess.run(["fusermount3", "-u", str(s3fs_mnt)], check=False)
        subprocess.run(["fusermount3", "-u", str(rclone_mnt)], check=False)
        proc.wait(timeout=30)


def test_mv_of_a_multipart_object_records_the_new_etag(rgw, bucket, mount, images, tmp_path):
    """RGW, like AWS, may give the copy its own ETag; the moved file reads
    back and thumbnails from the ETag the destination really has."""
    m = mount(bucket, opts={"part_size": "5M"})
    big = next(p for p in sorted(images, key=lambda p: -p.stat().st_size) if p.suffix == ".jpg")
    data = big.read_bytes()
    padded = tmp_path / "big.jpg"
    padded.write_bytes(data + b"\0" * max(0, 11 * MIB - len(data)))  # JPEG ignores the tail
    run(["cp", str(padded), str(m.uploads / "a.jpg")])
    assert "-" in rgw.s3.head_object(Bucket=bucket, Key="uploads/a.jpg")["ETag"]
    run(["mv", str(m.uploads / "a.jpg"), str(m.uploads / "b.jpg")])
    assert sha256_file(m.uploads / "b.jpg") == sha256_file(padded)
    assert (m.thumbs / "b.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_mv_over_the_copy_limit_goes_part_by_part(rgw, bucket, mount, tmp_path):
    """Objects over copy_max (default 5G, S3's CopyObject limit) are copied
    with UploadPartCopy. RGW has no lower copy limit to provoke (it copies
    past rgw_max_put_size), so the test lowers copy_max to 20 MiB: a 50 MiB
    file then stands for one over 5 GiB, and the copies below are really
    made part by part by RGW (the access log shows the part requests). With
    IMGFS_RGW_OBJECTSTORE=bluestore the same holds for a real 6 GiB file
    and the default copy_max."""
    m = mount(bucket, opts={"part_size": "8M", "copy_max": "20M"})
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(50 * MIB))
    run(["cp", str(src), str(m.uploads / "big.bin")])
    mark = rgw.log_mark()
    run(["mv", str(m.uploads / "big.bin"), str(m.uploads / "moved.bin")])
    assert sha256_object(rgw.s3, bucket, "uploads/moved.bin") == sha256_file(src)
    assert sha256_file(m.uploads / "moved.bin") == sha256_file(src)
    os.utime(m.uploads / "moved.bin", (1_300_000_000, 1_300_000_000))
    assert meta(rgw, bucket, "uploads/moved.bin")["mtime"] == "1300000000"
    assert sha256_object(rgw.s3, bucket, "uploads/moved.bin") == sha256_file(src)
    parts = [r for r in rgw.requests(since=mark, method="PUT")
             if "partNumber" in r.query and r.path.endswith("/uploads/moved.bin")]
    assert len(parts) >= 2, parts
