"""fsx, the file system exerciser of xfstests, on uploads/ (make check-all,
stage "fsx"; not part of make e2e: the runs take about two minutes). Not a
test_*.py file: run it by name,

    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e/fsx_run.py

fsx (FSX, default /opt/ext/fsx, built by tests/ext/build-fsx.sh) does
random reads, writes, mapped reads and writes, truncates, copy_file_range
and closes and reopens on one file, checking every read against its own
copy; it turns off at start what the file system refuses (fallocate, clone
and dedupe ranges here). Each run must end "All N operations completed
A-OK!", and the object in the bucket must then hold what fsx last wrote.
"""

import hashlib
import os
import pathlib
import subprocess

import pytest

from helpers import get_bytes

FSX = pathlib.Path(os.environ.get("FSX", "/opt/ext/fsx"))

# (name, arguments): seeds are fixed so that a failure replays.
RUNS = [
    ("small files, reopened often", ["-N", "10000", "-S", "1", "-c", "20"]),
    ("8 MiB files, 1 MiB operations", ["-N", "3000", "-S", "2", "-l", "8000000",
                                      "-o", "1000000", "-c", "30"]),
    ("no mapped I/O", ["-N", "5000", "-S", "3", "-R", "-W", "-c", "10"]),
    ("fsync and cache drop after each change", ["-N", "2000", "-S", "4", "-f"]),
]


@pytest.mark.deadline(1200)
@pytest.mark.parametrize("name,args", RUNS, ids=[r[0] for r in RUNS])
def test_fsx_on_uploads(rgw, bucket, mount, tmp_path, name, args):
    if not FSX.is_file():
        pytest.skip(f"fsx is not built at {FSX} (tests/ext/build-fsx.sh; set FSX)")
    m = mount(bucket)
    target = m.uploads / "fsx" / "file"
    target.parent.mkdir()
    p = subprocess.run([str(FSX), "-q", "-P", str(tmp_path), *args, str(target)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0 and "completed A-OK" in p.stdout, \
        f"fsx {name} failed:\n{p.stdout[-4000:]}\n{p.stderr[-2000:]}"
    local = target.read_bytes()
    stored = get_bytes(rgw.s3, bucket, "uploads/fsx/file")
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(local).hexdigest()
