"""The torch-free serving model on real images: the ONNX Runtime pyfunc against the PyTorch one.

Needs ``../shared`` (COCO128 and ``yolo11n_coco16_ultralytics.pt``); skipped with the reason
otherwise.
"""

from __future__ import annotations

import zipfile
from types import SimpleNamespace

import pandas as pd
import pytest

from tests.conftest import COCO128_ZIP, REFERENCE_DIR
from tests.tracking.test_pyfunc_model import _assert_same_detections
from yolo_mlops.tracking.pyfunc_model import YoloDetectorModel
from yolo_mlops.yolo.export.onnx_export import export_checkpoint

pytestmark = pytest.mark.coco128

CHECKPOINT = REFERENCE_DIR / "yolo11n_coco16_ultralytics.pt"
IMAGES = 8


@pytest.fixture(scope="module")
def served_pair(tmp_path_factory) -> dict[str, YoloDetectorModel]:
    """The reference-trained checkpoint served by each backend (the ONNX file exported once)."""
    for needed in (COCO128_ZIP, CHECKPOINT):
        if not needed.is_file():
            pytest.skip(f"needs {needed} (../shared)")
    onnx = export_checkpoint(CHECKPOINT, tmp_path_factory.mktemp("served") / "model.onnx")
    artifacts = {"checkpoint": str(CHECKPOINT), "onnx": str(onnx)}
    models = {}
    for backend in ("torch", "onnxruntime"):
        models[backend] = YoloDetectorModel()
        context = SimpleNamespace(artifacts=artifacts, model_config={"backend": backend})
        models[backend].load_context(context)
    return models


def _coco128_jpegs(count: int) -> list[bytes]:
    """The encoded bytes of the first ``count`` COCO128 images, as a client sends them."""
    with zipfile.ZipFile(COCO128_ZIP) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))[:count]
        return [archive.read(name) for name in names]


def test_onnxruntime_pyfunc_detections_equal_the_torch_pyfunc_on_coco128(served_pair):
    frame = pd.DataFrame({"image": _coco128_jpegs(IMAGES)})
    torch_out = served_pair["torch"].predict(None, frame, {"conf": 0.25})
    onnx_out = served_pair["onnxruntime"].predict(None, frame, {"conf": 0.25})
    assert served_pair["onnxruntime"].imgsz == served_pair["torch"].imgsz
    assert served_pair["onnxruntime"].names == served_pair["torch"].names
    assert torch_out["image_index"].nunique() >= IMAGES // 2 and len(torch_out) >= 10
    assert len(onnx_out) == len(torch_out)
    _assert_same_detections(torch_out, onnx_out)
