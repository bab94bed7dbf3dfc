#!/usr/bin/python3
"""Make cases.json: POST policies from boto3's generate_presigned_post.

The expected values of tests/unit/test_post_policy.c. Each case calls
botocore (Debian's python3-botocore) with a fixed clock and fixed keys and
the conditions imgfs puts in an upload link: content-length-range
1..max_bytes, Content-Type starting with image/, key starting with the
folder's prefix (the key "PREFIX${filename}"). Run it from anywhere; it
rewrites cases.json next to itself:

    /usr/bin/python3 tests/unit/data/post_policy/gen.py
"""
import datetime
import json
import os
import unittest.mock

import botocore.auth
import botocore.session
import botocore.signers
from botocore.config import Config

CASES = [
    {"name": "path-style, long-term keys",
     "access_key": "AKIDEXAMPLE",
     "secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
     "token": None, "region": "us-east-1",
     "endpoint": "http://127.0.0.1:7480", "addressing": "path",
     "bucket": "photos", "prefix": "uploads/team/",
     "max_bytes": 52428800, "now": "2026-12-01T21:15:49", "expires": 3600},
    {"name": "virtual-hosted, session token, top folder",
     "access_key": "ASIAEXAMPLETEMP",
     "secret_key": "Zm9vYmFyYmF6cXV4c2VjcmV0a2V5MTIzNDU2Nzg5MA",
     "token": "FQoGZXIvYXdzEXAMPLE/token+with=chars//",
     "region": "eu-west-3",
     "endpoint": "https://s3.eu-west-3.amazonaws.com", "addressing": "virtual",
     "bucket": "imgfs-test-bucket", "prefix": "uploads/",
     "max_bytes": 1024, "now": "2025-02-28T23:59:30", "expires": 604800},
    {"name": "unicode and spaces in the folder",
     "access_key": "AKIDEXAMPLE",
     "secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
     "token": None, "region": "us-east-1",
     "endpoint": "http://localhost:9000", "addressing": "path",
     "bucket": "b-1", "prefix": "uploads/caf\u00e9 & \"friends\"/2024 \u65e5/",
     "max_bytes": 1, "now": "2024-02-29T00:00:00", "expires": 1},
]


def generate(case):
    now = datetime.datetime.fromisoformat(case["now"])

    class Clock(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return now

    session = botocore.session.get_session()
    client = session.create_client(
        "s3", region_name=case["region"], endpoint_url=case["endpoint"],
        aws_access_key_id=case["access_key"],
        aws_secret_access_key=case["secret_key"],
        aws_session_token=case["token"],
        config=Config(signature_version="s3v4",
                      s3={"addressing_style": case["addressing"]}))
    with unittest.mock.patch.object(botocore.signers.datetime, "datetime",
                                    Clock), \
            unittest.mock.patch.object(botocore.auth.datetime, "datetime",
                                       Clock):
        post = client.generate_presigned_post(
            case["bucket"], case["prefix"] + "${filename}",
            Conditions=[["content-length-range", 1, case["max_bytes"]],
                        ["starts-with", "$Content-Type", "image/"]],
            ExpiresIn=case["expires"])
    epoch = int(now.replace(tzinfo=datetime.timezone.utc).timestamp())
    return dict(case, now_epoch=epoch, url=post["url"],
                fields=[[k, v] for k, v in post["fields"].items()])


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "cases.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump([generate(c) for c in CASES], f, indent=1,
                  ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
