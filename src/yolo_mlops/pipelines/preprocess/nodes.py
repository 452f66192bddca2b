"""Preprocessing nodes: the image cache and the mosaic preview (Kedro adapters over
:mod:`.cache_source` and :mod:`.preview`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from PIL import Image

from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.pipelines.preprocess.cache_source import CacheParams, image_cache_source
from yolo_mlops.pipelines.preprocess.preview import PreviewParams, mosaic_preview
from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.data.image_cache import ImageCache, ImageCacheSource

BLOCK = "preprocessing"


@dataclass(frozen=True)
class PreprocessingParams:
    """The ``preprocessing`` parameter block (conf/*/parameters_preprocessing.yml)."""

    imgsz: int = 640
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cache: CacheParams = field(default_factory=CacheParams)
    preview: PreviewParams = field(default_factory=PreviewParams)

    def __post_init__(self) -> None:
        if self.imgsz < 32 or self.imgsz % 32:
            raise ValueError(f"imgsz must be a multiple of 32 (>= 32), got {self.imgsz}")


def build_image_cache(
    image_index: pd.DataFrame,
    clean_labels: pd.DataFrame,
    dataset_spec: dict[str, Any],
    parameters: dict[str, Any],
) -> ImageCacheSource:
    """Describe the image cache for the validated dataset (built lazily by the catalog dataset).

    Returns:
        An :class:`ImageCacheSource`, saved by ``ImageCacheDataset`` into the cache folder.
    """
    params = parse_params(PreprocessingParams, parameters, BLOCK)
    names = list(dataset_spec["names"])
    return image_cache_source(image_index, clean_labels, names, params.imgsz, params.cache.workers)


def render_mosaic_preview(
    image_cache: ImageCache | ImageCacheSource, parameters: dict[str, Any], seed: int = 0
) -> Image.Image:
    """The first epoch-0 training batch as a grid (see :func:`.preview.mosaic_preview`);
    ``seed`` is ``training.seed``."""
    params = parse_params(PreprocessingParams, parameters, BLOCK)
    return mosaic_preview(image_cache, params.preview, params.augment, seed)
