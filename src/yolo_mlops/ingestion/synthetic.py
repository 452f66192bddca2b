"""Synthetic YOLO-format datasets for tests, benchmarks and offline smoke runs.

Images are random-noise backgrounds with filled rectangles; every rectangle is one labelled box,
so a detector can learn them. The layout mirrors COCO128:
``<root>/images/<split>/*.jpg``, ``<root>/labels/<split>/*.txt`` and a dataset YAML beside them.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate.

    Attributes:
        n_images: images per split.
        names: class names; class ``i`` is drawn in a colour of its own.
        size_range: (min, max) image side in pixels; width and height are drawn independently.
        max_boxes: at most this many boxes per image (at least one unless the image is a
            background).
        backgrounds: number of images (per split) with no label file.
        orphans: number of label files (per split) with no image.
        splits: split folder names; with ``("train2017",)`` train and val share one folder, as
            in COCO128.
    """

    n_images: int = 8
    names: tuple[str, ...] = ("circle", "square", "bar")
    size_range: tuple[int, int] = (96, 160)
    max_boxes: int = 3
    backgrounds: int = 1
    orphans: int = 1
    splits: tuple[str, ...] = ("train2017",)


def _colour(class_id: int) -> tuple[int, int, int]:
    palette = (
        (230, 60, 60),
        (60, 200, 60),
        (60, 90, 230),
        (220, 200, 40),
        (200, 60, 200),
        (40, 200, 200),
    )
    return palette[class_id % len(palette)]


def write_synthetic_dataset(
    root: Path, spec: SyntheticSpec = SyntheticSpec(), seed: int = 0
) -> Path:
    """Write a synthetic dataset under ``root`` and return the path of its dataset YAML.

    Returns:
        ``root / "dataset.yaml"`` with ``path: .``, ``train`` pointing at the first split,
        ``val`` at the second (the first when there is one split), ``test`` at the third when
        given, and ``names`` as a list.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split in spec.splits:
        _write_split(root, split, spec, rng)
    first = f"images/{spec.splits[0]}"
    config: dict = {"path": ".", "train": first, "val": first, "names": list(spec.names)}
    if len(spec.splits) > 1:
        config["val"] = f"images/{spec.splits[1]}"
    if len(spec.splits) > 2:
        config["test"] = f"images/{spec.splits[2]}"
    yaml_path = root / "dataset.yaml"
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return yaml_path


def _write_split(root: Path, split: str, spec: SyntheticSpec, rng: np.random.Generator) -> None:
    """Images and label files of one split; the last ``spec.backgrounds`` have no labels."""
    image_dir, label_dir = root / "images" / split, root / "labels" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    for index in range(spec.n_images):
        stem = f"{split}_{index:06d}"
        is_background = index >= spec.n_images - spec.backgrounds
        image, rows = _draw_image(spec, rng, is_background)
        cv2.imwrite(str(image_dir / f"{stem}.jpg"), image)
        if not is_background:
            (label_dir / f"{stem}.txt").write_text("\n".join(rows) + "\n")
    for orphan in range(spec.orphans):
        (label_dir / f"{split}_orphan_{orphan:03d}.txt").write_text("0 0.5 0.5 0.2 0.2\n")


def _draw_image(
    spec: SyntheticSpec, rng: np.random.Generator, background: bool
) -> tuple[np.ndarray, list[str]]:
    """A noise image (H, W, 3) uint8 BGR with filled rectangles, and their YOLO label rows."""
    width, height = (int(v) for v in rng.integers(spec.size_range[0], spec.size_range[1] + 1, 2))
    image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    rows = []
    for _ in range(0 if background else int(rng.integers(1, spec.max_boxes + 1))):
        class_id = int(rng.integers(0, len(spec.names)))
        box_w = int(rng.integers(max(8, width // 8), max(9, width // 2)))
        box_h = int(rng.integers(max(8, height // 8), max(9, height // 2)))
        x1 = int(rng.integers(0, width - box_w))
        y1 = int(rng.integers(0, height - box_h))
        cv2.rectangle(image, (x1, y1), (x1 + box_w - 1, y1 + box_h - 1), _colour(class_id), -1)
        rows.append(
            f"{class_id} {(x1 + box_w / 2) / width:.6f} {(y1 + box_h / 2) / height:.6f} "
            f"{box_w / width:.6f} {box_h / height:.6f}"
        )
    return image, rows


def zip_dataset(root: Path, archive: Path, top_level: str | None = None) -> Path:
    """Zip the dataset folder ``root`` (images and labels, not the YAML) into ``archive``.

    Entries are stored under ``top_level/`` (default: the folder's name), as in ``coco128.zip``.
    """
    root = Path(root)
    prefix = top_level or root.name
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix != ".yaml":
                zf.write(path, f"{prefix}/{path.relative_to(root).as_posix()}")
    return Path(archive)
