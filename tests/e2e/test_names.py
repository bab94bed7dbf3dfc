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


def keys(rgw, bucket):
    return set(list_keys(rgw.s3, bucket, "uploads/"))


def test_an_object_and_a_folder_of_one_name_show_the_folder(rgw, bucket, mount):
    """Another tool wrote both uploads/x and uploads/x/in: the folder wins
    everywhere (stat before any listing, the listing, stat after it), mv
    takes the object along, and after rm -r returns 0 nothing reappears."""
    rgw.s3.put_object(Bucket=bucket, Key="uploads/x", Body=b"the file")
    rgw.s3.put_object(Bucket=bucket, Key="uploads/x/in", Body=b"inside")
    m = mount(bucket)
    assert os.path.isdir(m.uploads / "x")  # a lookup before any listing
    assert os.listdir(m.uploads) == ["x"]
    assert os.path.isdir(m.uploads / "x")
    assert os.listdir(m.uploads / "x") == ["in"]
    assert (m.uploads / "x" / "in").read_bytes() == b"inside"

    fresh = mount(bucket, opts={"metadata_ttl": "0"})
    assert os.path.isdir(fresh.uploads / "x")
    assert os.listdir(fresh.uploads) == ["x"]

    os.rename(m.uploads / "x", m.uploads / "y")
    assert keys(rgw, bucket) == {"uploads/y", "uploads/y/in"}
    assert os.listdir(m.uploads) == ["y"]
    p = subprocess.run(["rm", "-r", str(m.uploads / "y")], capture_output=True)
    assert p.returncode == 0, p.stderr
    assert os.listdir(m.uploads) == []
    assert keys(rgw, bucket) == set()
    assert os.listdir(fresh.uploads) == []
