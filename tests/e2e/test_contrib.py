"""contrib/: the systemd unit, the fstab line, log shipping and CI workflows.

The unit and the fstab line are exercised for real: imgfs runs with the
unit's capability bounding set and no-new-privileges and stops on the unit's
kill signal; `mount -t fuse.imgfs` mounts a bucket of the test RGW through
mount.fuse3 with the fstab example's options. rsyslog (when installed) routes
a logged line with the shipped rule. The workflows are read as YAML.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import REPO, sha256_file, sha256_object, wait_for

CONTRIB = REPO / "contrib"
UNIT = CONTRIB / "systemd" / "imgfs@.service"
FSTAB = CONTRIB / "fstab.example"
RSYSLOG = CONTRIB / "rsyslog" / "30-imgfs.conf"
LOGROTATE = CONTRIB / "logrotate" / "imgfs"
CWAGENT = CONTRIB / "cloudwatch" / "amazon-cloudwatch-agent.json"
WORKFLOWS = REPO / ".github" / "workflows"
HCL2JSON = REPO / "tests" / "node" / "hcl2json.js"

# Unit settings that give a service its own mount namespace: the FUSE mount
# would then be invisible outside the service.
MOUNT_NAMESPACE_KEYS = {
    "PrivateTmp", "PrivateDevices", "PrivateMounts", "ProtectSystem",
    "ProtectHome", "ProtectKernelTunables", "ProtectKernelModules",
    "ProtectKernelLogs", "ProtectControlGroups", "ProtectProc", "ProcSubset",
    "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "ExecPaths",
    "NoExecPaths", "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths",
    "RootDirectory", "RootImage", "MountAPIVFS", "DynamicUser",
    "PrivateNetwork", "NetworkNamespacePath",
}


# ------------------------------------------------------------ helpers

def read_unit(path):
    """A unit file as {section: {key: [values in order]}}."""
    sections, cur = {}, None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            cur = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        cur.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit_env(service, instance):
    """The unit's Environment= defaults for one instance name."""
    env = {}
    for assignment in service.get("Environment", []):
        for word in shlex.split(assignment):
            key, _, value = word.partition("=")
            env[key] = value.replace("%i", instance)
    return env


def expand(cmdline, env, instance):
    """A unit command line as argv, the way systemd expands it: %i; ${VAR}
    as one word; $VAR alone split at whitespace (none when empty); $$ as $."""
    argv = []
    for word in shlex.split(cmdline.lstrip("-@:+!").replace("%i", instance)):
        alone = re.fullmatch(r"\$(\w+)", word)
        if alone:
            argv += env[alone.group(1)].split()
            continue
        word = re.sub(r"\$\$|\$\{(\w+)\}",
                      lambda m: env[m.group(1)] if m.group(1) else "$", word)
        argv.append(word)
    return argv


def fstab_entry():
    lines = [ln for ln in FSTAB.read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(lines) == 1, "fstab.example holds one entry"
    return lines[0].split()


def mountinfo_has(path):
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == target for line in f)


def pids_using(path):
    """Processes whose command line names path (a daemon started by mount)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if str(path).encode() in argv:
            found.append(int(entry))
    return found


def write_ini(path, rgw, cache_dir):
    path.write_text(
        "[imgfs]\n"
        f"endpoint = {rgw.endpoint}\n"
        f"region = {rgw.region}\n"
        f"cache_dir = {cache_dir}\n"
    )
    return path


def workflow(name):
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(doc, dict), f"{name} is not a YAML mapping"
    # YAML 1.1 reads the key `on` as true.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def steps(doc):
    for job_name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


# ------------------------------------------------------------ systemd

def test_unit_runs_imgfs_in_the_foreground():
    unit = read_unit(UNIT)
    service = unit["Service"]
    assert service["Type"] == ["simple"]
    argv = shlex.split(service["ExecStart"][0])
    assert argv[0].endswith("/imgfs")
    assert "-f" in argv and "--config" in argv
    assert argv[argv.index("--config") + 1] == "/etc/imgfs/%i.ini"
    assert service["Restart"] == ["on-failure"]
    assert service["KillSignal"] == ["SIGTERM"]
    stop_post = " ".join(service["ExecStopPost"])
    assert stop_post.startswith("-") and "fusermount3 -u -z" in stop_post
    assert "network-online.target" in unit["Unit"]["After"][0]
    assert "network-online.target" in unit["Unit"]["Wants"][0]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_command_line_expands():
    service = read_unit(UNIT)["Service"]
    env = unit_env(service, "photos-bucket")
    assert expand(service["ExecStart"][0], env, "photos-bucket")[1:] == [
        "-f", "--config", "/etc/imgfs/photos-bucket.ini",
        "photos-bucket", "/mnt/photos-bucket"]
    env["IMGFS_ARGS"] = "-o allow_other"
    argv = expand(service["ExecStart"][0], env, "photos-bucket")
    assert argv[-4:] == ["-o", "allow_other", "photos-bucket", "/mnt/photos-bucket"]


def test_unit_hardening_keeps_the_mount_visible():
    service = read_unit(UNIT)["Service"]
    bad = MOUNT_NAMESPACE_KEYS & set(service)
    assert not bad, f"these settings hide the FUSE mount in a namespace: {bad}"
    assert "CAP_SYS_ADMIN" in service["CapabilityBoundingSet"][0].split()
    if service.get("DevicePolicy") in (["closed"], ["strict"]):
        assert "/dev/fuse rw" in service["DeviceAllow"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"),
                    reason="no systemd-analyze")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    # verify wants the executables to exist: point ExecStart at one that does.
    text = UNIT.read_text().replace("/usr/local/bin/imgfs", "/bin/true")
    inst = tmp_path / "imgfs@photos-bucket.service"
    inst.write_text(text)
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", str(inst)],
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == "" and res.stdout == "", \
        res.stdout + res.stderr


def start_like_the_unit(imgfs_bin, rgw, bucket, tmp_path, **env_file):
    """Run ExecStart as systemd would, under the unit's CapabilityBoundingSet
    and NoNewPrivileges (setpriv), with the unit's environment defaults and
    env_file's settings on top."""
    service = read_unit(UNIT)["Service"]
    env = unit_env(service, bucket)
    env.update(env_file)
    env["IMGFS_MOUNTPOINT"] = str(tmp_path / "mnt")
    os.makedirs(env["IMGFS_MOUNTPOINT"], exist_ok=True)
    argv = expand(service["ExecStart"][0], env, bucket)
    argv[0] = str(imgfs_bin)
    ini = write_ini(tmp_path / f"{bucket}.ini", rgw, tmp_path / "cache")
    argv[argv.index("--config") + 1] = str(ini)
    caps = service["CapabilityBoundingSet"][0].split()
    bounding = ",".join(["-all"] + ["+" + c[4:].lower() for c in caps])
    prefix = ["setpriv", "--bounding-set", bounding]
    if service.get("NoNewPrivileges") == ["yes"]:
        prefix.append("--no-new-privs")
    err = open(tmp_path / "imgfs.stderr", "wb")
    proc = subprocess.Popen(prefix + argv, env=rgw.env(), stdin=subprocess.DEVNULL,
                            stdout=err, stderr=err, start_new_session=True)
    err.close()
    mnt = Path(env["IMGFS_MOUNTPOINT"])
    wait_for(lambda: mountinfo_has(mnt) or proc.poll() is not None, 30,
             what="the unit's imgfs to mount")
    assert proc.poll() is None, (tmp_path / "imgfs.stderr").read_text()
    return proc, mnt, env, service


def stop_post(service, env, bucket):
    for line in service["ExecStopPost"]:
        subprocess.run(expand(line, env, bucket), capture_output=True)


def test_unit_mounts_with_its_hardening_and_stops_cleanly(rgw, bucket, imgfs_bin,
                                                          images, tmp_path):
    if not imgfs_bin.exists():
        pytest.fail(f"{imgfs_bin} not built (make)")
    proc, mnt, env, service = start_like_the_unit(imgfs_bin, rgw, bucket, tmp_path,
                                                  IMGFS_ARGS="-o log_level=warn")
    try:
        # ExecStartPost: the unit turns active once the mount is there.
        for line in service["ExecStartPost"]:
            subprocess.run(expand(line, env, bucket), env=dict(os.environ, **env),
                           check=True, timeout=40)
        shutil.copyfile(images[0], mnt / "uploads" / "unit.jpg")
        assert sha256_object(rgw.s3, bucket, "uploads/unit.jpg") == \
            sha256_file(images[0])
        assert "unit.jpg" in os.listdir(mnt / "thumbnails")
        # systemctl stop: KillSignal to the daemon, which unmounts and exits.
        proc.send_signal(getattr(signal, service["KillSignal"][0]))
        status = proc.wait(timeout=60)
        assert not mountinfo_has(mnt), "still mounted after the daemon exited"
        # Any other status makes systemd mark the unit failed on every stop.
        assert status == 0, (f"imgfs exited {status} after SIGTERM\n"
                             + (tmp_path / "imgfs.stderr").read_text())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop_post(service, env, bucket)


def test_unit_stop_post_clears_a_crashed_mount(rgw, bucket, imgfs_bin, tmp_path):
    if not imgfs_bin.exists():
        pytest.fail(f"{imgfs_bin} not built (make)")
    proc, mnt, env, service = start_like_the_unit(imgfs_bin, rgw, bucket, tmp_path)
    proc.kill()
    proc.wait()
    assert mountinfo_has(mnt)
    with pytest.raises(OSError):  # "Transport endpoint is not connected"
        os.listdir(mnt)
    stop_post(service, env, bucket)
    assert not mountinfo_has(mnt)
    assert os.listdir(mnt) == []


# ------------------------------------------------------------ fstab

def test_fstab_example_entry():
    fields = fstab_entry()
    assert len(fields) == 6
    _, mountpoint, fstype, options, dump, passno = fields
    assert fstype == "fuse.imgfs"
    assert mountpoint.startswith("/")
    opts = options.split(",")
    assert "_netdev" in opts
    assert any(o.startswith("config=/") for o in opts)
    assert (dump, passno) == ("0", "0")


MOUNT_SCRIPT = r"""
set -eu
# Make `imgfs` resolve to the build under test, in this namespace only:
# mount(8) clears PATH and mount.fuse3's shell searches its default path.
mount --bind "$BIN_DIR" /usr/local/sbin
mount -t "$FSTYPE" -o "$OPTIONS" "$BUCKET" "$MNT"
findmnt -n -o FSTYPE "$MNT"
cp "$SRC" "$MNT/uploads/fstab.jpg"
ls "$MNT/uploads"
umount "$MNT"
"""


def test_mount_t_fuse_imgfs_mounts_and_serves(rgw, bucket, imgfs_bin, images,
                                              tmp_path):
    """The fstab example's type and options through mount(8) and mount.fuse3,
    with the real daemon; a private mount namespace keeps the host clean."""
    if not imgfs_bin.exists():
        pytest.fail(f"{imgfs_bin} not built (make)")
    _, _, fstype, options, _, _ = fstab_entry()
    ini = write_ini(tmp_path / "imgfs.ini", rgw, tmp_path / "cache")
    options = ",".join(f"config={ini}" if o.startswith("config=") else o
                       for o in options.split(","))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "imgfs").symlink_to(imgfs_bin.resolve())
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = rgw.env(BIN_DIR=bin_dir, FSTYPE=fstype, OPTIONS=options,
                  BUCKET=bucket, MNT=mnt, SRC=images[0])
    res = subprocess.run(["unshare", "--mount", "--propagation", "private",
                          "sh", "-c", MOUNT_SCRIPT], env=env,
                         capture_output=True, text=True, timeout=120)
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        # umount ends the daemon mount.fuse3 started.
        wait_for(lambda: not pids_using(mnt), 30, what="imgfs to exit after umount")
    finally:
        for pid in pids_using(mnt):
            os.kill(pid, signal.SIGKILL)
    fstype_seen, *listing = res.stdout.split()
    assert fstype_seen == fstype, fstype_seen
    assert "fstab.jpg" in listing
    assert sha256_object(rgw.s3, bucket, "uploads/fstab.jpg") == \
        sha256_file(images[0])
    assert not mountinfo_has(mnt), "the namespace's mount leaked to the host"


# ------------------------------------------------------------ logs

def rsyslog_file():
    m = re.search(r'file="([^"]+)"', RSYSLOG.read_text())
    assert m, "no omfile action in the rsyslog rule"
    return m.group(1)


def test_log_shipping_files_agree():
    path = rsyslog_file()
    assert LOGROTATE.read_text().count(path) == 1
    conf = json.loads(CWAGENT.read_text())
    (entry,) = conf["logs"]["logs_collected"]["files"]["collect_list"]
    assert entry["file_path"] == path
    assert entry["log_stream_name"] == "{instance_id}"


def test_cloudwatch_agent_uses_the_terraform_log_group():
    if not (HCL2JSON.parent / "node_modules").is_dir():
        pytest.fail("tests/node is not installed: run `make deps`")
    files = [str(REPO / "infra" / f) for f in ("main.tf", "variables.tf")]
    out = subprocess.run(["node", str(HCL2JSON), *files], check=True,
                         capture_output=True, text=True).stdout
    main, variables = json.loads(out).values()
    group = main["resource"]["aws_cloudwatch_log_group"]["imgfs"][0]["name"]
    assert group == "${local.log_group_name}"
    (local_block,) = [b for b in main["locals"] if "log_group_name" in b]
    name = variables["variable"]["name"][0]["default"]
    expected = local_block["log_group_name"].replace("${var.name}", name)
    conf = json.loads(CWAGENT.read_text())
    (entry,) = conf["logs"]["logs_collected"]["files"]["collect_list"]
    assert entry["log_group_name"] == expected


RSYSLOG_MAIN = """
global(workDirectory="{dir}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{dir}/log.sock")
include(file="{dir}/30-imgfs.conf")
*.* action(type="omfile" file="{dir}/other.log")
"""


@pytest.mark.skipif(not shutil.which("rsyslogd"), reason="rsyslog not installed")
def test_rsyslog_rule_routes_imgfs_lines_only(tmp_path):
    rule = RSYSLOG.read_text().replace(rsyslog_file(), str(tmp_path / "imgfs.log"))
    (tmp_path / "30-imgfs.conf").write_text(rule)
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(RSYSLOG_MAIN.format(dir=tmp_path))
    subprocess.run(["rsyslogd", "-N1", "-f", str(conf)], check=True,
                   capture_output=True)
    proc = subprocess.Popen(["rsyslogd", "-n", "-f", str(conf),
                             "-i", str(tmp_path / "rsyslogd.pid")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        sock = tmp_path / "log.sock"
        wait_for(sock.exists, 10, what="rsyslogd's socket")
        for tag, text in (("imgfs", "put uploads/a.jpg: status 503, attempt 1"),
                          ("other", "unrelated line")):
            subprocess.run(["logger", "--socket", str(sock), "-t", tag,
                            "-p", "daemon.warning", text], check=True)
        imgfs_log, other_log = tmp_path / "imgfs.log", tmp_path / "other.log"
        wait_for(lambda: imgfs_log.exists() and other_log.exists()
                 and "unrelated" in other_log.read_text(), 10,
                 what="rsyslogd to write both files")
        assert "status 503" in imgfs_log.read_text()
        assert "unrelated" not in imgfs_log.read_text()
        assert "status 503" not in other_log.read_text(), "rule must stop"
        assert oct(imgfs_log.stat().st_mode & 0o777) == "0o640"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------------ workflows

SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_workflow_parses_and_pins_actions(name):
    doc = workflow(name)
    assert doc["name"] and doc["on"] and doc["jobs"]
    for _, step in steps(doc):
        if "uses" in step:
            assert SHA_PIN.match(step["uses"]), f"not pinned: {step['uses']}"
    for line in (WORKFLOWS / name).read_text().splitlines():
        if "uses:" in line:
            assert re.search(r"@[0-9a-f]{40} # v\d", line), \
                f"a pinned action names its version: {line.strip()}"


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_workflow_permissions_are_minimal(name):
    doc = workflow(name)
    assert doc["permissions"] == {"contents": "read"}
    for job_name, job in doc["jobs"].items():
        perms = job.get("permissions", doc["permissions"])
        assert isinstance(perms, dict), f"{job_name}: permissions must be a map"
        allowed = {"contents": "read", "id-token": "write"}
        for scope, level in perms.items():
            assert allowed.get(scope) == level, f"{job_name}: {scope}: {level}"
    assert "pull_request_target" not in doc["on"]


def test_ci_runs_make_test_on_debian_with_fuse():
    doc = workflow("ci.yml")
    assert {"push", "pull_request"} <= set(doc["on"])
    test = doc["jobs"]["test"]
    assert test["container"]["image"] == "debian:12"
    assert "--device /dev/fuse" in test["container"]["options"]
    assert any(s.get("run", "").strip() == "make test" for s in test["steps"])
    tf_runs = " ".join(s.get("run", "") for s in doc["jobs"]["terraform"]["steps"])
    assert "terraform fmt -check" in tf_runs and "terraform validate" in tf_runs


def test_deploy_uses_oidc_and_waits_for_approval():
    doc = workflow("deploy.yml")
    assert set(doc["on"]) == {"workflow_dispatch"}
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "aws-access-key-id" not in text and "secrets." not in text
    assert "-auto-approve" not in text
    plan, apply = doc["jobs"]["plan"], doc["jobs"]["apply"]
    for job in (plan, apply):
        assert job["permissions"]["id-token"] == "write"
        creds = [s for s in job["steps"]
                 if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
        assert len(creds) == 1 and creds[0]["with"]["role-to-assume"]
    plan_runs = [s.get("run", "") for s in plan["steps"]]
    for cmd in ("terraform fmt -check", "terraform init", "terraform validate",
                "terraform plan"):
        assert any(r.startswith(cmd) for r in plan_runs), cmd
    assert "environment" not in plan
    assert apply["needs"] == "plan"
    assert apply["environment"] == "production"
    apply_runs = [s.get("run", "") for s in apply["steps"]]
    assert "terraform apply -no-color -input=false tfplan" in apply_runs
