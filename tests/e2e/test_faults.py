"""Faults from the network (issue 6): imgfs mounted through tests/faultproxy.py,
which answers 503 SlowDown, resets connections in the middle of a request or
a response and stalls replies, while the bucket is checked directly at RGW.

The promises under test (docs/SEMANTICS.md): a cp that exits 0 left a
byte-identical object; a failed upload is reported to the writer and leaves
no partial object and no multipart upload; no operation outlives the
configured retries and timeouts; a read returns the object's bytes or EIO,
never other bytes; a thumbnail is the right one or EIO, and a transient S3
failure is not remembered as a bad image.
"""

import concurrent.futures
import hashlib
import os
import pathlib
import random
import re
import subprocess
import sys
import time

import pytest

from helpers import (
    fusermount_u,
    MIB,
    list_keys,
    list_multipart_uploads,
    sha256_file,
    sha256_object,
    wait_for,
    write_random,
)


sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from faultproxy import ProxyProcess  # noqa: E402

# The mix: 10% 503s, 2% resets (half in the request, half in the
# response), 1% 20-second stalls (half before and half after the server
# acted on the request).
FAULT_MIX = [
    {"action": "stall", "seconds": 20, "rate": 0.005},
    {"action": "stall", "seconds": 20, "rate": 0.005, "after": True},
    {"action": "reset_request", "rate": 0.01},
    {"action": "reset_response", "rate": 0.01},
    {"action": "error", "status": 503, "code": "SlowDown", "rate": 0.10},
]
REQUEST_TIMEOUT = 3
CONNECT_TIMEOUT = 3
RETRIES = 5
BACKOFF_CAP = 5  # core/store/s3.c: full jitter capped at 5 s


def request_bound(retries=RETRIES):
    """Longest one S3 request can take with these options."""
    return (retries + 1) * (REQUEST_TIMEOUT + CONNECT_TIMEOUT) + retries * BACKOFF_CAP


# A cp is a handful of sequential requests (lookup, create or part uploads,
# complete, abort) that may also wait for a pooled connection.
CP_TIMEOUT = 4 * request_bound()


@pytest.fixture
def proxy(rgw):
    p = ProxyProcess(rgw.port, seed=int(os.environ.get("IMGFS_FAULT_SEED", "6")))
    yield p
    p.stop()


def fault_opts(proxy, **extra):
    opts = {
        "endpoint": proxy.endpoint,
        "retries": RETRIES,
        "request_timeout": REQUEST_TIMEOUT,
        "connect_timeout": CONNECT_TIMEOUT,
        "part_size": "5M",
        "metadata_ttl": 0,
    }
    opts.update(extra)
    return opts


def make_sources(tmp_path, images, n_small, n_large, seed=6):
    """{name: path}: the real images plus generated small and multipart-sized
    files (5 MiB parts: 5.5 to 13 MiB is 2 or 3 parts)."""
    rnd = random.Random(seed)
    src = tmp_path / "src"
    src.mkdir()
    out = {}
    for i, p in enumerate(images):
        out[f"r{i:03d}{p.suffix.lower()}"] = p
    for i in range(n_small):
        path = src / f"s{i:03d}.bin"
        write_random(path, rnd.choice([0, 1, 100, 4096]) if i < 8 else rnd.randrange(1, 300_000), rnd)
        out[path.name] = path
    for i in range(n_large):
        path = src / f"l{i:03d}.bin"
        write_random(path, rnd.randrange(int(5.5 * MIB), 13 * MIB), rnd)
        out[path.name] = path
    return out


def copy_all(sources, dest_dir, workers=6, timeout=CP_TIMEOUT):
    """cp each file in parallel: {name: (exit status, stderr, seconds)}.
    A cp that outlives timeout fails the test (a hang)."""

    def one(item):
        name, path = item
        t0 = time.monotonic()
        try:
            p = subprocess.run(["cp", str(path), str(dest_dir / name)],
                               capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return name, (None, b"hung", time.monotonic() - t0)
        return name, (p.returncode, p.stderr, time.monotonic() - t0)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return dict(pool.map(one, sorted(sources.items())))


def check_outcomes(rgw, bucket, sources, results, prefix="uploads/"):
    """Every cp that exited 0 left a byte-identical object; a failed cp said
    so on stderr and left either no object or a complete one. Returns the
    names of the failures."""
    hung = [n for n, r in results.items() if r[0] is None]
    assert not hung, f"cp hung past {CP_TIMEOUT}s: {hung}"
    keys = list_keys(rgw.s3, bucket, prefix)
    failed = []
    for name, (status, err, _secs) in sorted(results.items()):
        key = prefix + name
        want = sha256_file(sources[name])
        if status == 0:
            assert key in keys, f"cp of {name} exited 0 but {key} is missing"
            assert keys[key] == os.path.getsize(sources[name]), name
            assert sha256_object(rgw.s3, bucket, key) == want, f"{key} differs from its source"
        else:
            failed.append(name)
            assert err.strip(), f"cp of {name} failed silently (status {status})"
            if key in keys:  # the server had finished when the reply was lost
                assert sha256_object(rgw.s3, bucket, key) == want, f"failed cp left a partial {key}"
    return failed


def failure_details(m, results, failed, lines=6):
    """The cp messages and the daemon's log lines about failed copies."""
    log = m.stderr_text().splitlines()
    out = []
    for name in failed[:10]:
        out.append(f"{name}: {results[name][1].decode(errors='replace').strip()}")
        out += ["    " + x for x in log if name in x][-lines:]
    return "\n".join(out)


def assert_no_multipart_left(rgw, bucket, within=15):
    wait_for(lambda: not list_multipart_uploads(rgw.s3, bucket), within,
             what="ListMultipartUploads to be empty")


def assert_only_strays_left(rgw, bucket, m, stats, within=15):
    """No multipart upload is left but the strays docs/SEMANTICS.md
    (promise 15) leaves to the lifecycle rule: at most one per
    CreateMultipartUpload whose reply the proxy lost (reset or stalled),
    each of a key the daemon logged as such."""
    by = stats["injected_by_op"].get("CreateMultipartUpload", {})
    lost = by.get("reset_response", 0) + by.get("stall", 0)

    def few_enough():
        left = list_multipart_uploads(rgw.s3, bucket)
        return (left,) if len(left) <= lost else None

    (left,) = wait_for(few_enough, within, what=f"at most {lost} stray multipart uploads")
    log = m.stderr_text()
    for u in left:
        assert f"multipart upload of {u['Key']} may have been created" in log, (u, by)


@pytest.mark.deadline(900)
def test_500_files_through_faults_land_intact(rgw, bucket, mount, images, tmp_path, proxy):
    sources = make_sources(tmp_path, images, n_small=500 - len(images) - 20, n_large=20)
    assert len(sources) == 500
    m = mount(bucket, opts=fault_opts(proxy))
    proxy.set_rules(FAULT_MIX, seed=6)
    t0 = time.monotonic()
    results = copy_all(sources, m.uploads)
    elapsed = time.monotonic() - t0
    stats = proxy.stats()
    proxy.set_rules([])
    failed = check_outcomes(rgw, bucket, sources, results)
    assert_only_strays_left(rgw, bucket, m, stats)

    inj = stats["injected"]
    assert inj.get("error503", 0) >= 100, stats
    assert inj.get("reset_request", 0) + inj.get("reset_response", 0) >= 10, stats
    assert inj.get("stall", 0) >= 3, stats
    # 13% faulty requests against 6 attempts each: losing a file is rare.
    assert len(failed) <= 2, f"failed: {failed}\n" + failure_details(m, results, failed)
    assert m.metric("imgfs_retries_total") > 0
    slowest = max(r[2] for r in results.values())
    print(f"\n500 files in {elapsed:.0f}s, slowest cp {slowest:.1f}s, "
          f"{stats['requests']} requests, injected {inj}, failed {failed}")


@pytest.mark.deadline(600)
def test_failures_reach_the_writer_and_leave_nothing(rgw, bucket, mount, images, tmp_path, proxy):
    """Without retries many uploads fail: each failing cp exits non-zero
    with a message, no partial object and no multipart upload remain."""
    sources = make_sources(tmp_path, images[:20], n_small=30, n_large=12, seed=7)
    m = mount(bucket, opts=fault_opts(proxy, retries=0))
    upload_ops = ["PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"]
    proxy.set_rules([
        {"action": "reset_request", "rate": 0.05, "ops": upload_ops},
        {"action": "reset_response", "rate": 0.05, "ops": upload_ops},
        {"action": "stall", "seconds": 20, "rate": 0.03, "ops": upload_ops},
        {"action": "error", "status": 500, "code": "InternalError", "rate": 0.15, "ops": upload_ops},
    ], seed=7)
    results = copy_all(sources, m.uploads, timeout=4 * request_bound(0))
    stats = proxy.stats()
    proxy.set_rules([])
    failed = check_outcomes(rgw, bucket, sources, results)
    assert len(failed) >= 5, f"expected failures without retries, got {failed}"
    assert len(failed) < len(sources)
    for name in failed:
        assert b"Input/output error" in results[name][1], results[name][1]
    assert_only_strays_left(rgw, bucket, m, stats)
    assert m.metric("imgfs_upload_errors_total") + m.metric("imgfs_errors_total") > 0


@pytest.mark.deadline(300)
def test_server_down_fails_within_bound(rgw, bucket, mount, tmp_path, proxy):
    """S3 answering 503 to everything: cp, ls and cat fail with EIO within
    the retry bound instead of hanging."""
    m = mount(bucket, opts=fault_opts(proxy, retries=2))
    rgw.s3.put_object(Bucket=bucket, Key="uploads/there.bin", Body=b"x" * 1000)
    src = tmp_path / "f"
    src.write_bytes(b"y" * 1000)
    proxy.set_rules([{"action": "error", "status": 503}])
    bound = 3 * request_bound(2)
    for cmd in (["cp", str(src), str(m.uploads / "f")],
                ["cat", str(m.uploads / "there.bin")],
                ["ls", str(m.uploads / "sub")]):
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, timeout=bound)
        assert p.returncode != 0, cmd
        assert b"Input/output error" in p.stderr, (cmd, p.stderr)
        assert time.monotonic() - t0 < bound
    proxy.set_rules([])
    assert "uploads/f" not in list_keys(rgw.s3, bucket, "uploads/")
    assert_no_multipart_left(rgw, bucket)
    # Once S3 answers again, the same mount works.
    subprocess.run(["cp", str(src), str(m.uploads / "f")], check=True, timeout=60)
    assert sha256_object(rgw.s3, bucket, "uploads/f") == sha256_file(src)


def read_outcome(path, timeout):
    """("ok", bytes) or ("eio", None); anything else fails the test."""
    p = subprocess.run(["cat", str(path)], capture_output=True, timeout=timeout)
    if p.returncode == 0:
        return "ok", p.stdout
    assert b"Input/output error" in p.stderr, (path, p.stderr)
    return "eio", None


@pytest.mark.deadline(900)
def test_reads_are_correct_or_eio(rgw, bucket, mount, images, tmp_path, proxy):
    sources = make_sources(tmp_path, images[:30], n_small=30, n_large=4, seed=8)
    big = tmp_path / "src" / "big.bin"
    write_random(big, 40 * MIB, random.Random(9))
    sources["big.bin"] = big
    for name, path in sources.items():
        rgw.s3.upload_file(str(path), bucket, f"uploads/{name}")
    want = {name: sha256_file(path) for name, path in sources.items()}
    tally = {}
    for retries in (RETRIES, 0):
        m = mount(bucket, opts=fault_opts(proxy, retries=retries))
        proxy.set_rules(FAULT_MIX, seed=retries)
        outcomes = {"ok": 0, "eio": 0}
        for name in sorted(sources):
            kind, data = read_outcome(m.uploads / name, timeout=20 * request_bound(retries))
            outcomes[kind] += 1
            if kind == "ok":
                assert hashlib.sha256(data).hexdigest() == want[name], f"wrong bytes for {name}"
        proxy.set_rules([])
        m.unmount()
        tally[retries] = outcomes
    assert tally[RETRIES]["ok"] >= len(sources) - 2, tally
    print(f"\nreads: {tally}, proxy {proxy.stats()['injected']}")


@pytest.mark.deadline(900)
def test_thumbnails_are_correct_or_eio_and_failures_are_not_remembered(
        rgw, bucket, mount, images, tmp_path, proxy):
    chosen = images[:24]
    for i, p in enumerate(chosen):
        rgw.s3.upload_file(str(p), bucket, f"uploads/t{i:02d}{p.suffix.lower()}")
    names = [f"t{i:02d}{p.suffix.lower()}" for i, p in enumerate(chosen)]

    # Reference thumbnails from a clean mount, then forget them in S3.
    ref_mount = mount(bucket)
    reference = {}
    for n in names:
        reference[n] = (ref_mount.thumbs / n).read_bytes()
    ref_mount.unmount()
    for key in list_keys(rgw.s3, bucket, "thumbnails/"):
        rgw.s3.delete_object(Bucket=bucket, Key=key)

    m = mount(bucket, opts=fault_opts(proxy, retries=1))
    proxy.set_rules(FAULT_MIX + [{"action": "error", "status": 500, "rate": 0.2}], seed=11)
    outcomes = {"ok": 0, "eio": 0}
    for n in names:
        kind, data = read_outcome(m.thumbs / n, timeout=10 * request_bound(1))
        outcomes[kind] += 1
        if kind == "ok":
            assert data == reference[n], f"thumbnail of {n} differs from the clean mount's"
    stats = proxy.stats()
    proxy.set_rules([])
    # A failure that came from S3 is not a bad image: reading again works.
    for n in names:
        assert (m.thumbs / n).read_bytes() == reference[n], n
    for key in list_keys(rgw.s3, bucket, "thumbnails/"):
        name = key[len("thumbnails/"):]
        if name in reference:
            got = rgw.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert got == reference[name], f"stored thumbnail {key} differs"
    assert_no_multipart_left(rgw, bucket)
    print(f"\nthumbnails: {outcomes}, proxy {stats['injected']}")


@pytest.mark.deadline(300)
def test_lost_create_replies_never_abort_another_clients_upload(rgw, bucket, mount, tmp_path, proxy):
    """CreateMultipartUpload acted on by the server but its reply lost (a
    reset, a stall past request_timeout): the cp still lands, and another
    client's multipart upload of the same key, begun just before, is not
    aborted (S3 cannot tell it from the stray the lost reply made, so
    imgfs aborts neither; the lifecycle rule removes the stray)."""
    src = tmp_path / "big.bin"
    write_random(src, 12 * MIB, random.Random(12))
    m = mount(bucket, opts=fault_opts(proxy))
    for i, rule in enumerate([
        {"action": "reset_response", "ops": ["CreateMultipartUpload"], "count": 2},
        {"action": "stall", "after": True, "seconds": 20, "ops": ["CreateMultipartUpload"], "count": 1},
    ]):
        key = f"uploads/big{i}.bin"
        other = rgw.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        proxy.set_rules([rule])
        subprocess.run(["cp", str(src), str(m.uploads / f"big{i}.bin")], check=True,
                       timeout=CP_TIMEOUT)
        assert sha256_object(rgw.s3, bucket, key) == sha256_file(src)
        assert proxy.stats()["injected_by_op"]["CreateMultipartUpload"]
        ids = {u["UploadId"] for u in list_multipart_uploads(rgw.s3, bucket) if u["Key"] == key}
        assert other in ids, m.stderr_text()
        part = rgw.s3.upload_part(Bucket=bucket, Key=key, UploadId=other, PartNumber=1,
                                  Body=b"the other client's")
        rgw.s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=other,
            MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
        assert rgw.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"the other client's"
        assert "left to the bucket's lifecycle rule" in m.stderr_text()
        proxy.reset_counts()


def test_startup_sweep_spares_uploads_it_never_learnt(rgw, bucket, mount, tmp_path, proxy):
    """Killed while a CreateMultipartUpload reply is stalled: the journal
    holds a record without an upload id. The next start must not abort the
    key's uploads by listing them (another client's is among them); it
    drops the record and leaves any stray to the lifecycle rule."""
    src = tmp_path / "big.bin"
    write_random(src, 12 * MIB, random.Random(5))
    key = "uploads/shared.bin"
    other = rgw.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    m = mount(bucket, opts=fault_opts(proxy))
    proxy.set_rules([{"action": "stall", "after": True, "seconds": 30,
                      "ops": ["CreateMultipartUpload"], "count": 1}])
    cp = subprocess.Popen(["cp", str(src), str(m.uploads / "shared.bin")],
                          stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: proxy.stats()["injected_by_op"].get("CreateMultipartUpload"),
                 30, what="the create's reply to be stalled")
        m.kill9()
    finally:
        cp.wait(timeout=60)
    proxy.set_rules([])
    p = fusermount_u(m.path)
    assert p.returncode == 0, p.stderr
    m.remount()
    wait_for(lambda: "left to the bucket's lifecycle rule" in m.stderr_text()
             or other not in {u["UploadId"] for u in list_multipart_uploads(rgw.s3, bucket)},
             30, what="the start-up sweep to handle the unbound record")
    assert other in {u["UploadId"] for u in list_multipart_uploads(rgw.s3, bucket)}, m.stderr_text()


def outage_opts(proxy, **extra):
    """fault_opts with the default retries and retry_window."""
    opts = fault_opts(proxy, **extra)
    if "retries" not in extra:
        del opts["retries"]
    return opts


@pytest.mark.deadline(300)
def test_cp_rides_out_a_nine_second_outage(rgw, bucket, mount, tmp_path, proxy):
    """S3 answering 503 (then resetting connections) to everything for
    about 9 s: a cp running through it completes, byte-identical, with the
    default retries and retry_window."""
    m = mount(bucket, opts=outage_opts(proxy))
    src = tmp_path / "big"
    write_random(src, 12 * MIB, seed=9)
    proxy.set_rules([{"action": "error", "status": 503}])
    t0 = time.monotonic()
    cp = subprocess.Popen(["cp", str(src), str(m.uploads / "big")],
                          stderr=subprocess.PIPE)
    wait_for(lambda: sum(proxy.stats()["injected"].values()) >= 3, 60,
             what="the outage to meet the cp")
    wait_for(lambda: time.monotonic() - t0 >= 5, 30, what="5 s of 503s")
    proxy.set_rules([{"action": "reset_request"}])
    wait_for(lambda: time.monotonic() - t0 >= 9, 30, what="4 s of resets")
    proxy.set_rules([])
    _, err = cp.communicate(timeout=120)
    assert cp.returncode == 0, err
    assert sha256_object(rgw.s3, bucket, "uploads/big") == sha256_file(src)
    assert m.metric("imgfs_retries_total") >= 3


@pytest.mark.deadline(300)
def test_retry_window_bounds_reads_and_getattr(rgw, bucket, mount, tmp_path, proxy):
    """With many retries allowed, retry_window still bounds an operation:
    cat, stat and cp fail with EIO within the window (plus one attempt)
    while S3 answers 503 to everything."""
    window = 4
    m = mount(bucket, opts=outage_opts(proxy, retries=100, retry_window=window))
    rgw.s3.put_object(Bucket=bucket, Key="uploads/there.bin", Body=b"x" * 1000)
    src = tmp_path / "f"
    src.write_bytes(b"y" * 1000)
    proxy.set_rules([{"action": "error", "status": 503}])
    # a lookup, then the operation's own request(s): each may use the window
    bound = 4 * (window + REQUEST_TIMEOUT + CONNECT_TIMEOUT)
    for cmd in (["stat", str(m.uploads / "there.bin")],
                ["cat", str(m.uploads / "there.bin")],
                ["cp", str(src), str(m.uploads / "f")]):
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, timeout=bound + 60)
        took = time.monotonic() - t0
        assert p.returncode != 0, cmd
        assert b"Input/output error" in p.stderr, (cmd, p.stderr)
        assert took < bound, (cmd, took)
    proxy.set_rules([])
    assert "uploads/f" not in list_keys(rgw.s3, bucket, "uploads/")
