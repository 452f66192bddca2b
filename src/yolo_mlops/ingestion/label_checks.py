"""Checks for one image and its YOLO label file. Pure functions, safe to run in worker processes.

Image checks: the file is a supported format, it decodes fully with OpenCV (and JPEG *content*
ends with the FF D9 end-of-image marker, so a truncated JPEG that libjpeg silently pads is caught;
the format comes from the bytes, and a suffix that names another format is only a warning), its
size after EXIF orientation is at least 10 px per side. Label checks: UTF-8 text (a BOM is
allowed) without NUL bytes; each row has exactly 5 numeric, finite columns; the class id is an
integer in [0, nc); the centre, the size and the box corners lie in [0, 1] up to a tolerance;
width and height are positive; a row repeated exactly is a duplicate. Nothing is written:
results are returned.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from yolo_mlops.ingestion import image_format
from yolo_mlops.ingestion.dataset_yaml import IMAGE_SUFFIXES, label_path
from yolo_mlops.yolo.boxes import xywh_to_xyxy

MIN_SIDE_PX = 10
_PIL_FORMATS = frozenset({"BMP", "JPEG", "MPO", "PNG", "TIFF", "WEBP"})
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})

# Problem codes. Image-level codes make the image corrupt (it is dropped).
IMAGE_UNREADABLE = "image_unreadable"
IMAGE_CORRUPT = "image_corrupt"
IMAGE_TRUNCATED = "image_truncated"
IMAGE_TOO_SMALL = "image_too_small"
UNSUPPORTED_FORMAT = "unsupported_format"
LABEL_BINARY = "label_binary"
LABEL_NOT_UTF8 = "label_not_utf8"
WRONG_COLUMN_COUNT = "wrong_column_count"
NOT_NUMERIC = "not_numeric"
NOT_FINITE = "not_finite"
CLASS_NOT_INTEGER = "class_not_integer"
CLASS_OUT_OF_RANGE = "class_out_of_range"
COORDS_OUT_OF_RANGE = "coords_out_of_range"
NONPOSITIVE_SIZE = "nonpositive_size"
DUPLICATE_ROW = "duplicate_row"
ORPHAN_LABEL = "orphan_label"
# Warning codes: reported, the image is kept.
EXTENSION_MISMATCH = "extension_mismatch"


@dataclass(frozen=True)
class Problem:
    """One finding. ``line`` is the 1-based label line, 0 for a whole file."""

    code: str
    message: str
    line: int = 0


@dataclass(frozen=True)
class LabelRow:
    """One non-blank label line.

    Attributes:
        line: 1-based line number.
        values: (class_id, cx, cy, w, h) as floats when the row parsed as 5 finite numbers.
        problems: what is wrong with the row (empty = valid).
    """

    line: int
    values: tuple[float, float, float, float, float] | None
    problems: tuple[Problem, ...] = ()


@dataclass
class SampleCheck:
    """Everything known about one image and its label file.

    Attributes:
        image_path / label_path: absolute paths (strings, so results pickle cheaply).
        width / height: pixels after EXIF orientation (0 when the image is unreadable).
        image_problems: non-empty means the image is corrupt.
        label_state: ``found``, ``missing`` (no file), ``empty`` or ``unreadable``.
        label_problems: file-level label problems (binary, not UTF-8).
        rows: parsed non-blank label rows.
        image_warnings: findings that keep the image (a suffix naming another format).
    """

    image_path: str
    label_path: str
    width: int = 0
    height: int = 0
    image_problems: list[Problem] = field(default_factory=list)
    label_state: str = "missing"
    label_problems: list[Problem] = field(default_factory=list)
    rows: list[LabelRow] = field(default_factory=list)
    image_warnings: list[Problem] = field(default_factory=list)


def format_warnings(path: Path) -> list[Problem]:
    """A warning when the file's bytes are a known format its suffix does not name."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        return []
    found = image_format.sniff_format(head)
    if found is None or image_format.extension_matches(found, path.suffix):
        return []
    return [
        Problem(
            EXTENSION_MISMATCH,
            f"content is {found.upper()} but the suffix is {path.suffix!r}; the image is used "
            f"(rename it to {image_format.EXTENSIONS[found][0]} to silence this warning)",
        )
    ]


class _Unusable(Exception):
    """Raised by the image steps below: the image is dropped for ``problem``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(code, message)


def check_image(path: Path) -> tuple[int, int, list[Problem]]:
    """Decode ``path`` fully; return (width, height) after EXIF orientation and the problems."""
    path = Path(path)
    try:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise _Unusable(
                UNSUPPORTED_FORMAT, f"suffix {path.suffix!r} is not a supported image format"
            )
        try:
            data = path.read_bytes()
        except OSError as error:
            raise _Unusable(IMAGE_UNREADABLE, f"cannot read the file: {error}") from error
        pil_format, size, orientation = _read_header(data, path.suffix)
        width, height = _decode(data, pil_format, size)
    except _Unusable as unusable:
        return 0, 0, [unusable.problem]
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    if min(width, height) < MIN_SIDE_PX:
        message = f"{width}x{height} px; each side must be >= {MIN_SIDE_PX} px"
        return width, height, [Problem(IMAGE_TOO_SMALL, message)]
    return width, height, []


def _read_header(data: bytes, suffix: str) -> tuple[str | None, tuple[int, int] | None, int]:
    """PIL's format name, header size and EXIF orientation (``None``, ``None``, 1 when PIL
    cannot read a ``.dng``/``.pfm`` file, which OpenCV may still decode)."""
    pil_format, size, orientation = None, None, 1
    try:
        with Image.open(io.BytesIO(data)) as image:
            pil_format, size = image.format, image.size
            orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        if suffix.lower() not in {".dng", ".pfm"}:
            raise _Unusable(IMAGE_CORRUPT, f"not a readable image: {error}") from error
    if pil_format is not None and pil_format not in _PIL_FORMATS:
        raise _Unusable(UNSUPPORTED_FORMAT, f"content is {pil_format}, not a supported format")
    return pil_format, size, orientation


def _decode(data: bytes, pil_format: str | None, size: tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) of the fully decoded pixels, before EXIF orientation."""
    decoded = cv2.imdecode(
        np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    )
    if decoded is None:
        raise _Unusable(IMAGE_CORRUPT, "OpenCV cannot decode the image data")
    height, width = decoded.shape[:2]
    if size is not None and size != (width, height):
        raise _Unusable(IMAGE_CORRUPT, f"header size {size} but decoded {(width, height)}")
    is_jpeg = pil_format in {"JPEG", "MPO"} or (
        pil_format is None and image_format.sniff_format(data) == "jpeg"
    )
    if is_jpeg and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise _Unusable(IMAGE_TRUNCATED, "JPEG has no end-of-image marker (FF D9): truncated")
    return width, height


def _check_row(tokens: list[str], line: int, nc: int, tolerance: float) -> LabelRow:
    if len(tokens) != 5:
        return LabelRow(
            line, None, (Problem(WRONG_COLUMN_COUNT, f"{len(tokens)} columns, expected 5", line),)
        )
    try:
        numbers = [float(token) for token in tokens]
    except ValueError:
        return LabelRow(
            line, None, (Problem(NOT_NUMERIC, f"non-numeric value in {' '.join(tokens)!r}", line),)
        )
    if not all(math.isfinite(v) for v in numbers):
        return LabelRow(
            line, None, (Problem(NOT_FINITE, f"non-finite value in {' '.join(tokens)!r}", line),)
        )
    class_id, cx, cy, w, h = numbers
    values = (class_id, cx, cy, w, h)
    problems = []
    if not class_id.is_integer():
        problems.append(Problem(CLASS_NOT_INTEGER, f"class id {tokens[0]} is not an integer", line))
    elif not 0 <= class_id < nc:
        problems.append(
            Problem(CLASS_OUT_OF_RANGE, f"class id {int(class_id)} not in [0, {nc})", line)
        )
    if w <= 0 or h <= 0:
        problems.append(
            Problem(NONPOSITIVE_SIZE, f"width {w:g} and height {h:g} must be > 0", line)
        )
    low, high = -tolerance, 1.0 + tolerance
    corners = tuple(float(v) for v in xywh_to_xyxy(np.array([cx, cy, w, h], dtype=np.float64)))
    if not all(low <= v <= high for v in (cx, cy, w, h, *corners)):
        problems.append(
            Problem(
                COORDS_OUT_OF_RANGE,
                f"box {cx:g} {cy:g} {w:g} {h:g} leaves [0, 1] (tolerance {tolerance:g})",
                line,
            )
        )
    return LabelRow(line, values, tuple(problems))


def read_labels(path: Path, nc: int, tolerance: float) -> tuple[str, list[Problem], list[LabelRow]]:
    """Parse a YOLO label file.

    Returns:
        (state, file_problems, rows): state is ``missing``, ``empty``, ``found`` or ``unreadable``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return "missing", [], []
    except OSError as error:
        return "unreadable", [Problem(LABEL_NOT_UTF8, f"cannot read the label file: {error}")], []
    if b"\x00" in raw:
        return (
            "unreadable",
            [Problem(LABEL_BINARY, "label file contains NUL bytes: binary, not text")],
            [],
        )
    try:
        text = raw.decode("utf-8-sig")  # a BOM must not end up in the first class id
    except UnicodeDecodeError as error:
        return "unreadable", [Problem(LABEL_NOT_UTF8, f"label file is not UTF-8 text: {error}")], []
    rows: list[LabelRow] = []
    seen: set[tuple[float, ...]] = set()
    for line, content in enumerate(text.splitlines(), start=1):
        tokens = content.split()
        if not tokens:
            continue
        row = _check_row(tokens, line, nc, tolerance)
        if row.values is not None and not row.problems:
            if row.values in seen:
                row = LabelRow(
                    line,
                    row.values,
                    (Problem(DUPLICATE_ROW, "exact duplicate of an earlier row", line),),
                )
            seen.add(row.values)
        rows.append(row)
    return ("found" if rows else "empty"), [], rows


def check_sample(image_path: str, nc: int, tolerance: float) -> SampleCheck:
    """Check one image and its label file (the worker function of the validation pool)."""
    labels = label_path(Path(image_path))
    width, height, image_problems = check_image(Path(image_path))
    state, file_problems, rows = read_labels(labels, nc, tolerance)
    return SampleCheck(
        str(image_path),
        str(labels),
        width,
        height,
        image_problems,
        state,
        file_problems,
        rows,
        [] if image_problems else format_warnings(Path(image_path)),
    )


def check_samples(image_paths: list[str], nc: int, tolerance: float) -> list[SampleCheck]:
    """Check a chunk of images (one pool task; chunks amortise the inter-process overhead)."""
    return [check_sample(path, nc, tolerance) for path in image_paths]
