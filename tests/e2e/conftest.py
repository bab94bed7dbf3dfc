"""Shared fixtures of imgfs' end-to-end tests.

Everything is real: a Ceph RADOS Gateway on loopback (tests/rgw-up.sh), the
daemon mounted with FUSE, Debian's wallpapers as images, boto3 to check the
bucket independently. Run with Debian's interpreter:

    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e

Fixtures
--------
rgw (session)
    The S3 server. Attributes and methods:
      .endpoint      "http://127.0.0.1:PORT"
      .access_key, .secret_key, .region ("us-east-1")
      .s3            a boto3 S3 client (path-style, no AWS_CA_BUNDLE)
      .env(**extra)  a complete environment for running imgfs or a tool:
                     os.environ without the caller's AWS_* settings, plus
                     AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
                     AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION,
                     IMGFS_ENDPOINT; extra=value adds, extra=None removes
      .log_path      radosgw's log; "debug rgw = 1" writes one access line
                     per request ('"GET /bucket/key?query HTTP/1.1" 200')
      .log_mark()    the log's current size, for .requests(since=...)
      .requests(since=0, method=None, bucket=None, prefix=None,
                include_boto=False)
                     the access lines logged after `since` as Request
                     tuples (method, path, query, status, agent); path is
                     URL-decoded and starts with "/bucket/"; boto3's own
                     requests are left out unless include_boto
      .stop(), .start(), .restart()
                     stop/start radosgw only (the cluster keeps its data);
                     .can_restart says whether this RGW supports it
    IMGFS_TEST_ENDPOINT=http://127.0.0.1:PORT reuses a running RGW (keys from
    IMGFS_TEST_ACCESS_KEY/IMGFS_TEST_SECRET_KEY, default the ones
    tests/rgw-up.sh uses; IMGFS_TEST_CEPH_DIR gives its log and restarts).
    Otherwise one is started for the session in a temporary directory, on
    IMGFS_RGW_PORT/IMGFS_MON_PORT/IMGFS_OSD_PORT_MIN when set, else on free
    ports chosen from the pid; IMGFS_RGW_OBJECTSTORE (memstore, the
    default, or bluestore), IMGFS_RGW_MEMSTORE_BYTES (default 6 GiB) and
    IMGFS_RGW_BLUESTORE_BYTES pass through to tests/rgw-up.sh;
    IMGFS_KEEP_RGW=1 keeps its directory (logs) afterwards.

bucket (function)
    The name (str) of a new, empty bucket. Afterwards its multipart uploads
    are aborted, its objects deleted and the bucket removed.

mount (function)
    A factory: m = mount(bucket, opts=None, env=None, fg_args=None,
    cache_dir=None, timeout=None) runs $IMGFS_BIN (default build/imgfs)
    with -f, -o endpoint=...,region=...,cache_dir=... plus opts (a dict, a
    "k=v,k=v" string or a list of "k=v"), env on top of rgw.env(), and
    fg_args before BUCKET MOUNTPOINT (IMGFS_TEST_LOG_LEVEL=debug adds
    log_level=debug to every mount); it returns once the mountpoint shows
    in /proc/self/mountinfo, and fails the test with the daemon's stderr if
    it exits first. The Mount object:
      .path, .uploads, .thumbs, .links (pathlib.Path)
      .bucket, .cache_dir, .proc, .pid, .mounted()
      .stderr_text()         the current daemon's stderr so far
      .metrics()             .metrics parsed: {'name{a="x",b="y"}': value}
                             (labels sorted; no braces without labels)
      .metric(name, **labels) the sum of the samples of name whose labels
                             include the given ones (0.0 if none)
      .unmount()             fusermount3 -u, wait, assert exit status 0
      .remount(opts=None, env=None, fg_args=None)
                             unmount and mount the same bucket on the same
                             path with the same cache_dir (and the previous
                             opts/env unless given); returns self
      .kill9()               SIGKILL the daemon (then .remount() works)
    At teardown every mount still up is unmounted, and the test fails if a
    daemon crashed or its stderr holds a sanitizer report.

images (session)
    Sorted list of pathlib.Path: the distinct JPEG/PNG/WebP files of
    gnome-backgrounds and plasma-workspace-wallpapers (fails if < 50).

tools (session)
    pathlib.Path of BUILD/tools, where BUILD is $IMGFS_BUILD, else make's
    $BUILD (`make asan` passes BUILD=build/asan), else build.

imgfs_bin (session)
    pathlib.Path of the daemon under test: $IMGFS_BIN, else BUILD/imgfs.

Marks
    slow            heavy tests (GiB-sized); they run by default, deselect
                    with -m "not slow"
    deadline(secs)  the test's time limit (default 300 s, slow 1200 s),
                    multiplied by IMGFS_TIMEOUT_SCALE (default 3 when the
                    daemon is built with ASan, else 1)
"""

import signal

import pytest

from helpers import (
    RGW,
    MountFactory,
    build_dir,
    empty_and_delete_bucket,
    find_images,
    imgfs_bin_path,
    timeout_scale,
    unique_bucket_name,
)

DEFAULT_DEADLINE = 300
SLOW_DEADLINE = 1200


class DeadlineExceeded(Exception):
    pass


def _on_alarm(signum, frame):
    raise DeadlineExceeded("test exceeded its deadline (mark deadline/IMGFS_TIMEOUT_SCALE)")


@pytest.fixture(autouse=True)
def _deadline(request):
    """Fail a test that hangs (e.g. on a stuck FUSE request) instead of
    hanging the whole run: SIGALRM interrupts the blocked call."""
    mark = request.node.get_closest_marker("deadline")
    if mark is not None:
        secs = float(mark.args[0])
    elif request.node.get_closest_marker("slow") is not None:
        secs = SLOW_DEADLINE
    else:
        secs = DEFAULT_DEADLINE
    secs *= timeout_scale()
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, secs)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def imgfs_bin():
    return imgfs_bin_path()


@pytest.fixture(scope="session")
def tools():
    return build_dir() / "tools"


@pytest.fixture(scope="session")
def images():
    found = find_images()
    if len(found) < 50:
        pytest.fail(
            f"only {len(found)} images under /usr/share/backgrounds and "
            "/usr/share/wallpapers: install gnome-backgrounds and "
            "plasma-workspace-wallpapers (make deps)"
        )
    return found


@pytest.fixture(scope="session")
def rgw(tmp_path_factory):
    server = RGW.from_environment(tmp_path_factory)
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture
def bucket(rgw):
    name = unique_bucket_name()
    rgw.s3.create_bucket(Bucket=name)
    yield name
    if rgw.can_restart and not rgw.running():
        rgw.start()
    empty_and_delete_bucket(rgw.s3, name)


@pytest.fixture
def mount(rgw, bucket, imgfs_bin, tmp_path):
    # Depends on `bucket` so that mounts are torn down before buckets.
    if not imgfs_bin.exists():
        pytest.fail(f"{imgfs_bin} not built (make)")
    factory = MountFactory(rgw, imgfs_bin, tmp_path)
    yield factory
    problems = factory.close_all()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)

