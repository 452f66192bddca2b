"""COCO128 for the benchmarks: extract the archive into a work folder and build its image cache.

Train and val are the same 128 images, as in ``coco128.yaml``; class names are ``class0..79``
(the benchmarks measure speed and fit, not per-class tables). The quality benchmarks train on
16-image subsets instead (:func:`subset_names`, :func:`build_image_subset`), with COCO's names.
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
COCO_YAML = ROOT / "src/yolo_mlops/ingestion/configs/coco128.yaml"  # COCO's 80 class names


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


def subset_names(archive: Path, first: int, count: int = 16) -> list[str]:
    """File names of images ``first`` .. ``first + count - 1`` of COCO128 in sorted order.

    Numbering is 1-based over ``images/train2017/*.jpg`` sorted by name: ``first=17`` gives
    images 17-32, the coco16b anchor's ``images.txt``.
    """
    with zipfile.ZipFile(archive) as handle:
        files = handle.namelist()
    images = sorted(Path(n).name for n in files if "images/train2017/" in n and n.endswith(".jpg"))
    if first < 1 or first + count - 1 > len(images):
        raise ValueError(f"images {first}-{first + count - 1} are outside COCO128's {len(images)}")
    return images[first - 1 : first - 1 + count]


def build_image_subset(archive: Path, workdir: Path, names: list[str], name: str) -> Path:
    """Extract COCO128 into ``workdir/raw`` (once) and copy ``names`` with their labels.

    Returns the dataset YAML ``workdir/<name>.yaml`` (train = val = those images, COCO's 80
    class names), in the YOLO format both trainers read; an image without a label file stays a
    background image.
    """
    raw = workdir / "raw"
    if not raw.is_dir():
        with zipfile.ZipFile(archive) as handle:
            handle.extractall(raw)
    root = next(p.parent.parent for p in raw.rglob("images/train2017"))
    subset = workdir / name
    for kind in ("images", "labels"):
        (subset / kind / "train2017").mkdir(parents=True, exist_ok=True)
    for image_name in names:
        image = root / "images" / "train2017" / Path(image_name).name
        label = root / "labels" / "train2017" / f"{image.stem}.txt"
        for source, kind in ((image, "images"), (label, "labels")):
            target = subset / kind / "train2017" / source.name
            if source.is_file() and not target.is_file():  # a copy keeps the cache's key
                shutil.copy(source, target)
    coco_names = yaml.safe_load(COCO_YAML.read_text(encoding="utf-8"))["names"]
    dataset_yaml = workdir / f"{name}.yaml"
    dataset_yaml.write_text(
        yaml.safe_dump(
            {"path": str(subset.resolve()), "train": "images/train2017",
             "val": "images/train2017", "names": coco_names}
        )
    )  # fmt: skip
    return dataset_yaml
