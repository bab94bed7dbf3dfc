"""End-to-end tests of core/store/s3 through build/tools/s3cli against a real RGW.

RGW verifies every SigV4 signature, so a signing mistake fails here. The
bucket is checked independently with boto3. A small in-process TCP proxy
injects faults (503 SlowDown, a connection cut mid-body, a server that
never answers) to exercise retries, resumed GETs and timeouts.
"""

import concurrent.futures
import hashlib
import os
import re
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

AWKWARD_KEYS = [
    "awk/sp ace.jpg",
    "awk/plus+sign.png",
    "awk/per%cent%20literal.txt",
    "awk/hash#tag",
    "awk/ques?tion",
    "awk/eq=ual&amp=x",
    "awk/til~de",
    "awk/ünïcödé/日本語 ファイル.jpg",
    "awk/new\nline",
    "awk/tab\tand\rcr",
    "awk/dir with space/sub+dir/x y+z.gif",
    "awk/quote\"apos'<lt>",
    "awk/dots/../a/./b//c",
]


def unescape(s):
    """Undo s3cli's escaping of keys (\\\\, \\n, \\t, \\r, \\xNN)."""
    out = bytearray()
    raw = s.encode()
    i = 0
    while i < len(raw):
        c = raw[i : i + 1]
        if c == b"\\":
            nxt = raw[i + 1 : i + 2]
            if nxt == b"x":
                out.append(int(raw[i + 2 : i + 4], 16))
                i += 4
                continue
            out += {b"\\": b"\\", b"n": b"\n", b"t": b"\t", b"r": b"\r"}[nxt]
            i += 2
            continue
        out += c
        i += 1
    return out.decode()


class Cli:
    def __init__(self, tools, env):
        self.bin = str(tools / "s3cli")
        self.env = env

    def run(self, *args, check=True, timeout=120, env=None, input_bytes=None):
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run(
            [self.bin, *args], env=e, capture_output=True, timeout=timeout, input=input_bytes
        )
        if check and p.returncode != 0:
            raise AssertionError(f"s3cli {args[0]} failed ({p.returncode}): {p.stderr.decode()}")
        return p

    def ls(self, prefix, delim="", max_keys=0):
        p = self.run("ls", prefix, delim, str(max_keys))
        keys, prefixes = [], []
        for line in p.stdout.decode().split("\n"):
            if line.startswith("K "):
                _, size, etag, key = line.split(" ", 3)
                keys.append((unescape(key), int(size), etag))
            elif line.startswith("P "):
                prefixes.append(unescape(line[2:]))
        pages = int(re.search(r"pages=(\d+)", p.stderr.decode()).group(1))
        return keys, prefixes, pages


@pytest.fixture
def cli(rgw, bucket, tools):
    if not (tools / "s3cli").exists():
        pytest.fail(f"{tools}/s3cli not built (make)")
    return Cli(tools, rgw.env(IMGFS_BUCKET=bucket, IMGFS_LOG_LEVEL="warn"))


def boto_keys(s3, bucket, prefix=""):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [(o["Key"], o["Size"], o["ETag"]) for o in page.get("Contents", [])]
    return keys


def metrics_of(stderr):
    out = {}
    for line in stderr.decode().split("\n"):
        m = re.match(r"^(imgfs_[a-z0-9_]+(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_put_get_head_range_delete(cli, rgw, bucket, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    etag = cli.run("put", "objs/a.bin", str(src), "image/jpeg", '"0123abcd"').stdout.decode().strip()
    assert etag == '"%s"' % hashlib.md5(data).hexdigest()

    got = rgw.s3.get_object(Bucket=bucket, Key="objs/a.bin")
    assert got["Body"].read() == data
    assert got["ContentType"] == "image/jpeg"
    assert got["Metadata"] == {"source-etag": '"0123abcd"'}

    head = dict(
        line.split("=", 1) for line in cli.run("head", "objs/a.bin").stdout.decode().splitlines()
    )
    assert int(head["size"]) == len(data)
    assert head["etag"] == etag
    assert head["content_type"] == "image/jpeg"
    assert head["source_etag"] == '"0123abcd"'
    assert abs(int(head["mtime"]) - time.time()) < 300

    assert cli.run("get", "objs/a.bin").stdout == data
    assert cli.run("get", "objs/a.bin", "1000", "5000").stdout == data[1000:6000]
    assert cli.run("get", "objs/a.bin", str(len(data) - 10), "0").stdout == data[-10:]
    # a range past the end is cut at the end
    assert cli.run("get", "objs/a.bin", str(len(data) - 3), "100").stdout == data[-3:]

    # an empty object
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    cli.run("put", "objs/empty", str(empty))
    assert cli.run("get", "objs/empty").stdout == b""
    assert "size=0" in cli.run("head", "objs/empty").stdout.decode()

    cli.run("rm", "objs/a.bin")
    cli.run("rm", "objs/a.bin")  # deleting a missing key is fine
    p = cli.run("head", "objs/a.bin", check=False)
    assert p.returncode == 1 and b"No such file" in p.stderr
    p = cli.run("get", "objs/a.bin", check=False)
    assert p.returncode == 1 and b"No such file" in p.stderr
    assert [k for k, _, _ in boto_keys(rgw.s3, bucket)] == ["objs/empty"]


def test_copy_keeps_metadata(cli, rgw, bucket, tmp_path):
    src = tmp_path / "img"
    src.write_bytes(b"\x89PNG" + os.urandom(5000))
    cli.run("put", "dir/orig #1.png", str(src), "image/png", '"feed"')
    cli.run("cp", "dir/orig #1.png", "dir/copy ?+%.png")
    got = rgw.s3.get_object(Bucket=bucket, Key="dir/copy ?+%.png")
    assert got["Body"].read() == src.read_bytes()
    assert got["ContentType"] == "image/png"
    assert got["Metadata"] == {"source-etag": '"feed"'}
    p = cli.run("cp", "dir/missing", "dir/x", check=False)
    assert p.returncode == 1 and b"No such file" in p.stderr


def test_awkward_keys_round_trip(cli, rgw, bucket, tmp_path):
    for i, key in enumerate(AWKWARD_KEYS):
        f = tmp_path / f"f{i}"
        f.write_bytes(key.encode() * 3)
        cli.run("put", key, str(f))
    # boto3 sees exactly these keys
    assert sorted(k for k, _, _ in boto_keys(rgw.s3, bucket)) == sorted(AWKWARD_KEYS)
    # our listing decodes them back (encoding-type=url)
    keys, _, _ = cli.ls("awk/")
    assert sorted(k for k, _, _ in keys) == sorted(AWKWARD_KEYS)
    for key in AWKWARD_KEYS:
        assert cli.run("get", key).stdout == key.encode() * 3
        # presigned URLs of the same keys work with plain curl (told not to
        # squash the "../" of the one key that has such segments, as a
        # browser would: S3 signs the path as sent)
        url = cli.run("presign", key, "300").stdout.decode().strip()
        body = subprocess.run(["curl", "-sf", "--path-as-is", url], capture_output=True,
                              timeout=60)
        assert body.returncode == 0, (key, url)
        assert body.stdout == key.encode() * 3
    # a key boto3 wrote reads back through the client
    rgw.s3.put_object(Bucket=bucket, Key="awk2/b+o t%o#3?", Body=b"boto")
    assert cli.run("get", "awk2/b+o t%o#3?").stdout == b"boto"


def test_list_pagination_and_delimiter(cli, rgw, bucket):
    keys = [f"many/{i:05d}-{'x' * (i % 7)}" for i in range(2500)]
    keys += [f"many/sub{d}/k{i}" for d in range(3) for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: rgw.s3.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))

    listed, prefixes, pages = cli.ls("many/", "", 1000)
    assert pages == 3
    assert prefixes == []
    assert listed == boto_keys(rgw.s3, bucket, "many/")
    assert sorted(k for k, _, _ in listed) == sorted(keys)

    listed, prefixes, pages = cli.ls("many/", "/", 1000)
    assert pages == 3
    assert len(listed) == 2500
    assert prefixes == ["many/sub0/", "many/sub1/", "many/sub2/"]
    listed, prefixes, pages = cli.ls("many/sub1/", "/")
    assert [k for k, _, _ in listed] == [f"many/sub1/k{i}" for i in range(4)]
    assert pages == 1
    listed, prefixes, pages = cli.ls("nothing/", "/")
    assert (listed, prefixes, pages) == ([], [], 1)


@pytest.mark.deadline(600)
def test_multipart_parts_in_flight(cli, rgw, bucket, tmp_path):
    data = os.urandom(5 * 1024 * 1024 * 6 + 12345)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    p = cli.run("mpu", "big/a file.bin", str(src), str(5 * 1024 * 1024), "4",
                env={"S3CLI_METRICS": "1"})
    etag = p.stdout.decode().strip()
    assert re.fullmatch(r'"[0-9a-f]{32}-7"', etag)
    m = metrics_of(p.stderr)
    assert m['imgfs_s3_requests_total{op="MPU_PART",status="200"}'] == 7
    assert m['imgfs_s3_requests_total{op="MPU_CREATE",status="200"}'] == 1
    assert m['imgfs_s3_requests_total{op="MPU_COMPLETE",status="200"}'] == 1
    assert m["imgfs_bytes_up_total"] >= len(data)
    got = rgw.s3.get_object(Bucket=bucket, Key="big/a file.bin")
    assert got["ETag"] == etag
    assert got["Body"].read() == data
    assert cli.run("get", "big/a file.bin").stdout == data
    assert rgw.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_multipart_abort_and_list(cli, rgw, bucket):
    ids = {}
    for key in ["mp/one", "mp/two words+"]:
        ids[key] = cli.run("mpu-create", key).stdout.decode().strip()
    listed = cli.run("mpu-ls", "mp/").stdout.decode().splitlines()
    seen = {unescape(l.split("\t")[0]): l.split("\t")[1] for l in listed}
    assert seen == ids
    for line in listed:
        assert abs(int(line.split("\t")[2]) - time.time()) < 300
    boto = rgw.s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert sorted(u["UploadId"] for u in boto) == sorted(ids.values())
    for key, upload_id in ids.items():
        cli.run("mpu-abort", key, upload_id)
    assert rgw.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert cli.run("mpu-ls", "").stdout == b""
    p = cli.run("mpu-abort", "mp/one", ids["mp/one"], check=False)
    assert p.returncode == 1 and b"No such file" in p.stderr


def test_presigned_urls(cli, rgw, bucket, tmp_path):
    data = os.urandom(100000)
    f = tmp_path / "p.jpg"
    f.write_bytes(data)
    cli.run("put", "links/p q+r.jpg", str(f), "image/jpeg")
    url = cli.run("presign", "links/p q+r.jpg", "120").stdout.decode().strip()
    assert url.startswith(rgw.endpoint + "/" + bucket + "/links/p%20q%2Br.jpg?")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert q["X-Amz-Expires"] == ["120"] and q["X-Amz-SignedHeaders"] == ["host"]
    got = subprocess.run(["curl", "-sf", url], capture_output=True, timeout=60)
    assert got.stdout == data

    # one character of the signature changed: 403
    sig = q["X-Amz-Signature"][0]
    bad = url.replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
    code = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", bad],
                          capture_output=True, timeout=60).stdout
    assert code == b"403"

    # response-content-disposition is signed in and honoured
    url = cli.run("presign", "links/p q+r.jpg", "120",
                  'attachment; filename="p q+r.jpg"').stdout.decode().strip()
    got = subprocess.run(["curl", "-sf", "-D", "-", "-o", "/dev/null", url],
                         capture_output=True, timeout=60)
    assert got.returncode == 0
    assert b'content-disposition: attachment; filename="p q+r.jpg"' in got.stdout.lower()

    # an expired URL: 403
    url = cli.run("presign", "links/p q+r.jpg", "1").stdout.decode().strip()
    time.sleep(2.5)
    code = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                          capture_output=True, timeout=60).stdout
    assert code == b"403"
    assert cli.run("presign", "links/x", "0", check=False).returncode == 1
    assert cli.run("presign", "links/x", "604801", check=False).returncode == 1


def test_wrong_secret_is_not_retried_and_not_logged(cli, rgw, bucket, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    secret = "wrongsecretwrongsecretwrongsecret0000000"
    p = cli.run("put", "k", str(f), check=False,
                env={"AWS_SECRET_ACCESS_KEY": secret, "S3CLI_METRICS": "1",
                     "IMGFS_LOG_LEVEL": "debug"})
    assert p.returncode == 1 and b"Permission denied" in p.stderr
    m = metrics_of(p.stderr)
    assert m['imgfs_s3_requests_total{op="PUT",status="403"}'] == 1
    assert m["imgfs_retries_total"] == 0
    err = p.stderr.decode()
    assert secret not in err and rgw.secret_key not in err
    assert "Signature=" not in err and "Authorization" not in err
    # SignatureDoesNotMatch, or AccessDenied once another test has turned
    # on RGW's STS authentication for the session's server
    assert re.search(r"PUT k failed: HTTP 403 (SignatureDoesNotMatch|AccessDenied) "
                     r"\(attempt 1 of 5\)", err), err


class FaultProxy:
    """A TCP proxy to RGW that can answer 503 SlowDown, cut a response in
    the middle of its body, or accept and never answer."""

    def __init__(self, upstream_port, host="127.0.0.1"):
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.endpoint = f"http://{host}:{self.port}"
        self.slowdowns = 0       # answer this many requests with 503 SlowDown
        self.cut_gets = 0        # cut this many GET bodies halfway
        self.stall = False       # never answer
        self.requests = []       # request heads seen
        self.connections = 0     # connections accepted
        self.lose_reply = None   # predicate on a request head: act, then drop the reply
        self.canned = None       # (predicate, reply bytes): answer once without RGW
        self.after_lost = None   # reply bytes to arm as canned once a reply is lost
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.sock.close()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_head(f):
        lines = []
        while True:
            line = f.readline()
            if not line:
                return None
            lines.append(line)
            if line in (b"\r\n", b"\n"):
                return b"".join(lines)

    @staticmethod
    def _length(head):
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        return int(m.group(1)) if m else 0

    def _serve(self, conn):
        up = socket.create_connection(self.upstream)
        cf, uf = conn.makefile("rb"), up.makefile("rb")
        try:
            while self._one(conn, cf, up, uf):
                pass
        except OSError:
            pass
        finally:
            conn.close()
            up.close()

    def _one(self, conn, cf, up, uf):
        head = self._read_head(cf)
        if head is None:
            return False
        body = cf.read(self._length(head))
        with self.lock:
            self.requests.append(head.decode("latin-1"))
            stall, slow = self.stall, self.slowdowns > 0
            if slow:
                self.slowdowns -= 1
        with self.lock:
            canned = self.canned if self.canned and self.canned[0](head) else None
            if canned:
                self.canned = None
        if canned:
            conn.sendall(canned[1])
            return True
        if stall:
            time.sleep(3600)
        if slow:
            msg = b"<Error><Code>SlowDown</Code><Message>slow</Message></Error>"
            conn.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Length: %d\r\n\r\n%s" % (len(msg), msg))
            return True
        up.sendall(head + body)
        rhead = self._read_head(uf)
        rbody = b"" if head.startswith(b"HEAD ") else uf.read(self._length(rhead))
        with self.lock:
            lose = self.lose_reply is not None and self.lose_reply(head)
            if lose and self.after_lost is not None:
                self.canned = (self.lose_reply, self.after_lost)
                self.after_lost = None
            if lose:
                self.lose_reply = None
        if lose:
            return False
        with self.lock:
            cut = head.startswith(b"GET ") and b"list-type" not in head and \
                len(rbody) > 1000 and self.cut_gets > 0
            if cut:
                self.cut_gets -= 1
        if cut:
            conn.sendall(rhead + rbody[: len(rbody) // 2])
            return False
        conn.sendall(rhead + rbody)
        return True


@pytest.fixture
def proxy(rgw):
    p = FaultProxy(rgw.port)
    yield p
    p.close()


def test_connections_are_reused_and_bounded(cli, rgw, bucket, proxy, tmp_path):
    """Four uploader threads share two connections: the pool makes them
    wait, and every request after the first two rides a kept-alive one."""
    data = os.urandom(5 * 1024 * 1024 * 4 + 1)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    env = {"IMGFS_ENDPOINT": proxy.endpoint, "IMGFS_MAX_CONNECTIONS": "2"}
    cli.run("mpu", "pool/a", str(src), str(5 * 1024 * 1024), "4", env=env)
    for i in range(5):
        cli.run("head", "pool/a", env=env)
    heads = len(proxy.requests)
    assert heads >= 5 + 7  # create, 5 parts, complete (+ HEAD), 5 HEADs
    # one s3cli process per command: 2 connections for the upload, 1 per HEAD
    assert proxy.connections <= 2 + 5, proxy.connections
    assert rgw.s3.get_object(Bucket=bucket, Key="pool/a")["Body"].read() == data


def test_lost_replies_of_complete_and_abort(cli, rgw, bucket, proxy, tmp_path):
    """The server completed (or aborted) but the reply never came: the retry
    gets NoSuchUpload, and the client still reports the truth."""
    data = os.urandom(5 * 1024 * 1024 * 2 + 3)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    env = {"IMGFS_ENDPOINT": proxy.endpoint, "IMGFS_LOG_LEVEL": "info"}
    is_complete = lambda h: h.startswith(b"POST ") and b"uploadId=" in h.split(b"\r\n")[0]
    # RGW answers a repeated completion with 200 (and an unquoted ETag)
    proxy.lose_reply = is_complete
    p = cli.run("mpu", "lost/a", str(src), str(5 * 1024 * 1024), "2", env=env)
    assert p.stdout.decode().strip() == rgw.s3.head_object(Bucket=bucket, Key="lost/a")["ETag"]
    assert rgw.s3.get_object(Bucket=bucket, Key="lost/a")["Body"].read() == data
    # a server may answer it NoSuchUpload: the ETag the parts make decides
    msg = b"<Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>"
    proxy.lose_reply = is_complete
    proxy.after_lost = b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(msg), msg)
    p = cli.run("mpu", "lost/c", str(src), str(5 * 1024 * 1024), "2", env=env)
    assert p.stdout.decode().strip() == rgw.s3.head_object(Bucket=bucket, Key="lost/c")["ETag"]
    assert b"the first reply was lost, the object is complete" in p.stderr
    # ... and a NoSuchUpload for an upload that did not complete stays an error
    proxy.canned = (is_complete,
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(msg), msg))
    proxy.lose_reply = None
    p = cli.run("mpu", "lost/d", str(src), str(5 * 1024 * 1024), "2", check=False, env=env)
    assert p.returncode == 1 and b"No such file" in p.stderr

    upload_id = cli.run("mpu-create", "lost/b").stdout.decode().strip()
    proxy.lose_reply = lambda h: h.startswith(b"DELETE ") and b"uploadId=" in h.split(b"\r\n")[0]
    cli.run("mpu-abort", "lost/b", upload_id, env=env)
    assert rgw.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_retries_slowdown_then_succeeds(cli, rgw, bucket, proxy, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(os.urandom(70000))
    proxy.slowdowns = 3
    p = cli.run("put", "retry/a", str(f), env={"IMGFS_ENDPOINT": proxy.endpoint,
                                               "S3CLI_METRICS": "1"})
    m = metrics_of(p.stderr)
    assert m["imgfs_retries_total"] == 3
    assert m['imgfs_s3_requests_total{op="PUT",status="503"}'] == 3
    assert m['imgfs_s3_requests_total{op="PUT",status="200"}'] == 1
    assert p.stderr.decode().count("will retry") == 3
    assert "PUT retry/a will retry: HTTP 503 SlowDown (attempt 1 of 5)" in p.stderr.decode()
    assert rgw.s3.get_object(Bucket=bucket, Key="retry/a")["Body"].read() == f.read_bytes()

    # more failures than retries: an error, after exactly 1 + retries attempts
    proxy.slowdowns = 100
    p = cli.run("put", "retry/b", str(f), check=False,
                env={"IMGFS_ENDPOINT": proxy.endpoint, "IMGFS_RETRIES": "2"})
    assert p.returncode == 1
    assert "PUT retry/b failed: HTTP 503 SlowDown (attempt 3 of 3)" in p.stderr.decode()
    proxy.slowdowns = 0


def test_get_resumes_after_a_cut(cli, rgw, bucket, proxy, tmp_path):
    data = os.urandom(4 * 1024 * 1024)
    rgw.s3.put_object(Bucket=bucket, Key="cut/a", Body=data)
    etag = rgw.s3.head_object(Bucket=bucket, Key="cut/a")["ETag"]
    proxy.cut_gets = 1
    p = cli.run("get", "cut/a", env={"IMGFS_ENDPOINT": proxy.endpoint, "S3CLI_METRICS": "1"})
    assert p.stdout == data
    gets = [r for r in proxy.requests if r.startswith("GET ")]
    assert len(gets) == 2
    assert "range:" not in gets[0].lower()
    resumed = gets[1].lower()
    assert re.search(r"range: bytes=\d+-\r\n", resumed)
    start = int(re.search(r"range: bytes=(\d+)-", resumed).group(1))
    assert 0 < start < len(data)
    assert f"if-match: {etag}".lower() in resumed
    m = metrics_of(p.stderr)
    assert m["imgfs_retries_total"] == 1

    # a ranged read cut in the middle resumes inside its range
    proxy.cut_gets = 1
    p = cli.run("get", "cut/a", "1000", "2000000", env={"IMGFS_ENDPOINT": proxy.endpoint})
    assert p.stdout == data[1000:2001000]


def test_object_replaced_during_resume_is_not_spliced(cli, rgw, bucket, proxy):
    data = os.urandom(2 * 1024 * 1024)
    rgw.s3.put_object(Bucket=bucket, Key="splice/a", Body=data)
    proxy.cut_gets = 1

    orig_one = proxy._one

    def replace_after_cut(conn, cf, up, uf):
        more = orig_one(conn, cf, up, uf)
        if not more and proxy.cut_gets == 0 and not getattr(proxy, "replaced", False):
            proxy.replaced = True
            rgw.s3.put_object(Bucket=bucket, Key="splice/a", Body=os.urandom(len(data)))
        return more

    proxy._one = replace_after_cut
    p = cli.run("get", "splice/a", check=False, env={"IMGFS_ENDPOINT": proxy.endpoint})
    assert p.returncode == 1
    assert b"Resource temporarily unavailable" in p.stderr


@pytest.mark.deadline(120)
def test_stalled_server_times_out(cli, proxy, tmp_path):
    proxy.stall = True
    t0 = time.monotonic()
    p = cli.run("head", "x", check=False,
                env={"IMGFS_ENDPOINT": proxy.endpoint, "IMGFS_TIMEOUT": "2",
                     "IMGFS_RETRIES": "1"})
    elapsed = time.monotonic() - t0
    assert p.returncode == 1
    assert elapsed < 15, elapsed
    err = p.stderr.decode()
    assert "HEAD x will retry" in err and "(attempt 1 of 2)" in err
    assert "HEAD x failed" in err and "(attempt 2 of 2)" in err


def test_connection_refused_is_retried_then_fails(cli, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t0 = time.monotonic()
    p = cli.run("head", "x", check=False,
                env={"IMGFS_ENDPOINT": f"http://127.0.0.1:{port}", "IMGFS_RETRIES": "3",
                     "S3CLI_METRICS": "1"})
    assert p.returncode == 1
    assert time.monotonic() - t0 < 20
    m = metrics_of(p.stderr)
    assert m["imgfs_retries_total"] == 3
    assert m['imgfs_s3_requests_total{op="HEAD",status="0"}'] == 4
    assert p.stderr.decode().count("will retry") == 3


def test_sse_headers_are_sent(cli, proxy, tmp_path):
    """SSE goes on PUT, multipart create and copy (RGW here has no key
    management, so only the requests are checked, through the proxy)."""
    f = tmp_path / "f"
    f.write_bytes(b"secret")
    env = {"IMGFS_ENDPOINT": proxy.endpoint, "IMGFS_SSE": "aws:kms",
           "IMGFS_SSE_KMS_KEY_ID": "alias/imgfs", "IMGFS_RETRIES": "0",
           "IMGFS_TIMEOUT": "3"}  # RGW without a KMS may sit on the request
    cli.run("put", "sse/a", str(f), check=False, env=env)
    cli.run("mpu-create", "sse/b", check=False, env=env)
    cli.run("cp", "sse/a", "sse/c", check=False, env=env)
    heads = [r.lower() for r in proxy.requests]
    put = [h for h in heads if h.startswith("put /") and "/sse/a " in h.split("\r\n")[0]]
    create = [h for h in heads if h.startswith("post /") and "?uploads" in h.split("\r\n")[0]]
    copy = [h for h in heads if "x-amz-copy-source:" in h]
    assert put and create and copy
    for h in put + create + copy:
        assert "x-amz-server-side-encryption: aws:kms\r\n" in h
        assert "x-amz-server-side-encryption-aws-kms-key-id: alias/imgfs\r\n" in h
        # signed, like every x-amz-* header
        assert "x-amz-server-side-encryption" in re.search(r"signedheaders=([^,]*)", h).group(1)


def own_address():
    """An IPv4 address of this machine that is not loopback, or None."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True,
                         text=True).stdout
    addrs = [a for a in re.findall(r"inet (\d+\.\d+\.\d+\.\d+)", out)
             if not a.startswith("127.")]
    return addrs[0] if addrs else None


def test_payload_is_signed_only_in_the_clear(cli, rgw, bucket, tmp_path):
    """A body sent over http to another host carries its SHA-256 in the
    signature; to a loopback endpoint it goes UNSIGNED-PAYLOAD (over https
    too: TLS protects it). RGW accepts both."""
    addr = own_address()
    if addr is None:
        pytest.skip("no IPv4 address other than loopback to reach the proxy by")
    data = os.urandom(70000)
    f = tmp_path / "f"
    f.write_bytes(data)
    for host, kind in (("127.0.0.1", "unsigned"), (addr, "signed")):
        p = FaultProxy(rgw.port, host=host)
        try:
            cli.run("put", f"sign/{kind}", str(f), env={"IMGFS_ENDPOINT": p.endpoint})
            put = [h for h in p.requests if h.startswith("PUT ")]
        finally:
            p.close()
        sha = re.search(r"(?im)^x-amz-content-sha256:\s*(\S+)", put[0]).group(1)
        want = "UNSIGNED-PAYLOAD" if kind == "unsigned" else hashlib.sha256(data).hexdigest()
        assert sha == want, (host, sha)
        assert rgw.s3.get_object(Bucket=bucket, Key=f"sign/{kind}")["Body"].read() == data


class TlsServer:
    """An HTTPS server with a throw-away CA-less self-signed certificate
    that answers every request with 404 NoSuchKey."""

    def __init__(self, tmp_path):
        import http.server
        import ssl

        self.cert = tmp_path / "cert.pem"
        key = tmp_path / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(self.cert)],
            check=True, capture_output=True)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.endpoint = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_tls_is_verified(cli, tmp_path):
    srv = TlsServer(tmp_path)
    try:
        env = {"IMGFS_ENDPOINT": srv.endpoint, "IMGFS_RETRIES": "2"}
        # unknown CA: refused at once, not retried
        p = cli.run("head", "k", check=False, env=dict(env, S3CLI_METRICS="1"))
        assert p.returncode == 1 and b"Input/output error" in p.stderr
        assert b"certificate" in p.stderr.lower()
        assert metrics_of(p.stderr)["imgfs_retries_total"] == 0
        # the CA given: the server is reached (and says 404)
        p = cli.run("head", "k", check=False, env=dict(env, AWS_CA_BUNDLE=str(srv.cert)))
        assert p.returncode == 1 and b"No such file" in p.stderr
        # the explicit opt-out works and says so
        p = cli.run("head", "k", check=False, env=dict(env, IMGFS_INSECURE="1"))
        assert p.returncode == 1 and b"No such file" in p.stderr
        assert b"TLS certificate verification is off" in p.stderr
    finally:
        srv.close()


def rgw_serves_virtual_hosts(rgw):
    """Does this RGW know "localhost" as its DNS name (so that
    BUCKET.localhost:PORT is virtual-hosted)? curl resolves *.localhost to
    loopback by itself."""
    conf = rgw.ceph_dir / "ceph.conf" if rgw.ceph_dir else None
    if conf is None or not conf.exists():
        return False
    text = conf.read_text().replace("_", " ")
    return re.search(r"(?m)^\s*rgw dns name\s*=\s*localhost\s*$", text) is not None


def test_virtual_hosted_addressing(cli, rgw, bucket, tmp_path):
    if not rgw_serves_virtual_hosts(rgw):
        pytest.skip("this RGW has no 'rgw dns name = localhost' (tests/rgw-up.sh)")
    env = {"IMGFS_ENDPOINT": f"http://localhost:{rgw.port}", "IMGFS_ADDRESSING": "virtual"}
    f = tmp_path / "f"
    f.write_bytes(os.urandom(6 * 1024 * 1024))
    cli.run("put", "v/a b+c.txt", str(f), env=env)
    assert cli.run("get", "v/a b+c.txt", env=env).stdout == f.read_bytes()
    cli.run("cp", "v/a b+c.txt", "v/copy", env=env)
    cli.run("mpu", "v/m", str(f), str(5 * 1024 * 1024), "2", env=env)
    assert cli.run("mpu-ls", "v/", env=env).stdout == b""
    p = cli.run("ls", "v/", "/", env=env)
    assert sorted(l.split(" ", 3)[3] for l in p.stdout.decode().splitlines()) == \
        ["v/a b+c.txt", "v/copy", "v/m"]
    url = cli.run("presign", "v/a b+c.txt", "60", env=env).stdout.decode().strip()
    assert url.startswith(f"http://{bucket}.localhost:{rgw.port}/v/a%20b%2Bc.txt?")
    got = subprocess.run(["curl", "-sf", url], capture_output=True, timeout=60)
    assert got.returncode == 0 and got.stdout == f.read_bytes()
    assert sorted(k for k, _, _ in boto_keys(rgw.s3, bucket)) == ["v/a b+c.txt", "v/copy", "v/m"]
