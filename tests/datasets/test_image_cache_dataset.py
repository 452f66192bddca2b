"""The Kedro dataset of the image cache."""

from __future__ import annotations

import pytest
from kedro.io import DatasetError

from tests.pipelines.preprocess.helpers import synthetic_cache, synthetic_tables
from yolo_mlops.datasets.image_cache_dataset import ImageCacheDataset
from yolo_mlops.pipelines.preprocess.nodes import build_image_cache
from yolo_mlops.yolo.data.image_cache import ImageCache


def test_save_builds_the_cache_and_load_opens_it(tmp_path):
    index, labels, spec = synthetic_tables(tmp_path)
    dataset = ImageCacheDataset(path=str(tmp_path / "out" / "image_cache"))
    assert not dataset.exists()
    dataset.save(build_image_cache(index, labels, spec, {"imgsz": 64}))
    assert dataset.exists()
    cache = dataset.load()
    assert isinstance(cache, ImageCache) and len(cache) == 8 and cache.imgsz == 64
    assert "image_cache" in str(dataset)


def test_save_copies_an_existing_cache(tmp_path):
    cache = synthetic_cache(tmp_path, imgsz=64)
    dataset = ImageCacheDataset(path=str(tmp_path / "copy"))
    dataset.save(cache)
    assert dataset.load().key == cache.key


def test_save_refuses_other_objects_and_in_memory_caches(tmp_path):
    dataset = ImageCacheDataset(path=str(tmp_path / "x"))
    with pytest.raises(DatasetError, match="ImageCacheSource"):
        dataset.save({"not": "a cache"})
    index, labels, spec = synthetic_tables(tmp_path)
    with pytest.raises(DatasetError, match="in-memory"):
        dataset.save(build_image_cache(index, labels, spec, {"imgsz": 64}).in_memory())


def test_load_of_a_missing_cache_fails(tmp_path):
    with pytest.raises(DatasetError, match="not a complete image cache"):
        ImageCacheDataset(path=str(tmp_path / "missing")).load()
