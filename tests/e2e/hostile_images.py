"""Images made to hurt a decoder (issue 12), generated here from nothing
but Pillow, zlib and gzip, so that no third-party file is needed:

- truncated baseline and progressive JPEG, truncated PNG, WebP, GIF and
  TIFF (the second half of a noisy photo-like image missing);
- a PNG whose tEXt chunk declares a length of 0x7ffffff0 (141 bytes that
  ask a decoder for 2 GB);
- a progressive JPEG whose last scan is repeated hundreds of times (each
  scan walks every block of a large image again);
- a PNG with dozens of zTXt chunks that each inflate to tens of MB;
- a gzip member followed by stray bytes, named x.jpg: libvips 8.14's SVG
  sniffer spins on it forever (its own test file truncated.svgz is such a
  file).

`python3 hostile_images.py DIR` writes them all to DIR.
"""

import gzip
import io
import struct
import sys
import zlib

from PIL import Image


def png_chunk(kind, data, length=None):
    n = len(data) if length is None else length
    return struct.pack(">I", n) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def photo(w=1600, h=1200):
    """Noise over a gradient: compresses like a photo, not like a flat fill."""
    noise = Image.effect_noise((w, h), 60)
    grad = Image.linear_gradient("L").resize((w, h))
    return Image.merge("RGB", [noise, grad, grad.transpose(Image.FLIP_LEFT_RIGHT)])


def encode(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def half(data):
    return data[: len(data) // 2]


def chunk_length_png():
    ihdr = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    text = b"Comment\0" + b"A" * 92
    bomb = struct.pack(">I", 0x7FFFFFF0) + b"tEXt" + text
    return head + bomb


def scan_bomb_jpeg(edge=6000, repeats=600):
    """A valid progressive JPEG of edge x edge whose final scan is sent
    `repeats` times (a decoder warns and decodes each one)."""
    data = encode(Image.new("L", (edge, edge), 128), "JPEG", progressive=True, quality=90)
    i, scans = 2, []
    while i < len(data):
        marker = data[i + 1]
        if marker == 0xD9:
            break
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        end = i + 2 + length
        if marker == 0xDA:  # a scan: header, then entropy-coded data
            j = end
            while not (data[j] == 0xFF and data[j + 1] not in (0x00,) and not 0xD0 <= data[j + 1] <= 0xD7):
                j += 1
            scans.append((i, j))
            end = j
        i = end
    start, stop = scans[-1]
    last = data[start:stop]
    return data[:stop] + last * repeats + data[stop:]


def ztxt_png(chunks=40, inflated=40 << 20):
    """A small valid PNG carrying `chunks` zTXt chunks of `inflated` bytes
    each once inflated."""
    packed = zlib.compress(b"\0" * inflated, 9)
    extra = [png_chunk(b"zTXt", b"Comment%d\0\0" % k + packed) for k in range(chunks)]
    base = encode(photo(256, 192), "PNG")
    iend = base.rindex(b"IEND") - 4
    idat = base.index(b"IDAT") - 4
    return base[:idat] + b"".join(extra) + base[idat:iend] + base[iend:]


def svgz_spin():
    member = gzip.compress(b'{"data":{"cart":null},"tags":[],"cached":false,"pad":"' +
                           b"x" * 60 + b'"}\n', mtime=0)
    return member + bytes(range(1, 58))


def truncated():
    """name -> bytes: damaged files that must read as EIO within a second."""
    img = photo()
    return {
        "truncated-baseline.jpg": half(encode(img, "JPEG", quality=90)),
        "truncated-progressive.jpg": half(encode(img, "JPEG", quality=90, progressive=True)),
        "truncated.png": half(encode(img, "PNG")),
        "truncated.webp": half(encode(img, "WEBP", quality=80)),
        "truncated.gif": half(encode(img.convert("P"), "GIF")),
        "truncated.tif": half(encode(img, "TIFF")),
    }


def slow():
    """name -> bytes: files that hang, bloat or take long to decode; they
    must read as EIO within thumb_timeout."""
    return {
        "x.jpg": svgz_spin(),
        "chunk-length.png": chunk_length_png(),
        "scan-bomb.jpg": scan_bomb_jpeg(),
        "ztxt-bomb.png": ztxt_png(),
    }


def main(out):
    import pathlib
    d = pathlib.Path(out)
    d.mkdir(parents=True, exist_ok=True)
    for name, data in {**truncated(), **slow()}.items():
        (d / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "hostile")
