"""Build the data stage's tables straight from a YOLO folder (tests, benchmarks, offline use).

The data pipelines produce ``image_index`` / ``clean_labels`` / ``dataset_spec`` with validation;
this is the minimal stand-in with the same columns (see CONTRACTS.md) and no checks beyond parsing,
so the preprocessing stage can be exercised on its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

IMAGE_SUFFIXES = {".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"}


def _label_file(image: Path) -> Path:
    parts = list(image.parts)
    where = len(parts) - 1 - parts[::-1].index("images")
    parts[where] = "labels"
    return Path(*parts).with_suffix(".txt")


def _read_labels(path: Path) -> np.ndarray:
    if not path.is_file():
        return np.zeros((0, 5))
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return np.array([[float(v) for v in row[:5]] for row in rows]).reshape(-1, 5)


def yolo_folder_tables(dataset_yaml: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Parse ``dataset_yaml`` and its folders into ``(image_index, clean_labels, dataset_spec)``.

    Image paths are absolute. Boxes in ``clean_labels`` are normalised xyxy clipped to [0, 1].
    """
    dataset_yaml = Path(dataset_yaml).resolve()
    config = yaml.safe_load(dataset_yaml.read_text())
    root = (dataset_yaml.parent / config.get("path", ".")).resolve()
    names = config["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    index_rows, label_rows, splits = [], [], {}
    for split in ("train", "val", "test"):
        if not config.get(split):
            continue
        images = sorted(
            p for p in (root / config[split]).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
        )
        splits[split] = [str(p) for p in images]
        for image in images:
            with Image.open(image) as handle:
                width, height = handle.size
            labels = _read_labels(_label_file(image))
            index_rows.append((split, str(image), width, height, len(labels), "ok"))
            for class_id, cx, cy, w, h in labels:
                box = np.clip([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 0, 1)
                label_rows.append(
                    (split, str(image), width, height, int(class_id), names[int(class_id)], *box)
                )
    image_index = pd.DataFrame(
        index_rows, columns=["split", "image_path", "width", "height", "instances", "status"]
    )
    clean_labels = pd.DataFrame(
        label_rows,
        columns=[
            *("split", "image_path", "width", "height", "class_id", "class_name"),
            *("x1", "y1", "x2", "y2"),
        ],
    )
    spec = {
        "name": root.name,
        "root": str(root),
        "yaml": str(dataset_yaml),
        "names": names,
        "nc": len(names),
        "splits": splits,
    }
    return image_index, clean_labels, spec
