"""Evaluation images at any size, in rectangular or square batches (design §5).

An evaluation image goes through the reference's two steps:

1. *load*: resize the original so its long side is ``imgsz`` (``min(ceil(side·r), imgsz)``,
   INTER_LINEAR, design §5). An :class:`~yolo_mlops.yolo.data.image_cache.ImageCache` built at the
   same
   ``imgsz`` already holds exactly these pixels (:class:`CacheImages`); at any other size the
   originals are decoded again (:class:`FileImages`), so a small cache is never upscaled;
2. *letterbox* into the batch canvas (:mod:`yolo_mlops.yolo.data.rect`): no upscaling, centred,
   integer left/top borders, grey 114.

The batch layout is the one :func:`yolo_mlops.yolo.eval.evaluate.evaluate` reads
(``yolo_mlops.yolo.data.loader`` module docstring); ``ratio_pad = (gain, pad_x, pad_y)`` with
``input_px = orig_px · gain + pad``. Like the reference, ``gain`` is the height ratio of the load
step times the letterbox gain: the width ratio can differ from it by the rounding of one pixel,
and both predictions and labels are mapped back with the same ``gain``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from yolo_mlops.yolo.data.image_cache import ImageCache, decode_image
from yolo_mlops.yolo.data.letterbox import letterbox, letterbox_boxes, resize_long_side
from yolo_mlops.yolo.data.loader import _to_tensor, _worker_init, collate_eval
from yolo_mlops.yolo.data.rect import BatchPlan, plan_batches


class EvalImageError(RuntimeError):
    """An evaluation image cannot be read; names the file."""


@dataclass(frozen=True)
class LoadedImage:
    """One image after the load step.

    Attributes:
        image: HWC BGR uint8, long side ``imgsz``.
        boxes: ``[n, 4]`` float32 xyxy in pixels of ``image``; classes: ``[n]`` int64.
        orig_shape: original ``(h, w)``; index: the image's id (cache index or list position).
    """

    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    orig_shape: tuple[int, int]
    index: int


class CacheImages:
    """The images of one split of an :class:`ImageCache`, used as they are cached."""

    def __init__(self, cache: ImageCache, split: str) -> None:
        self.cache = cache
        self.indices = cache.indices(split)
        self.imgsz = cache.imgsz

    def __len__(self) -> int:
        return len(self.indices)

    def orig_shapes(self) -> np.ndarray:
        """``[N, 2]`` original ``(h, w)``."""
        return np.array([self.cache.orig_shape(int(i)) for i in self.indices], np.int64)

    def path(self, position: int) -> str:
        """Image path of ``position``."""
        return self.cache.path(int(self.indices[position]))

    def load(self, position: int) -> LoadedImage:
        """The cached image at ``position`` of the split, with its cached-pixel boxes."""
        index = int(self.indices[position])
        return LoadedImage(
            self.cache.image(index),
            self.cache.boxes(index),
            self.cache.classes(index),
            self.cache.orig_shape(index),
            index,
        )


class FileImages:
    """Original image files resized on load to ``imgsz``, with normalised labels.

    Args:
        paths: image files.
        boxes: per image, ``[n, 4]`` normalised xyxy in [0, 1]; classes: per image ``[n]`` ids.
        orig_shapes: ``[N, 2]`` original ``(h, w)`` (as decoded by ``image_cache.decode_image``).
        imgsz: long side after loading, pixels.
        ids: per image the id reported in the results (default: the position).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        boxes: Sequence[np.ndarray],
        classes: Sequence[np.ndarray],
        orig_shapes: np.ndarray,
        *,
        imgsz: int,
        ids: Sequence[int] | None = None,
    ) -> None:
        if not len(paths) == len(boxes) == len(classes) == len(orig_shapes):
            raise ValueError("paths, boxes, classes and orig_shapes must have one entry per image")
        self.paths = [str(p) for p in paths]
        self.boxes = [np.asarray(b, np.float32).reshape(-1, 4) for b in boxes]
        self.classes = [np.asarray(c, np.int64).reshape(-1) for c in classes]
        self._orig_shapes = np.asarray(orig_shapes, np.int64).reshape(-1, 2)
        self.imgsz = int(imgsz)
        self.ids = list(ids) if ids is not None else list(range(len(self.paths)))

    @classmethod
    def from_cache(cls, cache: ImageCache, split: str, imgsz: int) -> FileImages:
        """The originals behind ``split`` of ``cache`` (paths and labels from the cache)."""
        indices = cache.indices(split)
        boxes, classes, shapes = [], [], []
        for index in (int(i) for i in indices):
            height, width = cache.shape(index)
            boxes.append(cache.boxes(index) / np.array([width, height, width, height], np.float32))
            classes.append(cache.classes(index))
            shapes.append(cache.orig_shape(index))
        paths = [cache.path(int(i)) for i in indices]
        ids = [int(i) for i in indices]
        return cls(paths, boxes, classes, np.array(shapes), imgsz=imgsz, ids=ids)

    def __len__(self) -> int:
        return len(self.paths)

    def orig_shapes(self) -> np.ndarray:
        """``[N, 2]`` original ``(h, w)``."""
        return self._orig_shapes.copy()

    def path(self, position: int) -> str:
        """Image path of ``position``."""
        return self.paths[position]

    def load(self, position: int) -> LoadedImage:
        """Decode the original, resize its long side to ``imgsz``, scale the labels with it."""
        path = self.paths[position]
        image = decode_image(path)
        if image is None:
            raise EvalImageError(f"cannot decode {path}; re-run data validation or remove it")
        orig_shape = (int(image.shape[0]), int(image.shape[1]))
        image = resize_long_side(image, self.imgsz)
        height, width = image.shape[:2]
        boxes = self.boxes[position] * np.array([width, height, width, height], np.float32)
        return LoadedImage(image, boxes, self.classes[position], orig_shape, self.ids[position])


EvalImages = CacheImages | FileImages


class LetterboxedEval(Dataset):
    """Samples of an :data:`EvalImages` letterboxed into the canvas of their batch."""

    def __init__(self, images: EvalImages, plan: BatchPlan) -> None:
        self.images = images
        self.canvas = plan.canvas_of()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, position: int) -> tuple:
        loaded = self.images.load(position)
        boxed = letterbox(loaded.image, self.canvas[position], scaleup=False)
        boxes = letterbox_boxes(loaded.boxes, boxed.gain, boxed.pad)
        gain = loaded.image.shape[0] / loaded.orig_shape[0] * boxed.gain
        sample = (
            _to_tensor(boxed.image),
            torch.from_numpy(boxes),
            torch.from_numpy(loaded.classes),
            loaded.index,
        )
        return sample, loaded.orig_shape, (gain, *boxed.pad), self.images.path(position)


def collate_eval_with_paths(items: list) -> dict:
    """:func:`~yolo_mlops.yolo.data.loader.collate_eval` plus ``paths`` (the batch's images)."""
    batch = collate_eval([item[:3] for item in items])
    batch["paths"] = [item[3] for item in items]
    return batch


def build_eval_images(cache: ImageCache, split: str, imgsz: int) -> tuple[EvalImages, str]:
    """Evaluation images of ``split`` at ``imgsz``: the cached pixels when the cache was built at
    that size, else the original files (a smaller cache is never upscaled, a larger one never
    resized twice). Returns the images and a sentence saying which it did, for the log."""
    if cache.imgsz == imgsz:
        return CacheImages(cache, split), f"cached images (image cache built at imgsz {imgsz})"
    images = FileImages.from_cache(cache, split, imgsz)
    missing = [p for p in images.paths if not Path(p).is_file()]
    if missing:
        raise EvalImageError(
            f"evaluation at imgsz {imgsz} needs the original images (the image cache is at "
            f"{cache.imgsz}), but {len(missing)} are missing, e.g. {missing[0]}; run from the "
            f"project root, or set evaluation.imgsz={cache.imgsz}"
        )
    return images, (
        f"original images resized to {imgsz} (the image cache is at {cache.imgsz}, "
        f"{'smaller: not upscaled' if cache.imgsz < imgsz else 'larger: not resized twice'})"
    )


def build_letterbox_loader(
    images: EvalImages, batch_size: int = 16, *, rect: bool = True, workers: int = 0
) -> DataLoader:
    """Evaluation loader over ``images`` at their ``imgsz``: rectangular batches (``rect``) or
    ``imgsz × imgsz`` canvases in input order. Batches carry ``paths``."""
    plan = plan_batches(images.orig_shapes(), batch_size, images.imgsz, rect=rect)
    return DataLoader(
        LetterboxedEval(images, plan),
        batch_sampler=[batch.tolist() for batch in plan.batches],
        num_workers=workers,
        collate_fn=collate_eval_with_paths,
        worker_init_fn=_worker_init if workers > 0 else None,
    )
