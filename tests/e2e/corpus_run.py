"""Public image corpora through a real mount (make check-all, stage
"corpus"; not part of make e2e). Not a test_*.py file: run it by name.

IMGFS_CORPUS names a directory; every file under it goes into the bucket,
files with an image extension under their own name, every other file
(SVG, BMP, fuzzing seeds, bombs...) named NAME.jpg so that it reaches the
sniffer. Each thumbnail is read once; it must be a thumbnail or EIO, within
thumb_timeout plus a margin, with the daemon alive, no sanitizer report
(the mount fixture checks) and unmount working at the end. The counts,
time and peak RSS (daemon's VmHWM, and the largest a worker reached) are
printed and written to $IMGFS_CORPUS_REPORT (default corpus-report.json).

Getting corpora: clone the projects' repositories (git clone --depth 1)
and point IMGFS_CORPUS at a directory with their image folders, e.g.
libvips test/test-suite/images, libjpeg-turbo testimages, libpng
contrib/pngsuite and contrib/testpngs, the libwebp test data repository,
libheif's examples and fuzzing/data, Pillow Tests/images, and any oss-fuzz
seed corpora; a hundred hostile files are added by hostile_images.py.
"""

import errno
import json
import os
import pathlib
import re
import threading
import time

import pytest

import hostile_images
from helpers import put_many, timeout_scale

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".avif"}
TIMEOUT = 5


def corpus_files(top):
    out = {}
    for root, _dirs, files in os.walk(top):
        for name in sorted(files):
            p = pathlib.Path(root) / name
            if p.is_symlink() or not p.is_file() or p.stat().st_size > 64 << 20:
                continue
            rel = re.sub(r"[^A-Za-z0-9._-]", "_", str(p.relative_to(top)))
            if p.suffix.lower() not in IMAGE_EXT:
                rel += ".jpg"
            out[f"c{len(out):05d}-{rel}"] = p.read_bytes()
    return out


def peak_kib(pid, field="VmHWM"):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        return 0


def worker_pids(daemon):
    out = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{d}/stat").read()
            cmd = open(f"/proc/{d}/cmdline", "rb").read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == daemon and b"--thumb-worker" in cmd:
            out.append(int(d))
    return out


@pytest.mark.deadline(7200)
def test_corpus(rgw, bucket, mount):
    top = os.environ.get("IMGFS_CORPUS")
    assert top and os.path.isdir(top), "set IMGFS_CORPUS to a directory of images"
    files = corpus_files(top)
    files.update({f"h-{k}": v for k, v in {**hostile_images.truncated(), **hostile_images.slow()}.items()})
    put_many(rgw.s3, bucket, {f"uploads/corpus/{k}": v for k, v in files.items()})
    m = mount(bucket, opts={"thumb_timeout": str(TIMEOUT), "thumb_eager": "false"})
    listed = set(os.listdir(m.thumbs / "corpus"))
    worker_peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for w in worker_pids(m.pid):
                worker_peak[0] = max(worker_peak[0], peak_kib(w, "VmRSS"))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    counts = {"thumbnails": 0, "eio": 0, "other": 0}
    slowest, t0 = (0.0, ""), time.monotonic()
    limit = (TIMEOUT + 2) * timeout_scale()
    for name in sorted(files):
        tname = name if name in listed else name + ".jpg"
        t = time.monotonic()
        try:
            (m.thumbs / "corpus" / tname).read_bytes()
            counts["thumbnails"] += 1
        except OSError as e:
            counts["eio" if e.errno == errno.EIO else "other"] += 1
            assert e.errno == errno.EIO, (name, errno.errorcode.get(e.errno))
        secs = time.monotonic() - t
        slowest = max(slowest, (secs, name))
        assert secs <= limit, f"{name} took {secs:.1f}s"
        assert m.proc.poll() is None, f"imgfs died on {name}"
    stop.set()
    watcher.join()
    report = {
        "files": len(files), **counts, "seconds": round(time.monotonic() - t0, 1),
        "slowest": {"seconds": round(slowest[0], 2), "name": slowest[1]},
        "daemon_peak_rss_mib": round(peak_kib(m.pid) / 1024, 1),
        "worker_peak_rss_mib": round(worker_peak[0] / 1024, 1),
        "worker_restarts": m.metric("imgfs_thumb_worker_restarts_total"),
    }
    print("\ncorpus:", json.dumps(report))
    pathlib.Path(os.environ.get("IMGFS_CORPUS_REPORT", "corpus-report.json")).write_text(
        json.dumps(report, indent=1) + "\n")
    m.unmount()
