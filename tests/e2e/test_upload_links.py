"""End-to-end tests of upload links: .links/upload/[DIR/]post.json and index.html.

Each policy is used for real against RGW, which checks its conditions and
its signature: curl posts with post.json's fields, and Debian's headless
Chromium (upload_page.js, playwright-core) runs the upload page opened as
a plain file. The bucket is checked independently with boto3.
"""

import base64
import datetime
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

from helpers import REPO, image_kind, timeout_scale, wait_for
from test_links import container_creds, sts_session  # noqa: F401 (a fixture)

NODE_SCRIPT = pathlib.Path(__file__).with_name("upload_page.js")
PLAYWRIGHT = REPO / "tests" / "node" / "node_modules" / "playwright-core"

# The CORS rule the README documents (and infra/ sets): POST from any
# origin, a page opened from a file included (its Origin is "null").
CORS_RULE = {
    "AllowedMethods": ["POST"],
    "AllowedOrigins": ["*"],
    "AllowedHeaders": ["*"],
    "ExposeHeaders": ["ETag", "Location"],
    "MaxAgeSeconds": 3000,
}


# ------------------------------------------------------------------ helpers


def read_post(m, folder=""):
    """post.json of .links/upload/FOLDER, parsed."""
    p = m.links / "upload" / folder / "post.json" if folder else m.links / "upload" / "post.json"
    return json.loads(p.read_text())


def policy_doc(post):
    return json.loads(base64.b64decode(post["fields"]["policy"]))


def curl_post(post, file_path, content_type="image/jpeg", override=None, drop=()):
    """POST file_path with post's fields (changed by override, without the
    names in drop). Returns (status, body)."""
    fields = dict(post["fields"])
    fields.update(override or {})
    cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}"]
    for name, value in fields.items():
        if name not in drop:
            cmd += ["--form-string", f"{name}={value}"]
    if content_type is not None:
        cmd += ["--form-string", f"Content-Type={content_type}"]
    cmd += ["-F", f"file=@{file_path}", post["url"]]
    p = subprocess.run(cmd, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    body, _, status = p.stdout.decode(errors="replace").rpartition("\n")
    return int(status), body


def s3_code(body):
    """The <Code> of an S3 error body."""
    start = body.find("<Code>")
    return body[start + 6:body.find("</Code>")] if start >= 0 else None


def keys(rgw, bucket, prefix=""):
    out = rgw.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in out.get("Contents", []))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def jpeg_images(images, n, max_size=None):
    """n JPEG wallpapers with distinct names, smallest first (quick uploads)."""
    found, names = [], set()
    for p in sorted((p for p in images if p.suffix.lower() in (".jpg", ".jpeg")),
                    key=lambda p: (p.stat().st_size, str(p))):
        if p.name not in names and (max_size is None or p.stat().st_size <= max_size):
            found.append(p)
            names.add(p.name)
    assert len(found) >= n
    return found[:n]


def expiry_epoch(post):
    exp = policy_doc(post)["expiration"]
    return datetime.datetime.strptime(exp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


# ------------------------------------------------------------------ post.json


def test_tree_mirrors_uploads_folders(mount, bucket, rgw):
    rgw.s3.put_object(Bucket=bucket, Key="uploads/team/a.jpg", Body=b"x")
    rgw.s3.put_object(Bucket=bucket, Key="uploads/team/deeper/b.jpg", Body=b"x")
    rgw.s3.put_object(Bucket=bucket, Key="uploads/top.jpg", Body=b"x")
    m = mount(bucket)
    up = m.links / "upload"
    assert "upload" in os.listdir(m.links)
    assert sorted(os.listdir(up)) == ["index.html", "post.json", "team"]
    assert sorted(os.listdir(up / "team")) == ["deeper", "index.html", "post.json"]
    assert sorted(os.listdir(up / "team" / "deeper")) == ["index.html", "post.json"]
    assert (up / "team").is_dir() and not (up / "top.jpg").exists()
    assert not (up / "nope").exists() and not (up / "nope" / "post.json").exists()
    for d in (up, up / "team", up / "team" / "deeper"):
        for name in ("post.json", "index.html"):
            st = (d / name).stat()
            assert st.st_size == len((d / name).read_bytes()) > 0
    with pytest.raises(OSError):
        (up / "post.json").write_text("{}")
    with pytest.raises(OSError):
        (up / "new").mkdir()


def test_post_json_is_a_policy_for_the_folder(mount, bucket, rgw):
    rgw.s3.put_object(Bucket=bucket, Key="uploads/team/a.jpg", Body=b"x")
    m = mount(bucket, opts="link_expiry=1200,upload_max=3M")
    before = time.time()
    post = read_post(m, "team")
    assert post["url"] == f"{rgw.endpoint}/{bucket}"
    f = post["fields"]
    assert list(f) == ["key", "x-amz-algorithm", "x-amz-credential",
                       "x-amz-date", "policy", "x-amz-signature"]
    assert f["key"] == "uploads/team/${filename}"
    assert f["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert f["x-amz-credential"].startswith(rgw.access_key + "/")
    assert f["x-amz-credential"].endswith(f"/{rgw.region}/s3/aws4_request")
    doc = policy_doc(post)
    assert ["content-length-range", 1, 3 << 20] in doc["conditions"]
    assert ["starts-with", "$Content-Type", "image/"] in doc["conditions"]
    assert ["starts-with", "$key", "uploads/team/"] in doc["conditions"]
    assert {"bucket": bucket} in doc["conditions"]
    assert {"x-amz-date": f["x-amz-date"]} in doc["conditions"]
    left = expiry_epoch(post) - before
    assert 1200 - 5 <= left <= 1200 + 1
    assert read_post(m)["fields"]["key"] == "uploads/${filename}"


def test_reading_makes_no_request(mount, bucket, rgw):
    """Signing is local; a folder's existence comes from the listing cache
    (metadata_ttl) like any stat in uploads/."""
    rgw.s3.put_object(Bucket=bucket, Key="uploads/team/a.jpg", Body=b"x")
    m = mount(bucket, opts="metadata_ttl=60")
    assert "team" in os.listdir(m.links / "upload")  # lists uploads/ once
    mark = rgw.log_mark()
    for _ in range(3):
        read_post(m)
        (m.links / "upload" / "index.html").read_bytes()
        read_post(m, "team")
        (m.links / "upload" / "team" / "index.html").read_bytes()
    assert rgw.requests(since=mark) == []


# ------------------------------------------------------------------ curl


def test_curl_upload_with_post_json(mount, bucket, rgw, images):
    (img,) = jpeg_images(images, 1)
    rgw.s3.put_object(Bucket=bucket, Key="uploads/team/keep.txt", Body=b"x")
    m = mount(bucket)
    post = read_post(m, "team")
    status, body = curl_post(post, img)
    assert status == 204, body
    got = rgw.s3.get_object(Bucket=bucket, Key=f"uploads/team/{img.name}")
    assert sha256(got["Body"].read()) == sha256(img.read_bytes())
    assert got["ContentType"] == "image/jpeg"


def test_rgw_refuses_what_the_policy_does_not_allow(mount, bucket, rgw, images):
    small, big = jpeg_images(images, 2)
    assert big.stat().st_size > small.stat().st_size
    rgw.s3.put_object(Bucket=bucket, Key="uploads/team/keep.txt", Body=b"x")
    m = mount(bucket, opts=f"upload_max={small.stat().st_size}")
    post = read_post(m, "team")
    sig = post["fields"]["x-amz-signature"]
    doc = policy_doc(post)
    doc["conditions"] = [c for c in doc["conditions"]
                         if not (isinstance(c, list) and c[1] == "$key")]
    tampered_policy = base64.b64encode(json.dumps(doc).encode()).decode()

    refused = {
        "over upload_max": curl_post(post, big),
        "non-image type": curl_post(post, small, content_type="text/plain"),
        "key outside the folder": curl_post(
            post, small, override={"key": "uploads/other/${filename}"}),
        "key outside uploads": curl_post(
            post, small, override={"key": "elsewhere.jpg"}),
        "tampered signature": curl_post(
            post, small, override={"x-amz-signature": sig[:-1] + ("0" if sig[-1] != "0" else "1")}),
        "tampered policy": curl_post(
            post, small, override={"policy": tampered_policy}),
        "no Content-Type": curl_post(post, small, content_type=None),
    }
    for what, (status, body) in refused.items():
        assert 400 <= status < 500, (what, status, body)
    assert s3_code(refused["over upload_max"][1]) == "EntityTooLarge"
    # RGW answers a bad POST signature with 403 AccessDenied (AWS:
    # SignatureDoesNotMatch); the same fields untampered go up below.
    for what in ("tampered signature", "tampered policy", "key outside the folder",
                 "key outside uploads", "non-image type"):
        status, body = refused[what]
        assert status == 403, (what, body)
        assert s3_code(body) in ("AccessDenied", "SignatureDoesNotMatch"), (what, body)
    assert keys(rgw, bucket) == ["uploads/team/keep.txt"]
    # the limit is inclusive: the small file itself goes up
    status, body = curl_post(post, small)
    assert status == 204, body
    assert keys(rgw, bucket) == ["uploads/team/keep.txt", f"uploads/team/{small.name}"]


def test_rgw_refuses_an_expired_policy(mount, bucket, rgw, images):
    (img,) = jpeg_images(images, 1)
    m = mount(bucket, opts="link_expiry=2")
    post = read_post(m)
    wait_for(lambda: time.time() > expiry_epoch(post) + 1, timeout=10,
             what="the policy's expiration to pass")
    status, body = curl_post(post, img)
    assert 400 <= status < 500 and s3_code(body) == "AccessDenied", (status, body)
    assert keys(rgw, bucket) == []
    # a fresh read signs a fresh policy
    status, body = curl_post(read_post(m), img)
    assert status == 204, body


def test_posted_image_shows_in_uploads_with_a_thumbnail(mount, bucket, rgw, images):
    (img,) = jpeg_images(images, 1)
    rgw.s3.put_object(Bucket=bucket, Key="uploads/team/keep.txt", Body=b"x")
    m = mount(bucket, opts="metadata_ttl=1")
    assert os.listdir(m.uploads / "team") == ["keep.txt"]  # cached now
    status, body = curl_post(read_post(m, "team"), img)
    assert status == 204, body
    # metadata_ttl (1 s) and the time an ls takes here
    wait_for(lambda: img.name in os.listdir(m.uploads / "team"),
             timeout=1 + 2 * timeout_scale(),
             what="the posted image in ls uploads/team")
    assert (m.uploads / "team" / img.name).read_bytes() == img.read_bytes()
    thumb = (m.thumbs / "team" / img.name).read_bytes()
    assert image_kind(thumb) == "image/jpeg" and len(thumb) < img.stat().st_size


def test_temporary_credentials_sign_with_their_token_and_cap_the_expiry(
        mount, bucket, rgw, images, sts_session):
    """Container credentials (a real STS session of RGW's) that expire
    before link_expiry: the policy carries the session token, expires with
    the credentials, and RGW accepts it; the cut is logged once."""
    (img,) = jpeg_images(images, 1)
    c = sts_session
    expiration = c["Expiration"].astimezone(datetime.timezone.utc)
    with container_creds(c) as env:
        m = mount(bucket, opts={"link_expiry": 3600}, env=env)
        post = read_post(m)
        read_post(m)
        f = post["fields"]
        assert f["x-amz-security-token"] == c["SessionToken"]
        assert f["x-amz-credential"].startswith(c["AccessKeyId"] + "/")
        assert {"x-amz-security-token": c["SessionToken"]} in policy_doc(post)["conditions"]
        assert expiry_epoch(post) <= expiration.timestamp() < time.time() + 3600
        status, body = curl_post(post, img, drop=("x-amz-security-token",))
        assert 400 <= status < 500, body
        status, body = curl_post(post, img)
        assert status == 204, body
        assert keys(rgw, bucket) == [f"uploads/{img.name}"]
        warnings = [ln for ln in m.stderr_text().splitlines() if "link_expiry" in ln]
        assert len(warnings) == 1, m.stderr_text()
        assert c["SessionToken"] not in m.stderr_text()


# ------------------------------------------------------------------ the page


def run_page(page, shot, files, no_js=False):
    if not PLAYWRIGHT.is_dir():
        pytest.fail("playwright-core is missing: npm ci --prefix tests/node")
    cmd = ["node", str(NODE_SCRIPT), str(page), str(shot)]
    cmd += ["--no-js"] if no_js else []
    cmd += [str(f) for f in files]
    p = subprocess.run(cmd, capture_output=True, timeout=180)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return json.loads(p.stdout)


def test_page_is_self_contained(mount, bucket):
    m = mount(bucket, opts="upload_max=50M")
    html = (m.links / "upload" / "index.html").read_text()
    assert "<script src" not in html and "<link" not in html
    assert "@import" not in html and "url(" not in html
    assert 'name="x-amz-signature"' in html and 'name="policy"' in html
    assert "50 MiB" in html and "uploads/" in html


def test_browser_uploads_three_images_from_a_file_page(mount, bucket, rgw, images, tmp_path):
    rgw.s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [CORS_RULE]})
    rgw.s3.put_object(Bucket=bucket, Key="uploads/team/keep.txt", Body=b"x")
    chosen = jpeg_images(images, 3)
    m = mount(bucket)
    page = tmp_path / "index.html"
    shutil.copyfile(m.links / "upload" / "team" / "index.html", page)
    shot = tmp_path / "upload-page.png"
    result = run_page(page, shot, chosen)
    print(f"upload page screenshot: {shot}")
    assert result["errors"] == []
    assert result["folder"] == "uploads/team/"
    assert result["limit"] == "50 MiB"
    assert result["dropVisible"]
    assert [f["state"] for f in result["files"]] == ["done"] * 3, result
    assert result["summary"].startswith("3 uploaded, 0 refused")
    for img in chosen:
        got = rgw.s3.get_object(Bucket=bucket, Key=f"uploads/team/{img.name}")["Body"].read()
        assert sha256(got) == sha256(img.read_bytes()), img.name
    assert shot.stat().st_size > 0


def test_browser_shows_why_a_file_was_refused(mount, bucket, rgw, images, tmp_path):
    rgw.s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [CORS_RULE]})
    small, big = jpeg_images(images, 2)
    m = mount(bucket, opts=f"upload_max={small.stat().st_size}")
    page = tmp_path / "index.html"
    shutil.copyfile(m.links / "upload" / "index.html", page)
    shot = tmp_path / "upload-page-refused.png"
    result = run_page(page, shot, [small, big])
    print(f"upload page screenshot: {shot}")
    states = {f["name"].split(" (")[0]: f for f in result["files"]}
    assert states[small.name]["state"] == "done", result
    assert states[big.name]["state"] == "failed"
    assert "larger than this link allows" in states[big.name]["status"]
    assert "EntityTooLarge" in states[big.name]["status"]
    assert keys(rgw, bucket) == [f"uploads/{small.name}"]


def test_plain_form_works_without_javascript(mount, bucket, rgw, images, tmp_path):
    (img,) = jpeg_images(images, 1)
    m = mount(bucket)
    page = tmp_path / "index.html"
    shutil.copyfile(m.links / "upload" / "index.html", page)
    result = run_page(page, tmp_path / "no-js.png", [img], no_js=True)
    assert result["post"]["status"] == 204, result
    assert not result["dropVisible"]
    got = rgw.s3.get_object(Bucket=bucket, Key=f"uploads/{img.name}")
    assert sha256(got["Body"].read()) == sha256(img.read_bytes())
    assert got["ContentType"] == "image/jpeg"
