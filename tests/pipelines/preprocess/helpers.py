"""Test helpers: small image caches built from the synthetic dataset."""

from __future__ import annotations

from pathlib import Path

from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset
from yolo_mlops.pipelines.preprocess.nodes import build_image_cache
from yolo_mlops.pipelines.preprocess.yolo_tables import yolo_folder_tables
from yolo_mlops.yolo.data.image_cache import ImageCache


def synthetic_tables(root: Path, n_images: int = 8, seed: int = 0):
    """(image_index, clean_labels, dataset_spec) of a synthetic dataset written under ``root``."""
    spec = SyntheticSpec(n_images=n_images, size_range=(80, 160))
    return yolo_folder_tables(write_synthetic_dataset(root / "dataset", spec, seed))


def synthetic_cache(root: Path, imgsz: int = 64, n_images: int = 8) -> ImageCache:
    """An image cache of a synthetic dataset (train and val share the images)."""
    image_index, clean_labels, dataset_spec = synthetic_tables(root, n_images)
    source = build_image_cache(image_index, clean_labels, dataset_spec, {"imgsz": imgsz})
    return source.materialise(root / "cache")
