"""Preprocessing nodes: the image cache and the mosaic preview (Kedro adapters over yolo/)."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from yolo_mlops.ingestion.paths import project_root, resolve
from yolo_mlops.params import parse_params
from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.data.image_cache import (
    CacheImage,
    ImageCache,
    ImageCacheSource,
    content_key,
    ensure_cache,
)
from yolo_mlops.yolo.data.loader import build_train_loader

logger = logging.getLogger(__name__)

BLOCK = "preprocessing"


@dataclass(frozen=True)
class CacheParams:
    """Image cache settings. ``workers``: decoding threads."""

    workers: int = 2


@dataclass(frozen=True)
class PreviewParams:
    """Mosaic preview: ``samples`` augmented training samples in a grid of ``columns``, each tile
    at most ``tile_size`` px, from ``split``."""

    samples: int = 16
    columns: int = 4
    tile_size: int = 480
    split: str = "train"


@dataclass(frozen=True)
class PreprocessingParams:
    """The ``preprocessing`` parameter block (conf/*/parameters_preprocessing.yml)."""

    imgsz: int = 640
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cache: CacheParams = field(default_factory=CacheParams)
    preview: PreviewParams = field(default_factory=PreviewParams)

    def __post_init__(self) -> None:
        if self.imgsz < 32 or self.imgsz % 32:
            raise ValueError(f"imgsz must be a multiple of 32 (>= 32), got {self.imgsz}")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")


def _table_bytes(table: pd.DataFrame) -> bytes:
    columns = ",".join(map(str, table.columns)).encode()
    return columns + pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes()


def build_image_cache(
    image_index: pd.DataFrame,
    clean_labels: pd.DataFrame,
    dataset_spec: dict[str, Any],
    parameters: dict[str, Any],
) -> ImageCacheSource:
    """Describe the image cache for the validated dataset (built lazily by the catalog dataset).

    Each image is stored once even when several splits list it; its boxes are those of the first
    split that lists it. The content key covers both tables, the class names, every image file's
    size and mtime, and ``imgsz``: the ``image_cache`` dataset skips decoding when it matches.

    Returns:
        An :class:`ImageCacheSource`, saved by ``ImageCacheDataset`` into the cache folder.
    """
    params = parse_params(PreprocessingParams, parameters, BLOCK)
    names = list(dataset_spec["names"])
    paths = list(dict.fromkeys(image_index["image_path"].astype(str)))
    position = {path: i for i, path in enumerate(paths)}
    splits = {
        str(split): [position[p] for p in group["image_path"].astype(str)]
        for split, group in image_index.groupby("split", sort=False)
    }
    first_split = image_index.drop_duplicates("image_path").set_index("image_path")["split"]
    labels = clean_labels[
        clean_labels["split"].to_numpy()
        == first_split.reindex(clean_labels["image_path"]).to_numpy()
    ]
    grouped = dict(tuple(labels.groupby("image_path", sort=False)))
    root = project_root()  # relative image paths are relative to the project root
    images = []
    for path in paths:
        rows = grouped.get(path)
        boxes = (
            rows[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
            if rows is not None
            else np.zeros((0, 4), np.float32)
        )
        classes = rows["class_id"].to_numpy(np.int64) if rows is not None else np.zeros(0, np.int64)
        images.append(CacheImage(path, resolve(path, root), boxes, classes))
    key = content_key(
        [_table_bytes(image_index), _table_bytes(clean_labels), json.dumps(names).encode()],
        [image.file for image in images],
        params.imgsz,
    )
    logger.info(
        "image cache: %d unique images, splits %s, imgsz %d, key %s",
        len(images),
        {k: len(v) for k, v in splits.items()},
        params.imgsz,
        key[:12],
    )
    return ImageCacheSource(images, splits, names, params.imgsz, key, params.cache.workers)


def _palette(class_id: int) -> tuple[int, int, int]:
    hue = (class_id * 47) % 180
    pixel = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return int(pixel[0]), int(pixel[1]), int(pixel[2])


def draw_samples(
    images: np.ndarray, targets: np.ndarray, names: list[str], columns: int, tile_size: int
) -> np.ndarray:
    """Grid of RGB images ``[B, 3, S, S]`` uint8 with targets ``[N, 6]`` drawn; returns HWC RGB."""
    count, _, size, _ = images.shape
    rows = math.ceil(count / columns)
    scale = min(tile_size, size) / size
    tile = round(size * scale)
    grid = np.full((rows * tile, columns * tile, 3), 255, np.uint8)
    for b in range(count):
        canvas = np.ascontiguousarray(images[b].transpose(1, 2, 0))
        canvas = cv2.resize(canvas, (tile, tile), interpolation=cv2.INTER_AREA)
        for _, class_id, *box in targets[targets[:, 0] == b]:
            x1, y1, x2, y2 = (round(v * scale) for v in box)
            colour = _palette(int(class_id))
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
            label = names[int(class_id)] if 0 <= class_id < len(names) else str(int(class_id))
            cv2.putText(canvas, label, (x1 + 2, max(y1 - 3, 10)), 0, 0.4, colour, 1, cv2.LINE_AA)
        cv2.rectangle(canvas, (0, 0), (tile - 1, tile - 1), (255, 255, 255), 2)
        row, column = divmod(b, columns)
        grid[row * tile : (row + 1) * tile, column * tile : (column + 1) * tile] = canvas
    return grid


def render_mosaic_preview(
    image_cache: ImageCache | ImageCacheSource, parameters: dict[str, Any]
) -> Image.Image:
    """The first epoch-0 training batch (same loader code and seed as training) as a grid.

    Uses ``build_train_loader`` with ``batch_size = preview.samples`` and mosaic on, so with a
    training batch of the same size it is exactly the first batch training sees.
    """
    params = parse_params(PreprocessingParams, parameters, BLOCK)
    image_cache = ensure_cache(image_cache)
    loader = build_train_loader(
        image_cache,
        split=params.preview.split,
        batch_size=params.preview.samples,
        augment=params.augment,
        seed=params.seed,
        workers=0,
        epochs=1,
        close_mosaic=0,
    )
    loader.set_epoch(0)
    batch = next(iter(loader))
    grid = draw_samples(
        batch["images"].numpy(),
        batch["targets"].numpy(),
        image_cache.names,
        params.preview.columns,
        params.preview.tile_size,
    )
    logger.info("mosaic preview: %d samples, %dx%d px", len(batch["images"]), *grid.shape[:2])
    return Image.fromarray(grid)
