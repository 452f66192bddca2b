"""A tiny on-disk ``ImageCache`` for trainer tests (synthetic rectangles, train = val)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset
from yolo_mlops.yolo.boxes import xywhn_to_xyxy
from yolo_mlops.yolo.data.image_cache import CacheImage, ImageCache, ImageCacheSource


def make_tiny_cache(root: Path, n_images: int = 8, imgsz: int = 64, seed: int = 0) -> ImageCache:
    """Write ``n_images`` synthetic images and cache them at ``imgsz``; splits train = val."""
    spec = SyntheticSpec(n_images=n_images, backgrounds=1, orphans=0)
    yaml_path = write_synthetic_dataset(root / "dataset", spec, seed=seed)
    image_dir = yaml_path.parent / "images" / "train2017"
    label_dir = yaml_path.parent / "labels" / "train2017"
    images = []
    for file in sorted(image_dir.glob("*.jpg")):
        label = label_dir / f"{file.stem}.txt"
        rows = np.loadtxt(label, ndmin=2, dtype=np.float32) if label.is_file() else np.zeros((0, 5))
        rows = rows.reshape(-1, 5).astype(np.float32)
        boxes = xywhn_to_xyxy(rows[:, 1:5], 1, 1) if len(rows) else np.zeros((0, 4), np.float32)
        images.append(
            CacheImage(str(file), file, np.asarray(boxes, np.float32), rows[:, 0].astype(np.int64))
        )
    everything = list(range(len(images)))
    source = ImageCacheSource(
        images, {"train": everything, "val": everything}, list(spec.names), imgsz, f"tiny{seed}", 1
    )
    return source.materialise(root / "cache")
