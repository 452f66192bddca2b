"""Numpy NMS (the torch-free path) keeps exactly what the torch NMS keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolo_mlops.yolo.export.postprocess import greedy_nms, non_max_suppression, to_original
from yolo_mlops.yolo.model.postprocess import non_max_suppression as torch_nms
from yolo_mlops.yolo.model.postprocess import scale_boxes


def crowded_predictions(batch: int, classes: int, anchors: int, seed: int) -> np.ndarray:
    """Decoded ``[B, 4 + nc, A]`` with boxes piled on a few centres and some exact score ties."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(50, 250, (batch, 2, 6))[..., rng.integers(0, 6, anchors)]
    xy = centres + rng.normal(0, 8, (batch, 2, anchors))
    wh = rng.uniform(20, 80, (batch, 2, anchors))
    scores = rng.uniform(0, 1, (batch, classes, anchors))
    scores[:, :, 1::7] = scores[:, :, ::7][:, :, : scores[:, :, 1::7].shape[2]]  # exact ties
    return np.concatenate((xy, wh, scores), 1).astype(np.float32)


def canonical(rows: np.ndarray) -> np.ndarray:
    """Rows ``[n, 6]`` sorted by every column (score first), so equal sets compare equal."""
    return rows[np.lexsort(rows.T[::-1])]


@pytest.mark.parametrize(
    "settings",
    [
        {"conf": 0.25, "iou": 0.7, "max_det": 300},
        {"conf": 0.05, "iou": 0.5, "max_det": 40},
        {"conf": 0.3, "iou": 0.6, "max_det": 300, "multi_label": True},
        {"conf": 0.3, "iou": 0.6, "max_det": 300, "agnostic": True},
        {"conf": 0.01, "iou": 0.7, "max_det": 300, "max_candidates": 200},
    ],
    ids=["default", "max-det", "multi-label", "agnostic", "max-candidates"],
)
def test_numpy_nms_keeps_what_torch_nms_keeps(settings) -> None:
    pred = crowded_predictions(batch=2, classes=4, anchors=600, seed=1)
    expected = torch_nms(torch.from_numpy(pred), **settings)
    found = non_max_suppression(pred, **settings)
    for mine, theirs in zip(found, expected, strict=True):
        assert 0 < len(mine) <= settings["max_det"]
        np.testing.assert_array_equal(mine[:, 4], theirs[:, 4].numpy())  # descending scores
        # exactly tied scores may come in either order (torchvision sorts per class unstably)
        np.testing.assert_array_equal(canonical(mine), canonical(theirs.numpy()))


def test_greedy_nms_suppresses_only_within_a_class_and_above_the_threshold() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [1, 0, 11, 10], [0, 0, 5, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([0, 0, 1, 0])
    # box 1 overlaps box 0 by IoU 9/11 (dropped at 0.7, kept at 0.9); box 2 is another class;
    # box 3 overlaps box 0 by exactly 0.5, which is not above 0.5
    assert greedy_nms(boxes, scores, classes, 0.7, 300).tolist() == [0, 2, 3]
    assert greedy_nms(boxes, scores, classes, 0.9, 300).tolist() == [0, 1, 2, 3]
    assert greedy_nms(boxes, scores, classes, 0.5, 300).tolist() == [0, 2, 3]
    assert greedy_nms(boxes, scores, np.zeros(4, int), 0.7, 300).tolist() == [0, 3]
    assert greedy_nms(boxes, scores, classes, 0.7, 2).tolist() == [0, 2]


def test_to_original_maps_boxes_like_the_torch_scale_boxes() -> None:
    rows = np.array([[12.0, 40.5, 300.0, 250.0, 0.9, 2.0], [-5, 30, 20, 60, 0.5, 0]], np.float32)
    found = to_original(rows, gain=0.8, pad=(0, 37), shape=(250, 400))
    expected = scale_boxes(torch.from_numpy(rows[:, :4]), 0.8, (0, 37), (250, 400)).numpy()
    np.testing.assert_array_equal(found.boxes, expected)
    assert found.classes.tolist() == [2, 0] and found.classes.dtype == np.int64
    np.testing.assert_array_equal(found.scores, rows[:, 4])
