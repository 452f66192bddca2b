"""A small randomly initialised YOLO11 and its ONNX export, shared by the export tests.

A freshly built model's class biases put every score near 1e-5, where any score comparison
passes; the fixture zeroes them and scales the class weights up (scores spread over (0, 1)),
and gives every BatchNorm non-trivial statistics, so fusing and exporting can go wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from yolo_mlops.yolo.export.onnx_export import ExportSettings, export_onnx
from yolo_mlops.yolo.export.runtime import OnnxRuntimeDetector
from yolo_mlops.yolo.model.network import YOLO11, build_model

NUM_CLASSES = 3


def small_model(seed: int = 0) -> YOLO11:
    """YOLO11n with 3 classes, spread-out class scores and random BatchNorm statistics."""
    torch.manual_seed(seed)
    model = build_model("n", num_classes=NUM_CLASSES, names=["cat", "dog", "bird"])
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
        for branch in model.head.cv3:
            branch[-1].weight.mul_(50)
            branch[-1].bias.zero_()
    return model.eval()


def synthetic_images(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``uint8 [count, 3, height, width]``: random 16-pixel blocks plus noise.

    The noise keeps every anchor's input distinct: flat blocks alone give exactly tied scores,
    whose order NMS may resolve either way.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, 3, height // 16 + 1, width // 16 + 1))
    blocks = coarse.repeat(16, 2).repeat(16, 3)[:, :, :height, :width]
    noisy = blocks + rng.integers(-20, 21, blocks.shape)
    return np.ascontiguousarray(noisy.clip(0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def model() -> YOLO11:
    return small_model()


@pytest.fixture(scope="session")
def onnx_path(model: YOLO11, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small model exported once per session (the dynamo export takes a few seconds)."""
    path = tmp_path_factory.mktemp("export") / "small.onnx"
    return export_onnx(model, path, ExportSettings(imgsz=320, checkpoint_sha256="ab" * 32))


@pytest.fixture(scope="session")
def detector(onnx_path: Path) -> OnnxRuntimeDetector:
    """The export in one ONNX Runtime session (opening one optimises the graph: ~1 s)."""
    return OnnxRuntimeDetector(onnx_path, threads=1)
