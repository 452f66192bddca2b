"""Checks for one image and its YOLO label file. Pure functions, safe to run in worker processes.

Image checks: one decoder decides. An image is dropped only when the image cache's own decoder
(:func:`yolo_mlops.yolo.data.image_cache.decode_image`) cannot decode it, or when its decoded
size (EXIF orientation applied, as the cache stores it) is under 10 px on a side. Findings on the
raw bytes keep the image and are warnings: a suffix that names another format, a JPEG that does
not end with its FF D9 end-of-image marker. Label checks: UTF-8 text (a BOM is allowed) without
NUL bytes; a row is a box (5 numeric, finite columns: class cx cy w h) or a polygon (a class id
and x y pairs for at least 3 points), which becomes its bounding box; the class id is an integer
in [0, nc); the centre, the size and the box corners lie in [0, 1] up to a tolerance; width and
height are positive; a row repeated exactly is a duplicate. Nothing is written: results are
returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolo_mlops.ingestion import image_format
from yolo_mlops.ingestion.dataset_yaml import IMAGE_SUFFIXES, label_path
from yolo_mlops.yolo.boxes import xywh_to_xyxy
from yolo_mlops.yolo.data.image_cache import decode_image

MIN_SIDE_PX = 10
MIN_POLYGON_POINTS = 3

# Problem codes. Image-level codes make the image corrupt (it is dropped).
IMAGE_UNREADABLE = "image_unreadable"
IMAGE_CORRUPT = "image_corrupt"
IMAGE_TOO_SMALL = "image_too_small"
UNSUPPORTED_FORMAT = "unsupported_format"
LABEL_BINARY = "label_binary"
LABEL_NOT_UTF8 = "label_not_utf8"
WRONG_COLUMN_COUNT = "wrong_column_count"
POLYGON_MALFORMED = "polygon_malformed"
NOT_NUMERIC = "not_numeric"
NOT_FINITE = "not_finite"
CLASS_NOT_INTEGER = "class_not_integer"
CLASS_OUT_OF_RANGE = "class_out_of_range"
COORDS_OUT_OF_RANGE = "coords_out_of_range"
NONPOSITIVE_SIZE = "nonpositive_size"
ORPHAN_LABEL = "orphan_label"
# Warning codes: reported, the image is kept (a duplicate row is removed, its image kept).
EXTENSION_MISMATCH = "extension_mismatch"
IMAGE_TRUNCATED = "image_truncated"
DUPLICATE_ROW = "duplicate_row"


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
        values: (class_id, cx, cy, w, h) as floats, normalised, when the row parsed as finite
            numbers; for a polygon row, its points' bounding box.
        problems: what is wrong with the row (empty = valid).
        polygon: the row was a polygon (``class x1 y1 x2 y2 x3 y3 ...``), converted to a box.
    """

    line: int
    values: tuple[float, float, float, float, float] | None
    problems: tuple[Problem, ...] = ()
    polygon: bool = False


@dataclass
class SampleCheck:
    """Everything known about one image and its label file.

    Attributes:
        image_path / label_path: absolute paths (strings, so results pickle cheaply).
        width / height: pixels as the image cache stores them, EXIF orientation applied (0 when
            the image cannot be decoded).
        image_problems: non-empty means the image is corrupt.
        label_state: ``found``, ``missing`` (no file), ``empty`` or ``unreadable``.
        label_problems: file-level label problems (binary, not UTF-8).
        rows: parsed non-blank label rows.
        image_warnings: findings that keep the image (a suffix naming another format, a JPEG
            without its end marker).
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


def _format_warnings(data: bytes, suffix: str) -> list[Problem]:
    """Byte-level findings on an image the decoder reads: they never drop it."""
    found = image_format.sniff_format(data[:64])
    warnings = []
    if found is not None and not image_format.extension_matches(found, suffix):
        warnings.append(
            Problem(
                EXTENSION_MISMATCH,
                f"content is {found.upper()} but the suffix is {suffix!r}; the image is used "
                f"(rename it to {image_format.EXTENSIONS[found][0]} to silence this warning)",
            )
        )
    if found == "jpeg" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        warnings.append(
            Problem(
                IMAGE_TRUNCATED,
                "JPEG does not end with its end-of-image marker (FF D9): truncated or followed "
                "by other bytes; it decodes, so it is used as decoded",
            )
        )
    return warnings


def inspect_image(path: Path) -> tuple[int, int, list[Problem], list[Problem]]:
    """Decode ``path`` with the image cache's decoder.

    Returns:
        (width, height, problems, warnings): the size in pixels as the cache will store it (EXIF
        orientation applied; 0 x 0 when not decodable); problems drop the image (not a supported
        suffix, unreadable, not decodable, under ``MIN_SIDE_PX`` on a side); warnings keep it.
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        message = f"suffix {path.suffix!r} is not a supported image format"
        return 0, 0, [Problem(UNSUPPORTED_FORMAT, message)], []
    try:
        data = path.read_bytes()
    except OSError as error:
        return 0, 0, [Problem(IMAGE_UNREADABLE, f"cannot read the file: {error}")], []
    image = decode_image(data)
    if image is None:
        return 0, 0, [Problem(IMAGE_CORRUPT, "OpenCV cannot decode the image data")], []
    height, width = (int(side) for side in image.shape[:2])
    warnings = _format_warnings(data, path.suffix)
    if min(width, height) < MIN_SIDE_PX:
        message = f"{width}x{height} px; each side must be >= {MIN_SIDE_PX} px"
        return width, height, [Problem(IMAGE_TOO_SMALL, message)], warnings
    return width, height, [], warnings


def check_image(path: Path) -> tuple[int, int, list[Problem]]:
    """(width, height, problems) of :func:`inspect_image`, without the warnings."""
    width, height, problems, _ = inspect_image(path)
    return width, height, problems


def _numbers(tokens: list[str], line: int) -> tuple[list[float], Problem | None]:
    """The row's tokens as finite floats, or the problem that stops it."""
    try:
        numbers = [float(token) for token in tokens]
    except ValueError:
        return [], Problem(NOT_NUMERIC, f"non-numeric value in {' '.join(tokens)!r}", line)
    if not all(math.isfinite(v) for v in numbers):
        return [], Problem(NOT_FINITE, f"non-finite value in {' '.join(tokens)!r}", line)
    return numbers, None


def _class_problems(class_id: float, token: str, nc: int, line: int) -> list[Problem]:
    if not class_id.is_integer():
        return [Problem(CLASS_NOT_INTEGER, f"class id {token} is not an integer", line)]
    if not 0 <= class_id < nc:
        return [Problem(CLASS_OUT_OF_RANGE, f"class id {int(class_id)} not in [0, {nc})", line)]
    return []


def _box_row(numbers: list[float], token: str, line: int, nc: int, tolerance: float) -> LabelRow:
    """A ``class cx cy w h`` row (normalised)."""
    class_id, cx, cy, w, h = numbers
    problems = _class_problems(class_id, token, nc, line)
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
    return LabelRow(line, (class_id, cx, cy, w, h), tuple(problems))


def _polygon_row(
    numbers: list[float], token: str, line: int, nc: int, tolerance: float
) -> LabelRow:
    """A ``class x1 y1 x2 y2 x3 y3 ...`` row as its points' bounding box clipped to [0, 1]."""
    coords = numbers[1:]
    if len(coords) % 2 or len(coords) < 2 * MIN_POLYGON_POINTS:
        message = (
            f"{len(numbers)} columns: neither a box (class cx cy w h) nor a polygon (class, then "
            f"x y for >= {MIN_POLYGON_POINTS} points); {len(coords)} coordinates"
            + (" is an odd count" if len(coords) % 2 else "")
        )
        return LabelRow(line, None, (Problem(POLYGON_MALFORMED, message, line),), polygon=True)
    points = np.asarray(coords, np.float64).reshape(-1, 2)  # [n, 2] normalised x, y
    problems = _class_problems(numbers[0], token, nc, line)
    if points.min() < -tolerance or points.max() > 1.0 + tolerance:
        problems.append(
            Problem(
                COORDS_OUT_OF_RANGE,
                f"polygon of {len(points)} points leaves [0, 1] (tolerance {tolerance:g}): "
                f"x {points[:, 0].min():g}..{points[:, 0].max():g}, "
                f"y {points[:, 1].min():g}..{points[:, 1].max():g}",
                line,
            )
        )
    (x1, y1), (x2, y2) = points.min(0).clip(0.0, 1.0), points.max(0).clip(0.0, 1.0)
    w, h = float(x2 - x1), float(y2 - y1)
    if w <= 0 or h <= 0:
        problems.append(
            Problem(NONPOSITIVE_SIZE, f"polygon's box is {w:g} wide and {h:g} high", line)
        )
    values = (numbers[0], float(x1 + x2) / 2, float(y1 + y2) / 2, w, h)
    return LabelRow(line, values, tuple(problems), polygon=True)


def _check_row(tokens: list[str], line: int, nc: int, tolerance: float) -> LabelRow:
    if len(tokens) < 5:
        message = f"{len(tokens)} columns, expected 5 (class cx cy w h) or a polygon"
        return LabelRow(line, None, (Problem(WRONG_COLUMN_COUNT, message, line),))
    numbers, problem = _numbers(tokens, line)
    if problem is not None:
        return LabelRow(line, None, (problem,))
    if len(numbers) == 5:
        return _box_row(numbers, tokens[0], line, nc, tolerance)
    return _polygon_row(numbers, tokens[0], line, nc, tolerance)


def read_labels(path: Path, nc: int, tolerance: float) -> tuple[str, list[Problem], list[LabelRow]]:
    """Parse a YOLO label file.

    Returns:
        (state, file_problems, rows): state is ``missing``, ``empty``, ``found`` or ``unreadable``;
        a polygon row comes back as its bounding box (``values``, ``polygon=True``), so every
        reader of label files gets boxes.
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
                duplicate = Problem(DUPLICATE_ROW, "exact duplicate of an earlier row", line)
                row = LabelRow(line, row.values, (duplicate,), row.polygon)
            seen.add(row.values)
        rows.append(row)
    return ("found" if rows else "empty"), [], rows


def check_sample(image_path: str, nc: int, tolerance: float) -> SampleCheck:
    """Check one image and its label file (the worker function of the validation pool)."""
    labels = label_path(Path(image_path))
    width, height, image_problems, image_warnings = inspect_image(Path(image_path))
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
        image_warnings,
    )


def check_samples(image_paths: list[str], nc: int, tolerance: float) -> list[SampleCheck]:
    """Check a chunk of images (one pool task; chunks amortise the inter-process overhead)."""
    return [check_sample(path, nc, tolerance) for path in image_paths]
