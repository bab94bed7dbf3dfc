"""make demo (issue 16): it needs no npm, takes a screenshot of the gallery,
prints how to mount the same bucket by hand, and with KEEP=1 leaves the
server running and the bucket mounted."""

import os
import re
import subprocess

import pytest

from helpers import REPO, _mountinfo_has


def test_make_demo_does_not_run_npm():
    p = subprocess.run(["make", "-n", "-C", str(REPO), "demo"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert "npm" not in p.stdout, p.stdout
    assert "DEMO_KEEP_MOUNTED=" in p.stdout


@pytest.mark.deadline(600)
def test_demo_keep_leaves_it_mounted_with_a_screenshot(imgfs_bin):
    env = dict(os.environ, DEMO_KEEP_MOUNTED="1", IMGFS_BIN=str(imgfs_bin),
               DEMO_PORT_BASE=str(20000 + (os.getpid() % 200) * 24))
    for k in [k for k in env if k.startswith("AWS_")]:
        del env[k]
    p = subprocess.run([str(REPO / "tests" / "demo.sh")], env=env, capture_output=True,
                       text=True, timeout=540)
    out = p.stdout
    mnt = re.search(r"still mounted at (\S+) ", out)
    stop = re.search(r"  fusermount3 -u (\S+)\n  CEPH_DIR=(\S+) (\S+) && rm -rf (\S+)", out)
    try:
        assert p.returncode == 0, out[-3000:] + p.stderr[-3000:]
        assert mnt and _mountinfo_has(mnt.group(1)), out[-2000:]
        assert os.path.isdir(os.path.join(mnt.group(1), "uploads"))
        shot = re.search(r"gallery screenshot: (\S+)", out).group(1)
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert re.search(r"imgfs -o endpoint=http://127\.0\.0\.1:\d+,region=us-east-1 photos ", out)
        assert "export AWS_ACCESS_KEY_ID=" in out and "fusermount3 -u ~/photos" in out
    finally:
        if stop:
            subprocess.run(["fusermount3", "-u", stop.group(1)], timeout=60)
            subprocess.run([stop.group(3)], env=dict(os.environ, CEPH_DIR=stop.group(2)),
                           capture_output=True, timeout=120)
            subprocess.run(["rm", "-rf", stop.group(4)], timeout=60)
    assert not _mountinfo_has(mnt.group(1))
