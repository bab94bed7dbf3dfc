"""thumbnails/: lazily generated libvips thumbnails, through a real mount.

Each "Done means" item of the thumbnails issue is a test here: the real
image set fits the box with its aspect kept; images made from known pixels
(EXIF orientation, CMYK, 16-bit, alpha, animation, 1x1, GPS) come out
right; hostile files read as EIO fast with one log line; a remount serves
everything from SQLite without reading a source; replacing and deleting a
source follow through; `ls -l` of 1,000 images decodes nothing; eight
parallel first readers cause one generation. Thumbnails are decoded with
Pillow, independently of libvips; the bucket is checked with boto3 and the
server's own access log.
"""

import concurrent.futures
import errno
import io
import mmap
import os
import re
import shutil
import struct
import subprocess
import threading
import time
import urllib.parse
import zlib

import pytest
from PIL import Image

from helpers import list_keys, put_many, wait_for

EDGE = 128
GENERATED = "imgfs_thumbnails_generated_total"
CACHE_HITS = "imgfs_cache_hits_total"


# ----------------------------------------------------------------- helpers


def encode(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def decode(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def fits(tw, th, sw, sh, edge=EDGE):
    """The thumbnail of an sw x sh source fits edge x edge, its long side
    is exactly edge (or the source's when smaller), and its short side is
    within one pixel of the source's aspect."""
    if max(sw, sh) <= edge:
        return (tw, th) == (sw, sh)
    if sw >= sh:
        return tw == edge and abs(th - sh * edge / sw) <= 1.0
    return th == edge and abs(tw - sw * edge / sh) <= 1.0


_ACCESS = re.compile(r'"(GET|HEAD|PUT|POST|DELETE) (/\S*) HTTP/[\d.]+" (\d+) (.*)$')


def server_requests(rgw, bucket, since, method, prefix):
    """(method, key, status) of the requests for keys under prefix in the
    bucket that the server logged since the mark, boto3's own left out.
    Read here because imgfs may send no User-Agent, which
    rgw.requests() does not parse."""
    rgw.log_mark()  # flushes the log
    with open(rgw.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", errors="replace")
    out = []
    for line in text.splitlines():
        m = _ACCESS.search(line)
        if not m or "Boto3/" in m.group(4):
            continue
        path = urllib.parse.unquote(m.group(2).partition("?")[0])
        key = path[len(f"/{bucket}/"):] if path.startswith(f"/{bucket}/") else None
        if m.group(1) == method and key is not None and key.startswith(prefix):
            out.append((m.group(1), key, int(m.group(3))))
    return out


def source_gets(rgw, bucket, since):
    """GETs of source objects the server saw since the mark."""
    return server_requests(rgw, bucket, since, "GET", "uploads/")


def daemon_gets(m):
    return m.metric("imgfs_s3_requests_total", op="GET")


def read_thumb(path):
    with open(path, "rb") as f:
        return f.read()


def png_bomb(width, height):
    """A valid 1-bit greyscale PNG of width x height zero pixels; deflate
    makes it small, so it is the header that must stop it."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" * (1 + (width + 7) // 8)
    z = zlib.compressobj(9)
    parts = [z.compress(row) for _ in range(height)]
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def known_images():
    """{name: bytes} of images made from known pixels."""
    out = {}
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out["orient6.jpg"] = encode(Image.new("RGB", (400, 200), (200, 30, 30)), "JPEG", exif=exif)
    out["cmyk.jpg"] = encode(Image.new("CMYK", (256, 256), (0, 255, 255, 0)), "JPEG")
    out["deep16.png"] = encode(Image.new("I;16", (300, 150), 40000), "PNG")
    rgba = Image.new("RGBA", (200, 200), (255, 0, 0, 255))
    rgba.paste((255, 0, 0, 0), (0, 0, 100, 200))
    out["alpha.png"] = encode(rgba, "PNG")
    frames = [Image.new("RGB", (160, 100), c) for c in ((255, 0, 0), (0, 0, 255))]
    out["anim.gif"] = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out["dot.png"] = encode(Image.new("RGB", (1, 1), (0, 255, 0)), "PNG")
    gps = Image.Exif()
    gps[0x010F] = "SecretCam"
    gps[0x8825] = {1: "N", 2: (48.0, 51.0, 29.64), 3: "E", 4: (2.0, 17.0, 40.2)}
    out["gps.jpg"] = encode(Image.new("RGB", (300, 200), (10, 120, 200)), "JPEG", exif=gps)
    return out


# ------------------------------------------------------------------- tests


@pytest.mark.deadline(600)
def test_real_image_set_and_remount_serves_from_sqlite(rgw, bucket, mount, images):
    """Every real image's thumbnail decodes and fits the box with its
    aspect kept; stat reports its exact size afterwards; the thumbnail is
    stored in the bucket with the source ETag; after a remount every
    thumbnail comes from SQLite without one GET of a source."""
    names = {f"{i:03d}-{p.name}": p for i, p in enumerate(images)}
    put_many(rgw.s3, bucket, {f"uploads/set/{n}": p.read_bytes() for n, p in names.items()})
    m = mount(bucket)
    mark0 = rgw.log_mark()
    assert sorted(os.listdir(m.thumbs / "set")) == sorted(names)
    assert m.metric(GENERATED) == 0

    sizes = {}
    for name, src in names.items():
        data = read_thumb(m.thumbs / "set" / name)
        with Image.open(src) as s:
            sw, sh = s.size
        t = decode(data)
        assert fits(t.width, t.height, sw, sh), f"{name}: {sw}x{sh} -> {t.width}x{t.height}"
        assert t.format == {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}[src.suffix.lower()]
        assert os.stat(m.thumbs / "set" / name).st_size == len(data)
        sizes[name] = len(data)
    assert m.metric(GENERATED) == len(names)
    assert len(source_gets(rgw, bucket, mark0)) == len(names)

    stored = list_keys(rgw.s3, bucket, "thumbnails/set/")
    assert stored == {f"thumbnails/set/{n}": s for n, s in sizes.items()}
    name = next(iter(names))
    head = rgw.s3.head_object(Bucket=bucket, Key=f"thumbnails/set/{name}")
    src_head = rgw.s3.head_object(Bucket=bucket, Key=f"uploads/set/{name}")
    # the source's ETag and the thumbnail spec (size/crop), so that another
    # instance with other settings never takes it for its own
    etag, _, spec = head["Metadata"].get("source-etag", "").partition(";")
    assert etag == src_head["ETag"]
    assert spec.startswith(f"{EDGE}/none/")
    assert head["ContentType"].startswith("image/")

    m.remount()
    mark = rgw.log_mark()
    for name, size in sizes.items():
        assert os.stat(m.thumbs / "set" / name).st_size == size
        assert len(read_thumb(m.thumbs / "set" / name)) == size
    assert source_gets(rgw, bucket, mark) == []
    assert server_requests(rgw, bucket, mark, "GET", "thumbnails/") == []
    assert daemon_gets(m) == 0
    assert m.metric(GENERATED) == 0
    assert m.metric(CACHE_HITS) >= len(names)


def test_known_pixels(rgw, bucket, mount):
    """Orientation, CMYK, 16 bits, alpha, animation, 1x1 and GPS EXIF, on
    images made here from known pixels."""
    imgs = known_images()
    put_many(rgw.s3, bucket, {f"uploads/k/{n}": d for n, d in imgs.items()})
    m = mount(bucket)
    t = {n: read_thumb(m.thumbs / "k" / n) for n in imgs}

    rot = decode(t["orient6.jpg"])
    assert (rot.width, rot.height) == (64, EDGE)  # portrait
    assert "exif" not in rot.info or 0x0112 not in rot.getexif()

    cmyk = decode(t["cmyk.jpg"])
    assert cmyk.mode == "RGB" and cmyk.size == (EDGE, EDGE)
    r, g, b = cmyk.getpixel((64, 64))
    assert r > 180 and g < 90 and b < 90, (r, g, b)

    deep = decode(t["deep16.png"])
    assert deep.format == "PNG" and deep.size == (EDGE, 64)
    assert deep.mode in ("L", "LA", "RGB", "RGBA", "P")  # 8 bits (P: palette PNG)
    v = deep.convert("RGB").getpixel((10, 10))
    v = v[0] if isinstance(v, tuple) else v
    assert abs(v - 40000 * 255 / 65535) <= 3

    alpha = decode(t["alpha.png"])
    assert alpha.mode in ("RGBA", "LA") or "transparency" in alpha.info
    alpha = alpha.convert("RGBA")
    assert alpha.getpixel((10, 64))[3] < 5
    assert alpha.getpixel((118, 64))[3] > 250 and alpha.getpixel((118, 64))[0] > 250

    gif = decode(t["anim.gif"])
    assert gif.format == "GIF" and getattr(gif, "n_frames", 1) == 2  # still animated
    assert gif.size == (EDGE, 80)
    r, g, b = gif.convert("RGB").getpixel((64, 40))
    assert r > 200 and b < 60  # the first frame, red
    gif.seek(1)
    r, g, b = gif.convert("RGB").getpixel((64, 40))
    assert b > 200 and r < 60  # the second, blue

    dot = decode(t["dot.png"])
    assert dot.size == (1, 1) and dot.convert("RGB").getpixel((0, 0))[1] > 250

    gps = decode(t["gps.jpg"])
    assert b"SecretCam" not in t["gps.jpg"] and b"Exif" not in t["gps.jpg"]
    assert not gps.getexif()
    assert "exif" not in gps.info


def test_alpha_source_as_jpeg_is_flattened_on_white(rgw, bucket, mount):
    """A PNG with transparency under a .jpg name gives a JPEG thumbnail
    whose transparent part is white."""
    rgba = Image.new("RGBA", (200, 200), (255, 0, 0, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 100, 200))
    rgw.s3.put_object(Bucket=bucket, Key="uploads/flat.jpg", Body=encode(rgba, "PNG"))
    m = mount(bucket)
    t = decode(read_thumb(m.thumbs / "flat.jpg"))
    assert t.format == "JPEG" and t.mode == "RGB"
    assert min(t.getpixel((10, 64))) > 245
    r, g, b = t.getpixel((118, 64))
    assert r > 240 and g < 15 and b < 15


@pytest.mark.deadline(120)
def test_hostile_input_fails_fast_once(rgw, bucket, mount):
    """Truncated, not an image, empty, 30000x30000: each read is EIO in
    under a second, logged once (also when read again), and the daemon
    keeps serving."""
    good = encode(Image.new("RGB", (800, 600), (90, 10, 10)), "JPEG")
    bad = {
        "truncated.jpg": good[: len(good) // 2],
        "text.jpg": b"this is a text file, not a picture\n" * 10,
        "empty.jpg": b"",
        "huge.png": png_bomb(30000, 30000),
    }
    put_many(rgw.s3, bucket, {f"uploads/{n}": d for n, d in bad.items()})
    rgw.s3.put_object(Bucket=bucket, Key="uploads/good.jpg", Body=good)
    m = mount(bucket)
    for name in bad:
        for attempt in range(2):
            t0 = time.monotonic()
            with pytest.raises(OSError) as e:
                read_thumb(m.thumbs / name)
            dt = time.monotonic() - t0
            assert e.value.errno == errno.EIO, name
            assert dt < 1.0, f"{name}: {dt:.2f} s"
        lines = [ln for ln in m.stderr_text().splitlines() if name in ln]
        assert len(lines) == 1, f"{name}: {lines}"
        assert decode(read_thumb(m.thumbs / "good.jpg")).size == (EDGE, 96)
    assert m.mounted() and m.proc.poll() is None
    assert m.metric("imgfs_thumbnail_errors_total") == len(bad)

    # The failures are remembered across a restart: no read, no new line.
    m.remount()
    mark = rgw.log_mark()
    for name in bad:
        with pytest.raises(OSError) as e:
            read_thumb(m.thumbs / name)
        assert e.value.errno == errno.EIO
    assert source_gets(rgw, bucket, mark) == []
    assert not [ln for ln in m.stderr_text().splitlines() if any(n in ln for n in bad)]


def test_replace_and_delete_source(rgw, bucket, mount):
    """A replaced source gets a new thumbnail on the next read, in the
    listing, the cache and the bucket; a deleted one loses both."""
    red = encode(Image.new("RGB", (300, 300), (255, 0, 0)), "PNG")
    blue = encode(Image.new("RGB", (300, 200), (0, 0, 255)), "PNG")
    m = mount(bucket)
    (m.uploads / "swap.png").write_bytes(red)
    t = decode(read_thumb(m.thumbs / "swap.png"))
    assert t.size == (EDGE, EDGE) and t.convert("RGB").getpixel((5, 5))[0] > 250

    (m.uploads / "swap.png").write_bytes(blue)
    t = decode(read_thumb(m.thumbs / "swap.png"))
    assert t.size == (EDGE, 85) and t.convert("RGB").getpixel((5, 5))[2] > 250
    src_etag = rgw.s3.head_object(Bucket=bucket, Key="uploads/swap.png")["ETag"]
    wait_for(
        lambda: rgw.s3.head_object(Bucket=bucket, Key="thumbnails/swap.png")["Metadata"]
        .get("source-etag", "").partition(";")[0] == src_etag,
        10, what="the stored thumbnail to follow the new source",
    )

    (m.uploads / "swap.png").unlink()
    assert "swap.png" not in os.listdir(m.thumbs)
    assert not (m.thumbs / "swap.png").exists()
    wait_for(lambda: "thumbnails/swap.png" not in list_keys(rgw.s3, bucket, "thumbnails/"), 10,
             what="the thumbnail object to be deleted")


def test_source_replaced_by_another_client(rgw, bucket, mount):
    """A source replaced behind the daemon's back (new ETag) is never
    served its old thumbnail once the daemon sees the new ETag."""
    rgw.s3.put_object(Bucket=bucket, Key="uploads/other.png",
                      Body=encode(Image.new("RGB", (200, 200), (255, 0, 0)), "PNG"))
    m = mount(bucket, opts={"metadata_ttl": "1"})
    assert decode(read_thumb(m.thumbs / "other.png")).convert("RGB").getpixel((5, 5))[0] > 250
    rgw.s3.put_object(Bucket=bucket, Key="uploads/other.png",
                      Body=encode(Image.new("RGB", (200, 100), (0, 255, 0)), "PNG"))
    time.sleep(1.5)
    t = decode(read_thumb(m.thumbs / "other.png"))
    assert t.size == (EDGE, 64) and t.convert("RGB").getpixel((5, 5))[1] > 250


def test_thumbnail_of_a_source_replaced_within_metadata_ttl(rgw, bucket, mount):
    """The daemon still holds the old ETag (a long metadata_ttl) when
    another client replaces the source: the first thumbnail read re-stats
    the source and returns the new image's thumbnail, not ENOENT."""
    rgw.s3.put_object(Bucket=bucket, Key="uploads/swap.png",
                      Body=encode(Image.new("RGB", (200, 200), (255, 0, 0)), "PNG"))
    m = mount(bucket, opts={"metadata_ttl": "3600"})
    assert "swap.png" in os.listdir(m.uploads)  # the old ETag is cached
    rgw.s3.put_object(Bucket=bucket, Key="uploads/swap.png",
                      Body=encode(Image.new("RGB", (200, 100), (0, 255, 0)), "PNG"))
    t = decode(read_thumb(m.thumbs / "swap.png"))
    assert t.size == (EDGE, 64) and t.convert("RGB").getpixel((5, 5))[1] > 250


@pytest.mark.deadline(300)
def test_listing_1000_images_decodes_nothing(rgw, bucket, mount):
    """ls -l thumbnails/ over 1,000 images: all listed, none generated,
    no source read."""
    tiny = encode(Image.new("RGB", (64, 48), (1, 2, 3)), "PNG")
    put_many(rgw.s3, bucket, {f"uploads/many/img{i:04d}.png": tiny for i in range(1000)})
    m = mount(bucket)
    mark = rgw.log_mark()
    p = subprocess.run(["ls", "-l", str(m.thumbs / "many")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == ""
    assert len([ln for ln in p.stdout.splitlines() if "img" in ln]) == 1000
    assert m.metric(GENERATED) == 0
    assert source_gets(rgw, bucket, mark) == []


def test_eight_parallel_readers_generate_once(rgw, bucket, mount):
    """Eight readers opening the same new thumbnail at once get the same
    bytes from a single generation and a single GET of the source."""
    src = encode(Image.new("RGB", (2000, 1500), (20, 200, 20)), "JPEG", quality=95)
    rgw.s3.put_object(Bucket=bucket, Key="uploads/crowd.jpg", Body=src)
    m = mount(bucket)
    os.listdir(m.thumbs)
    mark = rgw.log_mark()
    barrier = threading.Barrier(8)

    def reader(_):
        barrier.wait()
        return read_thumb(m.thumbs / "crowd.jpg")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(reader, range(8)))
    assert len(set(results)) == 1
    assert decode(results[0]).size == (EDGE, 96)
    assert m.metric(GENERATED) == 1
    assert source_gets(rgw, bucket, mark) == [("GET", "uploads/crowd.jpg", 200)]


def test_first_access_by_every_kind_of_reader(rgw, bucket, mount, tmp_path):
    """cat, cp, file, Python's read() and mmap each get the whole valid
    image on their first access."""
    im = Image.new("RGB", (640, 480), (200, 100, 50))
    names = ["cat.jpg", "cp.jpg", "file.jpg", "py.jpg", "mmap.jpg"]
    put_many(rgw.s3, bucket, {f"uploads/{n}": encode(im, "JPEG") for n in names})
    m = mount(bucket)
    got = {}
    got["cat.jpg"] = subprocess.run(["cat", str(m.thumbs / "cat.jpg")], capture_output=True,
                                    check=True).stdout
    shutil.copy(m.thumbs / "cp.jpg", tmp_path / "cp.jpg")
    got["cp.jpg"] = (tmp_path / "cp.jpg").read_bytes()
    out = subprocess.run(["file", "-b", str(m.thumbs / "file.jpg")], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("JPEG image data"), out
    assert "128x96" in out.replace(" ", ""), out
    got["py.jpg"] = open(m.thumbs / "py.jpg", "rb").read()
    with open(m.thumbs / "mmap.jpg", "rb") as f:
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            got["mmap.jpg"] = bytes(mm)
    for name, data in got.items():
        assert decode(data).size == (EDGE, 96), name
        assert data == read_thumb(m.thumbs / name), name
        assert os.stat(m.thumbs / name).st_size == len(data)


def test_thumbnails_are_read_only(rgw, bucket, mount):
    rgw.s3.put_object(Bucket=bucket, Key="uploads/ro.png",
                      Body=encode(Image.new("RGB", (10, 10)), "PNG"))
    m = mount(bucket)
    t = m.thumbs / "ro.png"
    for op in (
        lambda: open(t, "wb"),
        lambda: open(t, "r+b"),
        lambda: open(m.thumbs / "new.png", "wb"),
        lambda: os.unlink(t),
        lambda: os.rename(t, m.thumbs / "moved.png"),
        lambda: os.mkdir(m.thumbs / "dir"),
        lambda: os.truncate(t, 0),
    ):
        with pytest.raises(OSError) as e:
            op()
        assert e.value.errno == errno.EROFS
    assert decode(read_thumb(t)).size == (10, 10)


@pytest.mark.deadline(600)
def test_cache_bound_eviction_and_bucket_reuse(rgw, bucket, mount, images):
    """With thumb_size=512 and cache_max=1M the cache evicts down to its
    bound; evicted thumbnails and a second instance with an empty cache
    take them from the bucket instead of decoding a source again."""
    names = {f"{i:03d}-{p.name}": p for i, p in enumerate(images)}
    put_many(rgw.s3, bucket, {f"uploads/{n}": p.read_bytes() for n, p in names.items()})
    opts = {"thumb_size": "512", "cache_max": "1M"}
    m = mount(bucket, opts=opts)
    sizes = {}
    for name, src in names.items():
        t = decode(data := read_thumb(m.thumbs / name))
        with Image.open(src) as s:
            assert fits(t.width, t.height, *s.size, edge=512), name
        sizes[name] = len(data)
    assert sum(sizes.values()) > 2 * 1024 * 1024
    assert m.metric(GENERATED) == len(names)
    assert m.metric("imgfs_cache_evictions_total") > 0
    assert 0 < m.metric("imgfs_cache_bytes") <= 1024 * 1024
    assert m.metric("imgfs_cache_entries") < len(names)

    mark = rgw.log_mark()
    for name, size in sizes.items():
        assert len(read_thumb(m.thumbs / name)) == size
    assert source_gets(rgw, bucket, mark) == []
    assert m.metric(GENERATED) == len(names)
    assert m.metric("imgfs_thumbnail_s3_hits_total") > 0

    other = mount(bucket, opts=opts)
    mark = rgw.log_mark()
    for name, size in sizes.items():
        assert len(read_thumb(other.thumbs / name)) == size
    assert source_gets(rgw, bucket, mark) == []
    assert other.metric(GENERATED) == 0
    assert other.metric("imgfs_thumbnail_s3_hits_total") == len(names)


def test_cache_survives_kill9(rgw, bucket, mount):
    """kill -9 after thumbnails were made: the SQLite cache passes
    integrity_check and serves them after the remount, no source read."""
    imgs = {f"k{i}.png": encode(Image.new("RGB", (300 + i, 200), (i * 20, 0, 0)), "PNG") for i in range(10)}
    put_many(rgw.s3, bucket, {f"uploads/{n}": d for n, d in imgs.items()})
    m = mount(bucket)
    sizes = {n: len(read_thumb(m.thumbs / n)) for n in imgs}
    m.kill9()
    db = m.cache_dir / "thumbs.db"
    assert db.exists()
    p = subprocess.run(["sqlite3", str(db), "PRAGMA integrity_check;"], capture_output=True, text=True)
    assert p.stdout.strip() == "ok", p.stdout + p.stderr
    m.remount()
    mark = rgw.log_mark()
    for n, size in sizes.items():
        assert len(read_thumb(m.thumbs / n)) == size
    assert source_gets(rgw, bucket, mark) == []
    assert m.metric(GENERATED) == 0
    assert m.metric(CACHE_HITS) >= len(imgs)


def vips_encode(tmp_path, name, width, height, rgb):
    """An image libvips writes (HEIC, AVIF: Pillow cannot), as bytes."""
    src = tmp_path / "plain.png"
    src.write_bytes(encode(Image.new("RGB", (width, height), rgb), "PNG"))
    out = tmp_path / name
    subprocess.run(["vips", "copy", str(src), str(out)], check=True, capture_output=True)
    return out.read_bytes()


def test_heic_and_avif_sources(rgw, bucket, mount, tmp_path):
    """A HEIC source gets a JPEG thumbnail named NAME.heic.jpg (browsers
    cannot show HEIC); an AVIF source keeps its name and format."""
    rgw.s3.put_object(Bucket=bucket, Key="uploads/phone.heic",
                      Body=vips_encode(tmp_path, "p.heic", 400, 300, (0, 0, 200)))
    rgw.s3.put_object(Bucket=bucket, Key="uploads/new.avif",
                      Body=vips_encode(tmp_path, "n.avif", 300, 400, (0, 200, 0)))
    m = mount(bucket)
    assert sorted(os.listdir(m.thumbs)) == ["new.avif", "phone.heic.jpg"]
    t = decode(read_thumb(m.thumbs / "phone.heic.jpg"))
    assert t.format == "JPEG" and t.size == (EDGE, 96)
    assert t.getpixel((64, 48))[2] > 150
    data = read_thumb(m.thumbs / "new.avif")
    assert data[4:12] == b"ftypavif"
    (tmp_path / "thumb.avif").write_bytes(data)
    info = subprocess.run(["vipsheader", str(tmp_path / "thumb.avif")], capture_output=True,
                          text=True, check=True)
    assert "96x128" in info.stdout, info.stdout
    head = rgw.s3.head_object(Bucket=bucket, Key="thumbnails/phone.heic.jpg")
    assert head["ContentType"] == "image/jpeg"
    assert rgw.s3.head_object(Bucket=bucket, Key="thumbnails/new.avif")["ContentType"] == "image/avif"


def test_crop_attention_fills_the_box(rgw, bucket, mount):
    rgw.s3.put_object(Bucket=bucket, Key="uploads/wide.jpg",
                      Body=encode(Image.new("RGB", (900, 300), (120, 120, 120)), "JPEG"))
    m = mount(bucket, opts={"thumb_crop": "attention", "thumb_size": "100"})
    assert decode(read_thumb(m.thumbs / "wide.jpg")).size == (100, 100)


def test_pixel_limit_option(rgw, bucket, mount):
    """max_pixels refuses a source from its header: EIO, one log line."""
    rgw.s3.put_object(Bucket=bucket, Key="uploads/big.png",
                      Body=encode(Image.new("RGB", (2000, 1500), (1, 1, 1)), "PNG"))
    rgw.s3.put_object(Bucket=bucket, Key="uploads/small.png",
                      Body=encode(Image.new("RGB", (1000, 1000), (1, 1, 1)), "PNG"))
    m = mount(bucket, opts={"max_pixels": "2000000"})
    with pytest.raises(OSError) as e:
        read_thumb(m.thumbs / "big.png")
    assert e.value.errno == errno.EIO
    assert decode(read_thumb(m.thumbs / "small.png")).size == (EDGE, EDGE)
    lines = [ln for ln in m.stderr_text().splitlines() if "big.png" in ln]
    assert len(lines) == 1 and "2000x1500" in lines[0], lines


def test_other_thumb_size_does_not_reuse_stored_thumbnail(rgw, bucket, mount, images, tmp_path):
    src = next(p for p in images if p.suffix == ".jpg")
    a = mount(bucket, cache_dir=tmp_path / "cache-a")
    shutil.copyfile(src, a.uploads / "s.jpg")
    assert max(decode(read_thumb(a.thumbs / "s.jpg")).size) == EDGE
    wait_for(lambda: "thumbnails/s.jpg" in list_keys(rgw.s3, bucket, "thumbnails/"), 10,
             what="the thumbnail stored in the bucket")
    a.unmount()

    b = mount(bucket, opts={"thumb_size": 64}, cache_dir=tmp_path / "cache-b")
    assert max(decode(read_thumb(b.thumbs / "s.jpg")).size) == 64
    assert b.metric(GENERATED) == 1
    head = rgw.s3.head_object(Bucket=bucket, Key="thumbnails/s.jpg")
    assert head["Metadata"]["source-etag"].partition(";")[2].startswith("64/none/")
