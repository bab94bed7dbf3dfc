"""Decoders in a sandbox (issue 12), through a real mount.

Every "Done means" item is a test here: a worker killed with SIGSEGV or
stopped with SIGSTOP while it decodes costs that one read an EIO (the
stopped one within thumb_timeout plus a second) while a 40 MB cp through
the mount completes byte-identical and the next thumbnail reads fine;
decoding happens in another process, which cannot open a file or a
socket; the hostile files of hostile_images.py read as EIO in time with
the daemon's RSS bounded and unmount possible at any time; TIFF, animated
GIF/WebP and WebP sources give the formats promised, without metadata.
"""

import errno
import hashlib
import io
import os
import re
import signal
import subprocess
import threading
import time

import pytest
from PIL import Image

import hostile_images
from helpers import MIB, fusermount_u, sha256_object, timeout_scale, wait_for

SCALE = timeout_scale()
WORKER_ARG = b"--thumb-worker"


# ----------------------------------------------------------------- helpers


def workers(daemon_pid):
    """{pid: cpu ticks} of the daemon's thumbnail workers."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == daemon_pid and WORKER_ARG in cmd:
            out[int(d)] = int(fields[11]) + int(fields[12])
    return out


def idle_workers(daemon_pid, n):
    """Wait until the daemon has n workers, all idle. Workers launched at
    mount start up (libvips' modules) while the daemon goes on, and the
    CPU time that grows meanwhile would pass for a decode in
    busy_worker(): idle means no worker's CPU time moved over half a
    second."""
    seen = []

    def settled():
        seen.append(workers(daemon_pid))
        last = seen[-3:]
        return len(last) == 3 and len(last[0]) == n and last[0] == last[1] == last[2]

    wait_for(settled, 30 * SCALE, interval=0.25, what=f"{n} idle workers")


def busy_worker(daemon_pid, timeout, done=lambda: False):
    """The worker whose CPU time grows (the one decoding); None when done()
    comes first."""
    before = workers(daemon_pid)

    def grown():
        if done():
            return "done"
        now = workers(daemon_pid)
        up = [p for p, t in now.items() if p in before and t > before[p]]
        return up[0] if up else None

    got = wait_for(grown, timeout, interval=0.02, what="a worker decoding")
    return None if got == "done" else got


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def status_field(pid, name):
    with open(f"/proc/{pid}/status") as f:
        return re.search(rf"^{name}:\s+(.*)$", f.read(), re.M).group(1).strip()


def read_result(path):
    t0 = time.monotonic()
    try:
        data, err = path.read_bytes(), None
    except OSError as e:
        data, err = None, e.errno
    return data, err, time.monotonic() - t0


class Reader(threading.Thread):
    """Reads one thumbnail in the background."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.result = None

    def run(self):
        self.result = read_result(self.path)
        self.ended = time.monotonic()


def good_jpeg(seed=0):
    img = hostile_images.photo(800, 600)
    return hostile_images.encode(img.rotate(seed), "JPEG", quality=85)


# ------------------------------------------------------------------- tests


@pytest.mark.deadline(300)
def test_killed_and_stopped_workers_cost_one_read(rgw, bucket, mount, tmp_path):
    # Long enough that the slow file is still decoding when the signal
    # comes, even on a loaded machine.
    timeout = int(8 * SCALE)
    slow = hostile_images.ztxt_png()
    for k in range(2):
        rgw.s3.put_object(Bucket=bucket, Key=f"uploads/slow{k}.png", Body=slow)
    rgw.s3.put_object(Bucket=bucket, Key="uploads/good.jpg", Body=good_jpeg())
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 * MIB))
    m = mount(bucket, opts={"thumb_timeout": str(timeout), "thumb_eager": "false",
                            "thumb_concurrency": "2"})
    idle_workers(m.pid, 2)
    restarts0 = m.metric("imgfs_thumb_worker_restarts_total")

    cp = subprocess.Popen(["cp", str(big), str(m.uploads / "big.bin")])
    # A read starts read-ahead of the names after it (good.jpg comes
    # before them): slow1 first, so that the worker decoding is the only
    # one busy, and slow0's read-ahead finds slow1 known.
    # SIGSEGV while it decodes: EIO at once, not at the deadline.
    r = Reader(m.thumbs / "slow1.png")
    r.start()
    victim = busy_worker(m.pid, timeout)
    os.kill(victim, signal.SIGSEGV)
    killed = time.monotonic()
    r.join(timeout + 5)
    _, err, secs = r.result
    assert err == errno.EIO
    assert r.ended - killed < 2 * SCALE, f"the crash took {r.ended - killed:.1f}s to notice"
    assert "died of signal 11" in m.stderr_text()

    # SIGSTOP while it decodes: EIO within thumb_timeout plus a second.
    r = Reader(m.thumbs / "slow0.png")
    r.start()
    victim = busy_worker(m.pid, timeout)
    os.kill(victim, signal.SIGSTOP)
    r.join(timeout + 5)
    _, err, secs = r.result
    assert err == errno.EIO
    assert secs <= timeout + 1 * SCALE, f"the stopped worker cost {secs:.1f}s"
    assert not os.path.exists(f"/proc/{victim}") or victim not in workers(m.pid)

    assert cp.wait(120) == 0
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    wait_for(lambda: "uploads/big.bin" in {o["Key"] for o in rgw.s3.list_objects_v2(
        Bucket=bucket, Prefix="uploads/big.bin").get("Contents", [])}, 60, what="the upload")
    assert sha256_object(rgw.s3, bucket, "uploads/big.bin") == digest
    assert hashlib.sha256((m.uploads / "big.bin").read_bytes()).hexdigest() == digest

    # The pool is whole again and the next thumbnail is fine.
    wait_for(lambda: len(workers(m.pid)) == 2, 30 * SCALE, what="replacement workers")
    img = Image.open(io.BytesIO((m.thumbs / "good.jpg").read_bytes()))
    assert img.format == "JPEG" and max(img.size) == 128
    assert m.metric("imgfs_thumb_worker_restarts_total") == restarts0 + 2
    assert m.metric("imgfs_errors_total", kind="decode") >= 2
    # Remembered: the crashed source fails again at once, without a worker.
    _, err, secs = read_result(m.thumbs / "slow1.png")
    assert err == errno.EIO and secs < 1 * SCALE
    assert m.proc.poll() is None


@pytest.mark.deadline(200)
def test_a_read_does_not_wait_behind_read_ahead(rgw, bucket, mount):
    """Reading a0 makes read-ahead queue a1..a4 (slow files, each holding a
    decode slot until thumb_timeout); a read of another file meanwhile
    takes the first slot that frees, not the one after the guesses."""
    timeout = int(3 * SCALE)
    for k in range(5):
        rgw.s3.put_object(Bucket=bucket, Key=f"uploads/r/a{k}.png", Body=hostile_images.ztxt_png())
    rgw.s3.put_object(Bucket=bucket, Key="uploads/r/0good.jpg", Body=good_jpeg())
    m = mount(bucket, opts={"thumb_timeout": str(timeout), "thumb_eager": "false",
                            "thumb_concurrency": "2"})
    idle_workers(m.pid, 2)
    os.listdir(m.thumbs / "r")  # the listing read-ahead goes by
    r = Reader(m.thumbs / "r" / "a0.png")
    t0 = workers(m.pid)
    r.start()
    wait_for(lambda: all(t > t0.get(p, t) for p, t in workers(m.pid).items()),
             timeout, interval=0.02, what="a0 and read-ahead's a1 decoding")
    data, err, secs = read_result(m.thumbs / "r" / "0good.jpg")
    assert err is None and Image.open(io.BytesIO(data)).format == "JPEG"
    # Behind a2 and a3 it would take two deadlines.
    assert secs < timeout + 1 * SCALE, f"the read waited {secs:.1f}s"
    r.join(timeout + 5)
    assert r.result[1] == errno.EIO


def test_decoding_happens_in_a_sandboxed_worker(rgw, bucket, mount):
    rgw.s3.put_object(Bucket=bucket, Key="uploads/a.jpg", Body=good_jpeg())
    m = mount(bucket, opts={"log_level": "debug", "thumb_eager": "false"})
    data = (m.thumbs / "a.jpg").read_bytes()
    assert Image.open(io.BytesIO(data)).format == "JPEG"
    found = re.search(r"a\.jpg decoded by worker (\d+) in \d+ ms: ok", m.stderr_text())
    assert found, m.stderr_text()[-2000:]
    pid = int(found.group(1))
    assert pid != m.pid
    live = workers(m.pid)
    assert pid in live, (pid, live)
    for w in live:
        assert status_field(w, "Seccomp") == "2"
        assert status_field(w, "NoNewPrivs") == "1"
        with open(f"/proc/{w}/environ", "rb") as f:
            env = f.read()
        assert rgw.secret_key.encode() not in env and b"AWS_" not in env
        # One OpenMP thread per worker: the pool is the parallelism.
        assert b"OMP_NUM_THREADS=1" in env.split(b"\0"), env
        fds = os.listdir(f"/proc/{w}/fd")
        assert sorted(int(fd) for fd in fds) == [0, 1, 2, 3], fds


def test_probe_worker_cannot_open_files_or_sockets(imgfs_bin):
    p = subprocess.run([str(imgfs_bin), "--thumb-worker-probe"], capture_output=True,
                       text=True, timeout=60 * SCALE)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout == "open: Permission denied\nsocket: Permission denied\n"


def truncated_heif(tmp_path):
    """Truncated HEIC and AVIF, made with vipsthumbnail's sibling, vips."""
    src = tmp_path / "n.png"
    hostile_images.photo(800, 600).save(src)
    out = {}
    for name, target in (("truncated.heic", "n.heic"), ("truncated.avif", "n.avif[compression=av1]")):
        subprocess.run(["vips", "copy", str(src), str(tmp_path / target)], check=True,
                       capture_output=True, timeout=120)
        out[name] = hostile_images.half((tmp_path / target.split("[")[0]).read_bytes())
    return out


@pytest.mark.deadline(400)
def test_hostile_files_fail_in_time_with_bounded_rss(rgw, bucket, mount, tmp_path):
    timeout = int(3 * SCALE)
    fast, slow = {**hostile_images.truncated(), **truncated_heif(tmp_path)}, hostile_images.slow()
    # Each damaged file alone in a folder: read-ahead of its neighbours
    # (the slow files) would hold the decode slots it waits for.
    for name, data in fast.items():
        rgw.s3.put_object(Bucket=bucket, Key=f"uploads/q/{name}/{name}", Body=data)
    for name, data in slow.items():
        rgw.s3.put_object(Bucket=bucket, Key=f"uploads/h/{name}", Body=data)
    rgw.s3.put_object(Bucket=bucket, Key="uploads/h/later.png", Body=hostile_images.ztxt_png())
    m = mount(bucket, opts={"thumb_timeout": str(timeout), "thumb_eager": "false"})
    rss0 = rss_kib(m.pid)
    for name in sorted(fast):
        listed = set(os.listdir(m.thumbs / "q" / name))
        tname = name if name in listed else name + ".jpg"
        _, err, secs = read_result(m.thumbs / "q" / name / tname)
        assert err == errno.EIO, (name, err)
        # JPEG, PNG and WebP fail within a second, as soon as the damage
        # is met; the others at the latest by the deadline (a truncated
        # TIFF once took it).
        quick = name.endswith((".jpg", ".png", ".webp"))
        bound = 1 * SCALE if quick else timeout + 1 * SCALE
        assert secs < bound, f"{name} took {secs:.2f}s"
    # Four at once, as in the issue: the daemon does not grow.
    readers = [Reader(m.thumbs / "h" / n) for n in sorted(slow)]
    for r in readers:
        r.start()
    for r in readers:
        r.join(4 * timeout + 10)
    for name, r in zip(sorted(slow), readers):
        _, err, secs = r.result
        assert err == errno.EIO, (name, err)
        # Two slots: a file may wait for one decode before its own.
        assert secs <= 2 * (timeout + 1 * SCALE), f"{name} took {secs:.1f}s"
    assert rss_kib(m.pid) - rss0 < 64 * 1024, (rss0, rss_kib(m.pid))
    assert m.proc.poll() is None
    # Unmount while a hostile decode is under way: it ends by the deadline.
    r = Reader(m.thumbs / "h" / "later.png")
    r.start()
    busy_worker(m.pid, 10 * SCALE, done=lambda: not r.is_alive())
    t0 = time.monotonic()

    u = fusermount_u(m.path, busy_for=timeout + 10 * SCALE)
    assert u.returncode == 0, u.stderr
    assert time.monotonic() - t0 <= timeout + 5 * SCALE
    assert m.proc.wait(30) == 0


def webp_chunks(data):
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    i, out = 12, []
    while i + 8 <= len(data):
        kind, n = data[i:i + 4], int.from_bytes(data[i + 4:i + 8], "little")
        out.append(kind)
        i += 8 + n + (n & 1)
    return out


def no_metadata(img, raw):
    assert not img.info.get("exif"), "EXIF in the thumbnail"
    assert not img.info.get("icc_profile"), "ICC profile in the thumbnail"
    assert not img.info.get("xmp") and b"<x:xmpmeta" not in raw, "XMP in the thumbnail"


def test_formats_browsers_can_show(rgw, bucket, mount):
    photo = hostile_images.photo(640, 480)
    frames = [Image.new("RGB", (200, 150), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    exif = Image.Exif()
    exif[0x010E] = "a description from the source"
    sources = {
        "p.tif": hostile_images.encode(photo, "TIFF"),
        "alpha.tiff": hostile_images.encode(photo.convert("RGBA"), "TIFF"),
        "s.webp": hostile_images.encode(photo, "WEBP", exif=exif.tobytes()),
        "e.jpg": hostile_images.encode(photo, "JPEG", exif=exif.tobytes()),
        "p.png": hostile_images.encode(photo, "PNG"),
        "a.gif": hostile_images.encode(frames[0], "GIF", save_all=True,
                                       append_images=frames[1:], duration=100, loop=0),
        "a.webp": hostile_images.encode(frames[0], "WEBP", save_all=True,
                                        append_images=frames[1:], duration=100, loop=0),
    }
    for name, data in sources.items():
        rgw.s3.put_object(Bucket=bucket, Key=f"uploads/{name}", Body=data)
    m = mount(bucket, opts={"thumb_eager": "false"})
    listed = set(os.listdir(m.thumbs))
    assert {"p.tif.jpg", "alpha.tiff.jpg"} <= listed and "p.tif" not in listed
    want = {"p.tif.jpg": ("JPEG", 1), "alpha.tiff.jpg": ("JPEG", 1), "s.webp": ("WEBP", 1),
            "e.jpg": ("JPEG", 1), "p.png": ("PNG", 1), "a.gif": ("GIF", 3), "a.webp": ("WEBP", 3)}
    sizes = {}
    for name, (fmt, frames_n) in want.items():
        raw = (m.thumbs / name).read_bytes()
        img = Image.open(io.BytesIO(raw))
        assert img.format == fmt, (name, img.format)
        assert getattr(img, "n_frames", 1) == frames_n, (name, getattr(img, "n_frames", 1))
        assert max(img.size) == 128, (name, img.size)
        no_metadata(img, raw)
        if fmt == "WEBP":
            chunks = webp_chunks(raw)
            assert not {b"EXIF", b"XMP ", b"ICCP"} & set(chunks), (name, chunks)
        sizes[name] = len(raw)
    # PNG no bigger than needed: palette-quantised.
    assert Image.open(io.BytesIO((m.thumbs / "p.png").read_bytes())).mode == "P"
    print("\nthumbnail sizes:", sizes)

    # thumb_first_frame: animations give stills (a spec of their own).
    still = mount(bucket, opts={"thumb_eager": "false", "thumb_first_frame": "true"})
    for name in ("a.gif", "a.webp"):
        img = Image.open(io.BytesIO((still.thumbs / name).read_bytes()))
        assert getattr(img, "n_frames", 1) == 1, name
