"""Operations (issue 7): the .metrics file and the daemon's logging.

.metrics is parsed with prometheus_client's own text parser, and the
counters must move with the operations done. Logging: stderr in the
foreground at the configured level, syslog when detached.
"""

import os
import socket
import subprocess
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import run, wait_for


def families(m):
    text = (m.path / ".metrics").read_text()
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams, name, **labels):
    """Sum of the samples called name (with every given label)."""
    total = 0.0
    for fam in fams.values():
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def jpeg(images):
    return next(p for p in images if p.suffix == ".jpg")


def test_metrics_parse_as_prometheus_text(mount, bucket):
    m = mount(bucket)
    fams = families(m)
    for name in ("imgfs_uploads", "imgfs_bytes_up", "imgfs_cache_hits",
                 "imgfs_thumbnails_generated", "imgfs_link_reads",
                 "imgfs_retries", "imgfs_errors"):
        assert name in fams, f"{name} missing from .metrics: {sorted(fams)}"
        assert fams[name].type == "counter"
    assert fams["imgfs_cache_bytes"].type == "gauge"
    st = os.stat(m.path / ".metrics")
    assert st.st_size == len((m.path / ".metrics").read_bytes()) or st.st_size > 0


def test_counters_move_with_operations(mount, bucket, images):
    # thumb_eager off: the thumbnail read below must download the source
    # no eager thumbnail and no data cache: the thumbnail read downloads
    m = mount(bucket, opts={"thumb_eager": "false", "data_cache_max": "0"})
    src = jpeg(images)
    before = families(m)
    run(["cp", str(src), str(m.uploads / "a.jpg")])
    after_cp = families(m)
    assert sample(after_cp, "imgfs_uploads_total") == sample(before, "imgfs_uploads_total") + 1
    assert (sample(after_cp, "imgfs_bytes_up_total")
            - sample(before, "imgfs_bytes_up_total")) >= src.stat().st_size
    assert (sample(after_cp, "imgfs_s3_requests_total", op="PUT", status="200")
            > sample(before, "imgfs_s3_requests_total", op="PUT", status="200"))
    assert sample(after_cp, "imgfs_s3_request_seconds_count", op="PUT") >= 1

    (m.thumbs / "a.jpg").read_bytes()
    after_thumb = families(m)
    assert sample(after_thumb, "imgfs_thumbnails_generated_total") == 1
    assert sample(after_thumb, "imgfs_cache_misses_total") >= 1
    assert sample(after_thumb, "imgfs_bytes_down_total") >= src.stat().st_size

    (m.thumbs / "a.jpg").read_bytes()
    after_hit = families(m)
    assert sample(after_hit, "imgfs_cache_hits_total") > sample(after_thumb, "imgfs_cache_hits_total")
    assert sample(after_hit, "imgfs_thumbnails_generated_total") == 1
    assert sample(after_hit, "imgfs_cache_bytes") > 0

    (m.links / "uploads" / "a.jpg").read_text()
    after_link = families(m)
    assert (sample(after_link, "imgfs_link_reads_total")
            == sample(after_hit, "imgfs_link_reads_total") + 1)


def test_thumbnail_failure_is_counted(mount, bucket):
    m = mount(bucket)
    (m.uploads / "bad.jpg").write_bytes(b"this is not a jpeg\n" * 10)
    with pytest.raises(OSError):
        (m.thumbs / "bad.jpg").read_bytes()
    assert sample(families(m), "imgfs_thumbnail_errors_total") == 1


def test_log_level_controls_stderr(mount, bucket, images):
    quiet = mount(bucket, opts={"log_level": "error"})
    run(["cp", str(jpeg(images)), str(quiet.uploads / "q.jpg")])
    quiet.unmount()
    assert " info: " not in quiet.stderr_text()
    assert " debug: " not in quiet.stderr_text()

    loud = mount(bucket, opts={"log_level": "debug"})
    (loud.uploads / "q.jpg").read_bytes()
    loud.unmount()
    assert " debug: " in loud.stderr_text()


class SyslogCapture:
    """A datagram socket standing in for /dev/log while the test runs."""

    def __init__(self, path="/dev/log"):
        self.path = path
        self.saved = None
        self.lines = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def __enter__(self):
        if os.path.lexists(self.path):
            self.saved = self.path + ".imgfs-test"
            os.rename(self.path, self.saved)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.running = True
        self.thread.start()
        return self

    def _read(self):
        while self.running:
            try:
                self.lines.append(self.sock.recv(65536).decode(errors="replace"))
            except socket.timeout:
                continue
            except OSError:
                return

    def __exit__(self, *exc):
        self.running = False
        self.thread.join(2)
        self.sock.close()
        os.unlink(self.path)
        if self.saved:
            os.rename(self.saved, self.path)


def test_detached_daemon_logs_to_syslog(rgw, bucket, imgfs_bin, tmp_path, images):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    opts = f"endpoint={rgw.endpoint},region={rgw.region},cache_dir={tmp_path / 'cache'},log_level=info"
    with SyslogCapture() as log:
        p = subprocess.run([str(imgfs_bin), "-o", opts, bucket, str(mnt)],
                           env=rgw.env(), capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr.decode()
        try:
            wait_for(lambda: (mnt / "uploads").is_dir(), timeout=30, what="detached mount")
            run(["cp", str(jpeg(images)), str(mnt / "uploads" / "s.jpg")])
            (mnt / "thumbnails" / "s.jpg").read_bytes()
        finally:
            subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
        wait_for(lambda: any("imgfs[" in line for line in log.lines), timeout=10,
                 what="a syslog line from imgfs")
        wait_for(lambda: any("unmounted bucket" in line for line in log.lines), timeout=10,
                 what="the unmount logged to syslog")
        assert any(f"mounted bucket {bucket}" in line for line in log.lines), log.lines
        for line in log.lines:
            assert line.startswith("<"), f"not a syslog datagram: {line!r}"
