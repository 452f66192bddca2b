"""Parity on real images: the reference-trained YOLO11n on COCO128, exported, in ORT and OpenVINO.

Needs ``../shared`` (COCO128 and ``yolo11n_coco16_ultralytics.pt``); skipped with the reason
otherwise.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import COCO128_ZIP, REFERENCE_DIR
from tests.yolo.export.test_onnx_export import assert_decoded_close
from yolo_mlops.yolo.data.letterbox import letterbox, letterbox_batch
from yolo_mlops.yolo.export.onnx_export import DecodedYOLO, export_checkpoint, file_sha256
from yolo_mlops.yolo.export.runtime import OnnxRuntimeDetector
from yolo_mlops.yolo.inference import detect_images
from yolo_mlops.yolo.io.checkpoint import load_checkpoint

pytestmark = pytest.mark.coco128

CHECKPOINT = "yolo11n_coco16_ultralytics.pt"
IMAGES = 16


def coco128_images(archive: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` COCO128 images, decoded (HWC BGR uint8, their own sizes)."""
    with zipfile.ZipFile(archive) as handle:
        names = sorted(n for n in handle.namelist() if n.endswith(".jpg"))[:count]
        return [
            cv2.imdecode(np.frombuffer(handle.read(name), np.uint8), cv2.IMREAD_COLOR)
            for name in names
        ]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(PyTorch model, ORT detector, images) for the reference checkpoint; one export."""
    checkpoint = REFERENCE_DIR / CHECKPOINT
    for needed in (COCO128_ZIP, checkpoint):
        if not needed.is_file():
            pytest.skip(f"needs {needed} (../shared)")
    path = export_checkpoint(checkpoint, tmp_path_factory.mktemp("coco") / "yolo11n.onnx")
    detector = OnnxRuntimeDetector(path, num_classes=80)
    assert detector.metadata["checkpoint_sha256"] == file_sha256(checkpoint)
    return load_checkpoint(checkpoint), detector, coco128_images(COCO128_ZIP, IMAGES)


def _decoded_pair(model, detector, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        reference = DecodedYOLO(model)(torch.from_numpy(batch).float() / 255).numpy()
    return detector(batch), reference


@pytest.mark.parametrize("imgsz", [320, 640])
def test_decoded_output_matches_pytorch_one_image_at_a_time(exported, imgsz) -> None:
    model, detector, images = exported
    for image in images[:4]:
        batch, _ = letterbox_batch([image], imgsz)  # its smallest stride-multiple canvas
        assert_decoded_close(*_decoded_pair(model, detector, batch))


@pytest.mark.parametrize("imgsz", [320, 640])
def test_decoded_output_matches_pytorch_on_a_rectangular_batch(exported, imgsz) -> None:
    model, detector, images = exported
    canvas = (imgsz * 3 // 4 // 32 * 32, imgsz)  # 224×320 or 480×640
    boxed = [letterbox(image, canvas, scaleup=True).image[..., ::-1] for image in images]
    batch = np.ascontiguousarray(np.stack(boxed).transpose(0, 3, 1, 2))
    assert batch.shape == (IMAGES, 3, *canvas)
    exported_out, reference = _decoded_pair(model, detector, batch)
    assert reference[:, 4:].max() > 0.5  # a trained model: real detections to compare
    assert_decoded_close(exported_out, reference)


def test_detections_without_torch_equal_the_pytorch_path(exported) -> None:
    model, detector, images = exported
    torch_found = detect_images(model, images, 640)
    onnx_found = detector.detect_images(images, 640)
    assert sum(len(item.scores) for item in torch_found) > 30
    for mine, theirs in zip(onnx_found, torch_found, strict=True):
        np.testing.assert_array_equal(mine.classes, theirs.classes)
        np.testing.assert_allclose(mine.boxes, theirs.boxes, rtol=0, atol=0.5)
        np.testing.assert_allclose(mine.scores, theirs.scores, rtol=0, atol=1e-3)


@pytest.fixture(scope="module")
def openvino_detector(exported, tmp_path_factory):
    """The same export converted to OpenVINO IR (skipped without the optional package)."""
    pytest.importorskip("openvino", reason="the optional openvino package is not installed")
    from yolo_mlops.yolo.export.openvino_ir import OpenVinoDetector, export_openvino

    _, detector, _ = exported
    xml = export_openvino(detector.path, tmp_path_factory.mktemp("openvino") / "yolo11n.xml")
    return OpenVinoDetector(xml, num_classes=80)


@pytest.mark.parametrize("imgsz", [320, 640])
def test_openvino_output_matches_pytorch_alone_and_on_a_rectangular_batch(
    exported, openvino_detector, imgsz
) -> None:
    model, _, images = exported
    for image in images[:2]:
        batch, _ = letterbox_batch([image], imgsz)
        assert_decoded_close(*_decoded_pair(model, openvino_detector, batch))
    if imgsz == 320:  # the batch of 16 at 640 adds ~10 s and nothing the ONNX test lacks
        boxed = [letterbox(image, (224, 320), scaleup=True).image[..., ::-1] for image in images]
        batch = np.ascontiguousarray(np.stack(boxed).transpose(0, 3, 1, 2))  # 16 images
        assert_decoded_close(*_decoded_pair(model, openvino_detector, batch))
