"""decoded_parity: an export against its PyTorch model, one image at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.yolo.export.conftest import synthetic_images
from yolo_mlops.yolo.export.parity import Parity, decoded_parity


def _hwc(batch: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray(image.transpose(1, 2, 0)) for image in batch]


def test_the_fp32_export_is_within_the_acceptance_bounds_on_rectangular_images(model, detector):
    images = _hwc(synthetic_images(2, 96, 160, seed=3)) + _hwc(synthetic_images(1, 128, 64))
    parity = decoded_parity(model, detector, images, imgsz=160)
    assert parity.images == 3
    assert parity.within(score_tolerance=1e-4, box_tolerance=1e-3), parity
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # caller's unfused


def test_figures_beyond_a_tolerance_fail_it():
    parity = Parity(images=1, max_score_diff=2e-4, max_box_diff_px=0.1, max_box_diff_rel=1e-4)
    assert not parity.within(1e-4, 1e-3) and parity.within(1e-3, 1e-3)
    assert parity.record()["max_score_diff"] == 2e-4


def test_no_image_is_an_error(model, detector):
    with pytest.raises(ValueError, match="at least one image"):
        decoded_parity(model, detector, [], imgsz=64)
