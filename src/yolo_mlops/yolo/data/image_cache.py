"""A memory-mappable cache of decoded, resized images and their pixel boxes.

Folder layout (``format = yolo-mlops-image-cache``, version 1):

- ``pixels.bin``: every image, HWC BGR uint8, resized so its long side is ``imgsz`` (design §5),
  concatenated; read with ``np.memmap`` so workers share the page cache instead of copies.
- ``index.npz``: ``offsets`` int64 [N] byte offset of each image, ``shapes`` int32 [N, 2] cached
  (h, w), ``orig_shapes`` int32 [N, 2] original (h, w), ``box_offsets`` int64 [N + 1],
  ``boxes`` float32 [M, 4] xyxy pixels of the cached image, ``classes`` int64 [M].
- ``meta.json``: format, version, content ``key``, ``imgsz``, ``names``, ``paths`` [N] and
  ``splits`` {split: [cache indices]}. An image listed in several splits is stored once.

:class:`ImageCacheSource` describes what to build; :meth:`ImageCacheSource.materialise` skips the
work when the folder already holds a cache with the same content key;
:meth:`ImageCacheSource.in_memory` decodes into RAM instead (same images and labels, no files).
:func:`decode_image` is the one decoder: data validation decides with it which images stay.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from tqdm import tqdm

from yolo_mlops.yolo.boxes import xyxyn_to_xyxy
from yolo_mlops.yolo.data.letterbox import resize_long_side
from yolo_mlops.yolo.file_modes import honour_umask

logger = logging.getLogger(__name__)

CACHE_FORMAT = "yolo-mlops-image-cache"
CACHE_VERSION = 1


class ImageCacheError(RuntimeError):
    """The cache folder is missing, incomplete, or an image cannot be decoded."""


def decode_image(file: str | Path | bytes) -> np.ndarray | None:
    """Decode an image file (a path or its bytes) as the cache stores it, or ``None``.

    Returns:
        HWC BGR uint8 ``[h, w, 3]`` with the EXIF orientation applied (16-bit, grey, CMYK and
        alpha images converted), or ``None`` when OpenCV cannot decode it. The data stage drops
        an image only when this returns ``None``, so validation and the cache agree on every
        image and on its size. ``cv2.imdecode`` on the bytes rather than ``cv2.imread``: imread
        fails on some TIFFs with an orientation tag that imdecode reads.
    """
    if isinstance(file, bytes):
        data = np.frombuffer(file, np.uint8)
    else:
        try:
            data = np.fromfile(file, np.uint8)
        except OSError:
            return None
    if not data.size:
        return None
    try:
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:
        return None


@dataclass(frozen=True)
class CacheImage:
    """One image to cache.

    Attributes:
        path: the image path as the tables spell it (kept in ``meta.json``).
        file: where to read it from (``path`` resolved against the working directory).
        boxes: normalised xyxy ``[n, 4]`` float32 in [0, 1]; classes: ``[n]`` int64.
    """

    path: str
    file: Path
    boxes: np.ndarray
    classes: np.ndarray


@dataclass
class ImageCacheSource:
    """What a cache folder must contain; built lazily by :meth:`materialise`.

    Attributes:
        images: the unique images, in cache order.
        splits: split name -> positions in ``images``.
        names: class names; imgsz: long side after resizing; key: content key (see
            :func:`content_key`); workers: decoding threads (cv2 releases the GIL).
    """

    images: list[CacheImage]
    splits: dict[str, list[int]]
    names: list[str]
    imgsz: int
    key: str
    workers: int = 2
    chunk: int = field(default=64, repr=False)

    def materialise(self, path: str | Path) -> ImageCache:
        """Build the cache in ``path`` unless it already holds one with this key; open it."""
        path = Path(path)
        existing = read_meta(path)
        if existing is not None and existing.get("key") == self.key:
            logger.info(
                "image cache %s is up to date (key %s); not rebuilding", path, self.key[:12]
            )
            return ImageCache.open(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            self._write(staging)
            honour_umask(staging)  # mkdtemp made it 0700
            if path.exists():
                shutil.rmtree(path)
            os.replace(staging, path)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return ImageCache.open(path)

    def _decoded(self) -> Iterator[tuple[CacheImage, np.ndarray, tuple[int, int]]]:
        def decode(item: CacheImage) -> tuple[CacheImage, np.ndarray, tuple[int, int]]:
            image = decode_image(item.file)
            if image is None:
                raise ImageCacheError(
                    f"cannot decode {item.file}: re-run data validation so the image is excluded"
                )
            orig = (int(image.shape[0]), int(image.shape[1]))
            return item, np.ascontiguousarray(resize_long_side(image, self.imgsz)), orig

        with ThreadPoolExecutor(max(self.workers, 1)) as pool:
            for start in range(0, len(self.images), self.chunk):
                yield from pool.map(decode, self.images[start : start + self.chunk])

    def _collect(self, sink: BinaryIO) -> tuple[dict[str, np.ndarray], dict]:
        """Decode every image into ``sink`` (raw pixels); return the index arrays and meta."""
        count = len(self.images)
        offsets = np.zeros(count, np.int64)
        shapes = np.zeros((count, 2), np.int32)
        orig_shapes = np.zeros((count, 2), np.int32)
        box_offsets = np.zeros(count + 1, np.int64)
        all_boxes = [np.zeros((0, 4), np.float32)]
        all_classes = [np.zeros(0, np.int64)]
        position = 0
        logger.info("decoding %d images into the image cache at imgsz %d", count, self.imgsz)
        decoded = tqdm(
            self._decoded(),
            total=count,
            desc="image cache",
            unit="img",
            disable=None,
            mininterval=2,
        )  # disable=None: a bar on terminals only, nothing in CI logs
        for i, (item, image, orig) in enumerate(decoded):
            offsets[i] = position
            shapes[i] = image.shape[:2]
            orig_shapes[i] = orig
            sink.write(image.tobytes())
            position += image.nbytes
            boxes = xyxyn_to_xyxy(
                np.asarray(item.boxes, np.float32).reshape(-1, 4), *image.shape[1::-1]
            )
            all_boxes.append(boxes)
            all_classes.append(np.asarray(item.classes, np.int64).reshape(-1))
            box_offsets[i + 1] = box_offsets[i] + len(boxes)
        index = {
            "offsets": offsets,
            "shapes": shapes,
            "orig_shapes": orig_shapes,
            "box_offsets": box_offsets,
            "boxes": np.concatenate(all_boxes),
            "classes": np.concatenate(all_classes),
        }
        meta = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "key": self.key,
            "imgsz": self.imgsz,
            "names": list(self.names),
            "paths": [item.path for item in self.images],
            "splits": {name: [int(i) for i in idx] for name, idx in self.splits.items()},
        }
        return index, meta

    def _write(self, folder: Path) -> None:
        with open(folder / "pixels.bin", "wb") as pixels:
            index, meta = self._collect(pixels)
        np.savez(folder / "index.npz", **index)
        (folder / "meta.json").write_text(json.dumps(meta))

    def in_memory(self) -> ImageCache:
        """Decode into RAM instead of a folder (no cache on disk; same images and labels)."""
        buffer = io.BytesIO()
        index, meta = self._collect(buffer)
        pixels = np.frombuffer(buffer.getbuffer(), np.uint8)
        pixels.flags.writeable = False
        return ImageCache(None, meta, index, pixels=pixels)


def ensure_cache(value: ImageCache | ImageCacheSource) -> ImageCache:
    """``value`` as an :class:`ImageCache`; a source not saved through the catalog (e.g. a
    ``MemoryDataset`` in a test) is decoded in memory."""
    return value.in_memory() if isinstance(value, ImageCacheSource) else value


def content_key(parts: Iterable[bytes], files: Iterable[Path], imgsz: int) -> str:
    """SHA-256 over table bytes, each file's (path, size, mtime_ns), ``imgsz`` and the format."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}/{CACHE_VERSION}/{imgsz}".encode())
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    for file in files:
        stat = Path(file).stat()
        digest.update(f"{file}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def read_meta(path: str | Path) -> dict | None:
    """``meta.json`` of a complete cache folder, or ``None`` if there is none (or it is broken)."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    complete = (path / "pixels.bin").is_file() and (path / "index.npz").is_file()
    return meta if complete and meta.get("format") == CACHE_FORMAT else None


class ImageCache:
    """Read access to a cache folder (module docstring); picklable, workers re-open the memmap."""

    def __init__(
        self,
        root: Path | None,
        meta: dict,
        index: dict[str, np.ndarray],
        pixels: np.ndarray | None = None,
    ) -> None:
        self.root = Path(root) if root is not None else None
        self.meta = meta
        self._index = index
        self._pixels = pixels
        self._splits = {k: np.asarray(v, np.int64) for k, v in meta["splits"].items()}

    @classmethod
    def open(cls, path: str | Path) -> ImageCache:
        """Open the cache in ``path``; :class:`ImageCacheError` if it is missing or incomplete."""
        meta = read_meta(path)
        if meta is None:
            raise ImageCacheError(
                f"{path} is not a complete image cache; run `kedro run --pipelines preprocess`"
            )
        if meta.get("version") != CACHE_VERSION:
            raise ImageCacheError(f"{path}: cache version {meta.get('version')} != {CACHE_VERSION}")
        with np.load(Path(path) / "index.npz") as data:
            index = {name: data[name] for name in data.files}
        return cls(Path(path), meta, index)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self.root is not None:
            state["_pixels"] = None  # never pickle the memmap (spawned workers would copy it)
        return state

    @property
    def pixels(self) -> np.ndarray:
        """The flat uint8 memmap of all images (opened on first use)."""
        if self._pixels is None:
            assert self.root is not None  # in-memory caches always hold their pixels
            size = (self.root / "pixels.bin").stat().st_size
            self._pixels = (
                np.memmap(self.root / "pixels.bin", np.uint8, "r")
                if size
                else np.zeros(0, np.uint8)
            )
        return self._pixels

    def __len__(self) -> int:
        return len(self._index["offsets"])

    @property
    def imgsz(self) -> int:
        """Long side of every cached image, pixels."""
        return int(self.meta["imgsz"])

    @property
    def names(self) -> list[str]:
        """Class names, index = class id."""
        return list(self.meta["names"])

    @property
    def key(self) -> str:
        """The content key the cache was built for."""
        return str(self.meta["key"])

    @property
    def splits(self) -> list[str]:
        """Split names present in the cache."""
        return list(self._splits)

    def indices(self, split: str) -> np.ndarray:
        """Cache indices (int64) of the images in ``split``."""
        if split not in self._splits:
            raise KeyError(f"split {split!r} not in the image cache (has {sorted(self._splits)})")
        return self._splits[split].copy()

    def image(self, i: int) -> np.ndarray:
        """Cached image ``i``: HWC BGR uint8 ``[h, w, 3]`` (read-only view of the memmap)."""
        height, width = self._index["shapes"][i]
        start = int(self._index["offsets"][i])
        return self.pixels[start : start + int(height) * int(width) * 3].reshape(height, width, 3)

    def boxes(self, i: int) -> np.ndarray:
        """Boxes of image ``i``: float32 ``[n, 4]`` xyxy pixels of the cached image."""
        start, stop = self._index["box_offsets"][i : i + 2]
        return self._index["boxes"][start:stop].copy()

    def classes(self, i: int) -> np.ndarray:
        """Class ids of image ``i``: int64 ``[n]``."""
        start, stop = self._index["box_offsets"][i : i + 2]
        return self._index["classes"][start:stop].copy()

    def shape(self, i: int) -> tuple[int, int]:
        """Cached ``(h, w)`` of image ``i``."""
        height, width = self._index["shapes"][i]
        return int(height), int(width)

    def orig_shape(self, i: int) -> tuple[int, int]:
        """Original ``(h, w)`` of image ``i``."""
        height, width = self._index["orig_shapes"][i]
        return int(height), int(width)

    def path(self, i: int) -> str:
        """Image path as the input tables spell it."""
        return str(self.meta["paths"][i])

    def resize_gain(self, i: int) -> float:
        """Scale from original to cached pixels: ``imgsz / max(orig_h, orig_w)``."""
        return self.imgsz / max(self.orig_shape(i))
