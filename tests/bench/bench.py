#!/usr/bin/python3
"""make bench: imgfs side by side with the limit (curl, boto3, vipsthumbnail,
Pillow, sharp) and its peers (s3fs, rclone mount) on a real Ceph RGW on loopback.

Every workload runs each tool in the same run, IMGFS_BENCH_REPEAT times
(default 3); the table shows medians, the JSON under build/bench/ holds every
sample. Peak RSS is the daemon's VmHWM, reset (clear_refs 5) before each
measured step.

Environment:
  IMGFS_BENCH_REPEAT     runs per tool and workload                 (3)
  IMGFS_BENCH_ONLY       comma-separated workloads to run (cp,write,read,ls,
                         thumbs,eager,links,waste)                    (all)
  IMGFS_BENCH_PEERS      0: leave s3fs and rclone out                 (1)
  IMGFS_BENCH_BIG_MIB    size of the big file in MiB                  (1024)
  IMGFS_BENCH_IMGFS_OPTS extra -o options for imgfs ("k=v,k=v")
  IMGFS_BENCH_DEADLINE   seconds before the whole run is abandoned    (3600)
  IMGFS_BENCH_OBJECTSTORE / IMGFS_BENCH_MEMSTORE_BYTES  RGW's store
                         (memstore, 8 GiB; objects are deleted after use)
  IMGFS_BENCH_KEEP=1     keep the work directory (logs) afterwards
  IMGFS_BIN              the daemon (build/imgfs)

bench.py --table FILE.json prints the table of an earlier run again.
"""

import concurrent.futures
import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from helpers import (  # noqa: E402  (the e2e helpers: image set, ports, S3)
    DEFAULT_AK,
    DEFAULT_SK,
    REGION,
    _mountinfo_has,
    _pick_ports,
    find_images,
    make_s3_client,
)

from common import MIB, STEP_TIMEOUT, BenchError, log, run, timed  # noqa: E402,F401
from report import SHARP, table, verdicts, waste_verdicts  # noqa: E402
from waste import w_waste  # noqa: E402

REPEAT = int(os.environ.get("IMGFS_BENCH_REPEAT", "3"))
ONLY = [w for w in os.environ.get("IMGFS_BENCH_ONLY", "").split(",") if w]
PEERS = os.environ.get("IMGFS_BENCH_PEERS", "1") != "0"
BIG_MIB = int(os.environ.get("IMGFS_BENCH_BIG_MIB", "1024"))
IMGFS_BIN = pathlib.Path(os.environ.get("IMGFS_BIN", REPO / "build" / "imgfs"))
EXTRA_OPTS = os.environ.get("IMGFS_BENCH_IMGFS_OPTS", "")
DEADLINE = float(os.environ.get("IMGFS_BENCH_DEADLINE", "3600"))
THUMB_SIZE = 128
SHARP_JS = REPO / "tests" / "bench" / "sharp_thumbs.js"


# ----------------------------------------------------------------------- RGW


class Server:
    """A Ceph RGW of our own (tests/rgw-up.sh) in the work directory."""

    def __init__(self, work):
        self.dir = work / "ceph"
        rgw, mon, omin, omax = _pick_ports(0)
        self.env = dict(
            os.environ, CEPH_DIR=str(self.dir), RGW_PORT=str(rgw),
            MON_PORT=str(mon), OSD_PORT_MIN=str(omin), OSD_PORT_MAX=str(omax),
            AK=DEFAULT_AK, SK=DEFAULT_SK, RGW_DEBUG="0",
            OBJECTSTORE=os.environ.get("IMGFS_BENCH_OBJECTSTORE", "memstore"),
            MEMSTORE_BYTES=os.environ.get("IMGFS_BENCH_MEMSTORE_BYTES",
                                          str(8 * 1024 * MIB)))
        self.up = False
        p = subprocess.run([str(REPO / "tests" / "rgw-up.sh")], env=self.env,
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise BenchError("tests/rgw-up.sh failed:\n" + p.stderr)
        self.up = True
        self.endpoint = p.stdout.strip().splitlines()[-1]
        self.s3 = make_s3_client(self.endpoint, DEFAULT_AK, DEFAULT_SK)

    def down(self):
        if self.up:
            subprocess.run([str(REPO / "tests" / "rgw-down.sh")], env=self.env,
                           capture_output=True, timeout=120)
            self.up = False

    def url(self, bucket, key=""):
        return f"{self.endpoint}/{bucket}/{key}"

    def keys(self, bucket, prefix):
        out = {}
        pages = self.s3.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["Size"]
        return out

    def wait_objects(self, bucket, want, timeout=300):
        """Poll until every key of want {key: size} is in the bucket."""
        prefix = os.path.commonprefix(list(want))
        deadline = time.monotonic() + timeout
        while True:
            have = self.keys(bucket, prefix)
            if all(have.get(k) == v for k, v in want.items()):
                return
            if time.monotonic() > deadline:
                raise BenchError(f"objects missing in {bucket} after {timeout}s")
            time.sleep(0.02)

    def delete_prefix(self, bucket, prefix):
        keys = list(self.keys(bucket, prefix))
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})

    def put_many(self, bucket, items, threads=16):
        """items: [(key, bytes or pathlib.Path)]."""
        def put(kv):
            k, v = kv
            if isinstance(v, pathlib.Path):
                self.s3.upload_file(str(v), bucket, k)
            else:
                self.s3.put_object(Bucket=bucket, Key=k, Body=v)
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, items))

    def curl_auth(self):
        return ["--aws-sigv4", f"aws:amz:{REGION}:s3",
                "--user", f"{DEFAULT_AK}:{DEFAULT_SK}",
                # curl 7.88 leaves the payload hash out; RGW requires it
                "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]


# -------------------------------------------------------------------- mounts


class RssWatch:
    """Peak RSS of a process: VmHWM after a reset, polled as a fallback."""

    def __init__(self, pid):
        self.pid = pid

    def _status(self, field):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def reset(self):
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass

    def peak(self):
        return max(self._status("VmHWM"), self._status("VmRSS"))


class Mounted:
    """One FUSE daemon (imgfs, s3fs or rclone) serving one mountpoint."""

    def __init__(self, bench, kind, argv, mnt, env=None):
        self.bench, self.kind, self.mnt = bench, kind, pathlib.Path(mnt)
        self.argv, self.env = argv, env
        self.mnt.mkdir(parents=True, exist_ok=True)
        self.log_path = bench.work / f"{kind}-{self.mnt.name}.log"
        self.proc = None
        self.start()

    def start(self):
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=logf,
                                     env=self.env, start_new_session=True)
        logf.close()
        self.bench.mounts.append(self)
        deadline = time.monotonic() + 60
        while not _mountinfo_has(self.mnt):
            if self.proc.poll() is not None:
                raise BenchError(f"{self.kind} exited {self.proc.returncode}: "
                                 + self.log_path.read_text(errors="replace")[-2000:])
            if time.monotonic() > deadline:
                raise BenchError(f"{self.kind} did not mount in 60 s")
            time.sleep(0.02)
        self.rss = RssWatch(self.proc.pid)

    def stop(self):
        if self.proc is None:
            return
        if _mountinfo_has(self.mnt):
            subprocess.run(["fusermount3", "-u", str(self.mnt)],
                           capture_output=True, timeout=60)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if _mountinfo_has(self.mnt):
            subprocess.run(["fusermount3", "-uz", str(self.mnt)],
                           capture_output=True, timeout=60)
        self.proc = None
        if self in self.bench.mounts:
            self.bench.mounts.remove(self)

    def remount(self):
        self.stop()
        self.start()


# --------------------------------------------------------------------- bench


class Bench:
    def __init__(self):
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="imgfs-bench-"))
        self.mounts = []
        self.results = []  # dicts: workload, tool, samples, unit, rss, ...
        self.counts = []   # dicts: workload, tool, gets, bytes, of
        self.seq = 0
        self.server = None

    # -- mounts of each kind

    def _mnt(self, kind):
        self.seq += 1
        return self.work / "mnt" / f"{kind}{self.seq}"

    def imgfs(self, bucket, cache_dir=None, opts="", endpoint=None):
        s = self.server
        cache_dir = cache_dir or self.work / "cache" / f"c{self.seq + 1}"
        o = f"endpoint={endpoint or s.endpoint},region={REGION},cache_dir={cache_dir}"
        for extra in (EXTRA_OPTS, opts):
            if extra:
                o += "," + extra
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=DEFAULT_AK, AWS_SECRET_ACCESS_KEY=DEFAULT_SK)
        mnt = self._mnt("imgfs")
        m = Mounted(self, "imgfs", [str(IMGFS_BIN), "-f", "-o", o, bucket, str(mnt)],
                    mnt, env)
        m.cache_dir = cache_dir
        return m

    def s3fs(self, bucket, endpoint=None):
        pw = self.work / "s3fs.passwd"
        pw.write_text(f"{DEFAULT_AK}:{DEFAULT_SK}\n")
        pw.chmod(0o600)
        mnt = self._mnt("s3fs")
        o = (f"url={endpoint or self.server.endpoint},use_path_request_style,"
             f"passwd_file={pw},endpoint={REGION}")
        return Mounted(self, "s3fs", ["s3fs", bucket, str(mnt), "-f", "-o", o], mnt)

    def rclone(self, bucket, mode, endpoint=None):
        conf = self.work / "rclone.conf"
        conf.write_text(
            "[bench]\ntype = s3\nprovider = Ceph\nenv_auth = false\n"
            f"access_key_id = {DEFAULT_AK}\nsecret_access_key = {DEFAULT_SK}\n"
            f"endpoint = {endpoint or self.server.endpoint}\nregion = {REGION}\n")
        mnt = self._mnt(f"rclone-{mode}")
        argv = ["rclone", "mount", f"bench:{bucket}", str(mnt), "--config", str(conf),
                "--cache-dir", str(self.work / "rclone-cache" / str(self.seq)),
                "--vfs-cache-mode", mode, "--vfs-write-back", "0s"]
        return Mounted(self, f"rclone-{mode}", argv, mnt)

    def peers(self, bucket, endpoint=None):
        """(name, factory) of the peers, each mounting bucket."""
        if not PEERS:
            return []
        return [("s3fs", lambda: self.s3fs(bucket, endpoint)),
                ("rclone(off)", lambda: self.rclone(bucket, "off", endpoint)),
                ("rclone(writes)", lambda: self.rclone(bucket, "writes", endpoint))]

    def bucket(self, name):
        self.server.s3.create_bucket(Bucket=name)
        return name

    # -- results

    def record(self, workload, tool, samples, unit="s", rss=None, amount=None,
               rate_unit=None, note=""):
        """samples: seconds per run. amount: bytes or items per run, for a
        throughput column (MiB/s when rate_unit is None)."""
        self.results.append(dict(workload=workload, tool=tool, samples=samples,
                                 median=statistics.median(samples),
                                 rss=max(rss) if rss else None, amount=amount,
                                 rate_unit=rate_unit, note=note))
        med = statistics.median(samples)
        log(f"{workload:<16} {tool:<22} median {med:.3f} s "
            f"samples {['%.3f' % s for s in samples]}"
            + (f" peak RSS {max(rss) / MIB:.0f} MiB" if rss else ""))

    def cleanup(self):
        for m in list(self.mounts):
            try:
                m.stop()
            except Exception as e:  # keep unmounting the others
                log(f"unmounting {m.mnt}: {e}")
        if self.server:
            self.server.down()
        if os.environ.get("IMGFS_BENCH_KEEP") != "1":
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            log(f"work directory kept: {self.work}")


# ----------------------------------------------------------------- workloads


def stage_images(b):
    """The image set under unique flat names in the work directory."""
    out = b.work / "images"
    out.mkdir()
    files = []
    for i, src in enumerate(find_images()):
        dst = out / f"{i:03d}-{src.name}"
        shutil.copyfile(src, dst)
        files.append(dst)
    if len(files) < 50:
        raise BenchError("fewer than 50 images: install gnome-backgrounds and "
                         "plasma-workspace-wallpapers (make deps)")
    return files


def cp_into(b, images, dest, bucket, prefix):
    """cp the images into dest/ (a mount's directory), then wait until all
    of them are objects under prefix."""
    os.makedirs(dest, exist_ok=True)
    want = {prefix + f.name: f.stat().st_size for f in images}

    def go():
        run(["cp", *map(str, images), str(dest) + "/"])
        b.server.wait_objects(bucket, want)
    return timed(go)


def w_cp(b, images):
    s = b.server
    bucket = b.bucket("bench-cp")
    total = sum(f.stat().st_size for f in images)
    rounds = {}

    def curl_all(r):
        for f in images:
            run(["curl", "-sS", "-f", *s.curl_auth(), "-T", str(f),
                 s.url(bucket, f"curl/{r}/{f.name}")])
    rounds["curl (sequential PUTs)"] = lambda r: timed(lambda: curl_all(r))
    m = b.imgfs(bucket)
    rounds["imgfs"] = lambda r: cp_into(b, images, m.mnt / "uploads" / "imgfs" / str(r),
                                        bucket, f"uploads/imgfs/{r}/")
    tools = {"imgfs": m}
    for name, make in b.peers(bucket):
        pm = make()
        tools[name] = pm
        rounds[name] = (lambda pm, name: lambda r: cp_into(
            b, images, pm.mnt / name / str(r), bucket, f"{name}/{r}/"))(pm, name)
    samples = {k: [] for k in rounds}
    rss = {k: [] for k in rounds}
    for r in range(REPEAT):
        for name, fn in rounds.items():
            if name in tools:
                tools[name].rss.reset()
            samples[name].append(fn(r))
            if name in tools:
                rss[name].append(tools[name].rss.peak())
        s.delete_prefix(bucket, "")
    for m2 in tools.values():
        m2.stop()
    for name in rounds:
        b.record("cp image set", name, samples[name], rss=rss[name] or None,
                 amount=total)


def make_big(b):
    path = b.work / "big.bin"
    with open(path, "wb") as f:
        for _ in range(BIG_MIB):
            f.write(os.urandom(MIB))
    return path


def w_write(b, big):
    s = b.server
    bucket = b.bucket("bench-write")
    size = big.stat().st_size
    tools = {"imgfs": b.imgfs(bucket)}
    for name, make in b.peers(bucket):
        tools[name] = make()
    samples = {"curl (one PUT)": []}
    samples.update({k: [] for k in tools})
    rss = {k: [] for k in tools}
    for r in range(REPEAT):
        t = timed(lambda: run(["curl", "-sS", "-f", *s.curl_auth(), "-T", str(big),
                               s.url(bucket, f"curl-{r}.bin")]))
        samples["curl (one PUT)"].append(t)
        s.delete_prefix(bucket, "")
        for name, m in tools.items():
            rel = f"uploads/big-{r}.bin" if name == "imgfs" else f"big-{r}.bin"
            m.rss.reset()

            def go():
                run(["dd", f"if={big}", f"of={m.mnt / rel}", "bs=1M", "status=none"])
                s.wait_objects(bucket, {rel: size})
            samples[name].append(timed(go))
            rss[name].append(m.rss.peak())
            s.delete_prefix(bucket, "")
            time.sleep(5)  # let RGW's garbage collector free the memstore
    for m in tools.values():
        m.stop()
    for name in samples:
        b.record("write 1 GiB", name, samples[name], rss=rss.get(name), amount=size)


def w_read(b, big):
    s = b.server
    bucket = b.bucket("bench-read")
    size = big.stat().st_size
    s.s3.upload_file(str(big), bucket, "uploads/big.bin")
    makers = {"imgfs": lambda: b.imgfs(bucket)}
    makers.update(dict(b.peers(bucket)))
    makers.pop("rclone(writes)", None)
    samples = {"curl (one GET)": []}
    samples.update({k: [] for k in makers})
    rss = {k: [] for k in makers}
    for _ in range(REPEAT):
        samples["curl (one GET)"].append(timed(lambda: run(
            ["curl", "-sS", "-f", *s.curl_auth(), "-o", "/dev/null",
             s.url(bucket, "uploads/big.bin")])))
        for name, make in makers.items():
            m = make()  # a fresh mount: nothing of the file is cached
            m.rss.reset()
            samples[name].append(timed(lambda: run(
                ["dd", f"if={m.mnt / 'uploads/big.bin'}", "of=/dev/null", "bs=1M",
                 "status=none"])))
            rss[name].append(m.rss.peak())
            m.stop()
    s.delete_prefix(bucket, "")
    for name in samples:
        b.record("read 1 GiB", name, samples[name], rss=rss.get(name), amount=size)


def ls_l(path):
    p = run(["ls", "-l", str(path)])
    return p.stdout.count(b"\n") - 1


def w_ls(b, n=5000):
    s = b.server
    bucket = b.bucket("bench-ls")
    s.put_many(bucket, [(f"uploads/ls/f{i:05d}.jpg", b"x" * 100) for i in range(n)])
    samples = {"boto3 ListObjectsV2": []}

    def boto_list():
        got = s.keys(bucket, "uploads/ls/")
        if len(got) != n:
            raise BenchError(f"boto3 listed {len(got)} of {n}")
    makers = {"imgfs": lambda: b.imgfs(bucket)}
    makers.update(dict(b.peers(bucket)))
    makers.pop("rclone(writes)", None)
    for name in makers:
        samples[name + " cold"] = []
        samples[name + " warm"] = []
    for _ in range(REPEAT):
        samples["boto3 ListObjectsV2"].append(timed(boto_list))
        for name, make in makers.items():
            m = make()
            d = m.mnt / "uploads" / "ls"
            for phase in ("cold", "warm"):
                t0 = time.perf_counter()
                count = ls_l(d)
                samples[f"{name} {phase}"].append(time.perf_counter() - t0)
                if count != n:
                    raise BenchError(f"{name} ls -l showed {count} of {n}")
            m.stop()
    s.delete_prefix(bucket, "")
    for name in samples:
        b.record("ls -l 5000", name, samples[name], amount=n, rate_unit="entries/s")


PIL_SCRIPT = r"""
import sys, io, time
from PIL import Image
t0 = time.perf_counter()
for p in sys.argv[2:]:
    with Image.open(p) as im:
        fmt = im.format
        im.thumbnail((int(sys.argv[1]), int(sys.argv[1])))
        if fmt == "JPEG" and im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        im.save(io.BytesIO(), fmt)
print(time.perf_counter() - t0)
"""


def read_all(paths):
    """Read each file once, sequentially, in this process, the way cat does
    (open, read until EOF, close: no isatty ioctl as Python's open() makes)."""
    total = 0
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                total += len(chunk)
        finally:
            os.close(fd)
    return total


def w_thumbs(b, images):
    s = b.server
    bucket = b.bucket("bench-thumbs")
    s.put_many(bucket, [(f"uploads/{f.name}", f) for f in images], threads=8)
    out = b.work / "vips-out"
    out.mkdir()
    samples = {k: [] for k in ("vipsthumbnail (a process per file)", "Pillow thumbnail()",
                               SHARP, "imgfs first read", "imgfs first read, 4 readers",
                               "imgfs after remount")}
    rss = {k: [] for k in samples}

    def vips():
        for f in images:
            run(["vipsthumbnail", str(f), "-s", str(THUMB_SIZE),
                 "-o", str(out / ("%s" + f.suffix))])
    for r in range(REPEAT):
        samples["vipsthumbnail (a process per file)"].append(timed(vips))
        samples["Pillow thumbnail()"].append(timed(lambda: run(
            ["/usr/bin/python3", "-c", PIL_SCRIPT, str(THUMB_SIZE), *map(str, images)])))
        samples[SHARP].append(timed(lambda: sharp_all(images)))
        for name, readers in (("imgfs first read", 1), ("imgfs first read, 4 readers", 4)):
            s.delete_prefix(bucket, "thumbnails/")  # made in S3 by the previous mount
            m = b.imgfs(bucket)
            names = sorted(os.listdir(m.mnt / "thumbnails"))
            if len(names) != len(images):
                raise BenchError(f"thumbnails/ lists {len(names)} of {len(images)}")
            paths = [m.mnt / "thumbnails" / n for n in names]
            m.rss.reset()
            if readers == 1:
                samples[name].append(timed(lambda: read_all(paths)))
            else:
                with concurrent.futures.ThreadPoolExecutor(readers) as pool:
                    parts = [paths[i::readers] for i in range(readers)]
                    samples[name].append(timed(lambda: list(pool.map(read_all, parts))))
            rss[name].append(m.rss.peak())
            if readers == 1:
                m.remount()
                os.listdir(m.mnt / "thumbnails")
                m.rss.reset()
                samples["imgfs after remount"].append(timed(lambda: read_all(paths)))
                rss["imgfs after remount"].append(m.rss.peak())
            m.stop()
    s.delete_prefix(bucket, "")
    for name in samples:
        b.record("thumbnails", name, samples[name], rss=rss[name] or None,
                 amount=len(images), rate_unit="images/s")


def sharp_all(images):
    run(["node", str(SHARP_JS), str(THUMB_SIZE), "0", *map(str, images)])


def daemon_gets(m):
    """GET requests the daemon made, from its .metrics."""
    text = (m.mnt / ".metrics").read_text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("imgfs_s3_requests_total{") and 'op="GET"' in line)


def w_eager(b, images):
    """cp of the set followed at once by reading every thumbnail, against
    uploading it with sequential curl PUTs and then thumbnailing it with
    sharp, one after the other."""
    s = b.server
    bucket = b.bucket("bench-eager")
    base, tool = "curl PUTs, then sharp", "imgfs cp, then read every thumbnail"
    samples, rss, gets = {base: [], tool: []}, {tool: []}, []

    def curl_all():
        for f in images:
            run(["curl", "-sS", "-f", *s.curl_auth(), "-T", str(f),
                 s.url(bucket, f"uploads/{f.name}")])
    for r in range(REPEAT):
        samples[base].append(timed(curl_all) + timed(lambda: sharp_all(images)))
        s.delete_prefix(bucket, "")
        m = b.imgfs(bucket)
        m.rss.reset()
        paths = [m.mnt / "thumbnails" / f.name for f in images]

        def go():
            run(["cp", *map(str, images), str(m.mnt / "uploads") + "/"])
            read_all(paths)
        samples[tool].append(timed(go))
        rss[tool].append(m.rss.peak())
        gets.append(daemon_gets(m))
        m.stop()
        s.delete_prefix(bucket, "")
    b.record("cp + thumbnails", base, samples[base], amount=len(images),
             rate_unit="images/s")
    b.record("cp + thumbnails", tool, samples[tool], rss=rss[tool],
             amount=len(images), rate_unit="images/s",
             note=f"source GETs {max(gets):.0f}")


def w_links(b, n=10000):
    s = b.server
    bucket = b.bucket("bench-links")
    s.put_many(bucket, [(f"uploads/lk/f{i:05d}.jpg", b"y" * 10) for i in range(n)])
    samples = {"imgfs first pass": [], "imgfs second pass": []}
    for _ in range(REPEAT):
        m = b.imgfs(bucket)
        d = m.mnt / ".links" / "uploads" / "lk"
        paths = [d / x for x in sorted(os.listdir(d))]
        if len(paths) != n:
            raise BenchError(f".links/uploads/lk lists {len(paths)} of {n}")
        for phase in ("first pass", "second pass"):
            samples[f"imgfs {phase}"].append(timed(lambda: read_all(paths)))
        m.stop()
    s.delete_prefix(bucket, "")
    for name in samples:
        b.record("read 10000 links", name, samples[name], amount=n,
                 rate_unit="files/s")


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip() or "?"
    return (f"{platform.node()}: {os.cpu_count()} x {cpu}, {mem:.0f} GiB RAM, "
            f"Linux {platform.release()}, load {os.getloadavg()[0]:.1f} at start; "
            f"imgfs {IMGFS_BIN} at {rev}, {REPEAT} runs each")


WORKLOADS = ("cp", "write", "read", "ls", "thumbs", "eager", "links", "waste")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        doc = json.loads(pathlib.Path(sys.argv[2]).read_text())
        print(table(doc["results"], doc["machine"], doc.get("counts", [])))
        return
    if not IMGFS_BIN.exists():
        sys.exit(f"bench: {IMGFS_BIN} not built (make)")
    for tool in ("curl", "vipsthumbnail", "fusermount3", "node") + (("s3fs", "rclone") if PEERS else ()):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (make deps-bench)")
    wanted = ONLY or list(WORKLOADS)
    b = Bench()

    def on_signal(signum, frame):
        raise BenchError(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.setitimer(signal.ITIMER_REAL, DEADLINE)
    mach = machine()
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        log(f"work directory {b.work}; starting RGW")
        b.server = Server(b.work)
        images = stage_images(b)
        log(f"{len(images)} images, {sum(f.stat().st_size for f in images) / MIB:.0f} MiB")
        big = make_big(b) if {"write", "read"} & set(wanted) else None
        steps = {"cp": lambda: w_cp(b, images), "write": lambda: w_write(b, big),
                 "read": lambda: w_read(b, big), "ls": lambda: w_ls(b),
                 "thumbs": lambda: w_thumbs(b, images), "eager": lambda: w_eager(b, images),
                 "links": lambda: w_links(b), "waste": lambda: w_waste(b, images)}
        for w in wanted:
            log(f"workload {w}")
            steps[w]()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        b.cleanup()
    text = table(b.results, mach, b.counts)
    print(text)
    outdir = REPO / "build" / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    doc = dict(started=started.isoformat(), machine=mach, repeat=REPEAT,
               imgfs_opts=EXTRA_OPTS, results=b.results, counts=b.counts,
               targets=[dict(workload=w, wanted=t, measured=g, met=ok)
                        for w, t, g, ok in verdicts(b.results) + waste_verdicts(b.counts)])
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    for name in (f"bench-{stamp}.json", "latest.json"):
        (outdir / name).write_text(json.dumps(doc, indent=2) + "\n")
    (outdir / "latest.md").write_text(text + "\n")
    log(f"results in {outdir}/bench-{stamp}.json")


if __name__ == "__main__":
    main()
