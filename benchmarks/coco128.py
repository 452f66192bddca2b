"""COCO128 for the benchmarks: extract the archive into a work folder and build its image cache.

Train and val are the same 128 images, as in ``coco128.yaml``; class names are ``class0..79``
(the benchmarks measure speed and fit, not per-class tables).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import yaml

from yolo_mlops.pipelines.preprocess.nodes import build_image_cache
from yolo_mlops.pipelines.preprocess.yolo_tables import yolo_folder_tables
from yolo_mlops.yolo.data.image_cache import ImageCache

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "coco128.zip"


def build_coco128_cache(archive: Path, workdir: Path, imgsz: int, images: int = 0) -> ImageCache:
    """Extract COCO128 into ``workdir``, keep the first ``images`` (0 = all), cache at ``imgsz``.

    Train and val are the same images, as in ``coco128.yaml``; 80 class names ``class0..79``.
    """
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(workdir / "raw")
    root = next(p.parent.parent for p in (workdir / "raw").rglob("images/train2017"))
    if images > 0:
        subset = workdir / "subset"
        for kind in ("images", "labels"):
            (subset / kind / "train2017").mkdir(parents=True)
        for image in sorted((root / "images" / "train2017").glob("*.jpg"))[:images]:
            shutil.copy(image, subset / "images" / "train2017" / image.name)
            label = root / "labels" / "train2017" / f"{image.stem}.txt"
            if label.is_file():
                shutil.copy(label, subset / "labels" / "train2017" / label.name)
        root = subset
    dataset_yaml = workdir / "dataset.yaml"
    dataset_yaml.write_text(
        yaml.safe_dump(
            {
                "path": str(root),
                "train": "images/train2017",
                "val": "images/train2017",
                "names": [f"class{i}" for i in range(80)],
            }
        )
    )
    source = build_image_cache(*yolo_folder_tables(dataset_yaml), {"imgsz": imgsz})
    return source.materialise(workdir / "image_cache")
