"""A newcomer's mistakes and an operator's safety nets (issue 16).

Each mistake a new user makes at mount time gets one line on stderr, a
non-zero exit and no mount: a folder that holds files, a mountpoint that is
already an imgfs, a cache directory whose upload journal is corrupt (also in
background mode, where the terminal is gone once the daemon detaches).
The operator's side: the cache databases are 0600 whatever the folder's
mode, a core dump never holds the secret key, and with allow_other another
local user can read but neither overwrite nor delete. Connection errors are
one line naming the endpoint and the cause (refused, silent, plain http,
unknown CA, a certificate for another host); a GET the server never answers
fails within request_timeout; the README's find command lists each image
once.
"""

import errno
import os
import pathlib
import pwd
import shlex
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time

import pytest

from helpers import _mountinfo_has, wait_for


def imgfs_cmd(imgfs_bin, rgw, bucket, mnt, cache_dir, extra=(), foreground=True):
    opts = [f"endpoint={rgw.endpoint}", f"region={rgw.region}", f"cache_dir={cache_dir}"]
    opts += list(extra)
    return ([str(imgfs_bin)] + (["-f"] if foreground else []) +
            ["-o", ",".join(opts), bucket, str(mnt)])


def refused(imgfs_bin, rgw, bucket, mnt, cache_dir, extra=(), foreground=True):
    """Run imgfs expecting it to refuse: (exit status, stderr lines)."""
    try:
        p = subprocess.run(imgfs_cmd(imgfs_bin, rgw, bucket, mnt, cache_dir, extra, foreground),
                           env=rgw.env(), capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True, timeout=60)
        pytest.fail(f"imgfs mounted {mnt} instead of refusing it")
    return p.returncode, p.stderr.decode(errors="replace").splitlines()


def mount_count(path):
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split(" ")[4] == target)


def test_non_empty_mountpoint_is_refused_unless_nonempty(rgw, bucket, mount, imgfs_bin, tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    (mnt / "mine.txt").write_text("hidden if mounted over\n")
    status, lines = refused(imgfs_bin, rgw, bucket, mnt, tmp_path / "c")
    assert status != 0
    assert len(lines) == 1, lines
    assert "not empty" in lines[0] and str(mnt) in lines[0] and "nonempty" in lines[0], lines
    assert not _mountinfo_has(mnt)

    # -o nonempty is the explicit way to mount over them.
    m = mount(bucket, opts=["nonempty"])
    m.unmount()
    (m.path / "x").write_text("x")
    m.remount()
    assert m.mounted() and (m.path / "uploads").is_dir()
    m.unmount()
    assert (m.path / "x").read_text() == "x"


def test_stacked_mount_is_refused(rgw, bucket, mount, imgfs_bin, tmp_path):
    m = mount(bucket)
    status, lines = refused(imgfs_bin, rgw, bucket, m.path, tmp_path / "c2")
    assert status != 0
    assert len(lines) == 1, lines
    assert "already mounted" in lines[0] and str(m.path) in lines[0], lines
    assert mount_count(m.path) == 1


def test_corrupt_journal_stops_a_background_mount_with_the_reason(rgw, bucket, imgfs_bin,
                                                                  tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "uploads.db").write_bytes(b"this is not an SQLite database\n" * 100)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    for foreground in (False, True):
        status, lines = refused(imgfs_bin, rgw, bucket, mnt, cache, foreground=foreground)
        assert status != 0, lines
        text = "\n".join(lines)
        assert "uploads.db" in text and "not a database" in text, text
        assert not _mountinfo_has(mnt)


def test_cache_databases_are_private_whatever_the_folder_mode(rgw, bucket, mount, images,
                                                             tmp_path):
    cache = tmp_path / "opencache"
    cache.mkdir()
    cache.chmod(0o755)
    old = os.umask(0o022)
    try:
        m = mount(bucket, cache_dir=cache)
    finally:
        os.umask(old)
    shutil.copyfile(images[0], m.uploads / ("a" + images[0].suffix))
    assert (m.thumbs / ("a" + images[0].suffix)).read_bytes()[:2]
    dbs = sorted(p.name for p in cache.iterdir() if ".db" in p.name)
    assert {"thumbs.db", "uploads.db"} <= set(dbs), dbs
    assert any(n.endswith("-wal") for n in dbs), dbs
    for name in dbs:
        mode = stat.S_IMODE((cache / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    m.unmount()


def _core_files(d):
    """{name: (mtime_ns, size)} of the core files in folder d."""
    out = {}
    for p in pathlib.Path(d).iterdir():
        if p.name == "core" or p.name.startswith("core."):
            st = p.stat()
            out[p.name] = (st.st_mtime_ns, st.st_size)
    return out


def _unlimited_core():
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    os.setsid()


@pytest.mark.deadline(120)
def test_core_dump_holds_no_secret(rgw, bucket, imgfs_bin, tmp_path):
    pattern = pathlib.Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|") or "/" in pattern:
        pytest.skip(f"core_pattern {pattern!r} does not write a core file in the cwd")
    # The control: a process killed the same way in a folder of ours dumps.
    control = tmp_path / "control"
    control.mkdir()
    subprocess.run(["sh", "-c", "kill -SEGV $$"], cwd=control, preexec_fn=_unlimited_core)
    wait_for(lambda: _core_files(control), 30, what="a control core dump")

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    err = open(tmp_path / "imgfs.stderr", "wb")
    env = rgw.env()
    # An ASan build would catch the signal and exit instead of dying of it.
    env["ASAN_OPTIONS"] = ":".join(x for x in (env.get("ASAN_OPTIONS"), "handle_segv=0") if x)
    p = subprocess.Popen(imgfs_cmd(imgfs_bin, rgw, bucket, mnt, tmp_path / "c"), cwd=tmp_path,
                         env=env, stdout=err, stderr=err, stdin=subprocess.DEVNULL,
                         preexec_fn=_unlimited_core)
    try:
        wait_for(lambda: _mountinfo_has(mnt) or p.poll() is not None, 30, what="the mount")
        assert p.poll() is None, (tmp_path / "imgfs.stderr").read_text()
        (mnt / "uploads" / "f").write_bytes(b"signed with the secret")
        cwd = os.readlink(f"/proc/{p.pid}/cwd")  # libfuse may have moved it to /
        before = _core_files(cwd)
        os.kill(p.pid, signal.SIGSEGV)
        assert p.wait(30) == -signal.SIGSEGV
    finally:
        if p.poll() is None:
            p.kill()
        subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True, timeout=60)
    # The kernel writes a core before the parent can reap the process.
    after = _core_files(cwd)
    new = [n for n, v in after.items() if before.get(n) != v]
    for n in new:
        data = (pathlib.Path(cwd) / n).read_bytes()
        os.unlink(pathlib.Path(cwd) / n)
        assert rgw.secret_key.encode() not in data, f"{cwd}/{n} holds the secret key"
    assert not new, f"imgfs dumped core in {cwd}: {new}"


@pytest.fixture
def other_user():
    name = f"imgfs{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], check=True,
                   capture_output=True, timeout=60)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=60)


def as_user(user, *cmd):
    return subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                           "--clear-groups", "--"] + list(cmd),
                          capture_output=True, text=True, timeout=60)


def test_allow_other_lets_others_read_but_not_change(rgw, bucket, imgfs_bin, other_user):
    top = pathlib.Path(tempfile.mkdtemp(prefix="imgfs-allow-other-", dir="/tmp"))
    top.chmod(0o755)
    mnt = top / "mnt"
    mnt.mkdir()
    p = subprocess.Popen(imgfs_cmd(imgfs_bin, rgw, bucket, mnt, top / "cache", ["allow_other"]),
                         env=rgw.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: _mountinfo_has(mnt) or p.poll() is not None, 30, what="the mount")
        assert p.poll() is None, p.stderr.read()
        f = mnt / "uploads" / "owned.txt"
        f.write_text("the mounting user's\n")
        got = as_user(other_user, "cat", str(f))
        assert got.returncode == 0 and got.stdout == "the mounting user's\n", got
        got = as_user(other_user, "sh", "-c", f"echo other > '{f}'")
        assert got.returncode != 0 and "Permission denied" in got.stderr, got
        got = as_user(other_user, "rm", "-f", str(f))
        assert got.returncode != 0 and "Permission denied" in got.stderr, got
        got = as_user(other_user, "sh", "-c", f"echo new > '{mnt}/uploads/theirs.txt'")
        assert got.returncode != 0, got
        assert f.read_text() == "the mounting user's\n"
        assert sorted(os.listdir(mnt / "uploads")) == ["owned.txt"]
    finally:
        if _mountinfo_has(mnt):
            subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True, timeout=60)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
        shutil.rmtree(top, ignore_errors=True)


# ---------------------------------------------------------------- endpoints

from test_security import free_port, tls_rgw  # noqa: E402,F401  (the TLS RGW fixture)


def endpoint_refusal(imgfs_bin, rgw, bucket, tmp_path, endpoint, env=None):
    """Mount against endpoint; (exit status, problem lines, seconds)."""
    mnt = tmp_path / f"mnt{free_port()}"
    mnt.mkdir()
    opts = f"endpoint={endpoint},region={rgw.region},cache_dir={tmp_path}/c"
    start = time.monotonic()
    p = subprocess.run([str(imgfs_bin), "-f", "-o", opts, bucket, str(mnt)],
                       env=rgw.env(IMGFS_ENDPOINT=None, AWS_ENDPOINT_URL=None, **(env or {})),
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    took = time.monotonic() - start
    lines = [x for x in p.stderr.decode(errors="replace").splitlines()
             if " info: credentials from " not in x]
    assert not _mountinfo_has(mnt)
    return p.returncode, lines, took


def test_endpoint_down_is_one_line(rgw, bucket, imgfs_bin, tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"
    status, lines, _ = endpoint_refusal(imgfs_bin, rgw, bucket, tmp_path, endpoint)
    assert status != 0
    assert lines == [f"imgfs: cannot connect to {endpoint}: connection refused"], lines


@pytest.mark.deadline(120)
def test_silent_endpoint_fails_in_seconds(rgw, bucket, imgfs_bin, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts (the kernel does), never answers
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        status, lines, took = endpoint_refusal(imgfs_bin, rgw, bucket, tmp_path, endpoint)
    finally:
        listener.close()
    assert status != 0
    assert len(lines) == 1 and lines[0].startswith(f"imgfs: cannot connect to {endpoint}: timed out"), lines
    assert took < 20, f"a silent endpoint took {took:.0f} s to fail the mount"


def test_https_to_a_plain_http_server_is_one_line(rgw, bucket, imgfs_bin, tmp_path):
    endpoint = rgw.endpoint.replace("http://", "https://")
    status, lines, _ = endpoint_refusal(imgfs_bin, rgw, bucket, tmp_path, endpoint)
    assert status != 0
    assert len(lines) == 1 and f"cannot connect to {endpoint}: TLS: wrong protocol" in lines[0], lines


@pytest.mark.deadline(600)
def test_tls_unknown_ca_is_one_line(rgw, bucket, imgfs_bin, tmp_path, tls_rgw):
    status, lines, _ = endpoint_refusal(imgfs_bin, rgw, bucket, tmp_path, tls_rgw.endpoint,
                                        env={"AWS_CA_BUNDLE": None})
    assert status != 0
    assert len(lines) == 1 and \
        f"cannot connect to {tls_rgw.endpoint}: TLS: certificate from an unknown CA" in lines[0], lines


class WrongHostTLS:
    """A TLS server on 127.0.0.1 whose certificate (from a throwaway CA made
    here with openssl) names another host; it completes no request."""

    def __init__(self, d):
        self.ca = d / "ca.pem"
        key, cert = d / "srv.key", d / "srv.pem"
        ext = d / "ext.cnf"
        ext.write_text("subjectAltName = DNS:other.example\n")
        openssl = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"),
                "-out", str(self.ca), "-days", "1", "-subj", "/CN=imgfs test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                "-out", str(d / "srv.csr"), "-subj", "/CN=other.example")
        openssl("x509", "-req", "-in", str(d / "srv.csr"), "-CA", str(self.ca),
                "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(cert),
                "-days", "1", "-extfile", str(ext))
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.endpoint = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self.handshakes = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.handshakes += 1
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)  # the client refuses the certificate
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def stop(self):
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(10)


def test_tls_wrong_host_name_is_one_line(rgw, bucket, imgfs_bin, tmp_path):
    server = WrongHostTLS(tmp_path)
    try:
        status, lines, _ = endpoint_refusal(imgfs_bin, rgw, bucket, tmp_path, server.endpoint,
                                            env={"AWS_CA_BUNDLE": str(server.ca)})
    finally:
        server.stop()
    assert server.handshakes >= 1  # it did reach the server
    assert status != 0
    assert lines == [f"imgfs: cannot connect to {server.endpoint}: "
                     "TLS: certificate for another host name"], lines


# ---------------------------------------------------------- silent servers

from test_faults import proxy  # noqa: E402,F401  (the fault proxy fixture)


@pytest.mark.deadline(300)
def test_request_without_an_answer_fails_within_request_timeout(rgw, bucket, mount, proxy):
    """A GET the server accepts but never answers fails once request_timeout
    passes without a byte (curl's low-speed limit: 1 byte/s over
    request_timeout, which counts from the request's start, so it is also a
    first-byte timeout), not when the server gives up; the read is then
    served by the next GET (the kernel asks again) or fails with EIO."""
    body = os.urandom(300_000)
    rgw.s3.put_object(Bucket=bucket, Key="uploads/silent.bin", Body=body)
    m = mount(bucket, opts={"endpoint": proxy.endpoint, "request_timeout": 3,
                            "retries": 0, "metadata_ttl": 0, "data_cache_max": 0})
    stall = 120  # then the proxy forwards it: a client that waits it out succeeds late
    proxy.set_rules([{"action": "stall", "seconds": stall, "ops": ["GetObject"], "count": 1}])
    start = time.monotonic()
    try:
        got = (m.uploads / "silent.bin").read_bytes()
    except OSError as e:
        assert e.errno == errno.EIO
        got = None
    took = time.monotonic() - start
    assert proxy.stats()["injected"].get("stall", 0) == 1, proxy.stats()
    assert took < stall / 4, f"a silent GET took {took:.0f} s to give up (request_timeout=3)"
    assert got in (None, body)
    failed = [x for x in m.stderr_text().splitlines() if "GET uploads/silent.bin failed" in x]
    assert failed, m.stderr_text()
    assert (m.uploads / "silent.bin").read_bytes() == body


# ------------------------------------------------------- repeated entries


def readme_find_command():
    text = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = [x for x in text.splitlines() if x.startswith("find MNT ") and "-prune" in x]
    assert len(lines) == 1, lines
    return lines[0]


def test_readme_find_lists_each_image_once(rgw, bucket, mount, images):
    names = ["a.jpg", "sub/b.jpg", "sub/deeper/c.jpg"]
    data = next(p for p in sorted(images) if p.suffix.lower() == ".jpg").read_bytes()
    for n in names:
        rgw.s3.put_object(Bucket=bucket, Key=f"uploads/{n}", Body=data)
    m = mount(bucket, opts={"thumb_sizes": "128,256", "thumb_eager": "false"})
    # a folder the user named thumbnails is an ordinary one, found as such
    (m.uploads / "sub/thumbnails").mkdir()
    (m.uploads / "sub/thumbnails/d.jpg").write_bytes(data)
    names.append("sub/thumbnails/d.jpg")
    want = sorted(f"{m.path}/uploads/{n}" for n in names)

    plain = run_lines(["find", str(m.path), "-name", "*.jpg"])
    assert len(plain) >= 4 * len(names), plain  # the problem the README answers
    cmd = readme_find_command().replace("MNT", shlex.quote(str(m.path)))
    assert sorted(run_lines(["sh", "-c", cmd])) == want
    assert sorted(run_lines(["find", str(m.uploads), "-name", "*.jpg"])) == want


def run_lines(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()
