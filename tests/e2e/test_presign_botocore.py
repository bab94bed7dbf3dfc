"""imgfs' presigned GET URLs are byte-for-byte the URLs botocore presigns.

tests/tools/presign (built into $IMGFS_BUILD/tools) prints the URL that
s3_presign_get() makes for a key at a fixed Unix time; botocore's own S3
presigner (Debian's python3-botocore) computes the same URL with its clock
frozen at that time. Both must agree exactly, for long-term and session
credentials, path-style and virtual-hosted addressing, several regions and
endpoints, and keys with characters that need encoding. No S3 server is
involved: presigning makes no request.
"""
import datetime
import os
import subprocess
import types
from unittest import mock

import botocore.auth
import botocore.session
import pytest
from botocore.config import Config

FIXED_TIME = 1700000000  # 2023-11-14T22:13:20Z
FROZEN_AMZ_DATE = "20231114T221320Z"
BUCKET = "imgfs-presign-bucket"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEBYaDH/session+token/with==padding//"

ENDPOINTS = [
    # (endpoint, region, addressing)
    ("http://127.0.0.1:7480", "us-east-1", "path"),
    ("http://s3.example.test:8080", "us-east-1", "path"),
    ("http://s3.example.test:8080", "us-east-1", "virtual"),
    ("https://s3.eu-central-1.amazonaws.com", "eu-central-1", "path"),
    ("https://s3.eu-central-1.amazonaws.com", "eu-central-1", "virtual"),
    ("https://s3.ap-southeast-2.amazonaws.com", "ap-southeast-2", "virtual"),
]

KEYS = [
    "uploads/plain.jpg",
    "uploads/with space.jpg",
    "uploads/a+b.jpg",
    "uploads/100%.jpg",
    "uploads/#hash.jpg",
    "uploads/why?.jpg",
    "uploads/k=v.jpg",
    "uploads/this&that.jpg",
    "uploads/~tilde~.jpg",
    "uploads/caf\u00e9 na\u00efve.jpg",
    "uploads/\u65e5\u672c\u8a9e/\u5199\u771f.png",
    "uploads/deeply/nested/folder/of/images/cat.jpg",
    "uploads/all of +%#?=&~ \u00e9 at once.webp",
    "thumbnails/uploads/a b/c+d.jpg",
]


class _FrozenDatetime(datetime.datetime):
    """datetime.datetime whose clock reads FIXED_TIME."""

    @classmethod
    def utcnow(cls):
        return cls.utcfromtimestamp(FIXED_TIME)


@pytest.fixture
def botocore_presign(monkeypatch):
    """presign(endpoint, region, addressing, key, expires, token, disposition)
    -> botocore's URL, with the signer's clock frozen at FIXED_TIME and no
    configuration read from the caller's environment or files."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setattr(botocore.auth, "datetime",
                        types.SimpleNamespace(datetime=_FrozenDatetime))
    clients = {}

    def client_for(endpoint, region, addressing, token):
        k = (endpoint, region, addressing, token)
        if k not in clients:
            clients[k] = botocore.session.Session().create_client(
                "s3", region_name=region, endpoint_url=endpoint,
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY, aws_session_token=token,
                config=Config(signature_version="s3v4",
                              s3={"addressing_style": addressing}))
        return clients[k]

    def presign(endpoint, region, addressing, key, expires, token,
                disposition=None):
        params = {"Bucket": BUCKET, "Key": key}
        if disposition is not None:
            params["ResponseContentDisposition"] = disposition
        url = client_for(endpoint, region, addressing, token) \
            .generate_presigned_url("get_object", Params=params,
                                    ExpiresIn=expires)
        assert f"X-Amz-Date={FROZEN_AMZ_DATE}&" in url, "clock not frozen"
        return url

    return presign


def imgfs_presign(tools, endpoint, region, addressing, key, expires, token,
                  disposition=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ACCESS_KEY_ID"] = ACCESS_KEY
    env["AWS_SECRET_ACCESS_KEY"] = SECRET_KEY
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    if token:
        env["AWS_SESSION_TOKEN"] = token
    argv = [str(tools / "presign"), "--endpoint", endpoint,
            "--region", region, "--bucket", BUCKET,
            "--addressing", addressing, "--key", key,
            "--time", str(FIXED_TIME), "--expires", str(expires)]
    if disposition is not None:
        argv += ["--disposition", disposition]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.rstrip("\n")


@pytest.fixture(scope="module", autouse=True)
def _tool_built(tools):
    if not (tools / "presign").is_file():
        pytest.fail(f"{tools / 'presign'} is missing: run make")


@pytest.mark.parametrize("token", [None, SESSION_TOKEN],
                         ids=["long-term", "session-token"])
@pytest.mark.parametrize("endpoint,region,addressing", ENDPOINTS,
                         ids=[f"{a}-{e.split('//')[1]}"
                              for e, _, a in ENDPOINTS])
def test_urls_equal_botocore(tools, botocore_presign, endpoint, region,
                             addressing, token):
    for key in KEYS:
        want = botocore_presign(endpoint, region, addressing, key, 3600,
                                token)
        got = imgfs_presign(tools, endpoint, region, addressing, key, 3600,
                            token)
        assert got == want, f"key {key!r}"


@pytest.mark.parametrize("expires", [1, 900, 604800])
def test_expiry_equal_botocore(tools, botocore_presign, expires):
    endpoint, region, addressing = ENDPOINTS[0]
    key = "uploads/a b+c.jpg"
    want = botocore_presign(endpoint, region, addressing, key, expires,
                            SESSION_TOKEN)
    got = imgfs_presign(tools, endpoint, region, addressing, key, expires,
                        SESSION_TOKEN)
    assert got == want


@pytest.mark.parametrize("disposition", [
    "attachment",
    'attachment; filename="a b+c.jpg"',
])
def test_disposition_equal_botocore(tools, botocore_presign, disposition):
    endpoint, region, addressing = ENDPOINTS[2]
    key = "uploads/a b+c.jpg"
    want = botocore_presign(endpoint, region, addressing, key, 3600, None,
                            disposition)
    got = imgfs_presign(tools, endpoint, region, addressing, key, 3600, None,
                        disposition)
    assert got == want
