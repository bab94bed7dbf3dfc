"""The daemon-wide memory budget (memory_max, issue 13).

Sixteen 150 MB files copied in at once while sixteen readers make
thumbnails, then read back at once: every copy lands byte-identical and
the daemon's peak RSS (VmHWM, the kernel's own high-water mark) stays
under a bound. Without the shared budget each file could hold its own
parts in flight and read-ahead blocks: 16 x (4 + 2) x 8 MiB of part
buffers alone is 768 MiB.
"""

import concurrent.futures
import subprocess
import threading

import pytest

from helpers import MIB, is_sanitized, sha256_file, sha256_object, wait_for, write_random

COPIES = 16
SIZE = 150 * 1000 * 1000
READERS = 16
# memory_max (256 MiB by default) bounds the part and read-ahead buffers;
# the rest is libvips decoding thumb_concurrency images, SQLite, thread
# stacks, libfuse's and libcurl's buffers and the binary itself (about 130
# MiB where it was measured).
LIMIT_MIB = 256 + 192


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def metric(m, name):
    for line in (m.path / ".metrics").read_text().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@pytest.mark.slow
@pytest.mark.deadline(1800)
def test_parallel_copies_and_thumbnails_share_one_budget(rgw, bucket, mount, images, imgfs_bin,
                                                         tmp_path):
    sources = [write_random(tmp_path / f"src{i}.bin", SIZE, seed=i) for i in range(4)]
    want = [sha256_file(s) for s in sources]
    pics = sorted(images)[:READERS * 3]
    for i, p in enumerate(pics):
        rgw.s3.upload_file(str(p), bucket, f"uploads/pics/{i:03d}{p.suffix.lower()}")
    m = mount(bucket, opts={"thumb_eager": "false"})
    assert metric(m, "imgfs_memory_bytes") == 0

    copying = True
    sampling = True
    samples = []  # (phase, VmRSS KiB, imgfs_memory_bytes)
    phase = ["copy"]

    def sample():
        while sampling:
            samples.append((phase[0], status_kib(m.pid, "VmRSS"), metric(m, "imgfs_memory_bytes")))

    sampler = threading.Thread(target=sample)
    sampler.start()

    def thumbnails(k):
        """Read this reader's thumbnails while the copies run (at least once)."""
        mine = [f"{i:03d}{p.suffix.lower()}" for i, p in enumerate(pics) if i % READERS == k]
        rounds = 0
        while copying or not rounds:
            for name in mine:
                data = (m.thumbs / "pics" / name).read_bytes()
                # an image (a WebP thumbnail of a plain picture can be
                # under 100 bytes now that it carries no EXIF)
                assert data[:3] == b"\xff\xd8\xff" or data[:4] in (b"\x89PNG", b"RIFF", b"GIF8"), \
                    (name, data[:16])
            rounds += 1
        return rounds

    with concurrent.futures.ThreadPoolExecutor(READERS) as pool:
        readers = [pool.submit(thumbnails, k) for k in range(READERS)]
        cps = [subprocess.Popen(["cp", str(sources[i % 4]), str(m.uploads / f"copy{i:02d}.bin")],
                                stderr=subprocess.PIPE) for i in range(COPIES)]
        codes = [p.wait() for p in cps]
        copying = False
        rounds = [r.result() for r in readers]
    assert codes == [0] * COPIES, [p.stderr.read().decode() for p in cps]
    assert all(rounds)

    # Read back at once through the mount: readers share the same budget.
    def read_back(i):
        p = subprocess.run(["sha256sum", str(m.uploads / f"copy{i:02d}.bin")],
                           capture_output=True, check=True)
        return p.stdout.split()[0].decode()

    phase[0] = "read"
    with concurrent.futures.ThreadPoolExecutor(COPIES) as pool:
        read = list(pool.map(read_back, range(COPIES)))
    sampling = False
    sampler.join()
    for ph in ("copy", "read"):
        rss = [r for p, r, _ in samples if p == ph]
        used = [u for p, _, u in samples if p == ph and u is not None]
        print(f"{ph}: {len(rss)} samples, VmRSS max {max(rss) // 1024} MiB, "
              f"imgfs_memory_bytes max {max(used) / MIB:.0f} MiB")
    assert read == [want[i % 4] for i in range(COPIES)]
    for i in range(COPIES):
        assert sha256_object(rgw.s3, bucket, f"uploads/copy{i:02d}.bin") == want[i % 4], i

    hwm = status_kib(m.pid, "VmHWM")
    limit = LIMIT_MIB * (2 if is_sanitized(str(imgfs_bin)) else 1)
    print(f"imgfs VmHWM {hwm // 1024} MiB over {COPIES} copies of {SIZE // MIB} MiB, "
          f"{READERS} thumbnail readers and {COPIES} read-backs (limit {limit} MiB)")
    assert hwm < limit * 1024, f"imgfs peaked at {hwm // 1024} MiB RSS (limit {limit} MiB)"
    # Every buffer went back once the files were closed.
    wait_for(lambda: metric(m, "imgfs_memory_bytes") == 0, 30, what="budget given back")
