"""What an operator sees (issue 16): errors counted by kind, uploads in
progress with their bytes, one log line per completed upload and a progress
line for a long one, log lines that no file name can forge, and a Grafana
dashboard whose every query names a metric a live mount exports.
"""

import errno
import json
import re
import shutil
import time

import pytest

from helpers import REPO, wait_for

DASHBOARD = REPO / "contrib" / "grafana" / "imgfs-dashboard.json"
LINE_START = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z imgfs (error|warn|info|debug): ")


def test_errors_are_counted_by_kind(rgw, bucket, mount, images):
    m = mount(bucket)
    for kind in ("read_eio", "write_refused", "upload", "decode"):
        assert m.metric("imgfs_errors_total", kind=kind) == 0
    (m.uploads / "broken.jpg").write_bytes(b"not a jpeg at all" * 100)
    with pytest.raises(OSError) as e:
        (m.thumbs / "broken.jpg").read_bytes()
    assert e.value.errno == errno.EIO
    assert m.metric("imgfs_errors_total", kind="read_eio") >= 1
    assert m.metric("imgfs_errors_total", kind="decode") == 1
    with pytest.raises(OSError) as e:
        (m.thumbs / "new.jpg").write_bytes(b"x")
    assert e.value.errno in (errno.EROFS, errno.EACCES)
    with pytest.raises(OSError):
        (m.path / ".metrics").unlink()
    assert m.metric("imgfs_errors_total", kind="write_refused") >= 2


def upload_lines(text, key):
    return [x for x in text.splitlines()
            if re.search(rf" info: upload {re.escape(key)}: \d+ bytes in [\d.]+ s \([\d.]+ MiB/s\)$", x)]


def test_a_completed_upload_logs_one_line(rgw, bucket, mount, images):
    m = mount(bucket)
    src = images[0]
    shutil.copyfile(src, m.uploads / "one.jpg")
    lines = wait_for(lambda: upload_lines(m.stderr_text(), "uploads/one.jpg"), 10,
                     what="the upload's log line")
    assert len(lines) == 1, lines
    assert f" {src.stat().st_size} bytes " in lines[0], lines
    assert m.metric("imgfs_uploads_in_progress") == 0
    assert m.metric("imgfs_upload_bytes_in_progress") == 0


@pytest.mark.deadline(120)
def test_a_long_upload_shows_progress(rgw, bucket, mount):
    m = mount(bucket)
    chunk = b"\xab" * (256 * 1024)
    written = 0
    start = time.monotonic()
    with open(m.uploads / "slow.bin", "wb", buffering=0) as f:
        # A slow writer: a chunk every 0.2 s until a progress line shows.
        while "written so far" not in m.stderr_text():
            assert time.monotonic() - start < 30, m.stderr_text()
            f.write(chunk)
            written += len(chunk)
            assert m.metric("imgfs_uploads_in_progress") == 1
            assert m.metric("imgfs_upload_bytes_in_progress") == written
            time.sleep(0.2)
    progress = [x for x in m.stderr_text().splitlines() if "written so far" in x]
    assert re.search(r"info: upload uploads/slow\.bin: [\d.]+ MiB written so far in \d+ s", progress[0])
    wait_for(lambda: upload_lines(m.stderr_text(), "uploads/slow.bin"), 30, what="the final line")
    assert m.metric("imgfs_uploads_in_progress") == 0
    assert m.metric("imgfs_upload_bytes_in_progress") == 0


def test_a_file_name_cannot_forge_a_log_line(rgw, bucket, mount):
    m = mount(bucket)
    evil = "evil\n2026-01-01T00:00:00.000Z imgfs error: forged line\x1b[2J\x1b]0;title\x07.jpg"
    (m.uploads / evil).write_bytes(b"not an image" * 50)
    try:
        with pytest.raises(OSError):
            (m.thumbs / evil).read_bytes()
        wait_for(lambda: "thumbnail of" in m.stderr_text(), 10, what="the thumbnail failure line")
        text = m.stderr_text()
        assert "\x1b" not in text and "\x07" not in text
        for line in text.splitlines():
            assert LINE_START.match(line), f"a line that imgfs did not start: {line!r}"
        assert r"evil\x0a2026-01-01T00:00:00.000Z imgfs error: forged line\x1b[2J" in text
        # both the upload's line and the thumbnail's carry it, escaped
        assert len([x for x in text.splitlines() if "forged line" in x]) >= 2, text
    finally:
        # (S3's multi-object delete is XML, which cannot carry ESC or BEL)
        (m.uploads / evil).unlink()


def dashboard_metric_names():
    d = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in d["templating"]["list"] if v.get("type") == "query"]
    assert exprs
    names = set()
    for e in exprs:
        found = set(re.findall(r"\bimgfs_[a-z0-9_]+", e))
        assert found, f"query names no imgfs metric: {e}"
        names |= found
    return d, names


def test_grafana_dashboard_queries_name_exported_metrics(rgw, bucket, mount, images):
    d, names = dashboard_metric_names()
    assert d["title"] and d["uid"] and len(d["panels"]) >= 8
    m = mount(bucket)
    shutil.copyfile(images[0], m.uploads / "a.jpg")
    (m.thumbs / "a.jpg").read_bytes()
    (m.links / "uploads" / "a.jpg").read_text()
    text = (m.path / ".metrics").read_text()
    families = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            families.add(name)
            if kind == "histogram":
                families |= {name + "_bucket", name + "_sum", name + "_count"}
    missing = sorted(names - families)
    assert not missing, f"the dashboard queries metrics imgfs does not export: {missing}"
    for kind in ("read_eio", "write_refused", "upload", "decode"):
        assert f'imgfs_errors_total{{kind="{kind}"}}' in text
