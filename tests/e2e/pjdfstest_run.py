"""pjdfstest, the POSIX file system test suite, on uploads/ (make check-all,
stage "pjdfstest"; not part of make e2e: a run takes about 5 minutes). Not
a test_*.py file: run it by name,

    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e/pjdfstest_run.py

Every test file of the suite (PJDFSTEST, default /opt/ext/pjdfstest, built
there with its `pjdfstest` binary) runs as root in a folder of uploads/ of
a mount with allow_other (the suite switches to other users), one file at
a time. Its TAP output gives the number of failed subtests (a "not ok"
that is not a TODO, plus every planned subtest that never ran).

tests/pjdfstest-expected.txt lists the files that fail, with their number
of failed subtests and the causes (docs/SEMANTICS.md, "What uploads/ is
not"). The test fails when a file not listed fails, or a listed one fails
a different number of subtests: more is a regression, fewer means the
list must be brought up to date (IMGFS_PJD_REPORT=PATH writes this run's
results in the list's format, to compare or to copy from).
"""

import os
import pathlib
import re
import subprocess

import pytest

SUITE = pathlib.Path(os.environ.get("PJDFSTEST", "/opt/ext/pjdfstest"))
EXPECTED = pathlib.Path(__file__).resolve().parents[1] / "pjdfstest-expected.txt"
CAUSES = {"hardlink", "folder", "times", "keylen", "spool", "estale"}
FILE_TIMEOUT = 300


def read_expected():
    """{"group/NN.t": (failed subtests, causes)} from the checked-in list."""
    out = {}
    for n, line in enumerate(EXPECTED.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, count, causes = line.split()
        unknown = set(causes.split(",")) - CAUSES
        assert not unknown, f"{EXPECTED.name}:{n}: unknown cause {unknown}"
        out[name] = (int(count), causes)
    return out


def failed_subtests(tap):
    """Failed subtests of one file's TAP output: "not ok" lines that are not
    TODO, and planned subtests that never reported (a bail-out, a crash)."""
    plan, seen, failed = None, 0, 0
    for line in tap.splitlines():
        m = re.match(r"^1\.\.(\d+)", line)
        if m:
            plan = int(m.group(1))
        elif re.match(r"^(not )?ok\b", line):
            seen += 1
            failed += line.startswith("not ok") and "# TODO" not in line
    if plan is None:
        return 1
    return failed + max(plan - seen, 0)


def run_file(path, cwd):
    try:
        p = subprocess.run(["/bin/sh", str(path)], cwd=cwd, capture_output=True,
                           text=True, timeout=FILE_TIMEOUT)
        return failed_subtests(p.stdout)
    except subprocess.TimeoutExpired as e:
        return failed_subtests(e.stdout.decode() if e.stdout else "") or 1


@pytest.mark.deadline(1800)
def test_pjdfstest_on_uploads_fails_only_as_listed(bucket, mount):
    tests = SUITE / "tests"
    if not (SUITE / "pjdfstest").is_file() or not tests.is_dir():
        pytest.skip(f"pjdfstest is not built at {SUITE} (set PJDFSTEST)")
    assert os.geteuid() == 0, "pjdfstest must run as root"
    expected = read_expected()
    m = mount(bucket, opts=["allow_other"])
    work = m.uploads / "pjd"
    work.mkdir()
    results = {}
    for t in sorted(tests.glob("*/*.t")):
        name = f"{t.parent.name}/{t.name}"
        results[name] = run_file(t, work)
    report = os.environ.get("IMGFS_PJD_REPORT")
    if report:
        with open(report, "w") as f:
            for name, n in results.items():
                if n:
                    f.write(f"{name} {n} {expected.get(name, (0, '?'))[1]}\n")
    wrong = []
    for name, n in results.items():
        want = expected.get(name, (0, ""))[0]
        if n != want:
            wrong.append(f"{name}: {n} failed subtests, listed {want}")
    missing = sorted(set(expected) - set(results))
    assert not missing, f"listed but not in the suite: {missing}"
    total = sum(results.values())
    print(f"pjdfstest: {len(results)} files, {sum(1 for n in results.values() if n)} "
          f"failing, {total} failed subtests")
    assert not wrong, "pjdfstest results differ from the list:\n" + "\n".join(wrong)
