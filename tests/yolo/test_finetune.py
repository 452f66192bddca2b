"""Fine-tuning from trained weights beats scratch from the first epoch (real COCO128 images).

The trained checkpoint is Ultralytics' yolo11n trained on the first 16 images of COCO128 at 320
(``../shared/reference/README.md``); one epoch on those 16 images, trained and validated on them,
from that checkpoint and from scratch.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from yolo_mlops.ingestion.tables import dataset_tables
from yolo_mlops.pipelines.preprocess.nodes import build_image_cache
from yolo_mlops.yolo.train.trainer import Trainer

pytestmark = [pytest.mark.integration, pytest.mark.coco128]

IMAGES, IMGSZ = 16, 320


def coco16_cache(archive: Path, workdir: Path):
    """The first 16 COCO128 images (train = val) cached at 320, 80 classes ``class0..79``."""
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(workdir / "raw")
    root = next(p.parent.parent for p in (workdir / "raw").rglob("images/train2017"))
    for kind in ("images", "labels"):
        (workdir / "subset" / kind / "train2017").mkdir(parents=True)
    for image in sorted((root / "images/train2017").glob("*.jpg"))[:IMAGES]:
        shutil.copy(image, workdir / "subset/images/train2017" / image.name)
        label = root / "labels/train2017" / f"{image.stem}.txt"
        if label.is_file():
            shutil.copy(label, workdir / "subset/labels/train2017" / label.name)
    dataset_yaml = workdir / "dataset.yaml"
    dataset_yaml.write_text(
        yaml.safe_dump(
            {
                "path": str(workdir / "subset"),
                "train": "images/train2017",
                "val": "images/train2017",
                "names": [f"class{i}" for i in range(80)],
            }
        )
    )
    source = build_image_cache(*dataset_tables(dataset_yaml), {"imgsz": IMGSZ})
    return source.materialise(workdir / "image_cache")


def _first_epoch(cache, save_dir: Path, pretrained: str) -> dict[str, float]:
    config = {"epochs": 1, "batch": 8, "optimizer": "SGD", "device": "cpu", "workers": 0,
              "progress": False, "save_dir": str(save_dir), "pretrained": pretrained}  # fmt: skip
    return Trainer(config, cache).fit().history[0]


def test_first_epoch_from_trained_weights_beats_scratch(coco128_zip, reference_dir, tmp_path):
    checkpoint = reference_dir / "yolo11n_coco16_ultralytics.pt"
    if not checkpoint.is_file():
        pytest.skip(f"needs {checkpoint}")
    cache = coco16_cache(coco128_zip, tmp_path)
    tuned = _first_epoch(cache, tmp_path / "tuned", str(checkpoint))
    scratch = _first_epoch(cache, tmp_path / "scratch", "")

    def loss(row: dict[str, float]) -> float:
        return row["train/box_loss"] + row["train/cls_loss"] + row["train/dfl_loss"]

    assert loss(tuned) < 0.8 * loss(scratch), (loss(tuned), loss(scratch))
    assert tuned["metrics/mAP50-95"] > 0.1 > 10 * scratch["metrics/mAP50-95"], (tuned, scratch)
