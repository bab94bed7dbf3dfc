"""End-to-end tests of the gallery: .links/index.html and .links/gallery/.

Every page is read from the mount and opened from there by headless
Chromium (gallery_check.py drives it), so the relative links between pages
(breadcrumbs, sub-folders, previous/next) are followed as a browser follows
them: each one must name a page the mount serves. Thumbnails are loaded
from RGW through their signed URLs, originals are downloaded with curl.
Screenshots are kept under the test's tmp_path (the path is printed).
"""

import io
import os
import pathlib
import time
import urllib.parse

import pytest
from PIL import Image

import gallery_check
from helpers import put_many, timeout_scale, wait_for
from test_links import copy_in, curl, make_png, rgw_access

WAIT = 180 * timeout_scale()
MAKING = "thumbnail being made"

# Keys a listing of uploads/ does not show, put behind imgfs's back; the
# gallery must not show them either.
HIDDEN_KEYS = [
    "uploads/../evil.png",
    "uploads//lead.png",
    "uploads/" + "x" * 300 + ".png",
    "uploads/esc\x1b[31mred.png",
    "uploads/new\nline.png",
]


def human(n):
    """A byte count as the gallery writes it."""
    if n < 1024:
        return f"{n} B"
    v, units = n / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while v >= 1024 and len(units) > 1:
        v, units = v / 1024, units[1:]
    return f"{v:.1f} {units[0]}"


def page_path(url):
    """The mount path a file:// link of a page names."""
    parsed = urllib.parse.urlparse(url)
    assert parsed.scheme == "file", url
    return pathlib.Path(urllib.parse.unquote(parsed.path))


def settled(page):
    """Read page until no thumbnail on it is still being made (each read
    asks the scheduler for the missing ones); its text."""
    return wait_for(lambda: (lambda t: t if MAKING not in t else None)(page.read_text()),
                    WAIT, interval=0.5, what=f"the thumbnails of {page}")


def shot_of(tmp_path, name, report_fn):
    path = tmp_path / name
    report = report_fn(str(path))
    assert path.stat().st_size > 5000, path
    print(f"\ngallery screenshot: {path}")
    return report


def no_csp_complaints(report):
    bad = [c for c in report["console"] if "Content Security Policy" in c or "Refused" in c]
    assert not bad, bad


@pytest.fixture
def hidden_keys(rgw, bucket, tmp_path):
    """HIDDEN_KEYS put into bucket (before any mount), each a real PNG;
    deleted one by one afterwards (a DeleteObjects request cannot carry
    some of them)."""
    body = make_png(tmp_path / "hidden.png", 40, 30, seed=9).read_bytes()
    for key in HIDDEN_KEYS:
        rgw.s3.put_object(Bucket=bucket, Key=key, Body=body)
    yield HIDDEN_KEYS
    for key in HIDDEN_KEYS:
        rgw.s3.delete_object(Bucket=bucket, Key=key)


@pytest.mark.deadline(900)
def test_gallery_folders_names_and_srcset(rgw, bucket, hidden_keys, mount, images, tmp_path):
    """Folders with breadcrumbs and sub-folder links, an empty folder,
    hostile names escaped, hidden keys left out, srcset 2x from
    thumb_sizes=128,256, every thumbnail at its natural size, originals
    and the copy-link button working, in Chromium."""
    m = mount(bucket, opts={"thumb_sizes": "128,256"})
    real = sorted(images, key=lambda p: p.stat().st_size)[:6]
    nested = "trips/été 日本 #1?"
    real_top = {f"{i:02d}-{src.name}": src for i, src in enumerate(real[:2])}
    top = dict(real_top)
    top["<script>alert('x') & \"q\".png"] = make_png(tmp_path / "h1.png", seed=5)
    top["it's a \"test\" <b>.png"] = make_png(tmp_path / "h2.png", 90, 200, seed=6)
    trips = {f"t{i}-{src.name}": src for i, src in enumerate(real[2:4])}
    deep = {f"d{i}-{src.name}": src for i, src in enumerate(real[4:6])}
    deep["<img src=x onerror=alert(1)>.png"] = make_png(tmp_path / "h3.png", seed=7)
    for folder, files in (("", top), ("trips", trips), (nested, deep)):
        for name, src in files.items():
            copy_in(m, src, f"{folder}/{name}" if folder else name)
    (m.uploads / "empty").mkdir()
    (m.uploads / "notes.txt").write_text("not an image\n")
    (m.uploads / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")

    g = m.links / "gallery"
    assert sorted(os.listdir(g)) == ["empty", "index.html", "trips"]
    assert sorted(os.listdir(g / "trips")) == ["index.html", "été 日本 #1?"]
    root_page, trips_page = m.links / "index.html", g / "trips" / "index.html"
    deep_page, empty_page = g / nested / "index.html", g / "empty" / "index.html"
    html = settled(root_page)
    settled(trips_page)
    settled(deep_page)
    assert "notes.txt" not in html and "evil" not in html and "lead.png" not in html
    assert "xxxxxxxxxx" not in html and "esc" not in html and "line.png" not in html
    assert html.count("<script") == 1 and "alert('x')" not in html
    assert html.count("no preview") == 1  # broken.jpg, known to fail

    # The top folder at 2x: srcset picks the 256-px thumbnail, shown at
    # 128 CSS px at most (its natural size at that density).
    report = shot_of(tmp_path, "gallery-top.png",
                     lambda p: gallery_check.check(str(root_page), p, scale=2, click_copy=True))
    want = sorted([*top, "broken.jpg"])
    assert report["captions"] == want
    assert report["h1"] == bucket and report["crumbs"] == []
    assert [f["text"] for f in report["folders"]] == ["empty/", "trips/"]
    assert [page_path(f["href"]) for f in report["folders"]] == [empty_page, trips_page]
    assert report["placeholders"] == 1 and report["scripts"] == 1
    assert len(report["images"]) == len(top)
    for im in report["images"]:
        assert im["naturalWidth"] > 0, im["src"]
        one, two = [part.rsplit(" ", 1)[0] for part in im["srcset"].split(", ")]
        assert one == im["src"] and im["currentSrc"] == two, im
        # naturalWidth is in CSS px (the 2x image's pixels halved): the
        # image is shown at exactly that size, not stretched.
        assert im["width"] == im["naturalWidth"] and im["height"] == im["naturalHeight"], im
        assert max(im["naturalWidth"], im["naturalHeight"]) <= 128
        status, body, _ = curl(im["currentSrc"], tmp_path, "2x")
        assert status == 200
        px = Image.open(io.BytesIO(body)).size
        assert px == (im["naturalWidth"] * 2, im["naturalHeight"] * 2), (px, im)
        if im["alt"] in real_top:
            assert max(px) == 256, (px, im["alt"])
    # Each caption: size, the source's dimensions (recorded when its
    # thumbnail was made; none for the broken one), upload date.
    today = time.strftime("%Y-%m-%d", time.gmtime())
    for caption, info in zip(report["captions"], report["infos"]):
        if caption in top:
            w, h = Image.open(top[caption]).size
            want = f"{human(top[caption].stat().st_size)} · {w}×{h} · "
        else:
            want = f"{human(14)} · {today}"
        assert info.startswith(want), (caption, info, want)
        assert info.endswith(" UTC") and today in info, (caption, info)
    assert report["copy_ready"] == "ready"  # the CSP let the page's script run
    assert report["copy"]["state"] == "copied", report["copy"]
    assert report["copy"]["url"] == report["hrefs"][0]
    no_csp_complaints(report)
    for caption, href in zip(report["captions"], report["hrefs"]):
        if caption in top:
            status, body, _ = curl(href, tmp_path, "orig")
            assert status == 200 and body == top[caption].read_bytes(), caption

    # Two levels down at 1x: breadcrumbs back up, the 128-px thumbnail.
    report = shot_of(tmp_path, "gallery-nested.png",
                     lambda p: gallery_check.check(str(deep_page), p))
    assert report["captions"] == sorted(deep)
    assert report["h1"] == f"{bucket} / trips / été 日本 #1?"
    assert [page_path(u) for u in report["crumbs"]] == [g / "index.html", trips_page]
    assert all(p.is_file() for p in map(page_path, report["crumbs"]))
    for im in report["images"]:
        assert im["naturalWidth"] > 0 and im["currentSrc"] == im["src"], im
        assert max(im["naturalWidth"], im["naturalHeight"]) <= 128
        assert im["width"] == im["naturalWidth"] and im["height"] == im["naturalHeight"]
    no_csp_complaints(report)

    # A sub-folder page links to its own sub-folder.
    report = gallery_check.check(str(trips_page))
    assert report["captions"] == sorted(trips)
    assert [page_path(f["href"]) for f in report["folders"]] == [deep_page]

    # The empty folder.
    report = gallery_check.check(str(empty_page))
    assert report["figures"] == 0 and report["images"] == []
    assert "No images in this folder yet." in empty_page.read_text()
    assert [page_path(u) for u in report["crumbs"]] == [g / "index.html"]


@pytest.mark.deadline(900)
def test_gallery_of_250_is_paged_and_never_waits(rgw, bucket, mount, tmp_path):
    """250 images put by another client, no thumbnail made yet: the first
    read of a page shows placeholders at once (nothing is decoded inside
    the read) and the scheduler makes them; three pages of 100, 100 and 50
    linked by previous/next, which Chromium follows."""
    n = 250
    srcs = [make_png(tmp_path / f"s{k}.png", 64, 48, seed=k).read_bytes() for k in range(5)]
    names = [f"img{i:03d}.png" for i in range(n)]
    put_many(rgw.s3, bucket, {f"uploads/many/{x}": srcs[i % 5] for i, x in enumerate(names)})
    m = mount(bucket)
    folder = m.links / "gallery" / "many"
    pages = [folder / "index.html", folder / "index-2.html", folder / "index-3.html"]
    assert sorted(os.listdir(folder)) == sorted(p.name for p in pages)
    assert not (folder / "index-4.html").exists()

    t0 = time.monotonic()
    first = pages[0].read_text()
    elapsed = time.monotonic() - t0
    print(f"\nfirst read of a page of 100 un-thumbnailed images: {elapsed:.3f} s, "
          f"{len(first)} bytes")
    assert first.count("<figure>") == 100
    assert first.count(MAKING) == 100 and "<img" not in first
    for p in pages:
        settled(p)

    reports = []
    at = pages[0]
    for i in range(3):
        reports.append(shot_of(tmp_path, f"gallery-many-{i + 1}.png",
                               lambda p, at=at: gallery_check.check(str(at), p)))
        r = reports[-1]
        assert r["figures"] == (100 if i < 2 else 50)
        assert r["placeholders"] == 0
        assert all(im["naturalWidth"] == 64 and im["naturalHeight"] == 48 for im in r["images"])
        assert all(im["width"] == 64 for im in r["images"])
        assert all(" · 64×48 · " in info for info in r["infos"]), r["infos"][:3]
        assert (page_path(r["prev"]) if r["prev"] else None) == (pages[i - 1] if i else None)
        assert (page_path(r["next"]) if r["next"] else None) == (pages[i + 1] if i < 2 else None)
        no_csp_complaints(r)
        if r["next"]:
            at = page_path(r["next"])  # follow the link as a reader would
    assert [c for r in reports for c in r["captions"]] == names

    top = gallery_check.check(str(m.links / "index.html"))
    assert top["figures"] == 0
    assert [page_path(f["href"]) for f in top["folders"]] == [pages[0]]


def test_gallery_is_rebuilt_on_each_open(rgw, bucket, mount, tmp_path):
    m = mount(bucket)
    page = m.links / "index.html"
    assert "<figure>" not in page.read_text()
    copy_in(m, make_png(tmp_path / "1.png"), "one.png")
    first = page.read_text()
    assert first.count("<figure>") == 1
    assert os.stat(page).st_size == len(page.read_bytes())
    copy_in(m, make_png(tmp_path / "2.png", seed=2), "two.png")
    second = page.read_text()
    assert second.count("<figure>") == 2


@pytest.mark.deadline(600)
def test_gallery_of_thousands(rgw, bucket, mount, tmp_path):
    """2,000 images in four folders whose thumbnails are already in the
    bucket: a page costs listings only (no HEAD, GET or PUT per image),
    and Chromium loads every thumbnail of it."""
    n = 2000
    src = make_png(tmp_path / "s.png", 64, 48).read_bytes()
    thumb = make_png(tmp_path / "t.png", 32, 24, seed=3).read_bytes()
    rels = [f"batch{i // 500}/img{i:05d}.png" for i in range(n)]
    put_many(rgw.s3, bucket, {f"uploads/{r}": src for r in rels})
    put_many(rgw.s3, bucket, {f"thumbnails/{r}": thumb for r in rels})
    m = mount(bucket)
    folder = m.links / "gallery" / "batch1"
    assert len(os.listdir(folder)) == 5
    page = folder / "index-3.html"
    mark = rgw.log_mark()
    t0 = time.monotonic()
    html = page.read_text()
    elapsed = time.monotonic() - t0
    reqs = rgw_access(rgw, mark, bucket)
    assert reqs and all(meth == "GET" and "list-type=2" in target for meth, target in reqs), reqs
    assert len(reqs) <= 4, reqs
    assert html.count("<figure>") == 100 and MAKING not in html
    print(f"\npage 3 of a folder of 500: {len(html)} bytes in {elapsed:.2f} s, {len(reqs)} requests")
    report = gallery_check.check(str(page))
    assert report["figures"] == 100
    assert report["captions"] == [r.split("/")[1] for r in rels[700:800]]
    assert [i["naturalWidth"] for i in report["images"]] == [32] * 100
