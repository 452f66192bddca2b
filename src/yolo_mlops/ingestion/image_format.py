"""Image format and size from the first bytes of an encoded file, without decoding it.

Two callers need this before OpenCV touches the pixels:

- the data stage, to apply the JPEG end-marker check only to JPEG *content* (a PNG saved as
  ``.jpg`` is a misnamed file, not a truncated JPEG);
- the served model, to refuse an image whose header announces more pixels than the limit before
  the decoder allocates them (a 2.6 MB PNG can announce 30000×30000 pixels = 2.7 GB of BGR).

Formats read here: JPEG, PNG, BMP, GIF, WebP and TIFF (first page). Only the headers are parsed;
the functions never raise on malformed bytes, they return ``None``.
"""

from __future__ import annotations

import struct

#: Format name -> file extensions that name it (lower case, with the dot).
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "png": (".png",),
    "bmp": (".bmp", ".dib"),
    "gif": (".gif",),
    "webp": (".webp",),
    "tiff": (".tif", ".tiff"),
}

#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT/JPG/DAC.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
#: Markers without a length field (RSTn, SOI, EOI, TEM).
_JPEG_STANDALONE = {*range(0xD0, 0xDA), 0x01}


#: (offset, magic bytes, format): the file signatures of the formats read here.
_MAGIC = (
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"BM", "bmp"),
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (8, b"WEBP", "webp"),  # after b"RIFF" + 4 size bytes, checked below
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
)


def sniff_format(data: bytes) -> str | None:
    """The format of encoded image ``data`` from its magic bytes (a key of :data:`EXTENSIONS`)."""
    for offset, magic, name in _MAGIC:
        if data[offset : offset + len(magic)] == magic and (name != "webp" or data[:4] == b"RIFF"):
            return name
    return None


def extension_matches(format_name: str, suffix: str) -> bool:
    """Whether file suffix ``suffix`` (e.g. ``".JPG"``) names ``format_name``."""
    return suffix.lower() in EXTENSIONS.get(format_name, ())


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` announced by the header of ``data``; ``None`` when not readable."""
    try:
        return _SIZE_READERS[sniff_format(data) or ""](data)
    except (KeyError, IndexError, struct.error, ValueError):
        return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header: malformed
            return None
        pos += 2 + length
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _bmp_size(data: bytes) -> tuple[int, int]:
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
        return width, height
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # negative height = top-down rows


def _gif_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack("<HH", data[6:10])
    return width, height


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    found: dict[int, int] = {}
    for index in range(count):
        entry = data[ifd + 2 + 12 * index : ifd + 14 + 12 * index]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength
            fmt = order + ("H" if kind == 3 else "I")
            found[tag] = struct.unpack(fmt, entry[8 : 8 + struct.calcsize(fmt)])[0]
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


_SIZE_READERS = {
    "jpeg": _jpeg_size,
    "png": _png_size,
    "bmp": _bmp_size,
    "gif": _gif_size,
    "webp": _webp_size,
    "tiff": _tiff_size,
}
