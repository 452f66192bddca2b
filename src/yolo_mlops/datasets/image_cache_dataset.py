"""Kedro dataset for the image cache folder (see ``yolo_mlops.yolo.data.image_cache``).

``save`` takes an :class:`ImageCacheSource` and builds the folder unless it already holds a cache
with the same content key (no image is decoded then); ``load`` returns an :class:`ImageCache`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from yolo_mlops.yolo.data.image_cache import ImageCache, ImageCacheSource, read_meta


class ImageCacheDataset(AbstractDataset[ImageCacheSource | ImageCache, ImageCache]):
    """Catalog entry::

    image_cache:
      type: yolo_mlops.datasets.image_cache_dataset.ImageCacheDataset
      path: data/05_model_input/image_cache
    """

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def _load(self) -> ImageCache:
        return ImageCache.open(self._path)

    def _save(self, data: ImageCacheSource | ImageCache) -> None:
        if isinstance(data, ImageCacheSource):
            data.materialise(self._path)
        elif isinstance(data, ImageCache):
            if data.root is None:
                raise DatasetError(
                    f"ImageCacheDataset({self._path}): an in-memory ImageCache cannot be saved; "
                    "save its ImageCacheSource instead"
                )
            if data.root.resolve() != self._path.resolve():
                if self._path.exists():
                    shutil.rmtree(self._path)
                shutil.copytree(data.root, self._path)
        else:
            raise DatasetError(
                f"ImageCacheDataset({self._path}) saves an ImageCacheSource or an ImageCache, "
                f"got {type(data).__name__}"
            )

    def _exists(self) -> bool:
        return read_meta(self._path) is not None

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
