"""Training augmentation (design §5): the configuration, the pixel/flip transforms and the chain.

Every transform is a deterministic function of an image (HWC BGR uint8) and its labels (a
:class:`~yolo_mlops.yolo.data.mosaic.Tile`) plus explicit parameters; the ``random_*`` wrappers only
draw those parameters from a ``numpy.random.Generator``. :func:`augment_sample` runs the chain
Mosaic → (Letterbox) → RandomPerspective → MixUp → HSV → flips, returning an ``S × S`` tile.

HSV: we use the **multiplicative** hue LUT of Ultralytics 8.3.0, the release whose recipe this
project reproduces (``H = (h · r_h) mod 180``); 8.3.79+ switched to an additive hue shift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from yolo_mlops.yolo.data.letterbox import letterbox, letterbox_boxes
from yolo_mlops.yolo.data.mosaic import Tile, mosaic4, mosaic9, random_centre
from yolo_mlops.yolo.data.perspective import CandidateRule, WarpParams, sample_warp, warp_tile

_PROBABILITIES = ("mosaic", "mixup", "flipud", "fliplr")


@dataclass(frozen=True)
class AugmentConfig:
    """Every probability and magnitude of the training augmentation (defaults = design §4).

    Attributes:
        mosaic: probability of a mosaic (while mosaic is not closed).
        mosaic_tiles: 4 (default) or 9 images per mosaic.
        mixup: probability of blending with a second augmented sample (ratio ~ Beta(b, b)).
        mixup_beta: ``b`` of that Beta distribution.
        degrees: rotation range ±degrees; translate: fraction of the output size (±);
        scale: isotropic scale range ``1 ± scale``; shear: ±degrees; perspective: ± projective term.
        hsv_h, hsv_s, hsv_v: HSV gains (``r = 1 + uniform(-1, 1)·gain``).
        flipud, fliplr: flip probabilities.
        box_min_size, box_min_area_ratio, box_max_aspect: the box candidate rule after warping.
    """

    mosaic: float = 1.0
    mosaic_tiles: int = 4
    mixup: float = 0.0
    mixup_beta: float = 32.0
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    perspective: float = 0.0
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    flipud: float = 0.0
    fliplr: float = 0.5
    box_min_size: float = 2.0
    box_min_area_ratio: float = 0.10
    box_max_aspect: float = 100.0

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability and must lie in [0, 1]")
        if self.mosaic_tiles not in (4, 9):
            raise ValueError(f"mosaic_tiles must be 4 or 9, got {self.mosaic_tiles}")
        for name in ("degrees", "translate", "scale", "shear", "perspective", "hsv_h", "hsv_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0.0 <= self.hsv_v <= 1.0 or not self.translate <= 0.5 or not self.scale < 1.0:
            raise ValueError("need hsv_v in [0, 1], translate <= 0.5 and scale < 1")
        if self.mixup_beta <= 0:
            raise ValueError("mixup_beta must be > 0")

    @property
    def candidate_rule(self) -> CandidateRule:
        """The box candidate thresholds as a :class:`CandidateRule`."""
        return CandidateRule(self.box_min_size, self.box_min_area_ratio, self.box_max_aspect)


def apply_hsv(image: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """Multiply hue (mod 180), saturation and value of a BGR uint8 image by ``gains`` via LUTs."""
    if gains == (1.0, 1.0, 1.0):
        return image
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_hue = ((x * gains[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    merged = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(merged, cv2.COLOR_HSV2BGR)


def random_hsv(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """:func:`apply_hsv` with gains ``1 + uniform(-1, 1) · (hsv_h, hsv_s, hsv_v)``."""
    draws = rng.uniform(-1, 1, 3)
    if not (config.hsv_h or config.hsv_s or config.hsv_v):
        return image
    gains = draws * np.array([config.hsv_h, config.hsv_s, config.hsv_v]) + 1
    return apply_hsv(image, (float(gains[0]), float(gains[1]), float(gains[2])))


def flip_horizontal(tile: Tile) -> Tile:
    """Mirror left-right; boxes ``x → w - x`` (applying it twice is the identity)."""
    width = tile.image.shape[1]
    boxes = tile.boxes.copy()
    boxes[:, [0, 2]] = width - tile.boxes[:, [2, 0]]
    return Tile(cv2.flip(tile.image, 1), boxes, tile.classes)  # numpy's reversed copy: ~40x slower


def flip_vertical(tile: Tile) -> Tile:
    """Mirror top-bottom; boxes ``y → h - y``."""
    height = tile.image.shape[0]
    boxes = tile.boxes.copy()
    boxes[:, [1, 3]] = height - tile.boxes[:, [3, 1]]
    return Tile(cv2.flip(tile.image, 0), boxes, tile.classes)


def mixup(first: Tile, second: Tile, ratio: float) -> Tile:
    """Blend two same-size tiles ``ratio · first + (1 - ratio) · second``; labels concatenated."""
    image = first.image.astype(np.float32) * ratio + second.image.astype(np.float32) * (1 - ratio)
    return Tile(
        image.astype(np.uint8),
        np.concatenate([first.boxes, second.boxes]),
        np.concatenate([first.classes, second.classes]),
    )


TileLoader = Callable[[int], Tile]
"""Returns the cached (long side = S) image and labels of one cache index."""


def _geometric(
    load: TileLoader,
    partners: np.ndarray,
    index: int,
    *,
    size: int,
    config: AugmentConfig,
    rng: np.random.Generator,
    mosaic_on: bool,
) -> Tile:
    """Mosaic (or letterbox) followed by the random perspective; returns an ``S × S`` tile."""
    use_mosaic = rng.random() < config.mosaic and mosaic_on
    warp = sample_warp(
        rng,
        degrees=config.degrees,
        translate=config.translate,
        scale=config.scale,
        shear=config.shear,
        perspective=config.perspective,
    )
    if use_mosaic:
        others = rng.choice(partners, size=config.mosaic_tiles - 1, replace=True)
        tiles = [load(index), *(load(int(i)) for i in others)]
        if config.mosaic_tiles == 4:
            canvas = mosaic4(tiles, size, random_centre(rng, size))
        else:
            canvas = mosaic9(tiles, size)
    else:
        tile = load(index)
        boxed = letterbox(tile.image, size, scaleup=True)
        canvas = Tile(boxed.image, letterbox_boxes(tile.boxes, boxed.gain, boxed.pad), tile.classes)
    return warp_tile(canvas, warp, (size, size), config.candidate_rule)


def augment_sample(
    load: TileLoader,
    partners: np.ndarray,
    index: int,
    *,
    size: int,
    config: AugmentConfig,
    rng: np.random.Generator,
    mosaic_on: bool = True,
) -> Tile:
    """The whole training chain for one sample (design §5), fully determined by ``rng``.

    Args:
        load: cache index -> tile (image resized to long side ``size``).
        partners: cache indices mosaic/mixup partners are drawn from (with replacement).
        index: the sample's own cache index (tile 0 of a mosaic).
        size: output side ``S``.
        config: probabilities and magnitudes.
        rng: the sample's generator (derive it from (seed, epoch, index)).
        mosaic_on: ``False`` once close_mosaic applies (mosaic and mixup off).

    Returns:
        An ``S × S`` BGR tile with xyxy pixel boxes inside ``[0, S]``.
    """
    geometry = {"size": size, "config": config, "rng": rng, "mosaic_on": mosaic_on}
    tile = _geometric(load, partners, index, **geometry)
    if mosaic_on and config.mixup > 0 and rng.random() < config.mixup:
        other_index = int(rng.choice(partners))
        other = _geometric(load, partners, other_index, **geometry)
        tile = mixup(tile, other, float(rng.beta(config.mixup_beta, config.mixup_beta)))
    tile = Tile(random_hsv(tile.image, rng, config), tile.boxes, tile.classes)
    flip_up, flip_lr = rng.random(2)
    if flip_up < config.flipud:
        tile = flip_vertical(tile)
    if flip_lr < config.fliplr:
        tile = flip_horizontal(tile)
    return tile


__all__ = [
    "AugmentConfig",
    "Tile",
    "TileLoader",
    "WarpParams",
    "apply_hsv",
    "augment_sample",
    "flip_horizontal",
    "flip_vertical",
    "mixup",
    "random_hsv",
]
