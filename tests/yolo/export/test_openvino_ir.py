"""OpenVINO IR: converted from the ONNX export, the same decoded output as the PyTorch model.

Skipped with the reason where the optional ``openvino`` package is not installed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.yolo.export.conftest import NUM_CLASSES, synthetic_images
from tests.yolo.export.test_onnx_export import assert_decoded_close
from yolo_mlops.yolo.export.onnx_export import DecodedYOLO
from yolo_mlops.yolo.export.runtime import OnnxModelError
from yolo_mlops.yolo.inference import detect_images, load_detector

pytest.importorskip("openvino", reason="the optional openvino package is not installed")

from yolo_mlops.yolo.export.openvino_ir import OpenVinoDetector, export_openvino


@pytest.fixture(scope="module")
def ir_path(onnx_path, tmp_path_factory):
    return export_openvino(onnx_path, tmp_path_factory.mktemp("openvino") / "model.xml")


@pytest.fixture(scope="module")
def ov_detector(ir_path) -> OpenVinoDetector:
    return OpenVinoDetector(ir_path, threads=1)


@pytest.mark.parametrize(
    ("batch", "height", "width"),
    [(1, 320, 320), (3, 224, 320)],
    ids=["320-b1", "320-rect-b3"],
)
def test_openvino_output_matches_the_pytorch_model(model, ov_detector, batch, height, width):
    images = synthetic_images(batch, height, width, seed=height + width)
    with torch.inference_mode():
        reference = DecodedYOLO(model)(torch.from_numpy(images).float() / 255).numpy()
    assert reference[:, 4:].std() > 0.1  # scores spread out: the 1e-4 check can fail
    assert_decoded_close(ov_detector(images), reference)


def test_the_ir_keeps_the_onnx_metadata_and_files(ir_path, ov_detector):
    assert ir_path.with_suffix(".bin").is_file()
    assert ov_detector.names == ["cat", "dog", "bird"] and ov_detector.nc == NUM_CLASSES
    assert ov_detector.strides == (8, 16, 32) and ov_detector.imgsz == 320
    assert ov_detector.metadata["checkpoint_sha256"] == "ab" * 32
    assert json.loads(ov_detector.metadata["simplified"]) is True


def test_load_detector_opens_an_ir_and_runs_an_onnx_file_in_openvino(ir_path, onnx_path, detector):
    assert isinstance(load_detector(ir_path), OpenVinoDetector)
    on_onnx = load_detector(onnx_path, backend="openvino", num_classes=NUM_CLASSES, threads=1)
    assert isinstance(on_onnx, OpenVinoDetector) and on_onnx.names == detector.names
    batch = synthetic_images(2, 96, 160, seed=3)
    np.testing.assert_allclose(on_onnx(batch), detector(batch), rtol=1e-4, atol=1e-4)
    image = batch[0].transpose(1, 2, 0)
    found = detect_images(on_onnx, [image], 320, conf=0.3)[0]  # the predict path, torch-free NMS
    assert len(found.classes) > 0 and found.boxes.max() <= 160 and found.boxes.min() >= 0


def test_unreadable_ir_and_another_class_count_are_errors_naming_the_file(ir_path, tmp_path):
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("<net>not a model")
    with pytest.raises(OnnxModelError, match=r"garbage\.xml"):
        OpenVinoDetector(garbage)
    with pytest.raises(OnnxModelError, match=r"model\.xml: the model predicts 3 classes but 80"):
        OpenVinoDetector(ir_path, num_classes=80)
