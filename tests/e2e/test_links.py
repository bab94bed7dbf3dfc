"""End-to-end tests of .links/: presigned URLs as files.

Every link is used for real: curl downloads it from RGW, which verifies the
signature, and the bytes are compared with what was copied in. The gallery's
pages are test_gallery.py's.
"""

import contextlib
import datetime
import errno
import hashlib
import http.server
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import threading
import time
import types
import urllib.parse
from unittest import mock

import boto3
import botocore.auth
import botocore.config
import pytest

from helpers import image_kind, wait_for

# Object names S3 and URLs treat specially; each must give a working link.
AWKWARD = [
    "space in name.png",
    "plus+sign.png",
    "per%cent.png",
    "hash#tag.png",
    "question?mark.png",
    "k=v&x=y.png",
    "tilde~home.png",
    "quote'and\"double.png",
    "été 日本 🐱.png",
    "dir with space/sub+dir/ñ&=#?.png",
]


# ------------------------------------------------------------------ helpers


def make_png(path, w=240, h=160, seed=0):
    """A small real PNG with distinct pixels per seed."""
    from PIL import Image

    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * 3 + seed * 40) % 256, (y * 5 + seed * 90) % 256, (x + y + seed * 17) % 256)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "PNG")
    return path


def read_link(path):
    """The URL in a link file, checking the file's shape."""
    data = pathlib.Path(path).read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 1, data
    url = data[:-1].decode("ascii")
    assert re.fullmatch(r"[!-~]+", url), f"URL with a blank or non-ASCII byte: {url!r}"
    return url


def curl(url, tmp_path, name="body"):
    """GET url with curl: (status, body bytes, headers text)."""
    body = tmp_path / f"{name}.out"
    head = tmp_path / f"{name}.head"
    p = subprocess.run(
        ["curl", "-sS", "-g", "-o", str(body), "-D", str(head), "-w", "%{http_code}", url],
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode == 0, f"curl failed: {p.stderr}"
    return int(p.stdout), body.read_bytes(), head.read_text(errors="replace")


def query(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))


def s3_request_count(m):
    """The daemon's S3 requests so far, over every operation and status."""
    return m.metric("imgfs_s3_requests_total")


def link_reads(m):
    return m.metric("imgfs_link_reads_total")


def rgw_access(rgw, since, bucket):
    """(method, target) of every request RGW logged for bucket after the
    log offset since, whatever the client (imgfs sends no User-Agent)."""
    rgw.log_mark()  # flushes the log
    with open(rgw.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", errors="replace")
    line = re.compile(r' beast: .*?"(\S+) (/' + re.escape(bucket) + r'[/?][^ ]*|/' + re.escape(bucket) + r') HTTP/')
    return [(m.group(1), m.group(2)) for m in line.finditer(text)]


def copy_in(m, src, rel):
    dst = m.uploads / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def thumb_name(rel):
    """The thumbnail's name for a source path: PNG, JPEG and WebP keep
    their name and format (the tests use no other kind)."""
    assert rel.lower().endswith((".png", ".jpg", ".jpeg", ".webp")), rel
    return rel


# ---------------------------------------------------------- basic behaviour


def test_upload_link_downloads_identical_bytes(rgw, bucket, mount, images, tmp_path):
    m = mount(bucket)
    picks = [images[0], images[len(images) // 2], images[-1]]
    rels = [f"photo{i}{p.suffix}" for i, p in enumerate(picks[:2])] + [f"nested/deeper/{picks[2].name}"]
    for src, rel in zip(picks, rels):
        copy_in(m, src, rel)
    for src, rel in zip(picks, rels):
        url = read_link(m.links / "uploads" / rel)
        parts = urllib.parse.urlsplit(url)
        assert parts.scheme == "http"  # the endpoint says http
        assert parts.netloc == urllib.parse.urlsplit(rgw.endpoint).netloc  # path-style
        assert urllib.parse.unquote(parts.path) == f"/{bucket}/uploads/{rel}"
        q = query(url)
        assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert q["X-Amz-Expires"] == "3600"
        assert q["X-Amz-SignedHeaders"] == "host"
        assert q["X-Amz-Credential"].startswith(rgw.access_key + "/")
        assert q["X-Amz-Credential"].endswith(f"/{rgw.region}/s3/aws4_request")
        assert "X-Amz-Security-Token" not in q
        status, body, _ = curl(url, tmp_path)
        assert status == 200
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(src.read_bytes()).hexdigest()


def test_thumbnail_link_downloads_the_thumbnail(rgw, bucket, mount, images, tmp_path):
    m = mount(bucket)
    src = images[3]
    rel = f"album/{src.name}"
    copy_in(m, src, rel)
    # The link is asked for first: it must make and store the thumbnail.
    url = read_link(m.links / "thumbnails" / thumb_name(rel))
    assert urllib.parse.unquote(urllib.parse.urlsplit(url).path) == f"/{bucket}/thumbnails/{thumb_name(rel)}"
    status, body, _ = curl(url, tmp_path)
    assert status == 200
    assert image_kind(body) is not None, body[:16]
    assert body == (m.thumbs / thumb_name(rel)).read_bytes()
    stored = rgw.s3.get_object(Bucket=bucket, Key=f"thumbnails/{thumb_name(rel)}")["Body"].read()
    assert stored == body
    from PIL import Image

    with Image.open(io.BytesIO(body)) as im:
        assert max(im.size) <= 128 and min(im.size) > 0


def test_awkward_keys(rgw, bucket, mount, tmp_path):
    m = mount(bucket)
    srcs = {}
    for i, rel in enumerate(AWKWARD):
        srcs[rel] = make_png(tmp_path / "src" / f"{i}.png", seed=i)
        copy_in(m, srcs[rel], rel)
    keys = {o["Key"] for o in rgw.s3.list_objects_v2(Bucket=bucket, Prefix="uploads/")["Contents"]}
    assert keys == {f"uploads/{rel}" for rel in AWKWARD}
    for i, rel in enumerate(AWKWARD):
        url = read_link(m.links / "uploads" / rel)
        path = urllib.parse.urlsplit(url).path
        # Encoded the S3 way: nothing reserved left bare, uppercase hex.
        assert re.fullmatch(r"[A-Za-z0-9\-_.~/%]+", path), path
        assert not re.search(r"%(?:[a-f][0-9a-fA-F]|[0-9A-F][a-f])", path), path
        assert urllib.parse.unquote(path) == f"/{bucket}/uploads/{rel}"
        status, body, _ = curl(url, tmp_path, f"o{i}")
        assert status == 200, rel
        assert body == srcs[rel].read_bytes(), rel
        turl = read_link(m.links / "thumbnails" / thumb_name(rel))
        status, tbody, _ = curl(turl, tmp_path, f"t{i}")
        assert status == 200, rel
        assert tbody == (m.thumbs / thumb_name(rel)).read_bytes(), rel


def test_url_matches_botocore_presigner(rgw, bucket, mount, tmp_path):
    """botocore, an independent SigV4 implementation, signs the same URL
    for the same time, key, credentials and region."""
    m = mount(bucket)
    rels = ["plain.png", "été/a b+c%d#e?f=g&h~.png"]
    for i, rel in enumerate(rels):
        copy_in(m, make_png(tmp_path / f"{i}.png", seed=i), rel)
    s3 = boto3.session.Session().client(
        "s3", endpoint_url=rgw.endpoint, aws_access_key_id=rgw.access_key,
        aws_secret_access_key=rgw.secret_key, region_name=rgw.region,
        config=botocore.config.Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )
    for rel in rels:
        url = read_link(m.links / "uploads" / rel)
        q = query(url)
        when = datetime.datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        fixed = type("FixedDatetime", (datetime.datetime,), {"utcnow": classmethod(lambda cls: when)})
        with mock.patch.object(botocore.auth, "datetime", types.SimpleNamespace(datetime=fixed)):
            ref = s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": f"uploads/{rel}"}, ExpiresIn=3600
            )
        ours, theirs = urllib.parse.urlsplit(url), urllib.parse.urlsplit(ref)
        assert (ours.scheme, ours.netloc, ours.path) == (theirs.scheme, theirs.netloc, theirs.path)
        assert q == query(ref)


def test_attachment_disposition(rgw, bucket, mount, tmp_path):
    m = mount(bucket, opts={"link_disposition": "attachment"})
    rel = "vacances/été 2024.png"
    src = make_png(tmp_path / "a.png")
    copy_in(m, src, rel)
    url = read_link(m.links / "uploads" / rel)
    q = query(url)
    assert q["response-content-disposition"] == (
        "attachment; filename=\"__t__ 2024.png\"; filename*=UTF-8''%C3%A9t%C3%A9%202024.png"
    )
    status, body, head = curl(url, tmp_path)
    assert status == 200 and body == src.read_bytes()
    disp = [line for line in head.splitlines() if line.lower().startswith("content-disposition:")]
    assert disp and "filename*=UTF-8''%C3%A9t%C3%A9%202024.png" in disp[0], head


# ------------------------------------------------------------- credentials


def _ceph(rgw, *args, check=True):
    p = subprocess.run(["ceph", "-c", str(rgw.ceph_dir / "ceph.conf"), *args],
                       capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.fixture(scope="session")
def sts_session(rgw):
    """Real temporary credentials from RGW's STS (GetSessionToken).

    RGW serves STS only when configured: an "rgw sts key" (16 bytes that
    encrypt the session tokens), "rgw s3 auth use sts = true", and a user
    allowed sts:GetSessionToken by an IAM user policy, which the user may
    set only with the user-policy admin capability. This sets all of that
    on the test RGW (restarting radosgw once) and asks for a session."""
    if rgw.ceph_dir is None:
        pytest.skip("configuring STS needs the RGW's ceph dir (IMGFS_TEST_CEPH_DIR)")
    if _ceph(rgw, "config", "get", "client.rgw.a", "rgw_s3_auth_use_sts") != "true":
        _ceph(rgw, "config", "set", "client.rgw.a", "rgw_sts_key", "imgfststskey0016")
        _ceph(rgw, "config", "set", "client.rgw.a", "rgw_s3_auth_use_sts", "true")
        rgw.restart()
    p = subprocess.run(["radosgw-admin", "-c", str(rgw.ceph_dir / "ceph.conf"), "caps", "add",
                        "--uid=test", "--caps=user-policy=*"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    kw = dict(endpoint_url=rgw.endpoint, aws_access_key_id=rgw.access_key,
              aws_secret_access_key=rgw.secret_key, region_name=rgw.region)
    iam = boto3.session.Session().client("iam", **kw)
    iam.put_user_policy(UserName="test", PolicyName="imgfs-tests-sts", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sts:GetSessionToken"], "Resource": "*"}],
    }))
    sts = boto3.session.Session().client("sts", **kw)
    return sts.get_session_token(DurationSeconds=900)["Credentials"]


def test_session_token_links(rgw, bucket, mount, sts_session, tmp_path):
    c = sts_session
    m = mount(bucket, env={"AWS_ACCESS_KEY_ID": c["AccessKeyId"],
                           "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
                           "AWS_SESSION_TOKEN": c["SessionToken"]})
    srcs = {}
    for i, rel in enumerate(["token.png", AWKWARD[-1]]):
        srcs[rel] = make_png(tmp_path / f"{i}.png", seed=i)
        copy_in(m, srcs[rel], rel)
    for i, rel in enumerate(srcs):
        url = read_link(m.links / "uploads" / rel)
        q = query(url)
        assert q["X-Amz-Security-Token"] == c["SessionToken"]
        assert q["X-Amz-Credential"].startswith(c["AccessKeyId"] + "/")
        status, body, _ = curl(url, tmp_path, f"o{i}")
        assert status == 200 and body == srcs[rel].read_bytes()
        turl = read_link(m.links / "thumbnails" / thumb_name(rel))
        assert query(turl)["X-Amz-Security-Token"] == c["SessionToken"]
        status, tbody, _ = curl(turl, tmp_path, f"t{i}")
        assert status == 200 and image_kind(tbody)
        # Without the token the same signature is refused.
        bare = re.sub(r"&?X-Amz-Security-Token=[^&]*", "", url)
        assert curl(bare, tmp_path, f"b{i}")[0] == 403
    # The token never shows in the daemon's log.
    assert c["SessionToken"] not in m.stderr_text()


class _CredsHandler(http.server.BaseHTTPRequestHandler):
    """The container credentials endpoint: one JSON document."""

    body = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def container_creds(session):
    """A container credentials endpoint serving the STS session's keys:
    yields the environment that points a mount at it (and away from the
    static keys)."""
    expiration = session["Expiration"].astimezone(datetime.timezone.utc)
    handler = type("H", (_CredsHandler,), {"body": json.dumps({
        "AccessKeyId": session["AccessKeyId"],
        "SecretAccessKey": session["SecretAccessKey"],
        "Token": session["SessionToken"],
        "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }).encode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
               "AWS_CONTAINER_CREDENTIALS_FULL_URI":
                   f"http://127.0.0.1:{server.server_port}/creds"}
    finally:
        server.shutdown()
        server.server_close()


def test_expiry_capped_at_temporary_credentials(rgw, bucket, mount, sts_session, tmp_path):
    """Credentials with an expiry (container credentials here, served from
    a real STS session) cut link_expiry, with one warning."""
    c = sts_session
    expiration = c["Expiration"].astimezone(datetime.timezone.utc)
    with container_creds(c) as env:
        m = mount(bucket, opts={"link_expiry": 3600}, env=env)
        src = make_png(tmp_path / "c.png")
        copy_in(m, src, "capped.png")
        url = read_link(m.links / "uploads" / "capped.png")
        read_link(m.links / "uploads" / "capped.png")
        q = query(url)
        signed_at = datetime.datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
        left = (expiration - signed_at).total_seconds()
        assert 0 < int(q["X-Amz-Expires"]) <= left < 3600
        assert q["X-Amz-Security-Token"] == c["SessionToken"]
        status, body, _ = curl(url, tmp_path)
        assert status == 200 and body == src.read_bytes()
        warnings = [ln for ln in m.stderr_text().splitlines() if "link_expiry" in ln]
        assert len(warnings) == 1, m.stderr_text()


# --------------------------------------------------------------- refusals


def test_tampered_signature_is_refused(rgw, bucket, mount, tmp_path):
    m = mount(bucket)
    copy_in(m, make_png(tmp_path / "s.png"), "sig.png")
    url = read_link(m.links / "uploads" / "sig.png")
    assert curl(url, tmp_path, "ok")[0] == 200
    sig = query(url)["X-Amz-Signature"]
    assert re.fullmatch(r"[0-9a-f]{64}", sig)
    flipped = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
    status, body, _ = curl(url.replace(sig, flipped), tmp_path, "bad")
    assert status == 403, body
    assert b"<Error>" in body


def test_expired_link_is_refused(rgw, bucket, mount, tmp_path):
    m = mount(bucket, opts={"link_expiry": 2})
    copy_in(m, make_png(tmp_path / "e.png"), "soon.png")
    url = read_link(m.links / "uploads" / "soon.png")
    assert query(url)["X-Amz-Expires"] == "2"
    assert curl(url, tmp_path, "now")[0] == 200
    time.sleep(4)
    status, body, _ = curl(url, tmp_path, "later")
    assert status == 403, body


@pytest.mark.parametrize("value", ["0", "604801", "-1", "abc"])
def test_bad_link_expiry_refused_at_start(rgw, bucket, imgfs_bin, tmp_path, value):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run(
        [str(imgfs_bin), "-f", "-o", f"endpoint={rgw.endpoint},cache_dir={tmp_path},link_expiry={value}",
         bucket, str(mnt)],
        env=rgw.env(), capture_output=True, text=True, timeout=30,
    )
    assert p.returncode != 0
    assert "link_expiry" in p.stderr.strip().splitlines()[0], p.stderr
    assert not os.path.ismount(mnt)


def test_link_expiry_bounds_accepted(rgw, bucket, mount, tmp_path):
    for value in ("1", "604800"):
        m = mount(bucket, opts={"link_expiry": value})
        copy_in(m, make_png(tmp_path / "b.png"), f"b{value}.png")
        assert query(read_link(m.links / "uploads" / f"b{value}.png"))["X-Amz-Expires"] == value
        m.unmount()


# ------------------------------------------------------- file behaviour


def test_stat_size_equals_read_length(rgw, bucket, mount, tmp_path):
    m = mount(bucket)
    rels = ["a.png", "deep/er/b c.png", AWKWARD[-2]]
    for i, rel in enumerate(rels):
        copy_in(m, make_png(tmp_path / f"{i}.png", seed=i), rel)
    for rel in rels:
        for top in ("uploads", "thumbnails"):
            p = m.links / top / rel
            st = os.stat(p)
            data = p.read_bytes()
            assert st.st_size == len(data), (p, st.st_size, len(data))
            with open(p, "rb") as f:  # and through one open file
                assert os.fstat(f.fileno()).st_size == len(f.read())
    listed = {e.name: e.stat().st_size for e in os.scandir(m.links / "uploads")}
    assert listed["a.png"] == len((m.links / "uploads" / "a.png").read_bytes())


def test_each_open_gives_a_fresh_url(rgw, bucket, mount, tmp_path):
    m = mount(bucket)
    copy_in(m, make_png(tmp_path / "f.png"), "fresh.png")
    link = m.links / "uploads" / "fresh.png"
    first = read_link(link)
    time.sleep(1.1)  # across a second boundary: X-Amz-Date must move
    second = read_link(link)
    assert first != second
    assert query(first)["X-Amz-Date"] < query(second)["X-Amz-Date"]
    for i, url in enumerate((first, second)):
        assert curl(url, tmp_path, f"u{i}")[0] == 200


def _erofs_failures(calls):
    """The (call, errno) of each call that did not fail with EROFS."""
    bad = []
    for fn, *args in calls:
        try:
            fn(*args)
            bad.append((fn.__name__, [str(a) for a in args], "succeeded"))
        except OSError as e:
            if e.errno != errno.EROFS:
                bad.append((fn.__name__, [str(a) for a in args], errno.errorcode.get(e.errno)))
    return bad


def test_links_are_read_only(rgw, bucket, mount, tmp_path):
    m = mount(bucket)
    copy_in(m, make_png(tmp_path / "r.png"), "ro/r.png")
    L = m.links
    calls = []
    for p in (L / "uploads" / "ro" / "r.png", L / "thumbnails" / "ro" / "r.png", L / "index.html"):
        calls += [
            (os.open, p, os.O_WRONLY),
            (os.open, p, os.O_RDWR),
            (os.open, p, os.O_WRONLY | os.O_TRUNC),
            (os.truncate, p, 0),
            (os.unlink, p),
            (os.rename, p, p.with_name("renamed")),
        ]
    for d in (L / "uploads", L / "thumbnails", L / "uploads" / "ro", L):
        calls += [
            (os.open, d / "new.png", os.O_WRONLY | os.O_CREAT, 0o644),
            (os.mkdir, d / "newdir"),
        ]
    calls += [
        (os.rmdir, L / "uploads" / "ro"),
        (os.rename, m.uploads / "ro" / "r.png", L / "uploads" / "moved.png"),
    ]
    bad = _erofs_failures(calls)
    assert not bad, "not EROFS:\n" + "\n".join(map(str, bad))
    # Nothing changed in the bucket.
    keys = [o["Key"] for o in rgw.s3.list_objects_v2(Bucket=bucket, Prefix="uploads/")["Contents"]]
    assert keys == ["uploads/ro/r.png"]


def test_ten_thousand_link_reads_without_a_request(rgw, bucket, mount, tmp_path):
    m = mount(bucket, opts={"metadata_ttl": 600})
    rels = [f"n{i}.png" for i in range(10)]
    src = make_png(tmp_path / "n.png")
    for rel in rels:
        copy_in(m, src, rel)
    links = [m.links / "uploads" / rel for rel in rels]
    for p in links:  # warm: the lookups may list once
        read_link(p)
    # the eager thumbnails of the copies are stored in the background
    wait_for(lambda: m.metric("imgfs_thumbnails_eager_total") == len(rels), 60,
             what="the eager thumbnails of the copies")
    before_requests = s3_request_count(m)
    assert before_requests > 0  # the counter counts: the copies were PUTs
    before_reads = link_reads(m)
    mark = rgw.log_mark()
    t0 = time.monotonic()
    urls = set()
    for i in range(10000):
        with open(links[i % 10], "rb") as f:
            data = f.read()
        assert data.startswith(b"http://") and data.endswith(b"\n")
        urls.add(data)
    elapsed = time.monotonic() - t0
    after_requests = s3_request_count(m)
    assert after_requests == before_requests, (before_requests, after_requests)
    assert rgw_access(rgw, mark, bucket) == []
    assert link_reads(m) - before_reads >= 10000
    print(f"10000 link reads in {elapsed:.2f} s ({10000 / elapsed:.0f}/s)")
