"""The ONNX Runtime backend: clear errors naming the file, and the same detections as torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from tests.yolo.export.conftest import NUM_CLASSES, synthetic_images
from yolo_mlops.yolo.export.runtime import OnnxModelError, OnnxRuntimeDetector
from yolo_mlops.yolo.inference import detect, detect_images, load_detector


def _graph_file(path: Path, nodes, output_shape, initializers=()) -> Path:
    """A one-input ONNX file ``images [batch, 3, height, width]`` → ``output0``, no metadata."""
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, output_shape)],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return path


def _constant(name: str, values: list[int]) -> onnx.TensorProto:
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


def test_truncated_and_garbage_files_are_errors_naming_the_file(onnx_path, tmp_path) -> None:
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(onnx_path.read_bytes()[: onnx_path.stat().st_size // 2])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf")
    for path in (truncated, garbage):
        with pytest.raises(OnnxModelError, match=rf"{path.name}: not a readable ONNX model"):
            OnnxRuntimeDetector(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx"):
        load_detector(tmp_path / "missing.onnx")


def test_raw_maps_instead_of_decoded_output_are_an_error_naming_the_file(tmp_path) -> None:
    path = _graph_file(
        tmp_path / "raw_maps.onnx",
        [helper.make_node("Identity", ["images"], ["output0"])],
        ["batch", 3, "h", "w"],
    )
    with pytest.raises(OnnxModelError, match=r"raw_maps\.onnx: output 'output0' has shape"):
        OnnxRuntimeDetector(path)


def test_an_output_without_one_column_per_anchor_fails_when_run(tmp_path) -> None:
    """A graph declaring ``[batch, 7, n]`` whose ``n`` is the pixel count, not the anchors."""
    path = _graph_file(
        tmp_path / "pixels.onnx",
        [
            helper.make_node("ReduceMean", ["images", "axis"], ["mean"], keepdims=1),
            helper.make_node("Reshape", ["mean", "flat"], ["row"]),
            helper.make_node("Expand", ["row", "columns"], ["output0"]),
        ],
        ["batch", 7, "anchors"],
        [_constant("axis", [1]), _constant("flat", [0, 1, -1]), _constant("columns", [1, 7, 1])],
    )
    detector = OnnxRuntimeDetector(path)
    assert detector.nc == 3 and detector.names == ["class0", "class1", "class2"]  # no metadata
    with pytest.raises(OnnxModelError, match=r"pixels\.onnx: output shape \(1, 7, 4096\)"):
        detector(np.zeros((1, 3, 64, 64), np.uint8))


def test_a_class_count_other_than_the_datasets_is_an_error_naming_the_file(onnx_path) -> None:
    with pytest.raises(OnnxModelError, match=rf"{onnx_path.name}: the model predicts 3 classes"):
        OnnxRuntimeDetector(onnx_path, num_classes=80)
    with pytest.raises(OnnxModelError, match=rf"{onnx_path.name}: the model predicts 3 classes"):
        load_detector(onnx_path, num_classes=80)


def test_detector_reads_names_strides_and_size_from_the_file(detector) -> None:
    assert detector.names == ["cat", "dog", "bird"] and detector.nc == NUM_CLASSES
    assert detector.strides == (8, 16, 32) and detector.imgsz == 320
    assert detector.anchors(480, 640) == 60 * 80 + 30 * 40 + 15 * 20


def _matched(mine: torch.Tensor, theirs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``theirs`` reordered so that row i is the row nearest to ``mine``'s row i (a bijection)."""
    mine_rows, their_rows = mine.numpy(), theirs.numpy()
    assert mine_rows.shape == their_rows.shape
    distance = np.abs(mine_rows[:, None] - their_rows[None]).max(2)  # [n, n]
    nearest = distance.argmin(1)
    assert len(set(nearest.tolist())) == len(nearest)  # one-to-one
    return mine_rows, their_rows[nearest]


def test_both_backends_keep_the_same_candidates_of_a_letterboxed_batch(model, detector) -> None:
    """Filtering, class choice and box conversion agree; ``iou=1`` switches suppression off.

    A random network gives many exactly tied scores, which fp32 noise between the backends may
    order differently before NMS; NMS itself is compared on identical input in
    ``test_postprocess.py`` and on a trained model in ``test_coco128_parity.py``.
    """
    images = torch.from_numpy(synthetic_images(2, 320, 416, seed=3))
    settings = {"conf": 0.8, "iou": 1.0, "max_det": 100_000}
    expected = detect(model, images, **settings)
    found = detect(detector, images, **settings)
    assert sum(len(rows) for rows in expected) > 100  # enough boxes to compare
    for onnx_rows, torch_rows in zip(found, expected, strict=True):
        mine, theirs = _matched(onnx_rows, torch_rows)
        np.testing.assert_array_equal(mine[:, 5], theirs[:, 5])  # classes
        np.testing.assert_allclose(mine[:, 4], theirs[:, 4], rtol=0, atol=1e-4)  # scores
        np.testing.assert_allclose(mine[:, :4], theirs[:, :4], rtol=0, atol=0.01)  # pixels


def test_detect_images_is_the_same_with_and_without_torch(detector) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(2)]
    through_inference = detect_images(detector, images, 320, conf=0.6)
    torch_free = detector.detect_images(images, conf=0.6)
    assert sum(len(item.scores) for item in torch_free) > 0
    for mine, theirs in zip(through_inference, torch_free, strict=True):
        np.testing.assert_array_equal(mine.classes, theirs.classes)
        np.testing.assert_array_equal(mine.boxes, theirs.boxes)
        np.testing.assert_array_equal(mine.scores, theirs.scores)


TORCH_FREE_SCRIPT = """
import importlib.abc, sys, types
from pathlib import Path

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"the torch-free path imported {name}")

sys.meta_path.insert(0, NoTorch())
import numpy as np
import yolo_mlops
# yolo_mlops.yolo's own __init__ is the torch API: load its subpackages without running it
library = types.ModuleType("yolo_mlops.yolo")
library.__path__ = [str(Path(yolo_mlops.__file__).parent / "yolo")]
sys.modules["yolo_mlops.yolo"] = library
from yolo_mlops.yolo.export.runtime import OnnxRuntimeDetector

image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
found = OnnxRuntimeDetector(sys.argv[1]).detect_images([image], conf=0.5)
print(len(found[0].scores), sorted(m for m in sys.modules if m.startswith("torch")))
"""


def test_the_onnxruntime_predict_path_runs_without_importing_torch(onnx_path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", TORCH_FREE_SCRIPT, str(onnx_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    count, modules = done.stdout.split(maxsplit=1)
    assert int(count) > 0 and modules.strip() == "[]"
