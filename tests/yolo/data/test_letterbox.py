"""Letterbox and the long-side resize."""

from __future__ import annotations

import numpy as np
import pytest

from yolo_mlops.yolo.data.letterbox import (
    PAD_VALUE,
    letterbox,
    letterbox_boxes,
    resize_long_side,
    resized_shape,
    unletterbox_boxes,
)


def _random_boxes(rng: np.random.Generator, height: int, width: int, count: int) -> np.ndarray:
    xs = np.sort(rng.uniform(0, width, (count, 2)), axis=1)
    ys = np.sort(rng.uniform(0, height, (count, 2)), axis=1)
    return np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1).astype(np.float32)


@pytest.mark.parametrize("scaleup", [True, False])
@pytest.mark.parametrize(("height", "width"), [(480, 640), (640, 360), (100, 90), (800, 1200)])
def test_letterbox_and_inverse_round_trip_boxes_within_a_pixel(height, width, scaleup):
    rng = np.random.default_rng(height * width)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    boxes = _random_boxes(rng, height, width, 20)
    result = letterbox(image, 320, scaleup=scaleup)
    assert result.image.shape == (320, 320, 3)
    mapped = letterbox_boxes(boxes, result.gain, result.pad)
    assert (mapped >= 0).all() and (mapped <= 320).all()
    back = unletterbox_boxes(mapped, result.gain, result.pad, (height, width))
    np.testing.assert_allclose(back, boxes, atol=1.0)


def test_letterbox_without_scaleup_never_enlarges_and_centres_with_grey():
    image = np.zeros((100, 60, 3), np.uint8)
    result = letterbox(image, 128, scaleup=False)
    assert result.gain == 1.0
    assert result.pad == (34, 14)
    assert (result.image[14:114, 34:94] == 0).all()
    assert (result.image[:14] == PAD_VALUE).all() and (result.image[:, :34] == PAD_VALUE).all()


def test_letterbox_shrinks_large_images_to_fit():
    result = letterbox(np.zeros((1000, 500, 3), np.uint8), 200)
    assert result.gain == pytest.approx(0.2)
    assert result.pad == (50, 0)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((480, 640), (480, 640)), ((427, 640), (427, 640)), ((50, 33), (640, 423))],
)
def test_resize_long_side_follows_the_ceil_rule(shape, expected):
    assert resized_shape(*shape, 640) == expected
    assert resize_long_side(np.zeros((*shape, 3), np.uint8), 640).shape[:2] == expected
