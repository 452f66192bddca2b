"""The mosaic preview: the first training batch, drawn as a grid of tiles with their boxes."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.data.image_cache import ImageCache, ImageCacheSource, ensure_cache
from yolo_mlops.yolo.data.loader import build_train_loader

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreviewParams:
    """Mosaic preview: ``samples`` augmented training samples in a grid of ``columns``, each tile
    at most ``tile_size`` px, from ``split``."""

    samples: int = 16
    columns: int = 4
    tile_size: int = 480
    split: str = "train"


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


def mosaic_preview(
    image_cache: ImageCache | ImageCacheSource,
    preview: PreviewParams,
    augment: AugmentConfig,
    seed: int = 0,
) -> Image.Image:
    """The first epoch-0 training batch (same loader code and seed as training) as a grid.

    Uses ``build_train_loader`` with ``batch_size = preview.samples``, mosaic on and the training
    seed, so with a training batch of the same size it is exactly the first batch training sees.
    """
    image_cache = ensure_cache(image_cache)
    loader = build_train_loader(
        image_cache, split=preview.split, batch_size=preview.samples, augment=augment,
        seed=seed, workers=0, epochs=1, close_mosaic=0,
    )  # fmt: skip
    loader.set_epoch(0)
    batch = next(iter(loader))
    grid = draw_samples(
        batch["images"].numpy(), batch["targets"].numpy(), image_cache.names,
        preview.columns, preview.tile_size,
    )  # fmt: skip
    logger.info("mosaic preview: %d samples, %dx%d px", len(batch["images"]), *grid.shape[:2])
    return Image.fromarray(grid)
