"""The upload engine (core/io/upload) against a real RGW, driven directly by
build/tools/uploadprobe (no FUSE): single PUTs with sniffed types, streamed
multipart uploads in bounded memory, seek-back patches, spooled random
writes, appends to existing objects, re-commits, and failures that must
leave nothing behind."""

import json
import os
import subprocess
import time

import pytest

from helpers import (
    MIB,
    SANITIZER_MARKS,
    list_multipart_uploads,
    sha256_file,
    sha256_object,
    wait_for,
    write_random,
)

PART = 8 * MIB


def rss_slack_mib(probe):
    """What the probe needs besides its part buffers: libraries, libmagic's
    database, threads; ASan's shadow memory and allocator on top."""
    return 100 if probe.sanitized else 40


def assert_no_sanitizer_report(stderr):
    for mark in SANITIZER_MARKS:
        assert mark not in stderr, stderr


class Probe:
    def __init__(self, rgw, bucket, tools, tmp_path):
        self.rgw = rgw
        self.bucket = bucket
        self.bin = tools / "uploadprobe"
        self.tmp = tmp_path
        if not self.bin.exists():
            pytest.fail(f"{self.bin} not built (make)")
        self.sanitized = b"__asan_init" in self.bin.read_bytes()

    def cmd(self, key, *args):
        return [str(self.bin), "-d", str(self.tmp), *map(str, args), key]

    def env(self):
        return self.rgw.env(IMGFS_BUCKET=self.bucket)

    def run(self, key, *args, stdin=None, expect_ok=True, timeout=600):
        p = subprocess.run(
            self.cmd(key, *args), env=self.env(), stdin=stdin,
            capture_output=True, text=True, timeout=timeout,
        )
        assert p.stdout, f"uploadprobe printed nothing; stderr: {p.stderr}"
        out = json.loads(p.stdout.strip().splitlines()[-1])
        out["stderr"] = p.stderr
        out["exit"] = p.returncode
        assert_no_sanitizer_report(p.stderr)
        if expect_ok:
            assert p.returncode == 0 and out["result"] == "ok", out
        return out


@pytest.fixture
def probe(rgw, bucket, tools, tmp_path):
    return Probe(rgw, bucket, tools, tmp_path)


def head(rgw, bucket, key):
    return rgw.s3.head_object(Bucket=bucket, Key=key)


def assert_absent(rgw, bucket, key):
    with pytest.raises(rgw.s3.exceptions.ClientError) as e:
        head(rgw, bucket, key)
    assert e.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    assert list_multipart_uploads(rgw.s3, bucket) == []


def first_image(images, suffix):
    return next(p for p in images if p.suffix.lower() == suffix)


# ------------------------------------------------------------- small files


@pytest.mark.parametrize(
    "suffix,key,want",
    [
        (".jpg", "uploads/photo.jpg", "image/jpeg"),
        (".png", "uploads/art", "image/png"),
        (".webp", "uploads/bg.webp", "image/webp"),
        (".jpg", "uploads/lies.png", "image/jpeg"),
    ],
)
def test_small_image_is_one_put_typed_by_content(probe, rgw, bucket, images, suffix, key, want):
    src = first_image(images, suffix)
    out = probe.run(key, "-i", src)
    assert out["requests"]["PUT"] == 1
    assert out["requests"]["MPU_CREATE"] == 0
    assert out["uploads"] == 1 and out["upload_errors"] == 0
    h = head(rgw, bucket, key)
    assert h["ContentType"] == want
    assert h["ContentLength"] == src.stat().st_size
    assert "-" not in h["ETag"]
    assert sha256_object(rgw.s3, bucket, key) == sha256_file(src)


def test_text_and_empty_files(probe, rgw, bucket, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("plain words\n" * 100)
    probe.run("uploads/notes", "-i", text)
    assert head(rgw, bucket, "uploads/notes")["ContentType"] == "text/plain"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    out = probe.run("uploads/empty.jpg", "-i", empty)
    assert out["requests"]["PUT"] == 1
    h = head(rgw, bucket, "uploads/empty.jpg")
    assert h["ContentLength"] == 0
    assert h["ContentType"] == "image/jpeg"


def test_file_of_exactly_one_part_is_one_put(probe, rgw, bucket, tmp_path):
    src = write_random(tmp_path / "one-part", PART)
    out = probe.run("uploads/one-part", "-i", src, "-P", "8M")
    assert out["requests"]["PUT"] == 1 and out["requests"]["MPU_CREATE"] == 0
    assert sha256_object(rgw.s3, bucket, "uploads/one-part") == sha256_file(src)


# ------------------------------------------------------------- streaming


def test_200mib_stream_is_multipart_in_bounded_memory(probe, rgw, bucket, tmp_path, images):
    jpeg = first_image(images, ".jpg").read_bytes()
    src = write_random(tmp_path / "big.bin", 200 * MIB, head=jpeg)
    with open(src, "rb") as stdin:
        out = probe.run("uploads/big.jpg", "-P", "8M", "-n", "4", stdin=stdin)
    h = head(rgw, bucket, "uploads/big.jpg")
    assert h["ETag"].strip('"').endswith("-25")
    assert h["ContentLength"] == 200 * MIB
    assert h["ContentType"] == "image/jpeg"
    assert sha256_object(rgw.s3, bucket, "uploads/big.jpg") == sha256_file(src)
    assert out["requests"]["MPU_PART"] == 25
    assert out["requests"]["GET"] == 0
    # part 1, the part being filled and 4 in flight, plus the process itself
    rss_mib = out["peak_rss_kib"] / 1024
    assert rss_mib < 6 * 8 + rss_slack_mib(probe), out
    # memory does not grow with the file: a 5x smaller file peaks alike
    small = write_random(tmp_path / "small.bin", 40 * MIB)
    with open(small, "rb") as stdin:
        out40 = probe.run("uploads/small.bin", "-P", "8M", "-n", "4", stdin=stdin)
    # (ASan's quarantine of freed allocations grows with the request count)
    growth_mib = 48 if probe.sanitized else 16
    assert out["peak_rss_kib"] < out40["peak_rss_kib"] + growth_mib * 1024, (out, out40)


def test_parts_in_flight_bound_memory(probe, rgw, bucket, tmp_path):
    src = write_random(tmp_path / "f.bin", 96 * MIB)
    rss = {}
    for n in (1, 8):
        out = probe.run(f"uploads/f{n}", "-i", src, "-P", "8M", "-n", n)
        rss[n] = out["peak_rss_kib"] / 1024
        assert sha256_object(rgw.s3, bucket, f"uploads/f{n}") == sha256_file(src)
    slack = rss_slack_mib(probe)
    assert rss[1] < 3 * 8 + slack and rss[8] < 10 * 8 + slack, rss


def test_patch_of_part_one_still_streams(probe, rgw, bucket, tmp_path, images):
    png = first_image(images, ".png").read_bytes()
    src = write_random(tmp_path / "patched", 40 * MIB + 123, head=png)
    out = probe.run("uploads/patched", "-i", src, "-m", "patch", "-o", "0", "-l", "4096")
    assert out["requests"]["MPU_PART"] == 6
    assert out["requests"]["GET"] == 0
    h = head(rgw, bucket, "uploads/patched")
    assert h["ETag"].strip('"').endswith("-6")
    assert sha256_object(rgw.s3, bucket, "uploads/patched") == sha256_file(src)


def test_patch_of_a_sent_part_fails_cleanly_without_tee(probe, rgw, bucket, tmp_path):
    src = write_random(tmp_path / "late-patch", 40 * MIB)
    out = probe.run(
        "uploads/late-patch", "-i", src, "-m", "patch", "-o", str(20 * MIB),
        expect_ok=False,
    )
    assert out["exit"] == 1 and out["errno"] == 5, out  # EIO
    assert out["stage"] == "write" and out["close_errno"] == 5, out
    assert "seeking back" in out["stderr"]
    assert_absent(rgw, bucket, "uploads/late-patch")


def test_patch_of_a_sent_part_works_with_tee(probe, rgw, bucket, tmp_path):
    src = write_random(tmp_path / "tee-patch", 40 * MIB)
    probe.run("uploads/tee-patch", "-i", src, "-T", "-m", "patch", "-o", str(20 * MIB))
    assert sha256_object(rgw.s3, bucket, "uploads/tee-patch") == sha256_file(src)
    assert list_multipart_uploads(rgw.s3, bucket) == []


@pytest.mark.parametrize(
    "size,tee,outcome",
    [
        (3 * MIB, False, "put"),         # back into part 1: the MPU is aborted
        (39 * MIB, False, "multipart"),  # within the part being filled
        (20 * MIB, False, "error"),      # into a part already sent
        (20 * MIB, True, "multipart"),   # ... which the spool copy has
    ],
)
def test_truncate_a_streamed_file(probe, rgw, bucket, tmp_path, size, tee, outcome):
    src = write_random(tmp_path / "t", 40 * MIB)
    key = f"uploads/trunc-{size}-{tee}"
    args = ["-i", src, "-t", size] + (["-T"] if tee else [])
    out = probe.run(key, *args, expect_ok=outcome != "error")
    if outcome == "error":
        assert out["stage"] == "truncate" and out["close_errno"] == 5, out
        assert_absent(rgw, bucket, key)
        return
    body = rgw.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == src.read_bytes()[:size]
    assert list_multipart_uploads(rgw.s3, bucket) == []
    if outcome == "put":
        assert out["requests"]["PUT"] == 1 and out["requests"]["MPU_ABORT"] == 1
    else:
        assert out["requests"]["MPU_COMPLETE"] == 1


def test_destroy_without_commit_aborts(probe, rgw, bucket, tmp_path):
    src = write_random(tmp_path / "dropped", 40 * MIB)
    out = probe.run("uploads/dropped", "-i", src, "-X")
    assert out["requests"]["MPU_CREATE"] == 1 and out["uploads"] == 0
    assert_absent(rgw, bucket, "uploads/dropped")


# ------------------------------------------------------------- the spool


def test_random_writes_go_through_the_spool(probe, rgw, bucket, tmp_path):
    src = write_random(tmp_path / "random", 30 * MIB + 77)
    out = probe.run("uploads/random", "-i", src, "-m", "random", "-b", "256K", "-S", "7", "-r")
    h = head(rgw, bucket, "uploads/random")
    assert h["ContentLength"] == 30 * MIB + 77
    assert h["ETag"].strip('"').endswith("-4")
    assert sha256_object(rgw.s3, bucket, "uploads/random") == sha256_file(src)
    assert out["requests"]["MPU_PART"] == 4
    # the spool file was unlinked at once: nothing is left in the spool dir
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".imgfs")] == []


def test_small_random_writes_and_read_back(probe, rgw, bucket, tmp_path):
    src = write_random(tmp_path / "small-random", 3 * MIB + 5)
    out = probe.run("uploads/sr", "-i", src, "-m", "random", "-b", "64K", "-r")
    assert out["requests"]["PUT"] == 1
    assert sha256_object(rgw.s3, bucket, "uploads/sr") == sha256_file(src)


def test_read_back_of_a_streamed_file_with_tee(probe, rgw, bucket, tmp_path):
    src = write_random(tmp_path / "rb", 20 * MIB)
    probe.run("uploads/rb", "-i", src, "-T", "-r")
    assert sha256_object(rgw.s3, bucket, "uploads/rb") == sha256_file(src)


def test_append_to_an_existing_object(probe, rgw, bucket, tmp_path):
    old = os.urandom(3 * MIB + 1)
    rgw.s3.put_object(Bucket=bucket, Key="uploads/log.bin", Body=old)
    new = write_random(tmp_path / "more", 10 * MIB)
    out = probe.run("uploads/log.bin", "-i", new, "-m", "append")
    assert out["requests"]["GET"] == 1
    body = rgw.s3.get_object(Bucket=bucket, Key="uploads/log.bin")["Body"].read()
    assert body == old + new.read_bytes()


@pytest.mark.parametrize("tee", [False, True])
def test_write_again_after_a_multipart_commit(probe, rgw, bucket, tmp_path, tee):
    src = write_random(tmp_path / "twice", 36 * MIB + 9)
    out = probe.run("uploads/twice", "-i", src, "-m", "twice", *(["-T"] if tee else []))
    # the second commit reloads the first half from the bucket, unless the
    # spool copy holds it
    assert out["requests"]["GET"] == (0 if tee else 1)
    assert out["requests"]["MPU_COMPLETE"] == 2
    assert sha256_object(rgw.s3, bucket, "uploads/twice") == sha256_file(src)


def test_write_again_after_a_small_commit_needs_no_get(probe, rgw, bucket, tmp_path):
    src = write_random(tmp_path / "twice-small", 6 * MIB)
    out = probe.run("uploads/ts", "-i", src, "-m", "twice")
    assert out["requests"]["GET"] == 0
    assert out["requests"]["PUT"] == 2
    assert sha256_object(rgw.s3, bucket, "uploads/ts") == sha256_file(src)


# ------------------------------------------------------------- failures


DENY_PUT = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:PutObject"],
        "Resource": ["arn:aws:s3:::{bucket}/*"],
    }],
}


def start_paused(probe, key, *args):
    flag = probe.tmp / f"go-{key.replace('/', '_')}"
    proc = subprocess.Popen(
        probe.cmd(key, "-w", str(24 * MIB), "-W", flag, *args),
        env=probe.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen = []
    for line in proc.stderr:  # log lines come first
        seen.append(line)
        if line.startswith("paused"):
            return proc, flag
    proc.wait()
    pytest.fail("uploadprobe never paused: " + "".join(seen))


def finish(proc, flag):
    flag.touch()
    stdout, stderr = proc.communicate(timeout=300)
    out = json.loads(stdout.strip().splitlines()[-1])
    out["exit"] = proc.returncode
    out["stderr"] = stderr
    assert_no_sanitizer_report(stderr)
    return out


def test_refused_parts_mid_upload_leave_nothing(probe, rgw, bucket, tmp_path):
    src = write_random(tmp_path / "refused", 80 * MIB)
    proc, flag = start_paused(probe, "uploads/refused", "-i", src, "-n", "2")
    policy = json.dumps(DENY_PUT).replace("{bucket}", bucket)
    rgw.s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    try:
        out = finish(proc, flag)
    finally:
        rgw.s3.delete_bucket_policy(Bucket=bucket)
    assert out["exit"] == 1 and out["errno"] == 5, out  # EIO
    if out["stage"] == "write":  # then close() would report it too
        assert out["close_errno"] == 5, out
    assert out["requests"]["MPU_ABORT"] >= 1
    assert_absent(rgw, bucket, "uploads/refused")


def test_refused_multipart_start_leaves_nothing(probe, rgw, bucket, tmp_path):
    """CreateMultipartUpload refused when part 2 is handed out: the write
    fails, and the close must not upload the part that was in memory."""
    policy = json.dumps(DENY_PUT).replace("{bucket}", bucket)
    rgw.s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    src = write_random(tmp_path / "mpu-refused", 20 * MIB)
    try:
        out = probe.run("uploads/mpu-refused", "-i", src, expect_ok=False)
    finally:
        rgw.s3.delete_bucket_policy(Bucket=bucket)
    assert out["exit"] == 1 and out["stage"] == "write" and out["errno"] == 5, out
    assert out["close_errno"] == 5, out
    assert out["requests"]["PUT"] == 0
    assert out["uploads"] == 0 and out["upload_errors"] == 1
    assert_absent(rgw, bucket, "uploads/mpu-refused")


def test_refused_small_put_leaves_nothing(probe, rgw, bucket, tmp_path):
    policy = json.dumps(DENY_PUT).replace("{bucket}", bucket)
    rgw.s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    src = write_random(tmp_path / "small-refused", MIB)
    try:
        out = probe.run("uploads/small-refused", "-i", src, expect_ok=False)
    finally:
        rgw.s3.delete_bucket_policy(Bucket=bucket)
    assert out["exit"] == 1 and out["stage"] == "commit" and out["errno"] == 5, out
    assert out["uploads"] == 0 and out["upload_errors"] == 1
    assert_absent(rgw, bucket, "uploads/small-refused")


def test_server_dies_mid_upload(probe, rgw, bucket, tmp_path):
    if not rgw.can_restart:
        pytest.skip("this RGW cannot be restarted (set IMGFS_TEST_CEPH_DIR)")
    src = write_random(tmp_path / "dies", 80 * MIB)
    proc, flag = start_paused(probe, "uploads/dies", "-i", src, "-n", "2")
    rgw.stop()
    try:
        t0 = time.monotonic()
        out = finish(proc, flag)
        took = time.monotonic() - t0
    finally:
        rgw.start()
    assert out["exit"] == 1 and out["errno"] == 5, out
    assert took < 120, took
    wait_for(rgw.running, 60, what="radosgw back")
    with pytest.raises(rgw.s3.exceptions.ClientError):
        head(rgw, bucket, "uploads/dies")
    # the abort could not reach the dead server: the upload is left for the
    # bucket's lifecycle rule (or the daemon's start-up sweep) to remove
    for up in list_multipart_uploads(rgw.s3, bucket):
        assert up["Key"] == "uploads/dies"
