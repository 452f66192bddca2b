"""The one inference path (yolo.inference): letterboxed batches and raw images of any size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolo_mlops.yolo.data.letterbox import letterbox
from yolo_mlops.yolo.inference import TIMING_KEYS, detect, detect_images
from yolo_mlops.yolo.model.network import build_model
from yolo_mlops.yolo.model.postprocess import scale_boxes


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("n", num_classes=3).eval()


def test_detect_returns_rows_per_image_and_the_timing_split(model):
    images = torch.randint(0, 255, (2, 3, 64, 96), dtype=torch.uint8)
    times: dict[str, float] = {}
    found = detect(model, images, conf=0.0, max_det=7, times=times)
    assert len(found) == 2
    assert all(rows.shape == (7, 6) for rows in found)
    assert set(times) == set(TIMING_KEYS) and all(v >= 0 for v in times.values())
    with pytest.raises(ValueError, match="predicts 3 classes but 5"):
        detect(model, images, num_classes=5)


def test_detect_images_maps_boxes_to_original_pixels_like_the_letterboxed_batch(model):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (50, 120, 3), dtype=np.uint8),
              rng.integers(0, 255, (90, 40, 3), dtype=np.uint8)]  # fmt: skip
    found = detect_images(model, images, 64, conf=0.0, max_det=5)
    for image, item in zip(images, found, strict=True):
        height, width = image.shape[:2]
        assert item.boxes.shape == (5, 4) and item.scores.shape == item.classes.shape == (5,)
        assert (item.boxes[:, 0::2] >= 0).all() and (item.boxes[:, 0::2] <= width).all()
        assert (item.boxes[:, 1::2] >= 0).all() and (item.boxes[:, 1::2] <= height).all()
        # the same image through detect() by hand gives the same boxes
        boxed = letterbox(image, 64, scaleup=True, center=True)
        tensor = torch.from_numpy(np.ascontiguousarray(boxed.image[..., ::-1])).permute(2, 0, 1)
        rows = detect(model, tensor[None], conf=0.0, max_det=5)[0]
        expected = scale_boxes(rows[:, :4], boxed.gain, boxed.pad, (height, width)).numpy()
        np.testing.assert_allclose(item.boxes, expected, atol=1e-4)
    assert detect_images(model, [], 64) == []
