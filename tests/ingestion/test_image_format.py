"""Format and size from the header bytes, for every format OpenCV writes here."""

import cv2
import numpy as np
import pytest

from yolo_mlops.ingestion.image_format import extension_matches, image_size, sniff_format


@pytest.mark.parametrize(
    ("extension", "expected"),
    [(".jpg", "jpeg"), (".png", "png"), (".bmp", "bmp"), (".webp", "webp"), (".tiff", "tiff")],
)
def test_header_gives_the_format_and_size_without_decoding(extension, expected):
    ok, encoded = cv2.imencode(extension, np.full((37, 53, 3), 90, np.uint8))
    assert ok
    data = encoded.tobytes()
    assert sniff_format(data) == expected
    assert image_size(data) == (53, 37)


def test_lossless_webp_header_gives_the_size():
    ok, encoded = cv2.imencode(
        ".webp", np.zeros((21, 34, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101]
    )
    assert ok
    assert image_size(encoded.tobytes()) == (34, 21)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"])
def test_unreadable_headers_give_none(data):
    assert image_size(data) is None


def test_extension_matches_is_case_insensitive():
    assert extension_matches("jpeg", ".JPG") and not extension_matches("png", ".jpg")
