"""ONNX export: the graph's decoded output equals the PyTorch model's, with its metadata."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from tests.yolo.export.conftest import NUM_CLASSES, synthetic_images
from yolo_mlops.yolo.export.onnx_export import DEFAULT_OPSET, DecodedYOLO
from yolo_mlops.yolo.io.format import LIBRARY_VERSION

#: fp32 parity asked of an export: class scores (absolute) and boxes (relative).
SCORE_ATOL, BOX_RTOL = 1e-4, 1e-3


def assert_decoded_close(exported: np.ndarray, reference: np.ndarray) -> None:
    """Scores within ``SCORE_ATOL``; boxes within ``BOX_RTOL`` (plus 1e-3 px for sides near 0)."""
    assert exported.shape == reference.shape
    np.testing.assert_allclose(exported[:, 4:], reference[:, 4:], rtol=0, atol=SCORE_ATOL)
    np.testing.assert_allclose(exported[:, :4], reference[:, :4], rtol=BOX_RTOL, atol=1e-3)


@pytest.mark.parametrize(
    ("batch", "height", "width"),
    [(1, 320, 320), (1, 640, 640), (3, 224, 320), (2, 480, 640)],
    ids=["320-b1", "640-b1", "320-rect-b3", "640-rect-b2"],
)
def test_onnx_output_matches_the_pytorch_model(model, detector, batch, height, width) -> None:
    images = synthetic_images(batch, height, width, seed=height + width)
    with torch.inference_mode():
        reference = DecodedYOLO(model)(torch.from_numpy(images).float() / 255).numpy()
    exported = detector(images)
    scores = reference[:, 4:]
    assert scores.std() > 0.1  # scores spread out: the 1e-4 check can fail
    assert_decoded_close(exported, reference)


def test_export_leaves_the_callers_model_unfused(model, onnx_path) -> None:
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_export_records_its_metadata_and_passes_the_checker(model, onnx_path) -> None:
    proto = onnx.load(str(onnx_path))
    onnx.checker.check_model(proto, full_check=True)
    metadata = {prop.key: prop.value for prop in proto.metadata_props}
    assert json.loads(metadata["names"]) == ["cat", "dog", "bird"]
    assert json.loads(metadata["stride"]) == [8, 16, 32]
    assert metadata["nc"] == str(NUM_CLASSES) and metadata["imgsz"] == "320"
    assert metadata["checkpoint_sha256"] == "ab" * 32
    assert metadata["yolo_mlops_version"] == LIBRARY_VERSION
    assert metadata["opset"] == str(DEFAULT_OPSET) and metadata["simplified"] == "true"
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [DEFAULT_OPSET]
    dims = [
        [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in (proto.graph.input[0], proto.graph.output[0])
    ]
    assert dims == [["batch", 3, "height", "width"], ["batch", 4 + NUM_CLASSES, "anchors"]]
