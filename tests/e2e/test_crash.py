"""Crashes (issue 6): the daemon killed with SIGKILL while copies and
thumbnail reads run, then the dead mountpoint cleaned with fusermount3 -u and
mounted again with the same cache_dir; and SIGTERM while uploads are in
flight.

Promises under test (docs/SEMANTICS.md): a file whose cp returned 0 is in
S3 intact whatever happens to the daemon afterwards; the thumbnail cache
survives a kill (integrity_check passes, its entries are served without
touching the sources); multipart uploads a killed daemon left are aborted by
the next start with the same cache_dir (the journal, cache_dir/uploads.db);
SIGTERM lets a close in progress finish or fail loudly, then unmounts and
exits 0.
"""

import errno
import os
import random
import sqlite3
import subprocess
import threading
import time

import pytest

from helpers import (
    fusermount_u,
    MIB,
    _mountinfo_has,
    list_keys,
    list_multipart_uploads,
    sha256_file,
    sha256_object,
    wait_for,
    write_random,
)

JOURNAL_START_BOUND = 20  # seconds after mounting until orphans are aborted


def journal_holds(db_path, uploads):
    """Whether there are uploads and the journal has recorded each one's id."""
    if not uploads:
        return False
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        ids = {row[0] for row in con.execute("SELECT upload_id FROM mpu")}
    except sqlite3.Error:
        return False
    finally:
        con.close()
    return all(u["UploadId"] in ids for u in uploads)


def integrity(db_path):
    con = sqlite3.connect(str(db_path), timeout=10)
    try:
        return [r[0] for r in con.execute("PRAGMA integrity_check")]
    finally:
        con.close()


class Copier(threading.Thread):
    """cp files one after another into dest until stopped; records
    (name, exit status, stderr) of each."""

    def __init__(self, sources, dest):
        super().__init__(daemon=True)
        self.sources = sources
        self.dest = dest
        self.results = []
        self.stop = threading.Event()

    def run(self):
        for name, path in self.sources:
            if self.stop.is_set():
                return
            p = subprocess.run(["cp", str(path), str(self.dest / name)],
                               capture_output=True, timeout=120)
            self.results.append((name, p.returncode, p.stderr))


class ThumbReader(threading.Thread):
    """Read thumbnails over and over until stopped (errors expected once
    the daemon is gone)."""

    def __init__(self, paths):
        super().__init__(daemon=True)
        self.paths = paths
        self.stop = threading.Event()
        self.reads = 0

    def run(self):
        while not self.stop.is_set():
            for p in self.paths:
                if self.stop.is_set():
                    return
                subprocess.run(["cat", str(p)], capture_output=True, timeout=60)
                self.reads += 1


@pytest.mark.deadline(600)
def test_kill9_loses_nothing_committed_and_cache_survives(rgw, bucket, mount, images, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    m = mount(bucket, opts={"part_size": "5M", "metadata_ttl": 1})

    # Committed before the crash: images whose thumbnails are cached.
    first = images[:12]
    names = [f"i{i:02d}{p.suffix.lower()}" for i, p in enumerate(first)]
    for n, p in zip(names, first):
        subprocess.run(["cp", str(p), str(m.uploads / n)], check=True, timeout=120)
    thumbs = {n: (m.thumbs / n).read_bytes() for n in names}

    # During the crash: a big streamed copy, a stream of small copies and
    # thumbnail reads of the rest of the images.
    smalls = [(f"s{i:03d}.bin", write_random(src / f"s{i:03d}.bin", 1000 + i * 3000, i))
              for i in range(400)]
    rest = images[12:40]
    for i, p in enumerate(rest):
        rgw.s3.upload_file(str(p), bucket, f"uploads/r{i:02d}{p.suffix.lower()}")
    reader = ThumbReader([m.thumbs / f"r{i:02d}{p.suffix.lower()}" for i, p in enumerate(rest)])
    copier = Copier(smalls, m.uploads)
    # A slow writer, so that it is still writing (parts going up) at the kill.
    big = SlowWriter(m.uploads / "big.bin", 300 * MIB, 1, pause=0.05)
    big.start()
    reader.start()
    copier.start()
    try:
        # Killed once the journal holds the upload's id: an upload killed
        # before its id was recorded is left to the lifecycle rule instead
        # (docs/SEMANTICS.md; test_faults covers that case).
        wait_for(lambda: journal_holds(m.cache_dir / "uploads.db",
                                       list_multipart_uploads(rgw.s3, bucket)), 60,
                 what="the big copy's multipart upload, recorded in the journal")
        wait_for(lambda: len(copier.results) >= 20 and reader.reads >= 3, 120,
                 what="copies and thumbnail reads under way")
        m.kill9()
    finally:
        copier.stop.set()
        reader.stop.set()
        big.join(60)
        if big.proc.poll() is None:
            big.proc.kill()
        copier.join(150)
        reader.join(150)
    assert big.failed and big.failed != "not finished", \
        f"the big write did not fail although the daemon was killed: {big.failed}"

    # The dead mountpoint can be cleaned and reused.
    p = fusermount_u(m.path)
    assert p.returncode == 0, p.stderr
    assert not _mountinfo_has(m.path)

    # Every cp that returned 0 is in S3, intact.
    keys = list_keys(rgw.s3, bucket, "uploads/")
    done = [n for n, status, _ in copier.results if status == 0]
    assert len(done) >= 20
    for n in done:
        assert sha256_object(rgw.s3, bucket, f"uploads/{n}") == sha256_file(src / n), n
    for n, status, err in copier.results:
        if status != 0:
            assert err.strip(), f"cp of {n} failed silently"
    for n, p in zip(names, first):
        assert sha256_object(rgw.s3, bucket, f"uploads/{n}") == sha256_file(p)
    assert "uploads/big.bin" not in keys

    # The caches pass SQLite's integrity check.
    dbs = sorted(m.cache_dir.glob("*.db"))
    assert m.cache_dir / "thumbs.db" in dbs, dbs
    for db in dbs:
        assert integrity(db) == ["ok"], db

    # The killed daemon left its multipart upload; the next start aborts it.
    assert list_multipart_uploads(rgw.s3, bucket), "the kill left no multipart upload to clean"
    m.remount()
    wait_for(lambda: not list_multipart_uploads(rgw.s3, bucket), JOURNAL_START_BOUND,
             what="the next start to abort the dead daemon's multipart upload")

    # The cache still serves its entries: no GET of a source.
    mark = rgw.log_mark()
    hits0 = m.metric("imgfs_cache_hits_total")
    for n in names:
        assert (m.thumbs / n).read_bytes() == thumbs[n], n
    gets = rgw.requests(since=mark, method="GET", prefix=f"/{bucket}/uploads/")
    assert gets == [], f"cached thumbnails fetched their sources again: {gets}"
    assert m.metric("imgfs_cache_hits_total") - hits0 >= len(names)
    # And the mount works as before.
    subprocess.run(["cp", str(first[0]), str(m.uploads / "after.jpg")], check=True, timeout=60)
    assert sha256_object(rgw.s3, bucket, "uploads/after.jpg") == sha256_file(first[0])
    m.unmount()
    for db in sorted(m.cache_dir.glob("*.db")):
        assert integrity(db) == ["ok"], db


@pytest.mark.deadline(300)
def test_kill9_before_any_part_leaves_nothing(rgw, bucket, mount, tmp_path):
    """Killed while a file is still being written (no part sent yet): no
    object and no upload appear, and the remount is clean."""
    m = mount(bucket, opts={"part_size": "5M"})
    f = open(m.uploads / "half.bin", "wb")
    f.write(b"x" * (2 * MIB))
    f.flush()
    m.kill9()
    try:
        f.close()
    except OSError:
        pass
    p = fusermount_u(m.path)
    assert p.returncode == 0, p.stderr
    m.remount()
    assert "uploads/half.bin" not in list_keys(rgw.s3, bucket, "uploads/"), m.stderr_text()
    assert not list_multipart_uploads(rgw.s3, bucket)
    assert not (m.uploads / "half.bin").exists()


def test_startup_sweep_aborts_only_its_own_uploads(rgw, bucket, mount, tmp_path):
    """Killed while streaming a multipart upload, with another client's
    multipart upload of the same key in progress: the next start aborts
    the upload the killed daemon recorded in its journal, and only that."""
    m = mount(bucket, opts={"part_size": "5M"})
    key = "uploads/shared.bin"
    other = rgw.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    f = open(m.uploads / "shared.bin", "wb")
    f.write(os.urandom(12 * MIB))
    f.flush()
    wait_for(lambda: len(list_multipart_uploads(rgw.s3, bucket)) == 2, 30,
             what="imgfs's multipart upload to start")
    mine = {u["UploadId"] for u in list_multipart_uploads(rgw.s3, bucket)} - {other}
    m.kill9()
    try:
        f.close()
    except OSError:
        pass
    p = fusermount_u(m.path)
    assert p.returncode == 0, p.stderr
    m.remount()
    wait_for(lambda: {u["UploadId"] for u in list_multipart_uploads(rgw.s3, bucket)} == {other},
             30, what="the killed daemon's own upload to be aborted")
    assert mine and not mine & {u["UploadId"] for u in list_multipart_uploads(rgw.s3, bucket)}


WRITER = r"""
import os, random, sys, time
path, size, seed, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rnd = random.Random(seed)
try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
except OSError as e:
    print(f"open: {e}", flush=True); sys.exit(0)
try:
    for off in range(0, size, 1 << 20):
        os.write(fd, rnd.randbytes(min(1 << 20, size - off)))
        time.sleep(pause)
except OSError as e:
    print(f"write: {e}", flush=True)
    try:
        os.close(fd)
    except OSError:
        pass
    sys.exit(0)
try:
    os.close(fd)
except OSError as e:
    print(f"close: {e}", flush=True); sys.exit(0)
print("ok", flush=True)
"""


class SlowWriter:
    """Write size bytes to path in 1 MiB pieces, pausing between pieces,
    then close, in a child process of its own: a descriptor open in this
    (multi-threaded) process would be inherited by every cp another thread
    starts, and each such child's exit closes it, which flushes the file
    (a close uploads). .failed: None once close returned 0, else where it
    failed."""

    def __init__(self, path, size, seed, pause):
        self.path = path
        self.size = size
        self.seed = seed
        self.pause = pause
        self.proc = None
        self.failed = "not finished"

    @property
    def data(self):
        return random.Random(self.seed).randbytes(self.size)

    def start(self):
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-c", WRITER, str(self.path), str(self.size), str(self.seed),
             str(self.pause)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def join(self, timeout):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return
        line = out.decode(errors="replace").strip()
        self.failed = None if line == "ok" else (line or f"exit {self.proc.returncode}")


@pytest.mark.deadline(300)
def test_sigterm_finishes_or_fails_uploads_loudly(rgw, bucket, mount, tmp_path):
    m = mount(bucket, opts={"part_size": "5M"})
    writers = []
    # Some finish writing at once and are closing (uploading) at SIGTERM,
    # some are still writing.
    for i in range(6):
        size = (1 + i * 4) * MIB
        writers.append(SlowWriter(m.uploads / f"w{i}.bin", size, i, pause=0 if i % 2 == 0 else 0.3))
    for w in writers:
        w.start()
    time.sleep(1.0)
    m.proc.terminate()
    status = m.proc.wait(120)
    for w in writers:
        w.join(60)
    assert status == 0, f"imgfs exited {status} after SIGTERM\n{m.stderr_text()}"
    assert not _mountinfo_has(m.path), "SIGTERM did not unmount"
    keys = list_keys(rgw.s3, bucket, "uploads/")
    outcomes = {}
    for i, w in enumerate(writers):
        key = f"uploads/w{i}.bin"
        assert w.failed != "not finished", f"writer {i} still blocked after the daemon exited"
        if w.failed is None:
            assert key in keys, f"close of {key} returned 0 but it is not in S3"
            got = rgw.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert got == w.data, f"{key} differs"
        elif key in keys:  # finished at the server as the writer was told no
            got = rgw.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert got == w.data, f"a failed write left a partial {key}"
        outcomes[key] = w.failed
    # Nothing half-made stays behind: aborted now, or by the next start.
    if list_multipart_uploads(rgw.s3, bucket):
        m.remount()
        wait_for(lambda: not list_multipart_uploads(rgw.s3, bucket), JOURNAL_START_BOUND,
                 what="multipart uploads to be aborted")
    print(f"\nSIGTERM outcomes: {outcomes}")


# ------------------------------------------------- semantics (docs/SEMANTICS.md)


def test_fsync_is_durable_before_close(rgw, bucket, mount):
    """fsync returning 0 puts the bytes in S3 while the file stays open; a
    kill afterwards does not take them back nor add what came later."""
    m = mount(bucket, opts={"part_size": "5M"})
    for name, size in (("small.bin", 3 * MIB), ("big.bin", 12 * MIB)):
        first = random.Random(size).randbytes(size)
        fd = os.open(m.uploads / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, first)
            os.fsync(fd)
            got = rgw.s3.get_object(Bucket=bucket, Key=f"uploads/{name}")["Body"].read()
            assert got == first, f"{name}: fsync returned before the bytes were in S3"
            os.write(fd, b"later" * 1000)
        finally:
            if name == "big.bin":
                m.kill9()
            try:
                os.close(fd)
            except OSError:
                pass
    got = rgw.s3.get_object(Bucket=bucket, Key="uploads/big.bin")["Body"].read()
    assert got == random.Random(12 * MIB).randbytes(12 * MIB)


def test_last_close_wins(rgw, bucket, mount):
    m1 = mount(bucket)
    m2 = mount(bucket)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for order in ((b"A" * 5000, b"B" * 7000), (b"C" * 9000, b"D" * 100)):
        a = os.open(m1.uploads / "same.txt", flags, 0o644)
        b = os.open(m1.uploads / "same.txt", flags, 0o644)
        os.write(a, order[0])
        os.write(b, order[1])
        os.close(a)
        assert rgw.s3.get_object(Bucket=bucket, Key="uploads/same.txt")["Body"].read() == order[0]
        os.close(b)
        assert rgw.s3.get_object(Bucket=bucket, Key="uploads/same.txt")["Body"].read() == order[1]
    # Two mounts of one bucket: the same rule.
    a = os.open(m1.uploads / "two.txt", flags, 0o644)
    b = os.open(m2.uploads / "two.txt", flags, 0o644)
    os.write(b, b"from m2")
    os.write(a, b"from m1")
    os.close(b)
    os.close(a)
    assert rgw.s3.get_object(Bucket=bucket, Key="uploads/two.txt")["Body"].read() == b"from m1"


def test_replaced_during_read_is_eio_or_old_bytes(rgw, bucket, mount):
    size = 40 * MIB
    old = random.Random(1).randbytes(size)
    new = random.Random(2).randbytes(size)
    rgw.s3.put_object(Bucket=bucket, Key="uploads/obj.bin", Body=old)
    m = mount(bucket, opts={"metadata_ttl": 1})
    got = bytearray()
    error = None
    with open(m.uploads / "obj.bin", "rb", buffering=0) as f:
        got += f.read(MIB)
        rgw.s3.put_object(Bucket=bucket, Key="uploads/obj.bin", Body=new)
        try:
            while True:
                piece = f.read(MIB)
                if not piece:
                    break
                got += piece
        except OSError as e:
            error = e.errno
    assert bytes(got) == old[:len(got)], "bytes of the new object were mixed in"
    if error is None:
        assert len(got) == size
    else:
        assert error == errno.EIO
    # Once metadata_ttl has passed, a fresh open reads the new object
    # (within it, the cached ETag no longer matches: EIO, never old bytes
    # labelled new or a mixture).
    time.sleep(2.5)
    assert (m.uploads / "obj.bin").read_bytes() == new


def test_full_cache_dir_fails_multipart_upload_cleanly(rgw, bucket, mount, tmp_path):
    """With cache_dir full, the journal cannot record a multipart upload:
    the upload is not started (close fails with EIO) rather than risk one
    a crash would leave unknown; small files, sent by a single PUT, still
    land."""
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(cache)], check=True)
    try:
        m = mount(bucket, opts={"part_size": "5M"}, cache_dir=str(cache))
        (m.uploads / "small.txt").write_bytes(b"fits in one PUT\n")
        with open(cache / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC
        with pytest.raises(OSError) as e:
            with open(m.uploads / "big.bin", "wb") as f:
                f.write(os.urandom(12 * MIB))
        assert e.value.errno == errno.EIO
        assert list_keys(rgw.s3, bucket) == {"uploads/small.txt": 16}
        assert not list_multipart_uploads(rgw.s3, bucket)
        assert "cannot record a multipart upload" in m.stderr_text()
        m.unmount()
    finally:
        subprocess.run(["umount", "-l", str(cache)], check=False)
