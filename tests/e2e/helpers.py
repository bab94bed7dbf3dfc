"""The machinery behind conftest.py's fixtures, and small helpers the tests
share (hashing, listing a bucket, running a command). See conftest.py for the
fixtures' contract."""

import collections
import concurrent.futures
import functools
import hashlib
import itertools
import os
import pathlib
import random
import re
import signal
import socket
import subprocess
import time
import urllib.parse

import boto3
import botocore.config
import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO = pathlib.Path(__file__).resolve().parents[2]
RGW_UP = REPO / "tests" / "rgw-up.sh"
RGW_DOWN = REPO / "tests" / "rgw-down.sh"
DEFAULT_AK = "IMGFSTESTACCESSKEY00"
DEFAULT_SK = "imgfstestsecretkey000000000000000000000000"
REGION = "us-east-1"
IMAGE_DIRS = ("/usr/share/backgrounds", "/usr/share/wallpapers")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
SANITIZER_MARKS = (
    "AddressSanitizer",
    "LeakSanitizer",
    "UndefinedBehaviorSanitizer",
    "ThreadSanitizer",
    "MemorySanitizer",
    "runtime error:",
)
MIB = 1024 * 1024


# --------------------------------------------------------------- small helpers


def build_dir():
    """$IMGFS_BUILD, else make's $BUILD (exported to recipes when set on the
    command line, as `make asan` does), else build/; relative to the repo."""
    d = os.environ.get("IMGFS_BUILD") or os.environ.get("BUILD") or "build"
    return REPO / d  # an absolute d replaces REPO


def imgfs_bin_path():
    return pathlib.Path(os.environ.get("IMGFS_BIN") or build_dir() / "imgfs")


@functools.lru_cache(maxsize=None)
def is_sanitized(binary):
    """Whether the binary was built with AddressSanitizer."""
    try:
        with open(binary, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def timeout_scale():
    """IMGFS_TIMEOUT_SCALE, else 3 for a sanitized daemon, else 1."""
    if os.environ.get("IMGFS_TIMEOUT_SCALE"):
        return float(os.environ["IMGFS_TIMEOUT_SCALE"])
    return 3.0 if is_sanitized(str(imgfs_bin_path())) else 1.0



def sha256_file(path, chunk=4 * MIB):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_object(s3, bucket, key):
    """SHA-256 of an object, streamed (never the whole body in memory)."""
    h = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for block in body.iter_chunks(4 * MIB):
        h.update(block)
    return h.hexdigest()


def get_bytes(s3, bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def list_keys(s3, bucket, prefix=""):
    """{key: size} of every object under prefix (paginated)."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj["Size"]
    return out


def list_multipart_uploads(s3, bucket):
    """Every multipart upload in progress, through all pages: RGW can answer
    a page with no upload and IsTruncated when the bucket holds many
    objects, so the first page alone says nothing."""
    out = []
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        out += page.get("Uploads", [])
    return out


def write_random(path, size, seed=None, head=b""):
    """Write head, then pseudo-random bytes, size bytes in all, to path;
    return path. seed: an int (the same bytes every time), None (new bytes
    each time), or a random.Random to draw from (so that a series of files
    follows one seed)."""
    rnd = seed if isinstance(seed, random.Random) else random.Random(seed)
    with open(path, "wb") as f:
        f.write(head[:size])
        left = size - min(len(head), size)
        while left:
            n = min(left, MIB)
            f.write(rnd.randbytes(n))
            left -= n
    return path


def put_many(s3, bucket, items, threads=32):
    """Put {key: bytes} into the bucket with a thread pool."""

    def put(kv):
        s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1])

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, items.items()))


def run(cmd, check_clean=True, timeout=600, **kw):
    """Run a command; with check_clean, assert exit 0 and empty stderr."""
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    if check_clean:
        assert p.returncode == 0 and p.stderr == b"", (
            f"{cmd!r} exited {p.returncode}, stderr: {p.stderr.decode(errors='replace')}"
        )
    return p


def wait_for(cond, timeout, interval=0.1, what="condition"):
    """Poll cond() until it returns a true value; return it, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def image_kind(data):
    """'image/jpeg', 'image/png', 'image/webp' from magic bytes, else None."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def find_images():
    """The distinct JPEG/PNG/WebP files of Debian's wallpaper packages."""
    seen = set()
    found = []
    for top in IMAGE_DIRS:
        for root, _dirs, files in os.walk(top):
            for name in files:
                p = pathlib.Path(root) / name
                if p.suffix.lower() not in IMAGE_SUFFIXES or p.is_symlink():
                    continue
                real = p.resolve()
                if real in seen or not real.is_file():
                    continue
                seen.add(real)
                found.append(real)
    return sorted(found)


_bucket_seq = itertools.count()


def unique_bucket_name():
    return f"imgfs-t{os.getpid()}-{next(_bucket_seq)}-{random.randrange(16**6):06x}"


def empty_and_delete_bucket(s3, bucket):
    """Abort multipart uploads, delete every object, delete the bucket.
    A bucket that is already gone is fine."""
    try:
        s3.delete_bucket_policy(Bucket=bucket)
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for up in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
    except s3.exceptions.NoSuchBucket:
        pass


def make_s3_client(endpoint, access_key, secret_key, region=REGION):
    # An AWS_CA_BUNDLE pointing at an unrelated file breaks botocore even
    # for plain http; the tests never need it.
    os.environ.pop("AWS_CA_BUNDLE", None)
    cfg = botocore.config.Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=64,
        connect_timeout=5,
        read_timeout=120,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=cfg,
    )


# ------------------------------------------------------------------------ RGW

Request = collections.namedtuple("Request", "method path query status agent")
_ACCESS_LINE = re.compile(
    r' beast: \S+ \S+ - \S+ \[[^\]]*\] "(\S+) (\S+) HTTP/[\d.]+" (\d+) \S+ \S+ "([^"]*)"'
)


def _port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_ports(attempt):
    """A block of 24 free ports below the ephemeral range: RGW, MON, then
    20 for the OSD. The start depends on the pid so that concurrent runs
    start apart; bind() checks each port."""
    blocks = (32000 - 12000) // 24
    start = (os.getpid() * 7919 + attempt * 104729) % blocks
    for i in range(blocks):
        base = 12000 + ((start + i) % blocks) * 24
        if all(_port_free(p) for p in range(base, base + 24)):
            return base, base + 1, base + 4, base + 23
    raise RuntimeError("no 24 free ports between 12000 and 32000")


class RGW:
    """A Ceph RGW: one this session started, or one already running."""

    def __init__(self, endpoint, access_key, secret_key, ceph_dir=None, owned=False):
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = REGION
        self.ceph_dir = pathlib.Path(ceph_dir) if ceph_dir else None
        self.owned = owned
        self.port = urllib.parse.urlsplit(endpoint).port
        self.log_path = self.ceph_dir / "log" / "client.rgw.a.log" if self.ceph_dir else None
        self.can_restart = self.ceph_dir is not None
        self.s3 = make_s3_client(endpoint, access_key, secret_key)

    @classmethod
    def from_environment(cls, tmp_path_factory):
        ep = os.environ.get("IMGFS_TEST_ENDPOINT")
        if ep:
            return cls(
                ep.rstrip("/"),
                os.environ.get("IMGFS_TEST_ACCESS_KEY", DEFAULT_AK),
                os.environ.get("IMGFS_TEST_SECRET_KEY", DEFAULT_SK),
                os.environ.get("IMGFS_TEST_CEPH_DIR"),
            )
        top = tmp_path_factory.mktemp("rgw")
        errors = []
        for attempt in range(3):
            ceph_dir = top / f"cluster{attempt}"
            env = cls._up_env(ceph_dir, attempt)
            p = subprocess.run(
                [str(RGW_UP)], env=env, capture_output=True, text=True, timeout=300
            )
            if p.returncode == 0:
                endpoint = p.stdout.strip().splitlines()[-1]
                return cls(endpoint, env["AK"], env["SK"], ceph_dir, owned=True)
            errors.append(p.stderr)
            if "IMGFS_RGW_PORT" in os.environ:
                break
        pytest.fail("tests/rgw-up.sh failed:\n" + "\n".join(errors), pytrace=False)

    @staticmethod
    def _up_env(ceph_dir, attempt):
        env = dict(os.environ)
        if "IMGFS_RGW_PORT" in os.environ:
            rgw = int(os.environ["IMGFS_RGW_PORT"])
            mon = int(os.environ.get("IMGFS_MON_PORT", rgw + 1))
            omin = int(os.environ.get("IMGFS_OSD_PORT_MIN", rgw + 4))
            omax = int(os.environ.get("IMGFS_OSD_PORT_MAX", omin + 19))
        else:
            rgw, mon, omin, omax = _pick_ports(attempt)
        env.update(
            CEPH_DIR=str(ceph_dir),
            RGW_PORT=str(rgw),
            MON_PORT=str(mon),
            OSD_PORT_MIN=str(omin),
            OSD_PORT_MAX=str(omax),
            AK=DEFAULT_AK,
            SK=DEFAULT_SK,
        )
        for knob in ("OBJECTSTORE", "MEMSTORE_BYTES", "BLUESTORE_BYTES"):
            if f"IMGFS_RGW_{knob}" in os.environ:
                env[knob] = os.environ[f"IMGFS_RGW_{knob}"]
        return env

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_REGION=self.region,
            AWS_DEFAULT_REGION=self.region,
            AWS_EC2_METADATA_DISABLED="true",
            IMGFS_ENDPOINT=self.endpoint,
        )
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    def _script_env(self):
        return dict(os.environ, CEPH_DIR=str(self.ceph_dir), RGW_PORT=str(self.port))

    def _require_restart(self):
        if not self.can_restart:
            pytest.skip("this RGW cannot be restarted (set IMGFS_TEST_CEPH_DIR)")

    def running(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self):
        """Kill radosgw (SIGKILL: the server dies); the cluster stays."""
        self._require_restart()
        subprocess.run([str(RGW_DOWN), "--rgw-only"], env=self._script_env(), check=True, timeout=60)

    def start(self):
        self._require_restart()
        p = subprocess.run(
            [str(RGW_UP), "--rgw-only"], env=self._script_env(),
            capture_output=True, text=True, timeout=300,
        )
        if p.returncode != 0:
            pytest.fail("restarting radosgw failed:\n" + p.stderr, pytrace=False)

    def restart(self):
        self.stop()
        self.start()

    def shutdown(self):
        if not self.owned:
            return
        env = self._script_env()
        if os.environ.get("IMGFS_KEEP_RGW") == "1":
            env["KEEP"] = "1"
        subprocess.run([str(RGW_DOWN)], env=env, timeout=120)

    def _flush_log(self):
        asok = self.ceph_dir / "run" / "client.rgw.a.asok"
        if asok.exists():
            subprocess.run(
                ["ceph", "--admin-daemon", str(asok), "log", "flush"],
                capture_output=True, timeout=30,
            )

    def log_mark(self):
        if self.log_path is None:
            pytest.skip("no RGW log (set IMGFS_TEST_CEPH_DIR)")
        self._flush_log()
        return self.log_path.stat().st_size

    def requests(self, since=0, method=None, bucket=None, prefix=None, include_boto=False):
        if self.log_path is None:
            pytest.skip("no RGW log (set IMGFS_TEST_CEPH_DIR)")
        self._flush_log()
        with open(self.log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", errors="replace")
        out = []
        for m in _ACCESS_LINE.finditer(text):
            meth, target, status, agent = m.groups()
            if not include_boto and agent.startswith("Boto3/"):
                continue
            raw_path, _, query = target.partition("?")
            path = urllib.parse.unquote(raw_path)
            if method and meth != method:
                continue
            if bucket and not (path == f"/{bucket}" or path.startswith(f"/{bucket}/")):
                continue
            if prefix and not path.startswith(prefix):
                continue
            out.append(Request(meth, path, query, int(status), agent))
        return out


# ---------------------------------------------------------------------- mount


def _opts_list(opts):
    if opts is None:
        return []
    if isinstance(opts, str):
        return [o for o in opts.split(",") if o]
    if isinstance(opts, dict):
        return [f"{k}={v}" for k, v in opts.items()]
    return list(opts)


def _mountinfo_has(path):
    target = str(path)
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ")
            point = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), fields[4])
            if point.decode("utf-8", errors="replace") == target:
                return True
    return False


def fusermount_u(path, busy_for=None):
    """fusermount3 -u path, as a CompletedProcess (text).

    A busy mount (EBUSY) is tried again until it is free or busy_for
    seconds (10, scaled, by default) have passed; one still busy then is
    returned as it failed, with fuser's table. Besides a file held open, a
    fresh FUSE mount can be busy for a moment with no process holding it
    (fuser shows none): on these machines it cleared within a second, and
    it failed a CI run once.
    """
    if busy_for is None:
        busy_for = 10 * timeout_scale()
    deadline = time.monotonic() + busy_for
    while True:
        p = subprocess.run(["fusermount3", "-u", str(path)],
                           capture_output=True, text=True, timeout=60)
        busy = p.returncode != 0 and "busy" in p.stderr
        if not busy or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if busy:
        seen = subprocess.run(["fuser", "-vm", str(path)], capture_output=True, text=True)
        table = [l for l in (seen.stdout + seen.stderr).splitlines() if "Permission denied" not in l]
        p.stderr += f"still busy after {busy_for:g}s; fuser -vm:\n" + "\n".join(table)
    return p


class Mount:
    """One mountpoint, and the daemon currently serving it."""

    def __init__(self, factory, bucket, mountpoint, cache_dir, opts, env, fg_args, timeout):
        self._factory = factory
        self.bucket = bucket
        self.path = pathlib.Path(mountpoint)
        self.uploads = self.path / "uploads"
        self.thumbs = self.path / "thumbnails"
        self.links = self.path / ".links"
        self.cache_dir = pathlib.Path(cache_dir)
        self.proc = None
        self.pid = None
        self._opts = opts
        self._env = env
        self._fg_args = fg_args
        self._timeout = timeout
        self._stderr_path = None
        self._killed = False
        self.runs = []  # (stderr path, proc, killed) of every daemon run

    def _start(self):
        f = self._factory
        opts = [f"endpoint={f.rgw.endpoint}", f"region={f.rgw.region}", f"cache_dir={self.cache_dir}"]
        if os.environ.get("IMGFS_TEST_LOG_LEVEL"):
            opts.append(f"log_level={os.environ['IMGFS_TEST_LOG_LEVEL']}")
        given = _opts_list(self._opts)
        # A sanitized daemon decodes several times slower: its deadline
        # scales like the tests' own (tests of the deadline set it).
        if timeout_scale() > 1 and not any(o.startswith("thumb_timeout=") for o in given):
            opts.append(f"thumb_timeout={int(10 * timeout_scale())}")
        opts += given
        cmd = [str(f.imgfs_bin), "-f", "-o", ",".join(opts)]
        cmd += list(self._fg_args or []) + [self.bucket, str(self.path)]
        env = f.rgw.env(**(self._env or {}))
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self._stderr_path = f.next_stderr_path()
        self._killed = False
        with open(self._stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        self.runs.append((self._stderr_path, self.proc, False))
        self._wait_mounted(cmd)

    def _wait_mounted(self, cmd):
        timeout = self._timeout or 30 * timeout_scale()
        deadline = time.monotonic() + timeout
        while not _mountinfo_has(self.path):
            if self.proc.poll() is not None:
                pytest.fail(
                    f"imgfs exited with status {self.proc.returncode} before mounting\n"
                    f"command: {cmd}\nstderr:\n{self.stderr_text()}", pytrace=False,
                )
            if time.monotonic() > deadline:
                self.kill9()
                pytest.fail(
                    f"imgfs did not mount {self.path} within {timeout}s\n"
                    f"stderr:\n{self.stderr_text()}", pytrace=False,
                )
            time.sleep(0.05)

    def mounted(self):
        return _mountinfo_has(self.path)

    def stderr_text(self):
        if self._stderr_path is None:
            return ""
        return self._stderr_path.read_text(errors="replace")

    def metrics(self):
        text = (self.path / ".metrics").read_text()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    def metric(self, name, **labels):
        text = (self.path / ".metrics").read_text()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == str(v) for k, v in labels.items()):
                    total += s.value
        return total

    def _fusermount(self):
        return fusermount_u(self.path)

    def unmount(self, timeout=60):
        """fusermount3 -u, then wait for the daemon; assert it exited 0."""
        p = self._fusermount()
        assert p.returncode == 0, f"fusermount3 -u {self.path} failed: {p.stderr}"
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            pytest.fail(f"imgfs did not exit within {timeout}s of unmount\n{self.stderr_text()}")
        assert status == 0, f"imgfs exited with status {status}\nstderr:\n{self.stderr_text()}"

    def remount(self, opts=None, env=None, fg_args=None):
        if self.proc is not None and self.proc.poll() is None:
            self.unmount()
        elif self.mounted():
            self._fusermount()
        if opts is not None:
            self._opts = opts
        if env is not None:
            self._env = env
        if fg_args is not None:
            self._fg_args = fg_args
        self._start()
        return self

    def kill9(self):
        if self.proc is None:
            return
        self.runs[-1] = (self._stderr_path, self.proc, True)
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)

    def close(self):
        """Unmount if still mounted; list what went wrong with any run."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            p = self._fusermount()
            if p.returncode != 0:
                subprocess.run(["fusermount3", "-uz", str(self.path)], capture_output=True, timeout=60)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                problems.append(f"imgfs (pid {self.pid}) did not exit after unmount; killed")
                self.kill9()
        elif self.mounted():
            subprocess.run(["fusermount3", "-uz", str(self.path)], capture_output=True, timeout=60)
        for stderr_path, proc, killed in self.runs:
            text = stderr_path.read_text(errors="replace")
            if not killed and proc.returncode is not None and proc.returncode < 0:
                problems.append(
                    f"imgfs (pid {proc.pid}) died of signal {-proc.returncode}\n{text[-4000:]}"
                )
            if any(mark in text for mark in SANITIZER_MARKS):
                problems.append(f"sanitizer report in imgfs' stderr ({stderr_path}):\n{text[-8000:]}")
        return problems


class MountFactory:
    def __init__(self, rgw, imgfs_bin, tmp_path):
        self.rgw = rgw
        self.imgfs_bin = imgfs_bin
        self.tmp_path = tmp_path
        self.mounts = []
        self._seq = itertools.count()

    def next_stderr_path(self):
        return self.tmp_path / f"imgfs-{next(self._seq)}.stderr"

    def __call__(self, bucket, opts=None, env=None, fg_args=None, cache_dir=None, timeout=None):
        n = len(self.mounts)
        mountpoint = self.tmp_path / f"mnt{n}"
        mountpoint.mkdir()
        if cache_dir is None:
            cache_dir = self.tmp_path / f"cache{n}"
            cache_dir.mkdir()
        m = Mount(self, bucket, mountpoint, cache_dir, opts, env, fg_args, timeout)
        self.mounts.append(m)
        m._start()
        return m

    def close_all(self):
        problems = []
        for m in reversed(self.mounts):
            problems += m.close()
        return problems
