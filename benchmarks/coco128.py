"""COCO128 for the benchmarks: extract the archive into a work folder and build its image cache.

Train and val are the same 128 images, as in ``coco128.yaml``; class names are ``class0..79``
(the benchmarks measure speed and fit, not per-class tables).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import yaml

from yolo_mlops.ingestion.tables import dataset_tables
from yolo_mlops.pipelines.preprocess.nodes import build_image_cache
from yolo_mlops.yolo.data.image_cache import ImageCache

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "coco128.zip"


def build_coco128_cache(archive: Path, workdir: Path, imgsz: int, images: int = 0) -> ImageCache:
    """Extract COCO128 into ``workdir``, keep the first ``images`` (0 = all), cache at ``imgsz``.

    Train and val are the same images, as in ``coco128.yaml``; 80 class names ``class0..79``.
    """
    dataset_yaml = extract_coco128(archive, workdir, images)
    return build_cache_from_dataset_yaml(dataset_yaml, workdir / "image_cache", imgsz)


def extract_coco128(archive: Path, workdir: Path, images: int = 0) -> Path:
    """Extract COCO128 into ``workdir`` (first ``images``, 0 = all); its dataset YAML's path.

    The YAML is in the YOLO format that both trainers read: ``path``, ``train`` = ``val`` =
    ``images/train2017``, 80 ``names``.
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
    return dataset_yaml


def build_cache_from_dataset_yaml(dataset_yaml: Path, cache_dir: Path, imgsz: int) -> ImageCache:
    """The image cache (long side ``imgsz``) of the YOLO-folder dataset ``dataset_yaml``."""
    source = build_image_cache(*dataset_tables(dataset_yaml), {"imgsz": imgsz})
    return source.materialise(cache_dir)
