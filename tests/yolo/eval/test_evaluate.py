"""evaluate(): the validation loop with the real decode, NMS and scale_boxes.

A crafted "oracle" module emits raw maps that decode to exactly the GT boxes (one-hot DFL bins and
saturated class logits at chosen anchors), so the expected metrics are known; a real tiny YOLO11
checks the loop runs end to end on the real eval loader.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from yolo_mlops.yolo.eval.evaluate import GROUND_TRUTH_COLUMNS, PREDICTION_COLUMNS, evaluate
from yolo_mlops.yolo.model.network import build_model

IMGSZ = 64
STRIDES = (8, 16, 32)
REG_MAX = 16
PERFECT_AP = 0.995  # see tests/yolo/eval/test_metrics.py for why a perfect score is 0.995


class OracleModel(nn.Module):
    """Emits raw maps with one confident box per entry of ``boxes_per_image``.

    Each entry is ``(grid_x, grid_y, distance, class_id, logit)`` on the stride-8 level: the box is
    the anchor (grid + 0.5) ± ``distance`` cells, i.e. input pixels
    ``((gx + 0.5 - d)·8, (gy + 0.5 - d)·8, (gx + 0.5 + d)·8, (gy + 0.5 + d)·8)``.
    """

    def __init__(self, num_classes: int, boxes_per_image: list[list[tuple]]) -> None:
        super().__init__()
        self.nc = num_classes
        self.stride = torch.tensor(STRIDES, dtype=torch.float32)
        self.boxes_per_image = boxes_per_image
        self.calls = 0

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        batch, _, height, width = x.shape
        maps = []
        for stride in STRIDES:
            level = torch.zeros(batch, 4 * REG_MAX + self.nc, height // stride, width // stride)
            level[:, 4 * REG_MAX :] = -30.0  # class probability ~1e-13: below any threshold
            maps.append(level)
        for b in range(batch):
            for grid_x, grid_y, distance, class_id, logit in self.boxes_per_image[self.calls + b]:
                for side in range(4):
                    maps[0][b, side * REG_MAX + distance, grid_y, grid_x] = 50.0  # one-hot bin
                maps[0][b, 4 * REG_MAX + class_id, grid_y, grid_x] = logit
        self.calls += batch
        return maps


def _box(grid_x: int, grid_y: int, distance: int) -> list[float]:
    return [
        (grid_x + 0.5 - distance) * 8,
        (grid_y + 0.5 - distance) * 8,
        (grid_x + 0.5 + distance) * 8,
        (grid_y + 0.5 + distance) * 8,
    ]


def _batch(targets: list[list[float]], gain: float, pad: tuple[float, float]) -> dict:
    """Two images of original size ``(h, w) = (40, 64)`` letterboxed into 64×64."""
    return {
        "images": torch.zeros(2, 3, IMGSZ, IMGSZ, dtype=torch.uint8),
        "targets": torch.tensor(targets, dtype=torch.float32).reshape(-1, 6),
        "indices": torch.tensor([10, 11]),
        "orig_shapes": torch.tensor([[40, 64], [40, 64]]),
        "ratio_pad": torch.tensor([[gain, *pad], [gain, *pad]], dtype=torch.float32),
        "paths": ["a.jpg", "b.jpg"],
    }


def test_perfect_predictions_score_reference_ap_in_original_pixels() -> None:
    boxes = [[(3, 3, 2, 0, 10.0), (5, 4, 1, 1, 8.0)], [(2, 5, 1, 0, 9.0)]]
    model = OracleModel(num_classes=2, boxes_per_image=boxes)
    targets = [
        [0, 0, *_box(3, 3, 2)],
        [0, 1, *_box(5, 4, 1)],
        [1, 0, *_box(2, 5, 1)],
    ]
    result = evaluate(model, [_batch(targets, gain=1.0, pad=(0.0, 12.0))], ["cat", "dog"])
    assert result.metrics["mAP50"] == pytest.approx(PERFECT_AP)
    assert result.metrics["mAP50-95"] == pytest.approx(PERFECT_AP)
    assert result.metrics["precision"] == pytest.approx(1.0)
    assert len(result.predictions) == 3
    assert list(result.predictions.columns) == PREDICTION_COLUMNS
    assert list(result.ground_truth.columns) == GROUND_TRUTH_COLUMNS
    first = result.predictions.iloc[0]
    assert first["image_path"] == "a.jpg" and first["image_id"] == 10
    # input px -> original px: subtract the 12 px vertical pad (gain 1)
    expected = np.array(_box(3, 3, 2)) - np.array([0, 12, 0, 12])
    assert first[["x1", "y1", "x2", "y2"]].to_numpy(float) == pytest.approx(expected)
    assert set(result.speed) == {"preprocess", "inference", "nms"}
    assert list(result.per_class["class"]) == ["all", "cat", "dog"]
    assert result.per_class.loc[0, "images"] == 2


def test_boxes_are_mapped_back_with_gain_and_pad() -> None:
    model = OracleModel(num_classes=1, boxes_per_image=[[(3, 3, 2, 0, 10.0)], []])
    targets = [[0, 0, *_box(3, 3, 2)]]
    result = evaluate(model, [_batch(targets, gain=0.5, pad=(4.0, 2.0))], ["cat"])
    row = result.predictions.iloc[0]
    x1, y1, x2, y2 = _box(3, 3, 2)
    expected = [(x1 - 4) / 0.5, (y1 - 2) / 0.5, min((x2 - 4) / 0.5, 64), min((y2 - 2) / 0.5, 40)]
    assert row[["x1", "y1", "x2", "y2"]].to_numpy(float) == pytest.approx(expected)
    assert result.images["height"].tolist() == [40, 40]
    assert result.metrics["mAP50"] == pytest.approx(PERFECT_AP)


def test_missed_class_and_background_image_lower_the_metrics() -> None:
    # image 0: cat found, dog missed; image 1 (no GT): a confident false "cat"
    boxes = [[(3, 3, 2, 0, 2.0)], [(4, 4, 2, 0, 10.0)]]
    model = OracleModel(num_classes=2, boxes_per_image=boxes)
    targets = [[0, 0, *_box(3, 3, 2)], [0, 1, *_box(5, 4, 1)]]
    result = evaluate(model, [_batch(targets, gain=1.0, pad=(0.0, 12.0))], ["cat", "dog"])
    # cat: FP (0.9999) ranked above the TP -> 0.4975; dog: never predicted -> 0
    assert result.metrics["mAP50"] == pytest.approx(0.4975 / 2)
    assert result.confusion.matrix[2, 1] == 1  # the missed dog, as background


def test_logs_the_table_with_the_all_row(caplog: pytest.LogCaptureFixture) -> None:
    model = OracleModel(num_classes=1, boxes_per_image=[[(3, 3, 2, 0, 10.0)], []])
    targets = [[0, 0, *_box(3, 3, 2)]]
    with caplog.at_level(logging.INFO, logger="yolo_mlops.yolo.eval.evaluate"):
        evaluate(model, [_batch(targets, 1.0, (0.0, 12.0))], ["cat"], verbose=True)
    text = caplog.text
    assert "Instances" in text and "mAP50-95" in text
    assert text.index(" all ") < text.index(" cat ")


def test_real_model_runs_and_restores_training_mode() -> None:
    torch.manual_seed(0)
    model = build_model("n", num_classes=2).train()
    targets = [[0, 0, 8, 8, 40, 40], [1, 1, 10, 20, 30, 36]]
    result = evaluate(model, [_batch(targets, 1.0, (0.0, 12.0))], ["cat", "dog"], max_det=20)
    assert model.training
    assert all(0.0 <= result.metrics[k] <= 1.0 for k in ("precision", "recall", "mAP50"))
    assert len(result.predictions) <= 2 * 20
    assert (result.predictions[["x2", "y2"]].to_numpy() <= [64, 40]).all()


def test_real_eval_loader_ground_truth_comes_back_in_original_pixels(tmp_path) -> None:
    from tests.pipelines.preprocess.helpers import synthetic_cache
    from yolo_mlops.yolo.data.loader import build_eval_loader

    cache = synthetic_cache(tmp_path, imgsz=IMGSZ)
    torch.manual_seed(0)
    model = build_model("n", num_classes=len(cache.names))
    loader = build_eval_loader(cache, "val", batch_size=3)
    result = evaluate(model, loader, list(cache.names), max_det=10)
    val = [int(i) for i in cache.indices("val")]
    assert result.images["image_id"].tolist() == val
    assert result.images["image_path"].tolist() == [cache.path(i) for i in val]
    for image_id in val:
        expected = cache.boxes(image_id) / cache.resize_gain(image_id)
        got = result.ground_truth[result.ground_truth["image_id"] == image_id]
        boxes = got[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
        assert boxes == pytest.approx(expected, abs=1e-3)
        assert got["class_id"].tolist() == cache.classes(image_id).tolist()
        assert tuple(result.images.set_index("image_id").loc[image_id, ["height", "width"]]) == (
            cache.orig_shape(image_id)
        )
    assert set(result.predictions["image_path"]) <= {cache.path(i) for i in val}


def test_class_count_mismatch_between_model_and_names_is_an_error() -> None:
    model = OracleModel(num_classes=2, boxes_per_image=[[], []])
    with pytest.raises(ValueError, match="predicts 2 classes but 3 class names"):
        evaluate(model, [_batch([], 1.0, (0.0, 12.0))], ["a", "b", "c"])


def test_exported_model_gives_the_pytorch_models_metrics_and_predictions(tmp_path) -> None:
    from tests.pipelines.preprocess.helpers import synthetic_cache
    from tests.yolo.export.conftest import small_model
    from yolo_mlops.yolo.data.loader import build_eval_loader
    from yolo_mlops.yolo.export.onnx_export import export_onnx
    from yolo_mlops.yolo.export.runtime import OnnxRuntimeDetector

    cache = synthetic_cache(tmp_path, imgsz=IMGSZ)
    model = small_model()
    detector = OnnxRuntimeDetector(export_onnx(model, tmp_path / "m.onnx"), threads=1)
    names = list(cache.names)
    results = [
        evaluate(candidate, build_eval_loader(cache, "val", batch_size=3), names, max_det=30)
        for candidate in (model, detector)
    ]
    torch_result, onnx_result = results
    assert not hasattr(detector, "training")  # evaluated as it is: no eval()/train() to call
    assert onnx_result.metrics == pytest.approx(torch_result.metrics, abs=1e-6)
    assert len(torch_result.predictions) > 0
    columns = ["image_id", "class_id", "score", "x1", "y1", "x2", "y2"]
    assert onnx_result.predictions[columns].to_numpy() == pytest.approx(
        torch_result.predictions[columns].to_numpy(), abs=1e-3
    )
    assert set(onnx_result.speed) == {"preprocess", "inference", "nms"}
