"""uploads/ end to end (issue 2): ordinary tools on a real mount, and the
bucket checked independently with boto3."""

import contextlib
import errno
import os
import pathlib
import random
import subprocess
import threading
import time

import pytest

from helpers import (
    MIB,
    image_kind,
    is_sanitized,
    list_keys,
    list_multipart_uploads,
    put_many,
    run,
    sha256_file,
    sha256_object,
    wait_for,
    write_random,
)

GIB = 1024 * MIB


def get_bytes(s3, bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def unique_names(images):
    """Flat, unique upload names for the image set ("Altai-5120x2880.png")."""
    out = {}
    for p in images:
        parts = [x for x in p.parts[4:] if x not in ("contents", "images")]
        name = "-".join(parts)
        assert name not in out, name
        out[name] = p
    return out


def vmrss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# ------------------------------------------------------------ the image set


def test_image_set_lands_byte_identical_with_content_type(rgw, bucket, mount, images, tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    names = unique_names(images)
    for name, src in names.items():
        (staging / name).symlink_to(src)
    m = mount(bucket)
    run(["cp", "--"] + [str(staging / n) for n in sorted(names)] + [str(m.uploads) + "/"])

    keys = list_keys(rgw.s3, bucket, "uploads/")
    assert set(keys) == {f"uploads/{n}" for n in names}
    wrong = []
    for name, src in sorted(names.items()):
        key = f"uploads/{name}"
        head = rgw.s3.head_object(Bucket=bucket, Key=key)
        with open(src, "rb") as f:
            expected_type = image_kind(f.read(16))
        if head["ContentType"] != expected_type:
            wrong.append(f"{key}: Content-Type {head['ContentType']!r}, want {expected_type!r}")
        if head["ContentLength"] != src.stat().st_size:
            wrong.append(f"{key}: {head['ContentLength']} bytes, want {src.stat().st_size}")
        elif sha256_object(rgw.s3, bucket, key) != sha256_file(src):
            wrong.append(f"{key}: content differs")
    assert not wrong, "\n".join(wrong)


def test_content_type_comes_from_content_not_name(rgw, bucket, mount, images, tmp_path):
    by_kind = {}
    for p in images:
        with open(p, "rb") as f:
            by_kind.setdefault(image_kind(f.read(16)), p)
    assert {"image/jpeg", "image/png", "image/webp"} <= set(by_kind)
    cases = {
        "jpeg-named.png": (by_kind["image/jpeg"], "image/jpeg"),
        "png-named.jpg": (by_kind["image/png"], "image/png"),
        "webp-named.jpeg": (by_kind["image/webp"], "image/webp"),
        "no-extension": (by_kind["image/png"], "image/png"),
    }
    text = tmp_path / "text.jpg"
    text.write_text("not an image at all\n" * 10)
    m = mount(bucket)
    for name, (src, _) in cases.items():
        run(["cp", str(src), str(m.uploads / name)])
    run(["cp", str(text), str(m.uploads / "text-named.jpg")])
    for name, (_, want) in cases.items():
        got = rgw.s3.head_object(Bucket=bucket, Key=f"uploads/{name}")["ContentType"]
        assert got == want, f"{name}: Content-Type {got!r}, want {want!r}"
    got = rgw.s3.head_object(Bucket=bucket, Key="uploads/text-named.jpg")["ContentType"]
    assert not got.startswith("image/"), f"a text file named .jpg got Content-Type {got!r}"


# --------------------------------------------------------------- big file


@pytest.mark.slow
def test_1gib_dd_streams_as_multipart_in_bounded_memory(rgw, bucket, mount, imgfs_bin, tmp_path):
    src = write_random(tmp_path / "big.src", GIB, seed=1)
    want = sha256_file(src)
    m = mount(bucket)
    limit_mib = 600 if is_sanitized(str(imgfs_bin)) else 200
    peak = 0
    dd = subprocess.Popen(
        ["dd", f"if={src}", f"of={m.uploads / 'big.bin'}", "bs=1M"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    while dd.poll() is None:
        peak = max(peak, vmrss_kib(m.pid))
        time.sleep(0.05)
    hwm = vmrss_kib(m.pid, "VmHWM")
    assert dd.returncode == 0, dd.stderr.read().decode()
    src.unlink()
    assert max(peak, hwm) < limit_mib * 1024, (
        f"imgfs RSS peaked at {max(peak, hwm) // 1024} MiB (limit {limit_mib} MiB)"
    )
    head = rgw.s3.head_object(Bucket=bucket, Key="uploads/big.bin")
    assert head["ContentLength"] == GIB
    etag = head["ETag"].strip('"')
    assert "-" in etag and int(etag.rsplit("-", 1)[1]) >= 2, f"not a multipart upload: ETag {etag}"
    assert sha256_object(rgw.s3, bucket, "uploads/big.bin") == want
    assert os.stat(m.uploads / "big.bin").st_size == GIB
    assert list_multipart_uploads(rgw.s3, bucket) == []


# ------------------------------------------------------------ big listing


def test_ls_l_of_5000_objects_lists_all_sizes_without_head(rgw, bucket, mount):
    items = {f"uploads/big/obj-{i:05d}.dat": b"x" * ((i * 37) % 4000 + 1) for i in range(5000)}
    put_many(rgw.s3, bucket, items)
    m = mount(bucket)
    heads0 = m.metric("imgfs_s3_requests_total", op="HEAD")
    lists0 = m.metric("imgfs_s3_requests_total", op="LIST")
    mark = rgw.log_mark() if rgw.log_path else None

    p = run(["ls", "-l", str(m.uploads / "big") + "/"], env=dict(os.environ, LC_ALL="C"))

    lines = p.stdout.decode().splitlines()
    assert lines[0].startswith("total ")
    listed = {}
    for line in lines[1:]:
        fields = line.split()
        listed[f"uploads/big/{fields[-1]}"] = int(fields[4])
    assert listed == {k: len(v) for k, v in items.items()}

    # the daemon's own count, and independently the server's access log
    heads = m.metric("imgfs_s3_requests_total", op="HEAD") - heads0
    lists = m.metric("imgfs_s3_requests_total", op="LIST") - lists0
    assert heads <= 2, f"ls -l sent {heads:.0f} HEAD requests"
    assert 5 <= lists <= 12, f"ls -l took {lists:.0f} ListObjectsV2 requests for 5,000 keys"
    if mark is not None:
        server_heads = rgw.requests(since=mark, method="HEAD", bucket=bucket)
        server_lists = [r for r in rgw.requests(since=mark, method="GET", bucket=bucket)
                        if "list-type=2" in r.query]
        assert len(server_heads) <= 2, f"RGW saw {len(server_heads)} HEAD requests"
        assert 5 <= len(server_lists) <= 12, f"RGW saw {len(server_lists)} ListObjectsV2 requests"


# ----------------------------------------------------------------- names

ODD_NAMES = [
    "with space.txt",
    "plus+sign.txt",
    "100%.txt",
    "%41%2Fencoded.txt",
    "hash#tag.txt",
    "what?.txt",
    "a=b&c=d.txt",
    "~tilde~.txt",
    "Ünïcödé café.txt",
    "日本語の写真.jpg",
    "emoji 📷.txt",
    "all +%#?=&~ é.txt",
]


def test_odd_names_round_trip(rgw, bucket, mount, tmp_path):
    m = mount(bucket)
    folder = "dir with space+é #1"
    (m.uploads / folder).mkdir()
    expected = {}
    for i, name in enumerate(ODD_NAMES):
        src = tmp_path / f"src{i}"
        src.write_bytes(f"content of {name}\n".encode() * (i + 1))
        for rel in (name, f"{folder}/{name}"):
            run(["cp", str(src), str(m.uploads / rel)])
            expected[rel] = src.read_bytes()

    assert set(os.listdir(m.uploads)) == set(ODD_NAMES) | {folder}
    assert set(os.listdir(m.uploads / folder)) == set(ODD_NAMES)
    for rel, data in expected.items():
        assert run(["cat", str(m.uploads / rel)]).stdout == data, rel
    keys = list_keys(rgw.s3, bucket, "uploads/")
    assert set(keys) == {f"uploads/{rel}" for rel in expected}
    for rel, data in expected.items():
        assert get_bytes(rgw.s3, bucket, f"uploads/{rel}") == data, rel


def test_odd_names_put_directly_are_readable(rgw, bucket, mount):
    items = {f"uploads/direct/{n}": n.encode() * 3 for n in ODD_NAMES}
    put_many(rgw.s3, bucket, items)
    m = mount(bucket)
    assert set(os.listdir(m.uploads / "direct")) == set(ODD_NAMES)
    for n in ODD_NAMES:
        assert (m.uploads / "direct" / n).read_bytes() == n.encode() * 3, n
        assert os.stat(m.uploads / "direct" / n).st_size == len(n.encode()) * 3, n


# --------------------------------------------------- file and folder operations


def test_mv_file_is_copy_plus_delete(rgw, bucket, mount, images):
    m = mount(bucket)
    src = next(p for p in images if p.suffix == ".jpg")
    run(["cp", str(src), str(m.uploads / "a.jpg")])
    (m.uploads / "into").mkdir()
    run(["mv", str(m.uploads / "a.jpg"), str(m.uploads / "b.jpg")])
    assert not (m.uploads / "a.jpg").exists()
    assert (m.uploads / "b.jpg").read_bytes() == src.read_bytes()
    run(["mv", str(m.uploads / "b.jpg"), str(m.uploads / "into") + "/"])
    assert os.listdir(m.uploads / "into") == ["b.jpg"]
    assert list_keys(rgw.s3, bucket) == {"uploads/into/b.jpg": src.stat().st_size}
    assert get_bytes(rgw.s3, bucket, "uploads/into/b.jpg") == src.read_bytes()
    head = rgw.s3.head_object(Bucket=bucket, Key="uploads/into/b.jpg")
    assert head["ContentType"] == "image/jpeg"


def make_tree(root, images):
    """A small tree: images and text in nested folders, odd modes, old mtimes."""
    (root / "sub" / "deeper").mkdir(parents=True)
    files = {
        "top.txt": b"top level\n",
        "sub/one.jpg": images[0].read_bytes(),
        "sub/two.png": next(p for p in images if p.suffix == ".png").read_bytes(),
        "sub/deeper/three.bin": random.Random(3).randbytes(3 * MIB + 17),
        "sub/deeper/empty": b"",
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    os.chmod(root / "top.txt", 0o600)
    os.utime(root / "sub" / "one.jpg", (1_500_000_000, 1_500_000_000))
    return files


def test_mv_folder_moves_every_object(rgw, bucket, mount, images, tmp_path):
    files = make_tree(tmp_path / "tree", images)
    m = mount(bucket)
    run(["cp", "-r", str(tmp_path / "tree"), str(m.uploads / "src")])
    run(["mv", str(m.uploads / "src"), str(m.uploads / "dst")])
    assert sorted(os.listdir(m.uploads)) == ["dst"]
    assert list_keys(rgw.s3, bucket) == {f"uploads/dst/{rel}": len(d) for rel, d in files.items()}
    for rel, data in files.items():
        assert (m.uploads / "dst" / rel).read_bytes() == data, rel
        assert get_bytes(rgw.s3, bucket, f"uploads/dst/{rel}") == data, rel


def test_rm_and_rm_r(rgw, bucket, mount, images, tmp_path):
    files = make_tree(tmp_path / "tree", images)
    m = mount(bucket)
    run(["cp", "-r", str(tmp_path / "tree"), str(m.uploads / "tree")])
    run(["cp", str(images[0]), str(m.uploads / "keep.jpg")])
    run(["cp", str(images[0]), str(m.uploads / "gone.jpg")])
    # thumbnails made at close land under thumbnails/: count the uploads
    assert len(list_keys(rgw.s3, bucket, "uploads/")) == len(files) + 2
    run(["rm", str(m.uploads / "gone.jpg")])
    assert not (m.uploads / "gone.jpg").exists()
    run(["rm", "-r", str(m.uploads / "tree")])
    assert os.listdir(m.uploads) == ["keep.jpg"]
    assert list(list_keys(rgw.s3, bucket, "uploads/")) == ["uploads/keep.jpg"]


def test_mkdir_p_rmdir_and_enotempty(rgw, bucket, mount):
    m = mount(bucket)
    run(["mkdir", "-p", str(m.uploads / "a" / "b" / "c")])
    assert (m.uploads / "a" / "b" / "c").is_dir()
    assert os.listdir(m.uploads / "a") == ["b"]
    run(["mkdir", "-p", str(m.uploads / "a" / "b")])  # exists: no error
    (m.uploads / "a" / "b" / "c" / "f.txt").write_bytes(b"f\n")
    assert list_keys(rgw.s3, bucket) == {"uploads/a/b/c/f.txt": 2}

    with pytest.raises(OSError) as e:
        os.rmdir(m.uploads / "a" / "b" / "c")
    assert e.value.errno == errno.ENOTEMPTY
    p = run(["rmdir", str(m.uploads / "a" / "b" / "c")], check_clean=False)
    assert p.returncode != 0 and b"not empty" in p.stderr.lower()

    run(["mkdir", str(m.uploads / "empty")])
    run(["rmdir", str(m.uploads / "empty")])
    assert not (m.uploads / "empty").exists()
    assert "empty" not in os.listdir(m.uploads)


def test_empty_folder_lives_until_unmount(rgw, bucket, mount):
    m = mount(bucket)
    run(["mkdir", "-p", str(m.uploads / "later" / "inner")])
    assert (m.uploads / "later" / "inner").is_dir()
    assert os.listdir(m.uploads) == ["later"]
    time.sleep(1)
    assert (m.uploads / "later" / "inner").is_dir(), "an empty folder vanished while mounted"
    m.remount()
    assert os.listdir(m.uploads) == []
    assert list_keys(rgw.s3, bucket) == {}


def test_overwrite_with_o_trunc_replaces_atomically_at_close(rgw, bucket, mount):
    m = mount(bucket)
    v1 = random.Random(1).randbytes(3 * MIB)
    v2 = b"second version\n" * 1000
    (m.uploads / "doc.bin").write_bytes(v1)
    assert get_bytes(rgw.s3, bucket, "uploads/doc.bin") == v1
    with open(m.uploads / "doc.bin", "wb") as f:  # O_TRUNC
        f.write(v2[:5000])
        f.flush()
        assert get_bytes(rgw.s3, bucket, "uploads/doc.bin") == v1, "old object changed before close"
        f.write(v2[5000:])
    assert get_bytes(rgw.s3, bucket, "uploads/doc.bin") == v2
    assert (m.uploads / "doc.bin").read_bytes() == v2
    assert os.stat(m.uploads / "doc.bin").st_size == len(v2)
    # the shell's way: cp onto an existing file
    run(["cp", "/etc/hostname", str(m.uploads / "doc.bin")])
    with open("/etc/hostname", "rb") as f:
        assert get_bytes(rgw.s3, bucket, "uploads/doc.bin") == f.read()


def test_python_writer_that_seeks_back_and_patches_a_header(rgw, bucket, mount):
    m = mount(bucket)
    body = random.Random(7).randbytes(12 * MIB)
    with open(m.uploads / "patched.bin", "wb") as f:
        f.write(b"\0" * 512)
        f.write(body)
        f.seek(0)
        f.write(b"HEADER" + len(body).to_bytes(8, "little"))
        f.seek(512 + 6 * MIB)
        f.write(b"MIDDLE")
    expected = bytearray(b"\0" * 512 + body)
    expected[0:14] = b"HEADER" + len(body).to_bytes(8, "little")
    expected[512 + 6 * MIB:512 + 6 * MIB + 6] = b"MIDDLE"
    assert get_bytes(rgw.s3, bucket, "uploads/patched.bin") == bytes(expected)
    assert (m.uploads / "patched.bin").read_bytes() == bytes(expected)


def tree_in_bucket_matches(rgw, bucket, prefix, files):
    assert list_keys(rgw.s3, bucket, prefix) == {prefix + rel: len(d) for rel, d in files.items()}
    for rel, data in files.items():
        assert get_bytes(rgw.s3, bucket, prefix + rel) == data, rel


def test_cp_a_copies_a_tree_cleanly(rgw, bucket, mount, images, tmp_path):
    files = make_tree(tmp_path / "tree", images)
    m = mount(bucket)
    run(["cp", "-a", str(tmp_path / "tree"), str(m.uploads / "copied")])
    tree_in_bucket_matches(rgw, bucket, "uploads/copied/", files)
    run(["cp", "-a", str(tmp_path / "tree") + "/.", str(m.uploads / "copied")])  # again, over it
    tree_in_bucket_matches(rgw, bucket, "uploads/copied/", files)
    for rel, data in files.items():
        assert (m.uploads / "copied" / rel).read_bytes() == data


def test_rsync_a_copies_a_tree_cleanly(rgw, bucket, mount, images, tmp_path):
    files = make_tree(tmp_path / "tree", images)
    m = mount(bucket)
    run(["rsync", "-a", str(tmp_path / "tree") + "/", str(m.uploads / "synced") + "/"])
    tree_in_bucket_matches(rgw, bucket, "uploads/synced/", files)  # no temp files left
    (tmp_path / "tree" / "top.txt").write_bytes(b"changed\n")
    files["top.txt"] = b"changed\n"
    run(["rsync", "-a", str(tmp_path / "tree") + "/", str(m.uploads / "synced") + "/"])
    tree_in_bucket_matches(rgw, bucket, "uploads/synced/", files)


# ------------------------------------------------------------------ reading


def test_reads_cat_cmp_and_random_ranges(rgw, bucket, mount, tmp_path):
    src = write_random(tmp_path / "data.bin", 40 * MIB + 123, seed=5)
    rgw.s3.upload_file(str(src), bucket, "uploads/direct.bin")  # written by someone else
    m = mount(bucket)
    run(["cp", str(src), str(m.uploads / "mine.bin")])
    data = src.read_bytes()
    rnd = random.Random(11)
    for name in ("direct.bin", "mine.bin"):
        path = m.uploads / name
        run(["cmp", str(src), str(path)])
        out = tmp_path / f"{name}.out"
        with open(out, "wb") as f:
            subprocess.run(["cat", str(path)], stdout=f, check=True, timeout=300)
        assert sha256_file(out) == sha256_file(src)
        fd = os.open(path, os.O_RDONLY)
        try:
            for _ in range(200):
                off = rnd.randrange(len(data))
                n = rnd.choice([1, 100, 4096, 65536, 300_000, 3 * MIB])
                assert os.pread(fd, n, off) == data[off:off + n], f"{name} [{off}, +{n})"
            assert os.pread(fd, 100, len(data)) == b""
        finally:
            os.close(fd)


def test_stat_reports_sizes(rgw, bucket, mount, tmp_path):
    sizes = [0, 1, 4095, 4096, 5 * MIB + 3, 17 * MIB]
    put_many(rgw.s3, bucket, {f"uploads/d{s}": b"d" * s for s in sizes})
    m = mount(bucket)
    for s in sizes:
        (m.uploads / f"w{s}").write_bytes(b"w" * s)
    run(["touch", str(m.uploads / "touched")])
    for s in sizes:
        assert os.stat(m.uploads / f"d{s}").st_size == s
        assert os.stat(m.uploads / f"w{s}").st_size == s
        assert rgw.s3.head_object(Bucket=bucket, Key=f"uploads/w{s}")["ContentLength"] == s
    assert os.stat(m.uploads / "touched").st_size == 0
    assert rgw.s3.head_object(Bucket=bucket, Key="uploads/touched")["ContentLength"] == 0
    assert os.stat(m.uploads).st_mode & 0o040000


# ------------------------------------------------------------ failed uploads


class FifoFeeder:
    """cp reads from a FIFO that this feeds, so that the test decides when
    the upload is under way and when it ends."""

    def __init__(self, path):
        self.path = path
        os.mkfifo(path)
        self.written = 0
        self.broken = False
        self._f = None
        self._opened = threading.Event()

    def open(self):
        def opener():
            self._f = open(self.path, "wb", buffering=0)
            self._opened.set()

        threading.Thread(target=opener, daemon=True).start()

    def feed(self, nbytes):
        if not self._opened.wait(30):
            raise AssertionError("cp did not open the FIFO within 30 s")
        block = random.Random(self.written).randbytes(MIB)
        try:
            for _ in range(nbytes // MIB):
                self._f.write(block)
                self.written += MIB
        except BrokenPipeError:
            self.broken = True

    def feed_in_background(self, nbytes, then_close=False):
        def run():
            self.feed(nbytes)
            if then_close:
                self.close()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def close(self):
        try:
            if self._f is not None:
                self._f.close()
        except BrokenPipeError:
            self.broken = True


@contextlib.contextmanager
def cp_from_fifo(m, tmp_path, name):
    """Start `cp FIFO uploads/NAME`; yield (feeder, cp). Afterwards cp is
    killed if it still runs and the FIFO closed, so that a failing test
    does not leave the mount busy."""
    fifo = FifoFeeder(tmp_path / f"{name}.fifo")
    fifo.open()
    cp = subprocess.Popen(
        ["cp", str(fifo.path), str(m.uploads / name)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        yield fifo, cp
    finally:
        if cp.poll() is None:
            cp.kill()
        cp.wait(60)
        fifo.close()


def feed_until_multipart_started(rgw, bucket, fifo):
    def started():
        if list_multipart_uploads(rgw.s3, bucket):
            return True
        if fifo.written >= 256 * MIB:
            pytest.fail("no multipart upload under way after 256 MiB written: not streaming")
        fifo.feed(8 * MIB)
        return False

    wait_for(started, timeout=120, interval=0.05, what="a multipart upload to start")


def assert_still_serving(rgw, bucket, m):
    assert m.mounted() and m.proc.poll() is None, "the daemon is gone"
    run(["cp", "/etc/hostname", str(m.uploads / "after.txt")])
    with open("/etc/hostname", "rb") as f:
        assert get_bytes(rgw.s3, bucket, "uploads/after.txt") == f.read()
    assert "after.txt" in os.listdir(m.uploads)


def test_refused_upload_fails_cp_and_leaves_nothing(rgw, bucket, mount, tmp_path):
    m = mount(bucket)
    deny = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",'
        f'"Action":["s3:PutObject"],"Resource":["arn:aws:s3:::{bucket}/*"]}}]}}'
    )
    with cp_from_fifo(m, tmp_path, "refused.bin") as (fifo, cp):
        feed_until_multipart_started(rgw, bucket, fifo)
        rgw.s3.put_bucket_policy(Bucket=bucket, Policy=deny)
        fifo.feed(32 * MIB)
        fifo.close()
        rc = cp.wait(180)
        err = cp.stderr.read().decode()
    assert rc != 0, "cp succeeded although the server refused the upload"
    assert "refused.bin" in err, f"cp printed no error: {err!r}"
    assert "uploads/refused.bin" not in list_keys(rgw.s3, bucket)
    wait_for(lambda: not list_multipart_uploads(rgw.s3, bucket), timeout=30,
             what="the failed multipart upload to be aborted")
    rgw.s3.delete_bucket_policy(Bucket=bucket)
    assert_still_serving(rgw, bucket, m)


def test_server_dying_mid_upload_fails_cp_and_daemon_survives(rgw, bucket, mount, tmp_path):
    if not rgw.can_restart:
        pytest.skip("needs an RGW this session can restart")
    m = mount(bucket)
    with cp_from_fifo(m, tmp_path, "dies.bin") as (fifo, cp):
        feed_until_multipart_started(rgw, bucket, fifo)
        rgw.stop()
        try:
            # the daemon may absorb this much in its part buffers; the error
            # is then due at close, so end the input
            feeder = fifo.feed_in_background(32 * MIB, then_close=True)
            try:
                rc = cp.wait(240)
            except subprocess.TimeoutExpired:
                pytest.fail("cp still running 240 s after the server died")
            feeder.join(30)
            err = cp.stderr.read().decode()
        finally:
            rgw.start()
    assert rc != 0, "cp succeeded although the server died"
    assert "dies.bin" in err, f"cp printed no error: {err!r}"
    assert_still_serving(rgw, bucket, m)
    assert "uploads/dies.bin" not in list_keys(rgw.s3, bucket)
    wait_for(lambda: not list_multipart_uploads(rgw.s3, bucket), timeout=60,
             what="the daemon to abort the multipart upload once the server is back")


# ---------------------------------------------------------- listing caches


def test_direct_put_appears_within_metadata_ttl(rgw, bucket, mount):
    m = mount(bucket, opts={"metadata_ttl": 1})
    assert os.listdir(m.uploads) == []
    (m.uploads / "sub").mkdir()
    rgw.s3.put_object(Bucket=bucket, Key="uploads/direct.txt", Body=b"hello\n")
    rgw.s3.put_object(Bucket=bucket, Key="uploads/sub/inner.txt", Body=b"inner\n")
    t0 = time.monotonic()
    wait_for(lambda: "direct.txt" in os.listdir(m.uploads), timeout=3, what="direct.txt in ls")
    wait_for(lambda: "inner.txt" in os.listdir(m.uploads / "sub"), timeout=3, what="inner.txt in ls")
    assert time.monotonic() - t0 < 3
    assert (m.uploads / "direct.txt").read_bytes() == b"hello\n"
    rgw.s3.delete_object(Bucket=bucket, Key="uploads/direct.txt")
    wait_for(lambda: "direct.txt" not in os.listdir(m.uploads), timeout=3, what="direct.txt gone from ls")


def test_listing_is_cached_and_own_writes_invalidate_it(rgw, bucket, mount):
    m = mount(bucket, opts={"metadata_ttl": 60})
    os.listdir(m.uploads)
    lists0 = m.metric("imgfs_s3_requests_total", op="LIST")
    for _ in range(3):
        run(["ls", "-l", str(m.uploads)])
    assert m.metric("imgfs_s3_requests_total", op="LIST") == lists0, "listing not cached"
    (m.uploads / "mine.txt").write_bytes(b"mine\n")
    assert "mine.txt" in os.listdir(m.uploads)
    os.unlink(m.uploads / "mine.txt")
    assert "mine.txt" not in os.listdir(m.uploads)


# ------------------------------------------------------------- spool_max


def spool_bytes(m):
    """Bytes on disk of the daemon's spool files (unlinked, in cache_dir)."""
    total = 0
    fds = pathlib.Path(f"/proc/{m.pid}/fd")
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
            if target.startswith(str(m.cache_dir)) and target.endswith("(deleted)"):
                total += os.stat(fd).st_blocks * 512
        except FileNotFoundError:
            pass  # closed meanwhile
    return total


def test_spool_max_bounds_the_spool_of_sequential_writes(rgw, bucket, mount):
    """Four files of 40 MB written at once with spool_max=20M: the spool
    files never hold more than 20 MiB together, and every file lands whole
    (their spool copies stop; streaming needs none)."""
    m = mount(bucket, opts={"spool_max": "20M", "part_size": "5M"})
    names = [f"seq{i}.bin" for i in range(4)]
    blobs = {n: random.Random(n).randbytes(40 * MIB) for n in names}
    files = {n: open(m.uploads / n, "wb") for n in names}
    peak = 0
    try:
        for off in range(0, 40 * MIB, MIB):
            for n, f in files.items():
                f.write(blobs[n][off:off + MIB])
            peak = max(peak, spool_bytes(m))
        for f in files.values():
            f.flush()
        peak = max(peak, spool_bytes(m))
    finally:
        for f in files.values():
            f.close()
    assert peak <= 20 * MIB, peak
    for n in names:
        got = rgw.s3.get_object(Bucket=bucket, Key=f"uploads/{n}")["Body"].read()
        assert got == blobs[n], n
    assert list_multipart_uploads(rgw.s3, bucket) == []


def test_spool_max_refuses_a_spooled_write_cleanly(rgw, bucket, mount):
    """A write that needs the spool (it leaves a gap) and would pass
    spool_max fails with ENOSPC, the close with EIO, and nothing lands;
    seeking back into parts streamed without a spool copy is EIO too."""
    m = mount(bucket, opts={"spool_max": "20M", "part_size": "5M"})
    fd = os.open(m.uploads / "sparse.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"x" * 4096, 30 * MIB)
        assert e.value.errno == errno.ENOSPC
    finally:
        with pytest.raises(OSError) as e:
            os.close(fd)
        assert e.value.errno == errno.EIO
    fd = os.open(m.uploads / "back.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(30):
            os.write(fd, b"y" * MIB)
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"PATCH", 6 * MIB)
        assert e.value.errno == errno.EIO
    finally:
        with pytest.raises(OSError):
            os.close(fd)
    assert not [k for k in list_keys(rgw.s3, bucket, "uploads/")
                if k in ("uploads/sparse.bin", "uploads/back.bin")]
    assert wait_for(lambda: list_multipart_uploads(rgw.s3, bucket) == [], 30,
                    what="the aborted upload to go")
