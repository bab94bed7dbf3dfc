"""Temporary credentials from the network: EC2 instance metadata (IMDSv2)
and container credentials, fetched by imgfs' credential chain
(build/tools/credsprobe drives core/aws/creds) from tests/credserver.py on
127.0.0.1. Nothing here ever talks to 169.254.x.x or any other address.

What is checked: each protocol end to end (IMDSv2 session token, role
listing, credentials; container full URI with a token or a token file),
refresh before expiry with the access key changing and no failed call
while many threads ask for credentials, a failing refresh that keeps the
old credentials until they really expire and recovers afterwards, and no
secret or token in any output.
"""

import os
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from credserver import CredServer  # noqa: E402

pytestmark = pytest.mark.deadline(90)


@pytest.fixture
def probe_bin(tools):
    path = tools / "credsprobe"
    if not path.exists():
        pytest.fail("%s is missing: run make first" % path)
    return path


@pytest.fixture
def server():
    srv = CredServer(expiry=3600).start()
    yield srv
    srv.stop()


def clean_env(tmp_path, **extra):
    """os.environ without the caller's AWS settings, an empty HOME (no
    shared files) and instance metadata off unless extra turns it on."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and not k.startswith("IMGFS_")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def imds_env(tmp_path, srv, **extra):
    extra.setdefault("AWS_EC2_METADATA_DISABLED", None)
    return clean_env(tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=srv.url,
                     **extra)


def container_env(tmp_path, srv, **extra):
    extra.setdefault("AWS_CONTAINER_AUTHORIZATION_TOKEN", srv.container_token)
    return clean_env(tmp_path,
                     AWS_CONTAINER_CREDENTIALS_FULL_URI=srv.container_url(),
                     **extra)


class Sample:
    """One line of credsprobe's output."""

    def __init__(self, line):
        parts = line.split(" ", 5)
        self.ok = parts[0] == "ok"
        self.time = int(parts[1])
        if self.ok:
            self.key = parts[2]
            self.expires_in = int(parts[3])
            self.token_len = int(parts[4])
            self.source = parts[5]
        else:
            self.error = " ".join(parts[2:])


def parse_output(out):
    samples, summary = [], None
    for line in out.splitlines():
        if line.startswith("summary "):
            summary = dict(kv.split("=") for kv in line.split()[1:])
        elif line.startswith(("ok ", "fail ")):
            samples.append(Sample(line))
    return samples, summary


def run_probe(probe_bin, env, *args, timeout=60):
    proc = subprocess.run([str(probe_bin), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc


def assert_no_secrets(*texts):
    for text in texts:
        assert "secret-0" not in text, "a secret key was printed"
        assert "session-token-" not in text, "a session token was printed"
        assert "test-auth-token" not in text, "the container token was printed"


def test_imdsv2(probe_bin, server, tmp_path):
    proc = run_probe(probe_bin, imds_env(tmp_path, server))
    assert proc.returncode == 0, proc.stderr
    samples, summary = parse_output(proc.stdout)
    assert len(samples) == 1 and samples[0].ok
    s = samples[0]
    assert s.key == "ASIATEST000001"
    assert s.source == "instance metadata (role imgfs-test-role)"
    assert s.token_len > 0
    assert 3500 <= s.expires_in <= 3600
    stats = server.snapshot()
    assert stats["token"] == 1 and stats["role"] == 1
    assert stats["imds_creds"] == 1 and stats["unauthorized"] == 0
    assert_no_secrets(proc.stdout, proc.stderr)


def test_imds_refuses_requests_without_token(server):
    """The server really enforces IMDSv2, so the probe's success above
    means imgfs sent the session token."""
    url = server.url + "/latest/meta-data/iam/security-credentials/"
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url, timeout=5)
    assert exc.value.code == 401


def test_imds_disabled(probe_bin, server, tmp_path):
    env = imds_env(tmp_path, server, AWS_EC2_METADATA_DISABLED="true")
    proc = run_probe(probe_bin, env)
    assert proc.returncode == 2
    assert "no AWS credentials" in proc.stderr
    assert server.snapshot()["token"] == 0


def test_container_full_uri_with_token(probe_bin, server, tmp_path):
    proc = run_probe(probe_bin, container_env(tmp_path, server))
    assert proc.returncode == 0, proc.stderr
    samples, _ = parse_output(proc.stdout)
    assert samples[0].ok and samples[0].key == "ASIATEST000001"
    assert samples[0].source == "container credentials"
    assert server.count("container_creds") == 1
    assert server.count("unauthorized") == 0
    assert_no_secrets(proc.stdout, proc.stderr)


def test_container_relative_style_path(probe_bin, server, tmp_path):
    """ECS hands out RELATIVE_URI paths (/v2/credentials/<id>) served by
    169.254.170.2; tests reach that path shape through the full URI."""
    env = container_env(tmp_path, server)
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.container_url(
        "8b4c7f5e-3d0a-4c52-9e1f-0d6b2a7c9e11")
    proc = run_probe(probe_bin, env)
    assert proc.returncode == 0, proc.stderr
    assert parse_output(proc.stdout)[0][0].key == "ASIATEST000001"


def test_container_token_file(probe_bin, server, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(server.container_token + "\n")
    env = container_env(tmp_path, server, AWS_CONTAINER_AUTHORIZATION_TOKEN=None,
                        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=token_file)
    proc = run_probe(probe_bin, env)
    assert proc.returncode == 0, proc.stderr
    assert server.count("unauthorized") == 0
    # the file wins over the variable
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "wrong-token"
    proc = run_probe(probe_bin, env)
    assert proc.returncode == 0, proc.stderr


def test_container_wrong_token(probe_bin, server, tmp_path):
    env = container_env(tmp_path, server,
                        AWS_CONTAINER_AUTHORIZATION_TOKEN="not-the-token")
    proc = run_probe(probe_bin, env)
    assert proc.returncode == 2
    assert "HTTP 401" in proc.stderr
    assert "not-the-token" not in proc.stderr
    assert server.count("unauthorized") == 1


def check_refresh(proc, server, expiry):
    assert proc.returncode == 0, proc.stderr
    samples, summary = parse_output(proc.stdout)
    assert samples and all(s.ok for s in samples), proc.stdout
    assert summary["failures"] == "0", summary
    assert int(summary["calls"]) > 100, "the extra threads did not run"
    keys = [s.key for s in samples]
    distinct = list(dict.fromkeys(keys))
    assert len(distinct) >= 3, "credentials were not refreshed: %s" % distinct
    assert distinct == sorted(distinct), "an older key came back"
    # refreshed ahead of time: no caller ever saw credentials about to lapse
    assert min(s.expires_in for s in samples) >= 1
    assert all(s.expires_in <= expiry for s in samples)
    assert "refreshed" in proc.stderr
    assert_no_secrets(proc.stdout, proc.stderr)


def test_imds_refresh_before_expiry(probe_bin, server, tmp_path):
    server.set_expiry(8)
    env = imds_env(tmp_path, server, IMGFS_CREDS_REFRESH_MARGIN=4)
    proc = run_probe(probe_bin, env, "-n", 14, "-i", 200, "-t", 4)
    check_refresh(proc, server, 8)
    # one refresh per key, not one per call: the threads share the result
    assert server.count("imds_creds") <= 8


def test_container_refresh_before_expiry(probe_bin, server, tmp_path):
    server.set_expiry(8)
    token_file = tmp_path / "token"
    token_file.write_text(server.container_token)
    env = container_env(tmp_path, server, AWS_CONTAINER_AUTHORIZATION_TOKEN=None,
                        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=token_file,
                        IMGFS_CREDS_REFRESH_MARGIN=4)
    proc = subprocess.Popen([str(probe_bin), "-n", "14", "-i", "200", "-t", "4"],
                            env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # the agent rotates its token mid-run; the file is re-read each refresh
    time.sleep(5)
    server.container_token = "rotated-token"
    token_file.write_text("rotated-token\n")
    out, err = proc.communicate(timeout=60)
    proc.stdout, proc.stderr = out, err
    check_refresh(proc, server, 8)
    assert server.count("unauthorized") == 0


def read_samples(proc, until, deadline):
    """Read probe lines until until(sample) is true; return them all."""
    got = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(("ok ", "fail ")):
            got.append(Sample(line.strip()))
            if until(got[-1]):
                return got
    pytest.fail("probe output ended early: %r" % [vars(s) for s in got])


def test_failing_refresh_keeps_credentials_until_expiry(probe_bin, server,
                                                        tmp_path):
    server.set_expiry(10)
    env = imds_env(tmp_path, server, IMGFS_CREDS_REFRESH_MARGIN=6)
    proc = subprocess.Popen([str(probe_bin), "-n", "30", "-i", "250"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        first = read_samples(proc, lambda s: True, time.monotonic() + 10)[0]
        assert first.ok and first.key == "ASIATEST000001"
        expires_at = first.time + first.expires_in
        server.fail_next(10 ** 6)
        # the old credentials serve every call until they expire
        before = read_samples(proc, lambda s: not s.ok, time.monotonic() + 20)
        for s in before[:-1]:
            assert s.ok and s.key == "ASIATEST000001", vars(s)
        assert before[-1].time >= expires_at - 1, "failed before expiry"
        assert "expired" in before[-1].error
        assert server.count("failed") >= 2, "no refresh was attempted"
        # once the service answers again, new credentials come back quickly
        server.fail_next(0)
        after = read_samples(proc, lambda s: s.ok, time.monotonic() + 10)
        assert after[-1].key == "ASIATEST000002"
        assert after[-1].time - before[-1].time <= 4
    finally:
        proc.kill()
        out, err = proc.communicate()
    assert "refreshing credentials" in err and "HTTP 500" in err
    assert_no_secrets(out, err)
