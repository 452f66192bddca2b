"""The image cache of the validated dataset, described from its tables (decoded lazily).

The ``image_cache`` catalog dataset (:mod:`yolo_mlops.datasets`) builds the cache from the
:class:`ImageCacheSource` returned here, and skips decoding when its content key matches.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from yolo_mlops.ingestion.paths import project_root, resolve
from yolo_mlops.yolo.data.image_cache import CacheImage, ImageCacheSource, content_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheParams:
    """Image cache settings. ``workers``: decoding threads."""

    workers: int = 2


def _table_bytes(table: pd.DataFrame) -> bytes:
    columns = ",".join(map(str, table.columns)).encode()
    return columns + pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes()


def _first_split_labels(image_index: pd.DataFrame, clean_labels: pd.DataFrame) -> pd.DataFrame:
    """The boxes of each image as the first split that lists it has them."""
    first_split = image_index.drop_duplicates("image_path").set_index("image_path")["split"]
    listed_first = first_split.reindex(clean_labels["image_path"]).to_numpy()
    return clean_labels[clean_labels["split"].to_numpy() == listed_first]


def _cache_images(paths: list[str], labels: pd.DataFrame) -> list[CacheImage]:
    """One :class:`CacheImage` per path with its xyxy pixel boxes and class ids."""
    grouped = dict(tuple(labels.groupby("image_path", sort=False)))
    root = project_root()  # relative image paths are relative to the project root
    images = []
    for path in paths:
        rows = grouped.get(path)
        if rows is None:
            boxes, classes = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        else:
            boxes = rows[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
            classes = rows["class_id"].to_numpy(np.int64)
        images.append(CacheImage(path, resolve(path, root), boxes, classes))
    return images


def image_cache_source(
    image_index: pd.DataFrame,
    clean_labels: pd.DataFrame,
    names: list[str],
    imgsz: int,
    workers: int,
) -> ImageCacheSource:
    """Describe the image cache of ``image_index`` at ``imgsz`` (decoded by ``workers`` threads).

    Each image is stored once even when several splits list it; its boxes are those of the first
    split that lists it. The content key covers both tables, the class names, every image file's
    size and mtime, and ``imgsz``.
    """
    paths = list(dict.fromkeys(image_index["image_path"].astype(str)))
    position = {path: i for i, path in enumerate(paths)}
    splits = {
        str(split): [position[p] for p in group["image_path"].astype(str)]
        for split, group in image_index.groupby("split", sort=False)
    }
    images = _cache_images(paths, _first_split_labels(image_index, clean_labels))
    tables = [_table_bytes(image_index), _table_bytes(clean_labels), json.dumps(names).encode()]
    key = content_key(tables, [image.file for image in images], imgsz)
    logger.info(
        "image cache: %d unique images, splits %s, imgsz %d, key %s",
        len(images), {k: len(v) for k, v in splits.items()}, imgsz, key[:12],
    )  # fmt: skip
    return ImageCacheSource(images, splits, names, imgsz, key, workers)
