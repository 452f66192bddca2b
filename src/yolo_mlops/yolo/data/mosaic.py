"""Mosaic of 4 or 9 images (spec 5.3 step 1): deterministic placement plus thin random wrappers.

A :class:`Tile` is one image with its labels (HWC BGR uint8, xyxy pixel boxes ``[n, 4]`` float32,
class ids ``[n]`` int64). Mosaics return a canvas of ``2s × 2s`` (s = tile long side) and the
labels moved onto it; the perspective step then shrinks that canvas to ``s × s`` (border ``-s/2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yolo_mlops.yolo.data.letterbox import PAD_VALUE


@dataclass
class Tile:
    """One image and its labels (see module docstring for formats)."""

    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray

    @staticmethod
    def empty_labels() -> tuple[np.ndarray, np.ndarray]:
        """Zero boxes ``[0, 4]`` float32 and zero classes ``[0]`` int64."""
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)


def paste(canvas: np.ndarray, image: np.ndarray, x: int, y: int) -> None:
    """Copy ``image`` onto ``canvas``, top-left corner at ``(x, y)``; outside parts are cut."""
    canvas_h, canvas_w = canvas.shape[:2]
    height, width = image.shape[:2]
    x1, y1 = max(x, 0), max(y, 0)
    x2, y2 = min(x + width, canvas_w), min(y + height, canvas_h)
    if x2 <= x1 or y2 <= y1:
        return
    canvas[y1:y2, x1:x2] = image[y1 - y : y2 - y, x1 - x : x2 - x]


def _gather_labels(
    tiles: list[Tile], offsets: list[tuple[int, int]], width: float, height: float
) -> tuple[np.ndarray, np.ndarray]:
    """Shift each tile's boxes by its offset, clip to ``[0, width] × [0, height]``, drop empties."""
    boxes = [
        t.boxes + np.array([dx, dy, dx, dy], np.float32)
        for t, (dx, dy) in zip(tiles, offsets, strict=True)
    ]
    classes = [t.classes for t in tiles]
    if not boxes:
        return Tile.empty_labels()
    all_boxes = np.concatenate(boxes).astype(np.float32).reshape(-1, 4)
    all_classes = np.concatenate(classes).astype(np.int64)
    all_boxes[:, 0::2] = all_boxes[:, 0::2].clip(0, width)
    all_boxes[:, 1::2] = all_boxes[:, 1::2].clip(0, height)
    keep = (all_boxes[:, 2] > all_boxes[:, 0]) & (all_boxes[:, 3] > all_boxes[:, 1])
    return all_boxes[keep], all_classes[keep]


def mosaic4(tiles: list[Tile], size: int, centre: tuple[int, int]) -> Tile:
    """Place 4 tiles around ``centre = (xc, yc)`` on a ``2·size`` square canvas filled with 114.

    Tile 0 has its bottom-right corner at the centre, tile 1 its bottom-left, tile 2 its top-right,
    tile 3 its top-left; parts outside the canvas are cut (the part nearest the centre is kept).

    Returns:
        The ``[2s, 2s, 3]`` canvas with boxes shifted, clipped to the canvas and empty ones removed.
    """
    if len(tiles) != 4:
        raise ValueError(f"mosaic4 needs 4 tiles, got {len(tiles)}")
    xc, yc = centre
    canvas = np.full((2 * size, 2 * size, tiles[0].image.shape[2]), PAD_VALUE, np.uint8)
    offsets = []
    for position, tile in enumerate(tiles):
        height, width = tile.image.shape[:2]
        x = xc - width if position in (0, 2) else xc
        y = yc - height if position in (0, 1) else yc
        paste(canvas, tile.image, x, y)
        offsets.append((x, y))
    boxes, classes = _gather_labels(tiles, offsets, 2 * size, 2 * size)
    return Tile(canvas, boxes, classes)


def mosaic9(tiles: list[Tile], size: int) -> Tile:
    """Place 9 tiles on a ``3·size`` canvas and crop its central ``2·size`` square (spec 5.3).

    Tile 0 sits at ``(s, s)``; tiles 1..8 go top, top-right, right, bottom-right, bottom,
    bottom-left, left, top-left, each placed against tile 0 and the previous tile.

    Returns:
        The ``[2s, 2s, 3]`` crop ``[s/2, 5s/2)`` with boxes shifted by ``-s/2`` and clipped.
    """
    if len(tiles) != 9:
        raise ValueError(f"mosaic9 needs 9 tiles, got {len(tiles)}")
    s = size
    canvas = np.full((3 * s, 3 * s, tiles[0].image.shape[2]), PAD_VALUE, np.uint8)
    h0, w0 = tiles[0].image.shape[:2]
    offsets: list[tuple[int, int]] = []
    prev_h, prev_w = h0, w0
    for position, tile in enumerate(tiles):
        h, w = tile.image.shape[:2]
        x, y = {
            0: (s, s),
            1: (s, s - h),
            2: (s + prev_w, s - h),
            3: (s + w0, s),
            4: (s + w0, s + prev_h),
            5: (s + w0 - w, s + h0),
            6: (s + w0 - prev_w - w, s + h0),
            7: (s - w, s + h0 - h),
            8: (s - w, s + h0 - prev_h - h),
        }[position]
        paste(canvas, tile.image, x, y)
        offsets.append((x, y))
        prev_h, prev_w = h, w
    half = s // 2
    cropped = np.ascontiguousarray(canvas[half : half + 2 * s, half : half + 2 * s])
    shifted = [(dx - half, dy - half) for dx, dy in offsets]
    boxes, classes = _gather_labels(tiles, shifted, 2 * s, 2 * s)
    return Tile(cropped, boxes, classes)


def random_centre(rng: np.random.Generator, size: int) -> tuple[int, int]:
    """Mosaic centre ``(xc, yc)``, each ``int(uniform(s/2, 3s/2))``."""
    xc, yc = rng.uniform(size / 2, 3 * size / 2, 2)
    return int(xc), int(yc)
