"""Thumbnails ready when the upload is, in several sizes.

Eager thumbnails are made from the bytes written through the mount, with no
GET of the source (the server's access log says so); thumbnails-256/ mirrors
thumbnails/ with 256-px thumbnails, stored in the bucket under
thumbnails/@256/; replacing or deleting a source follows through every size;
kill -9 in the middle of eager work leaves nothing wrong behind; read-ahead
makes the next thumbnails of a folder while a reader is on the first one;
thumb_eager=false makes none eagerly. Thumbnails are decoded with Pillow.
"""

import io
import os
import pathlib
import shutil
import sys
import urllib.request

import pytest
from PIL import Image

from helpers import list_keys, put_many, wait_for

SIZES = "128,256"
EAGER = "imgfs_thumbnails_eager_total"
GENERATED = "imgfs_thumbnails_generated_total"
AHEAD = "imgfs_thumbnails_ahead_total"

from test_thumbnails import decode, fits, read_thumb, source_gets  # noqa: E402
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from faultproxy import ProxyProcess  # noqa: E402


@pytest.fixture
def proxy(rgw):
    p = ProxyProcess(rgw.port)
    yield p
    p.stop()


def source_dims(path):
    with Image.open(path) as s:
        return s.size


def named(paths):
    """{unique name: path}: the wallpapers repeat names (screenshot.png)."""
    return {f"{i:02d}-{p.name}": p for i, p in enumerate(paths)}


def copy_in(m, files):
    for n, p in files.items():
        shutil.copy(p, m.uploads / n)


def check_sizes(m, name, sw, sh, folder=""):
    """Both sizes of name's thumbnail fit their box (Pillow decodes them)."""
    for area, edge in ((m.thumbs, 128), (m.path / "thumbnails-256", 256)):
        t = decode(read_thumb(area / folder / name))
        assert fits(t.width, t.height, sw, sh, edge), f"{name} {edge}: {sw}x{sh} -> {t.size}"


def test_eager_after_cp_makes_no_source_get(rgw, bucket, mount, images):
    """cp into uploads/ then reading at once: every thumbnail of both sizes
    is right, made from the bytes uploaded (no GET of a source), and both
    sizes are stored in the bucket."""
    subset = named(images[:10])
    m = mount(bucket, opts={"thumb_sizes": SIZES})
    mark = rgw.log_mark()
    copy_in(m, subset)
    for n, p in subset.items():
        check_sizes(m, n, *source_dims(p))
    assert m.metric(EAGER) == len(subset)  # every decode used the bytes written
    assert source_gets(rgw, bucket, mark) == []
    assert m.metric(GENERATED) == len(subset)  # one decode per source for both sizes
    stored = list_keys(rgw.s3, bucket, "thumbnails/")
    for n in subset:
        assert f"thumbnails/{n}" in stored
        assert f"thumbnails/@256/{n}" in stored


def test_eager_finishes_without_a_reader(rgw, bucket, mount, images):
    """Nobody reads: the thumbnails of what cp wrote still appear in the
    bucket and SQLite, and a later remount serves them with no GET."""
    subset = named(images[10:16])
    m = mount(bucket, opts={"thumb_sizes": SIZES})
    mark = rgw.log_mark()
    copy_in(m, subset)
    wait_for(lambda: m.metric(EAGER) == len(subset), 120, what="eager thumbnails of every file")
    keys = list_keys(rgw.s3, bucket, "thumbnails/")
    assert len(keys) == 2 * len(subset)
    m.remount()
    for n, p in subset.items():
        check_sizes(m, n, *source_dims(p))
    assert source_gets(rgw, bucket, mark) == []
    assert m.metric(GENERATED) == 0


def test_thumbnails_256_lists_every_image(rgw, bucket, mount, images):
    """thumbnails-256/ lists every image of uploads/, folders included, at
    256 px; .links/thumbnails-256/ signs the stored 256-px object; sizes not
    configured do not exist."""
    subset = named(images[:6])
    put_many(rgw.s3, bucket, {f"uploads/f/{n}": p.read_bytes() for n, p in subset.items()})
    rgw.s3.put_object(Bucket=bucket, Key="uploads/notes.txt", Body=b"text")
    m = mount(bucket, opts={"thumb_sizes": SIZES})
    top = os.listdir(m.path)
    assert "thumbnails-256" in top and "thumbnails" in top
    big = m.path / "thumbnails-256"
    assert os.listdir(big) == ["f"]
    assert sorted(os.listdir(big / "f")) == sorted(subset)
    for n, p in subset.items():
        sw, sh = source_dims(p)
        t = decode(read_thumb(big / "f" / n))
        assert fits(t.width, t.height, sw, sh, 256), f"{n}: {sw}x{sh} -> {t.size}"
    assert "thumbnails-256" in os.listdir(m.links)
    url = (m.links / "thumbnails-256" / "f" / next(iter(subset))).read_text().strip()
    assert "/thumbnails/%40256/f/" in url or "/thumbnails/@256/f/" in url
    with urllib.request.urlopen(url) as r:
        t = Image.open(io.BytesIO(r.read()))
        assert max(t.size) == 256 or max(t.size) == max(source_dims(next(iter(subset.values()))))
    assert not (m.path / "thumbnails-512").exists()
    assert not (m.path / "thumbnails-128").exists()


def test_replace_and_delete_follow_every_size(rgw, bucket, mount):
    """Replacing a source replaces both sizes in the mount and the bucket;
    deleting it deletes both."""
    def png(w, h, rgb):
        b = io.BytesIO()
        Image.new("RGB", (w, h), rgb).save(b, "PNG")
        return b.getvalue()

    m = mount(bucket, opts={"thumb_sizes": SIZES})
    (m.uploads / "swap.png").write_bytes(png(600, 600, (255, 0, 0)))
    assert decode(read_thumb(m.path / "thumbnails-256" / "swap.png")).size == (256, 256)
    (m.uploads / "swap.png").write_bytes(png(600, 300, (0, 0, 255)))
    t = decode(read_thumb(m.path / "thumbnails-256" / "swap.png"))
    assert t.size == (256, 128) and t.convert("RGB").getpixel((5, 5))[2] > 250
    assert decode(read_thumb(m.thumbs / "swap.png")).size == (128, 64)
    etag = rgw.s3.head_object(Bucket=bucket, Key="uploads/swap.png")["ETag"]

    def stored_etag(key):
        try:
            meta = rgw.s3.head_object(Bucket=bucket, Key=key)["Metadata"]
        except rgw.s3.exceptions.ClientError:
            return None
        return meta.get("source-etag", "").partition(";")[0]

    for key in ("thumbnails/swap.png", "thumbnails/@256/swap.png"):
        wait_for(lambda: stored_etag(key) == etag, 20, what=f"{key} to follow the new source")
    (m.uploads / "swap.png").unlink()
    assert "swap.png" not in os.listdir(m.path / "thumbnails-256")
    assert not (m.path / "thumbnails-256" / "swap.png").exists()
    wait_for(lambda: list_keys(rgw.s3, bucket, "thumbnails/") == {}, 20,
             what="every size of the thumbnail to be deleted")


def test_kill9_during_eager_then_on_demand(rgw, bucket, mount, images, proxy):
    """kill -9 right after a cp, while eager thumbnails are being made:
    after the remount every thumbnail of both sizes is made on demand and
    right. The eager thumbnails' PUTs are held by the proxy, so the kill
    comes before any is kept however fast the machine is."""
    subset = named(images[16:28])
    proxy.set_rules([{"action": "stall", "seconds": 900, "ops": ["PutObject"],
                      "path": "/thumbnails/"}])
    m = mount(bucket, opts={"thumb_sizes": SIZES, "thumb_concurrency": "1",
                            "endpoint": proxy.endpoint})
    copy_in(m, subset)
    wait_for(lambda: proxy.stats()["injected_by_op"].get("PutObject"), 60,
             what="an eager thumbnail's PUT to be held")
    made = m.metric(EAGER)
    m.kill9()
    assert made < len(subset), "eager work had finished before the kill"
    proxy.set_rules([])
    m.remount()
    for n, p in subset.items():
        check_sizes(m, n, *source_dims(p))
    assert m.metric(GENERATED) >= len(subset) - made


def test_eager_off_makes_none(rgw, bucket, mount, images):
    """thumb_eager=false: nothing is stored at close, and the first read
    has to GET the source (with the data cache off: it would otherwise
    hold the bytes just uploaded)."""
    subset = named(images[:3])
    m = mount(bucket, opts={"thumb_eager": "false", "data_cache_max": "0"})
    copy_in(m, subset)
    assert m.metric(EAGER) == 0
    assert list_keys(rgw.s3, bucket, "thumbnails/") == {}
    mark = rgw.log_mark()
    for n, p in subset.items():
        t = decode(read_thumb(m.thumbs / n))
        assert fits(t.width, t.height, *source_dims(p))
    assert len(source_gets(rgw, bucket, mark)) == len(subset)
    assert m.metric(EAGER) == 0


def test_read_ahead_makes_the_next_ones(rgw, bucket, mount, images):
    """Reading the first thumbnail of a folder put by another client makes
    the next ones of the listing in the background, eight per decode slot
    (so that a slow decode does not leave the other slot idle): they are
    generated without being read, and then read from the cache."""
    files = named(images[:12])
    names = sorted(files)
    put_many(rgw.s3, bucket, {f"uploads/w/{n}": p.read_bytes() for n, p in files.items()})
    m = mount(bucket, opts={"thumb_concurrency": "2", "thumb_eager": "false"})
    listed = os.listdir(m.thumbs / "w")
    assert listed == names  # listing order is name order
    read_thumb(m.thumbs / "w" / listed[0])
    wait_for(lambda: m.metric(GENERATED) >= len(names), 60,
             what="read-ahead of all the next thumbnails")
    assert m.metric(AHEAD) == len(names) - 1
    hits = m.metric("imgfs_cache_hits_total")
    for n in listed[1:3]:
        read_thumb(m.thumbs / "w" / n)
    assert m.metric("imgfs_cache_hits_total") >= hits + 2
