"""The waste workload of make bench: what reading costs in requests and bytes.

Image tools and viewers open a file many times; on S3 every GET and every
byte out is billed. Each tool (imgfs, s3fs, rclone) mounts the bucket
through a counting proxy (tests/faultproxy.py, no rules) in front of the
same RGW, and runs:
  - three rounds of vipsheader, file, cat and Pillow's open + load (a
    viewer's pattern: the header, then the whole picture) on a 2.5-6 MB JPEG;
  - head -c 100 of a 25 MiB file;
  - a cat of the JPEG again after a remount (imgfs keeps its cache_dir).
GetObject requests and the body bytes relayed are counted for each step.
"""

import pathlib
import random
import sys

from common import MIB, BenchError, log, run

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from faultproxy import ProxyProcess  # noqa: E402

BIG = 25 * MIB
VIEWER = "import sys; from PIL import Image; Image.open(sys.argv[1]).load()"


def pick_photo(images):
    for p in images:
        if p.suffix.lower() in (".jpg", ".jpeg") and 2_500_000 <= p.stat().st_size <= 6_000_000:
            return p
    raise BenchError("no JPEG of 2.5-6 MB in the image set")


class Counted:
    """GetObject requests and bytes through the proxy since the last mark."""

    def __init__(self, proxy):
        self.proxy = proxy

    def mark(self):
        self.proxy.reset_counts()

    def read(self):
        st = self.proxy.stats()
        return (st["by_op"].get("GetObject", 0),
                st.get("bytes_by_op", {}).get("GetObject", 0))


def rounds(photo):
    for _ in range(3):
        run(["vipsheader", str(photo)])
        run(["file", "-b", str(photo)])
        run(["cat", str(photo)])
        run([sys.executable, "-c", VIEWER, str(photo)])


def measure(b, name, m, count, size_photo):
    photo, big = m.mnt / "uploads" / "photo.jpg", m.mnt / "uploads" / "big.bin"
    steps = []
    count.mark()
    rounds(photo)
    steps.append(("3 x vipsheader + file + cat + viewer", size_photo))
    got = [count.read()]
    count.mark()
    head = run(["head", "-c", "100", str(big)]).stdout
    if len(head) != 100:
        raise BenchError(f"{name}: head -c 100 gave {len(head)} bytes")
    steps.append(("head -c 100 of 25 MiB", 100))
    got.append(count.read())
    m.remount()
    count.mark()
    run(["cat", str(photo)])
    steps.append(("cat after a remount", size_photo))
    got.append(count.read())
    for (step, of), (gets, nbytes) in zip(steps, got):
        b.counts.append(dict(workload=step, tool=name, gets=gets, bytes=nbytes, of=of))
        log(f"{step:<38} {name:<14} {gets} GETs, {nbytes / MIB:.2f} MiB")


def w_waste(b, images):
    s = b.server
    bucket = b.bucket("bench-waste")
    photo = pick_photo(images)
    s.put_many(bucket, [("uploads/photo.jpg", photo),
                        ("uploads/big.bin", random.Random(25).randbytes(BIG))])
    proxy = ProxyProcess(int(s.endpoint.rsplit(":", 1)[1]))
    try:
        count = Counted(proxy)
        makers = [("imgfs", lambda: b.imgfs(bucket, endpoint=proxy.endpoint))]
        makers += b.peers(bucket, endpoint=proxy.endpoint)
        for name, make in makers:
            m = make()
            try:
                measure(b, name, m, count, photo.stat().st_size)
            finally:
                m.stop()
    finally:
        proxy.stop()
    s.delete_prefix(bucket, "")
