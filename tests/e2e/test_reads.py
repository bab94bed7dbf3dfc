"""Reads that don't waste (issue 13): the kernel's page cache kept while
the ETag is unchanged, the local data cache, adaptive read-ahead. Requests
are counted from RGW's access log, bytes from the daemon's counter."""

import hashlib
import os
import random
import shutil
import subprocess
import threading

import pytest

from helpers import MIB, run, sha256_file, wait_for


def gets(rgw, since, bucket, key):
    return [r for r in rgw.requests(since=since, method="GET", bucket=bucket)
            if r.path == f"/{bucket}/{key}"]


def put_random(rgw, bucket, key, size, seed):
    data = random.Random(seed).randbytes(size)
    rgw.s3.put_object(Bucket=bucket, Key=key, Body=data)
    return hashlib.sha256(data).hexdigest()


def bytes_down(m):
    return m.metric("imgfs_bytes_down_total")


def cat_sha(path):
    out = subprocess.run(["cat", str(path)], capture_output=True, check=True, timeout=300).stdout
    return hashlib.sha256(out).hexdigest()


def block_files(cache_dir):
    data = os.path.join(cache_dir, "data")
    out = []
    for sub in sorted(os.listdir(data)):
        if len(sub) == 2:
            out += [os.path.join(data, sub, f) for f in sorted(os.listdir(os.path.join(data, sub)))]
    return out


@pytest.fixture
def photo(images):
    """A JPEG of 2.5-6 MB."""
    for p in images:
        if p.suffix.lower() in (".jpg", ".jpeg") and 2_500_000 <= p.stat().st_size <= 6_000_000:
            return p
    pytest.skip("no JPEG of 2.5-6 MB among the images")


def test_three_rounds_of_image_tools_fetch_once(rgw, bucket, mount, photo):
    rgw.s3.upload_file(str(photo), bucket, "uploads/photo.jpg")
    m = mount(bucket)
    size = photo.stat().st_size
    mark = rgw.log_mark()
    path = m.uploads / "photo.jpg"
    for _ in range(3):
        run(["vipsheader", str(path)])
        run(["file", str(path)])
        assert cat_sha(path) == sha256_file(photo)
    assert bytes_down(m) <= 1.2 * size
    # one small first GET, then each block at most once
    assert len(gets(rgw, mark, bucket, "uploads/photo.jpg")) <= -(-size // MIB) + 1


def test_second_cat_makes_no_get_without_data_cache(rgw, bucket, mount):
    digest = put_random(rgw, bucket, "uploads/blob.bin", 5 * MIB, 1)
    m = mount(bucket, opts={"data_cache_max": "0"})
    path = m.uploads / "blob.bin"
    assert cat_sha(path) == digest
    mark = rgw.log_mark()
    assert cat_sha(path) == digest
    assert gets(rgw, mark, bucket, "uploads/blob.bin") == []


def test_head_of_large_file_fetches_little(rgw, bucket, mount):
    data = random.Random(2).randbytes(25 * MIB)
    rgw.s3.put_object(Bucket=bucket, Key="uploads/big.bin", Body=data)
    m = mount(bucket)
    out = subprocess.run(["head", "-c", "100", str(m.uploads / "big.bin")],
                         capture_output=True, check=True).stdout
    assert out == data[:100]
    assert bytes_down(m) <= 2 * MIB


def test_reread_after_remount_fetches_nothing(rgw, bucket, mount):
    digest = put_random(rgw, bucket, "uploads/r.bin", 6 * MIB + 123, 3)
    m = mount(bucket)
    assert cat_sha(m.uploads / "r.bin") == digest
    m.remount()
    mark = rgw.log_mark()
    assert cat_sha(m.uploads / "r.bin") == digest
    assert gets(rgw, mark, bucket, "uploads/r.bin") == []
    assert bytes_down(m) < 64 * 1024  # a listing, no object bytes


def test_replaced_by_another_client_reads_new(rgw, bucket, mount):
    put_random(rgw, bucket, "uploads/v.bin", 3 * MIB, 4)
    m = mount(bucket, opts={"metadata_ttl": "0.5"})
    path = m.uploads / "v.bin"
    cat_sha(path)
    new = put_random(rgw, bucket, "uploads/v.bin", 3 * MIB, 5)
    wait_for(lambda: cat_sha(path) == new, 30, what="the new version read")
    m.remount()
    assert cat_sha(path) == new


def test_flipped_byte_in_a_block_is_refetched(rgw, bucket, mount):
    digest = put_random(rgw, bucket, "uploads/c.bin", 4 * MIB, 6)
    m = mount(bucket)
    assert cat_sha(m.uploads / "c.bin") == digest
    m.unmount()
    blocks = block_files(m.cache_dir)
    assert len(blocks) >= 4
    for b in blocks:
        at = min(1000, os.path.getsize(b) - 1)
        with open(b, "r+b") as f:
            f.seek(at)
            c = f.read(1)
            f.seek(at)
            f.write(bytes([c[0] ^ 0x20]))
    m.remount()
    assert cat_sha(m.uploads / "c.bin") == digest
    assert m.metric("imgfs_data_cache_corrupt_total") >= 1
    assert "damaged" in m.stderr_text()


def test_full_cache_dir_still_reads_right(rgw, bucket, mount, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(small)]).returncode:
        pytest.skip("cannot mount a tmpfs")
    try:
        digest = put_random(rgw, bucket, "uploads/f.bin", 12 * MIB, 7)
        m = mount(bucket, cache_dir=str(small / "cache"))
        for _ in range(2):
            assert cat_sha(m.uploads / "f.bin") == digest
            run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"])
        assert "not cached" in m.stderr_text()
        m.unmount()
    finally:
        subprocess.run(["umount", "-l", str(small)])


def test_kill9_mid_read_leaves_a_consistent_cache(rgw, bucket, mount):
    digest = put_random(rgw, bucket, "uploads/k.bin", 40 * MIB, 8)
    m = mount(bucket)
    path = m.uploads / "k.bin"
    got = []

    def reader():
        try:
            with open(path, "rb") as f:
                while f.read(MIB):
                    got.append(1)
        except OSError:
            pass

    t = threading.Thread(target=reader)
    t.start()
    wait_for(lambda: len(got) >= 5, 60, what="a read under way")
    m.kill9()
    t.join(60)
    subprocess.run(["fusermount3", "-uz", str(m.path)], capture_output=True)
    m.remount()
    assert cat_sha(path) == digest
    assert not [f for f in block_files(m.cache_dir) if f.endswith(".tmp")]


def drop_page_cache():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


@pytest.mark.parametrize("size", [3 * MIB + 5, 21 * MIB + 7])
def test_written_file_reads_back_without_get(rgw, bucket, mount, tmp_path, size):
    src = tmp_path / "w.bin"
    src.write_bytes(random.Random(size).randbytes(size))
    m = mount(bucket)
    shutil.copyfile(src, m.uploads / "w.bin")
    drop_page_cache()
    mark = rgw.log_mark()
    assert cat_sha(m.uploads / "w.bin") == sha256_file(src)
    assert gets(rgw, mark, bucket, "uploads/w.bin") == []


def test_thumbnail_source_read_through_the_cache(rgw, bucket, mount, photo):
    rgw.s3.upload_file(str(photo), bucket, "uploads/p.jpg")
    m = mount(bucket)
    assert cat_sha(m.uploads / "p.jpg") == sha256_file(photo)
    mark = rgw.log_mark()
    thumb = (m.thumbs / "p.jpg").read_bytes()
    assert thumb[:2] == b"\xff\xd8"
    assert gets(rgw, mark, bucket, "uploads/p.jpg") == []


def test_max_read_is_honoured(rgw, bucket, mount):
    digest = put_random(rgw, bucket, "uploads/mr.bin", 3 * MIB, 9)
    m = mount(bucket, opts={"max_read": "131072"})
    assert cat_sha(m.uploads / "mr.bin") == digest
    assert m.mounted()


@pytest.mark.parametrize("value", ["abc", "0", "100"])
def test_bad_max_read_is_refused_before_mounting(rgw, bucket, imgfs_bin, tmp_path, value):
    mp = tmp_path / "mnt"
    mp.mkdir()
    p = subprocess.run([str(imgfs_bin), "-f", "-o", f"endpoint={rgw.endpoint},region=us-east-1,"
                        f"cache_dir={tmp_path / 'c'},max_read={value}", bucket, str(mp)],
                       env=rgw.env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert f"max_read={value}" in p.stderr
    assert "mounted" not in p.stderr


def read_ahead_kb(path):
    """The kernel's read-ahead window of the mount at path (its bdi)."""
    dev = os.stat(path).st_dev
    with open(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb") as f:
        return int(f.read())


def test_kernel_read_ahead_window(rgw, bucket, mount):
    """The mount's kernel read-ahead window is read_ahead (default 4M; the
    kernel's own 128K would cut sequential reads into 128 KiB requests);
    read_ahead=0 leaves the kernel's; a file still reads back whole."""
    sha = put_random(rgw, bucket, "uploads/ra.bin", 24 * MIB + 5, seed=41)
    m = mount(bucket)
    wait_for(lambda: read_ahead_kb(m.path) == 4096, 30, what="a 4096 KiB window")
    assert cat_sha(m.uploads / "ra.bin") == sha
    m.unmount()
    m = mount(bucket, opts={"read_ahead": "1M", "log_level": "debug"})
    wait_for(lambda: read_ahead_kb(m.path) == 1024, 30, what="a 1024 KiB window")
    wait_for(lambda: "kernel read-ahead of" in m.stderr_text(), 30, what="the debug line")
    m.unmount()
    m = mount(bucket, opts={"read_ahead": "0", "log_level": "debug"})
    assert cat_sha(m.uploads / "ra.bin") == sha
    assert read_ahead_kb(m.path) == 128  # the kernel's default for FUSE
    assert "kernel read-ahead of" not in m.stderr_text()
