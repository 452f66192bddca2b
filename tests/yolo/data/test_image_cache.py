"""The image cache: layout, contents, key-based reuse, failure cases."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from tests.pipelines.preprocess.helpers import synthetic_cache, synthetic_tables
from yolo_mlops.pipelines.preprocess.nodes import build_image_cache
from yolo_mlops.yolo.data import image_cache as image_cache_module
from yolo_mlops.yolo.data.image_cache import ImageCache, ImageCacheError


def test_cache_resizes_long_side_to_imgsz_and_scales_boxes(tmp_path):
    cache = synthetic_cache(tmp_path, imgsz=64)
    index, labels, _ = synthetic_tables(tmp_path / "again")
    assert len(cache) == 8 and cache.imgsz == 64 and cache.names == ["circle", "square", "bar"]
    for i in range(len(cache)):
        image = cache.image(i)
        assert max(image.shape[:2]) == 64 and image.dtype == np.uint8 and image.shape[2] == 3
        orig_h, orig_w = cache.orig_shape(i)
        original = cv2.imread(cache.path(i))
        assert original.shape[:2] == (orig_h, orig_w)
        assert cache.resize_gain(i) == pytest.approx(64 / max(orig_h, orig_w))
        boxes = cache.boxes(i)
        assert boxes.dtype == np.float32 and boxes.shape == (len(cache.classes(i)), 4)
        assert (boxes >= 0).all() and (boxes[:, 0::2] <= image.shape[1]).all()
    assert sum(len(cache.classes(i)) for i in range(len(cache))) == len(labels) // 2
    assert len(index) == 16  # 8 images listed in train and in val


def test_images_shared_by_splits_are_stored_once(tmp_path):
    cache = synthetic_cache(tmp_path, imgsz=64)
    np.testing.assert_array_equal(cache.indices("train"), cache.indices("val"))
    stored = (cache.root / "pixels.bin").stat().st_size
    assert stored == sum(cache.image(i).nbytes for i in range(len(cache)))
    with pytest.raises(KeyError, match="test"):
        cache.indices("test")


def test_unchanged_dataset_is_not_decoded_again(tmp_path, monkeypatch):
    index, labels, spec = synthetic_tables(tmp_path)
    calls = []
    real_decode = image_cache_module.decode_image
    monkeypatch.setattr(
        image_cache_module, "decode_image", lambda file: calls.append(file) or real_decode(file)
    )
    first = build_image_cache(index, labels, spec, {"imgsz": 64}).materialise(tmp_path / "c")
    assert len(calls) == 8
    again = build_image_cache(index, labels, spec, {"imgsz": 64}).materialise(tmp_path / "c")
    assert len(calls) == 8 and again.key == first.key
    build_image_cache(index, labels, spec, {"imgsz": 96}).materialise(tmp_path / "c")
    assert len(calls) == 16
    build_image_cache(index, labels.iloc[1:], spec, {"imgsz": 96}).materialise(tmp_path / "c")
    assert len(calls) == 24


def test_open_refuses_a_missing_or_incomplete_cache(tmp_path):
    with pytest.raises(ImageCacheError, match="not a complete image cache"):
        ImageCache.open(tmp_path / "nothing")
    cache = synthetic_cache(tmp_path, imgsz=64)
    (cache.root / "pixels.bin").unlink()
    with pytest.raises(ImageCacheError, match="preprocess"):
        ImageCache.open(cache.root)


def test_undecodable_image_fails_with_the_file_named(tmp_path):
    index, labels, spec = synthetic_tables(tmp_path)
    broken = index["image_path"].iloc[0]
    with open(broken, "wb") as handle:
        handle.write(b"not a jpeg")
    with pytest.raises(ImageCacheError, match=broken):
        build_image_cache(index, labels, spec, {"imgsz": 64}).materialise(tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_cache_pickles_without_its_pixels(tmp_path):
    cache = synthetic_cache(tmp_path, imgsz=64)
    cache.image(0)
    restored = pickle.loads(pickle.dumps(cache))
    assert len(pickle.dumps(cache)) < (cache.root / "pixels.bin").stat().st_size
    np.testing.assert_array_equal(restored.image(3), cache.image(3))


def test_cache_folder_mode_follows_the_umask(tmp_path):
    import os

    from tests.yolo.tiny_cache import make_tiny_cache

    old = os.umask(0o022)
    try:
        cache = make_tiny_cache(tmp_path, n_images=2, imgsz=32)
    finally:
        os.umask(old)
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o755
    assert cache is not None


def test_decoder_reads_a_tiff_with_an_orientation_tag_upright(tmp_path):
    from PIL import Image

    path = tmp_path / "rotated.tif"
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(path, tiffinfo={0x0112: 6})
    image = image_cache_module.decode_image(path)
    assert image is not None and image.shape == (40, 20, 3) and image.dtype == np.uint8
    assert image_cache_module.decode_image(path.read_bytes()).shape == (40, 20, 3)
    assert image_cache_module.decode_image(tmp_path / "missing.jpg") is None
    assert image_cache_module.decode_image(b"") is None
