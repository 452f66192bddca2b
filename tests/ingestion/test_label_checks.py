"""label_checks: one passing and one failing case for every image and label check."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from yolo_mlops.ingestion import label_checks as lc
from yolo_mlops.yolo.data import image_cache


def _jpeg(
    path: Path, width: int = 40, height: int = 30, exif_orientation: int | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(
        np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    )
    exif = Image.Exif()
    if exif_orientation:
        exif[0x0112] = exif_orientation
    image.save(path, format="JPEG", exif=exif.tobytes())
    return path


def _codes(problems: list[lc.Problem]) -> list[str]:
    return [p.code for p in problems]


def test_valid_jpeg_and_png_pass(tmp_path: Path) -> None:
    assert lc.check_image(_jpeg(tmp_path / "a.jpg")) == (40, 30, [])
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((12, 20, 3), np.uint8))
    assert lc.check_image(tmp_path / "b.png") == (20, 12, [])


def test_truncated_jpeg_is_dropped_exactly_when_the_cache_decoder_cannot_read_it(
    tmp_path: Path,
) -> None:
    data = _jpeg(tmp_path / "a.jpg", 64, 64).read_bytes()
    for cut in (2, 40, len(data) // 2):
        (tmp_path / "cut.jpg").write_bytes(data[: len(data) - cut])
        decodes = image_cache.decode_image(tmp_path / "cut.jpg") is not None
        _, _, problems, warnings = lc.inspect_image(tmp_path / "cut.jpg")
        assert _codes(problems) == ([] if decodes else ["image_corrupt"])
        assert _codes(warnings) == ([lc.IMAGE_TRUNCATED] if decodes else [])


def test_jpeg_without_end_marker_that_decodes_is_kept_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Older libjpeg builds decode a truncated JPEG with grey padding: the decoder decides, the
    # missing FF D9 end-of-image marker is a warning.
    data = _jpeg(tmp_path / "a.jpg", 64, 64).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:-2])
    monkeypatch.setattr(image_cache.cv2, "imdecode", lambda *_: np.zeros((64, 64, 3), np.uint8))
    assert lc.check_image(tmp_path / "cut.jpg") == (64, 64, [])
    assert _codes(lc.inspect_image(tmp_path / "cut.jpg")[3]) == [lc.IMAGE_TRUNCATED]
    assert lc.inspect_image(tmp_path / "a.jpg")[2:] == ([], [])


def test_truncated_png_is_corrupt(tmp_path: Path) -> None:
    cv2.imwrite(
        str(tmp_path / "a.png"), np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    )
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])
    assert _codes(lc.check_image(tmp_path / "a.png")[2]) == ["image_corrupt"]


def test_garbage_bytes_are_corrupt(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"not an image at all")
    assert _codes(lc.check_image(tmp_path / "a.jpg")[2]) == ["image_corrupt"]


def test_exif_orientation_swaps_width_and_height(tmp_path: Path) -> None:
    assert lc.check_image(_jpeg(tmp_path / "a.jpg", 40, 20, exif_orientation=6))[:2] == (20, 40)
    assert lc.check_image(_jpeg(tmp_path / "b.jpg", 40, 20, exif_orientation=3))[:2] == (40, 20)


def test_image_smaller_than_10_px_is_rejected(tmp_path: Path) -> None:
    assert _codes(lc.check_image(_jpeg(tmp_path / "a.jpg", 9, 40))[2]) == ["image_too_small"]
    assert lc.check_image(_jpeg(tmp_path / "b.jpg", 10, 10))[2] == []


def test_unsupported_suffix_is_rejected(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20)).save(buffer, format="GIF")
    (tmp_path / "a.gif").write_bytes(buffer.getvalue())
    assert _codes(lc.check_image(tmp_path / "a.gif")[2]) == ["unsupported_format"]


@pytest.mark.parametrize("content", ["gif_named_jpg", "jpeg_with_trailing_bytes"])
def test_image_the_cache_decoder_reads_is_never_dropped(tmp_path: Path, content: str) -> None:
    path = tmp_path / "a.jpg"
    if content == "gif_named_jpg":
        buffer = io.BytesIO()
        Image.new("RGB", (20, 16)).save(buffer, format="GIF")
        path.write_bytes(buffer.getvalue())
    else:  # a camera's trailer after the end-of-image marker
        path.write_bytes(_jpeg(tmp_path / "b.jpg", 20, 16).read_bytes() + b"vendor trailer")
    decoded = image_cache.decode_image(path)
    assert decoded is not None and decoded.shape[:2] == (16, 20)
    assert lc.check_image(path) == (20, 16, [])
    assert lc.inspect_image(path)[3]  # a warning, never a drop


def test_rotated_tiff_has_the_size_the_cache_decoder_gives(tmp_path: Path) -> None:
    path = tmp_path / "a.tif"
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(path, tiffinfo={0x0112: 6})
    decoded = image_cache.decode_image(path)
    assert decoded is not None
    assert lc.check_image(path) == (decoded.shape[1], decoded.shape[0], [])


def _labels(tmp_path: Path, content: str | bytes, nc: int = 3, tolerance: float = 0.01):
    path = tmp_path / "a.txt"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return lc.read_labels(path, nc, tolerance)


def test_valid_label_rows_pass(tmp_path: Path) -> None:
    state, problems, rows = _labels(tmp_path, "0 0.5 0.5 0.2 0.2\n\n2 0.1 0.1 0.2 0.2\n")
    assert state == "found" and problems == []
    assert [(r.line, r.problems) for r in rows] == [(1, ()), (3, ())]


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ("0 0.5 0.5 0.2", "wrong_column_count"),
        ("0 0.5 0.5 0.2 0.2 0.1", "polygon_malformed"),
        ("0 0.1 0.1 0.5 0.1 0.5 0.5 0.3", "polygon_malformed"),
        ("0 0.1", "wrong_column_count"),
        ("cat 0.5 0.5 0.2 0.2", "not_numeric"),
        ("0 nan 0.5 0.2 0.2", "not_finite"),
        ("0 0.5 inf 0.2 0.2", "not_finite"),
        ("1.5 0.5 0.5 0.2 0.2", "class_not_integer"),
        ("3 0.5 0.5 0.2 0.2", "class_out_of_range"),
        ("-1 0.5 0.5 0.2 0.2", "class_out_of_range"),
        ("0 1.2 0.5 0.2 0.2", "coords_out_of_range"),
        ("0 0.95 0.5 0.2 0.2", "coords_out_of_range"),
        ("0 0.5 0.5 0.0 0.2", "nonpositive_size"),
        ("0 0.5 0.5 -0.1 0.2", "nonpositive_size"),
    ],
)
def test_bad_label_row_is_reported_with_its_line(tmp_path: Path, row: str, code: str) -> None:
    _, _, rows = _labels(tmp_path, f"0 0.5 0.5 0.2 0.2\n{row}\n")
    assert rows[0].problems == ()
    assert code in _codes(list(rows[1].problems))
    assert all(p.line == 2 for p in rows[1].problems)


def test_coordinates_within_tolerance_are_accepted(tmp_path: Path) -> None:
    _, _, rows = _labels(tmp_path, "0 0.5 0.5 1.005 0.2\n", tolerance=0.01)
    assert rows[0].problems == ()
    _, _, rows = _labels(tmp_path, "0 0.5 0.5 1.005 0.2\n", tolerance=0.0)
    assert _codes(list(rows[0].problems)) == ["coords_out_of_range"]


def test_duplicate_row_is_reported(tmp_path: Path) -> None:
    _, _, rows = _labels(tmp_path, "0 0.5 0.5 0.2 0.2\n0 0.50 0.5 0.2 0.20\n")
    assert _codes(list(rows[1].problems)) == ["duplicate_row"]


def test_binary_and_non_utf8_label_files_are_unreadable(tmp_path: Path) -> None:
    state, problems, _ = _labels(tmp_path, b"0 0.5 0.5\x00\x01 0.2 0.2\n")
    assert (state, _codes(problems)) == ("unreadable", ["label_binary"])
    state, problems, _ = _labels(tmp_path, "0 0.5 0.5 0.2 0.2 é\n".encode("latin-1"))
    assert (state, _codes(problems)) == ("unreadable", ["label_not_utf8"])


def test_missing_and_empty_label_files_are_backgrounds(tmp_path: Path) -> None:
    assert lc.read_labels(tmp_path / "none.txt", 3, 0.01) == ("missing", [], [])
    assert _labels(tmp_path, " \n\n")[0] == "empty"


def test_check_sample_pairs_image_with_its_label_file(tmp_path: Path) -> None:
    image = _jpeg(tmp_path / "images" / "train" / "a.jpg")
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    sample = lc.check_sample(str(image), 3, 0.01)
    assert sample.label_state == "found" and (sample.width, sample.height) == (40, 30)
    assert sample.rows[0].values == (1.0, 0.5, 0.5, 0.2, 0.2)


def test_png_saved_as_jpg_is_kept_with_a_warning_not_called_truncated(tmp_path: Path) -> None:
    path = tmp_path / "images" / "misnamed.jpg"
    path.parent.mkdir(parents=True)
    _ok, encoded = cv2.imencode(".png", np.full((30, 40, 3), 90, np.uint8))
    path.write_bytes(encoded.tobytes())
    width, height, problems = lc.check_image(path)
    assert (width, height, problems) == (40, 30, [])
    warnings = lc.check_sample(str(path), 1, 0.0).image_warnings
    assert _codes(warnings) == [lc.EXTENSION_MISMATCH]
    assert "content is PNG but the suffix is '.jpg'" in warnings[0].message


def test_jpeg_without_end_marker_under_a_png_name_is_still_called_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _jpeg(tmp_path / "a.jpg", 64, 64).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-2])
    monkeypatch.setattr(image_cache.cv2, "imdecode", lambda *_: np.zeros((64, 64, 3), np.uint8))
    assert _codes(lc.inspect_image(tmp_path / "cut.png")[3]) == [
        lc.EXTENSION_MISMATCH,
        lc.IMAGE_TRUNCATED,
    ]


def test_label_file_with_a_utf8_bom_keeps_its_first_row(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbf0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.1 0.1\n")
    state, problems, rows = lc.read_labels(path, 2, 0.0)
    assert (state, problems) == ("found", [])
    assert [row.values[0] for row in rows] == [0.0, 1.0]
    assert all(not row.problems for row in rows)


def test_polygon_rows_become_their_bounding_box(tmp_path: Path) -> None:
    _, _, rows = _labels(tmp_path, "1 0.1 0.2 0.5 0.2 0.3 0.6\n")
    assert rows[0].polygon and rows[0].problems == ()
    assert rows[0].values == pytest.approx((1.0, 0.3, 0.4, 0.4, 0.4))


def test_polygon_box_is_clipped_to_the_image(tmp_path: Path) -> None:
    _, _, rows = _labels(tmp_path, "0 -0.005 0.5 0.5 1.004 0.9 0.2 0.5 0.1\n", tolerance=0.01)
    assert rows[0].problems == ()
    assert rows[0].values == pytest.approx((0.0, 0.45, 0.55, 0.9, 0.9))


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ("0 0.1 0.2 0.5 0.2 0.3", "polygon_malformed"),  # odd coordinate count
        ("0 0.1 0.2 0.5 0.2 3.0 0.6", "coords_out_of_range"),
        ("0 0.1 0.2 0.5 0.2 0.3 0.2", "nonpositive_size"),  # all points on one line
        ("5 0.1 0.2 0.5 0.2 0.3 0.6", "class_out_of_range"),
    ],
)
def test_bad_polygon_row_is_a_named_problem(tmp_path: Path, row: str, code: str) -> None:
    _, _, rows = _labels(tmp_path, f"{row}\n")
    assert rows[0].polygon and code in _codes(list(rows[0].problems))
