"""evaluate_checkpoint: a checkpoint on a YOLO-format dataset, Ultralytics' figures for its weights.

The parity tests compare with what Ultralytics 8.4.190's own ``val`` printed for two checkpoints
(``../shared/reference``): within 0.002 on precision, recall, mAP50 and mAP50-95, at 320 and 640.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import cv2
import pytest
import torch
import yaml

from tests.conftest import COCO128_ZIP
from yolo_mlops.ingestion.dataset_yaml import shipped_yaml
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset
from yolo_mlops.pipelines.evaluate.evaluation import (
    EvaluationParams,
    dataset_images,
    evaluate_checkpoint,
)
from yolo_mlops.pipelines.params import ParameterError
from yolo_mlops.yolo.io.checkpoint import make_config, save_checkpoint
from yolo_mlops.yolo.model.network import build_model

KEYS = ("precision", "recall", "mAP50", "mAP50-95")
TOLERANCE = 0.002
ONNX_MAP_TOLERANCE = 0.0005  # the exported fp32 model against its checkpoint
INT8_MAP_TOLERANCE = 0.01  # INT8 against fp32


def test_evaluates_a_checkpoint_on_a_dataset_yaml(tmp_path: Path) -> None:
    dataset_yaml = write_synthetic_dataset(tmp_path / "data", SyntheticSpec(n_images=5), seed=1)
    torch.manual_seed(0)
    model = build_model("n", num_classes=3, names=["circle", "square", "bar"])
    config = make_config(scale="n", nc=3, names=["circle", "square", "bar"], imgsz=64)
    checkpoint = save_checkpoint(tmp_path / "m.pt", state_dict=model.state_dict(), config=config)
    metrics = evaluate_checkpoint(checkpoint, dataset_yaml, imgsz=64, batch_size=2)
    assert set(KEYS) <= set(metrics)
    assert all(0.0 <= metrics[key] <= 1.0 for key in KEYS)
    # the default size is the training size recorded in the checkpoint (64)
    assert evaluate_checkpoint(checkpoint, dataset_yaml, batch_size=2) == metrics


def test_options_are_the_evaluation_parameters_with_their_defaults(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"options\.batch\b"):
        evaluate_checkpoint(tmp_path / "m.pt", tmp_path / "d.yaml", batch=8)
    with pytest.raises(ParameterError, match="imgsz must be 0"):
        evaluate_checkpoint(tmp_path / "m.pt", tmp_path / "d.yaml", imgsz=16)
    assert EvaluationParams().batch_size == 16  # the parity figures below are at batch 16


def test_bad_label_rows_leave_the_image_out_and_duplicates_are_dropped(tmp_path: Path) -> None:
    dataset_yaml = write_synthetic_dataset(tmp_path / "data", SyntheticSpec(n_images=3), seed=2)
    labels = sorted((tmp_path / "data" / "labels" / "train2017").glob("train2017_0*.txt"))
    labels[0].write_text("7 0.5 0.5 0.2 0.2\n")  # class 7 of 3
    labels[1].write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n")
    images = dataset_images(dataset_yaml, "val", 64)
    assert len(images) == 2  # image 0 left out; image 2 is a background
    assert [len(c) for c in images.classes] == [1, 0]


@pytest.fixture(scope="module")
def coco128_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not COCO128_ZIP.is_file():
        pytest.skip(f"needs the real COCO128 archive at {COCO128_ZIP}")
    folder = tmp_path_factory.mktemp("coco128")
    with zipfile.ZipFile(COCO128_ZIP) as handle:
        handle.extractall(folder)
    return next(p.parent.parent for p in folder.rglob("images/train2017"))


def _dataset_yaml(root: Path, path: Path) -> Path:
    names = yaml.safe_load(shipped_yaml("coco128").read_text(encoding="utf-8"))["names"]
    config = {"path": str(root), "train": "images/train2017", "val": "images/train2017"}
    path.write_text(yaml.safe_dump({**config, "names": names}))
    return path


def _assert_parity(checkpoint: Path, dataset_yaml: Path, reference: dict, imgsz: int) -> None:
    metrics = evaluate_checkpoint(checkpoint, dataset_yaml, imgsz=imgsz)
    expected = reference["val"][str(imgsz)]
    for key in KEYS:
        assert metrics[key] == pytest.approx(expected[key], abs=TOLERANCE), (key, metrics)


@pytest.mark.coco128
@pytest.mark.parametrize("imgsz", [320, 640])
def test_coco16_checkpoint_on_coco128_gives_ultralytics_figures(
    coco128_root: Path, reference_dir: Path, tmp_path: Path, imgsz: int
) -> None:
    reference = json.loads((reference_dir / "yolo11n_coco16_ultralytics_val.json").read_text())
    dataset_yaml = _dataset_yaml(coco128_root, tmp_path / "coco128.yaml")
    checkpoint = reference_dir / "yolo11n_coco16_ultralytics.pt"
    _assert_parity(checkpoint, dataset_yaml, reference, imgsz)


@pytest.fixture
def coco16b_yaml(coco128_root: Path, reference_dir: Path, tmp_path: Path) -> Path:
    """The 16 COCO128 images the coco16b checkpoint was trained on, as a dataset YAML."""
    subset = tmp_path / "coco16b"
    for kind in ("images", "labels"):
        (subset / kind / "train2017").mkdir(parents=True)
    for name in (reference_dir / "coco16b" / "images.txt").read_text().split():
        stem = Path(name).stem
        shutil.copy(
            coco128_root / "images" / "train2017" / f"{stem}.jpg", subset / "images" / "train2017"
        )
        shutil.copy(
            coco128_root / "labels" / "train2017" / f"{stem}.txt", subset / "labels" / "train2017"
        )
    return _dataset_yaml(subset, tmp_path / "coco16b.yaml")


@pytest.mark.coco128
@pytest.mark.parametrize("imgsz", [320, 640])
def test_coco16b_checkpoint_on_its_16_images_gives_ultralytics_figures(
    coco16b_yaml: Path, reference_dir: Path, imgsz: int
) -> None:
    anchor = reference_dir / "coco16b"
    reference = json.loads((anchor / "val.json").read_text())
    _assert_parity(anchor / "last.pt", coco16b_yaml, reference, imgsz)


@pytest.mark.coco128
def test_coco16b_exported_to_onnx_and_int8_keeps_the_checkpoints_map(
    coco16b_yaml: Path, reference_dir: Path, tmp_path: Path
) -> None:
    from yolo_mlops.yolo.export.onnx_export import export_checkpoint
    from yolo_mlops.yolo.export.quantize import quantize_onnx

    checkpoint = reference_dir / "coco16b" / "last.pt"
    fp32 = export_checkpoint(checkpoint, tmp_path / "coco16b.onnx", imgsz=320)
    images = dataset_images(coco16b_yaml, "val", 320)
    calibration = (cv2.imread(str(path)) for path in images.paths)  # its training images
    int8 = quantize_onnx(fp32, tmp_path / "coco16b_int8.onnx", calibration)
    figures = {
        str(model): evaluate_checkpoint(model, coco16b_yaml, imgsz=320)["mAP50-95"]
        for model in (checkpoint, fp32, int8)
    }
    torch_map, onnx_map, int8_map = figures.values()
    assert onnx_map == pytest.approx(torch_map, abs=ONNX_MAP_TOLERANCE), figures
    assert int8_map == pytest.approx(onnx_map, abs=INT8_MAP_TOLERANCE), figures
