"""Folders made of keys other tools wrote (issue 10, issue 16;
docs/SEMANTICS.md "Names"): a folder holding only keys the mount hides is
removed by rm -rf with those keys, and folders show a real mtime, not 1970.
"""

import os
import subprocess
import time

from helpers import list_keys


def test_rm_rf_of_a_folder_holding_only_hidden_keys(rgw, bucket, mount):
    """Keys no name can reach (an empty segment, a '.' segment, a name over
    255 bytes) do not make their folder "not empty": rm -rf removes the
    folder, the keys with it, and nothing reappears."""
    hidden = ["uploads/h//b", "uploads/h/./c", "uploads/h/" + "n" * 300,
              "uploads/h/a//b"]  # h/a is a folder holding only a hidden key
    for k in hidden + ["uploads/keep/x"]:
        rgw.s3.put_object(Bucket=bucket, Key=k, Body=b"data")
    m = mount(bucket)
    assert os.listdir(m.uploads / "h") == ["a"]
    assert os.listdir(m.uploads / "h" / "a") == []
    p = subprocess.run(["rm", "-rf", str(m.uploads / "h")], capture_output=True)
    assert p.returncode == 0, p.stderr
    assert not (m.uploads / "h").exists()
    assert "h" not in os.listdir(m.uploads)
    assert set(list_keys(rgw.s3, bucket, "uploads/")) == {"uploads/keep/x"}


def test_rmdir_of_a_folder_with_a_shown_entry_is_still_refused(rgw, bucket, mount):
    """A hidden key next to a shown one: the folder is not empty."""
    for k in ("uploads/h//b", "uploads/h/seen"):
        rgw.s3.put_object(Bucket=bucket, Key=k, Body=b"data")
    m = mount(bucket)
    p = subprocess.run(["rmdir", str(m.uploads / "h")], capture_output=True)
    assert p.returncode != 0
    assert b"Directory not empty" in p.stderr, p.stderr
    assert set(list_keys(rgw.s3, bucket, "uploads/")) == {"uploads/h//b",
                                                         "uploads/h/seen"}


def test_folders_show_the_mount_time_not_1970(rgw, bucket, mount):
    """S3 keeps no time for a folder: every folder, found by stat, by a
    listing of its parent or made by mkdir, shows the mount's start."""
    rgw.s3.put_object(Bucket=bucket, Key="uploads/d/e/x", Body=b"data")
    before = time.time() - 5
    m = mount(bucket)
    after = time.time() + 5
    os.mkdir(m.uploads / "made")
    names = sorted(os.listdir(m.uploads))
    assert names == ["d", "made"]
    times = {n: os.stat(m.uploads / n).st_mtime for n in names}
    times["d/e"] = os.stat(m.uploads / "d" / "e").st_mtime
    with os.scandir(m.uploads) as it:
        for entry in it:
            times["scan " + entry.name] = entry.stat().st_mtime
    for name, t in times.items():
        assert before <= t <= after, (name, t)
