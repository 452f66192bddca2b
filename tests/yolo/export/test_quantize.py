"""INT8 static quantisation: it runs, keeps the metadata, and stays close to the fp32 export."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests.yolo.export.conftest import synthetic_images
from yolo_mlops.yolo.export.quantize import choose_calibration, quantize_onnx
from yolo_mlops.yolo.export.runtime import OnnxRuntimeDetector


def _bgr_images(count: int, seed: int) -> list[np.ndarray]:
    return [image.transpose(1, 2, 0).copy() for image in synthetic_images(count, 240, 320, seed)]


@pytest.fixture(scope="module")
def int8_path(onnx_path, tmp_path_factory):
    calibration = choose_calibration(_bgr_images(12, seed=5), count=6, seed=0)
    return quantize_onnx(onnx_path, tmp_path_factory.mktemp("int8") / "small_int8.onnx",
                         iter(calibration))  # fmt: skip


def test_int8_model_stays_close_to_fp32(detector, int8_path) -> None:
    int8 = OnnxRuntimeDetector(int8_path, threads=1)
    images = synthetic_images(2, 256, 320, seed=9)
    fp32_out, int8_out = detector(images), int8(images)
    score_error = np.abs(int8_out[:, 4:] - fp32_out[:, 4:])
    box_error = np.abs(int8_out[:, :4] - fp32_out[:, :4])  # input pixels
    assert score_error.mean() < 0.01 and score_error.max() < 0.05
    assert np.median(box_error) < 0.5 and np.percentile(box_error, 99) < 2.0


def test_int8_model_quantises_the_network_but_not_the_decoding(int8_path) -> None:
    model = onnx.load(str(int8_path))
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("QuantizeLinear") > 100  # activations between the layers stay int8
    producer = {out: node for node in model.graph.node for out in node.output}
    last = producer["output0"]  # concat of pixel boxes and probabilities: float inputs
    assert all(producer[name].op_type != "DequantizeLinear" for name in last.input)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert metadata["names"] == '["cat", "dog", "bird"]' and metadata["calibration_images"] == "6"
    assert "QDQ" in metadata["quantization"] and "per-channel" in metadata["quantization"]


def test_calibration_choice_is_seeded_and_checked() -> None:
    items = list(range(100))
    first, again = choose_calibration(items, 10, seed=3), choose_calibration(items, 10, seed=3)
    assert first == again and first == sorted(set(first)) and len(first) == 10
    assert choose_calibration(items, 10, seed=4) != first
    assert choose_calibration(items[:5], 10, seed=3) == items[:5]
    with pytest.raises(ValueError, match="at least one image"):
        choose_calibration(items, 0, seed=3)


def test_quantising_without_calibration_images_is_an_error_naming_the_file(onnx_path, tmp_path):
    with pytest.raises(ValueError, match=rf"no calibration images .*{onnx_path.name}"):
        quantize_onnx(onnx_path, tmp_path / "int8.onnx", [])
    assert not (tmp_path / "int8.onnx").exists()
