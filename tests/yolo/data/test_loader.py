"""Training/evaluation loaders: batch layout, determinism across workers, close_mosaic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.pipelines.preprocess.helpers import synthetic_cache
from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.data.loader import (
    _to_tensor,
    build_eval_loader,
    build_train_loader,
    mosaic_enabled,
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return synthetic_cache(tmp_path_factory.mktemp("loader"), imgsz=64, n_images=8)


def _epoch(loader, epoch):
    loader.set_epoch(epoch)
    return list(loader)


def _assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b, strict=True):
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_train_batches_have_the_contract_layout(cache):
    loader = build_train_loader(cache, batch_size=3, epochs=2, close_mosaic=0)
    assert len(loader) == 3
    batches = _epoch(loader, 0)
    assert [len(b["images"]) for b in batches] == [3, 3, 2]
    batch = batches[0]
    assert batch["images"].dtype == torch.uint8 and batch["images"].shape == (3, 3, 64, 64)
    assert batch["targets"].dtype == torch.float32 and batch["targets"].shape[1] == 6
    assert batch["indices"].dtype == torch.int64
    targets = batch["targets"]
    assert set(targets[:, 0].tolist()) <= {0.0, 1.0, 2.0}
    assert (targets[:, 2:] >= 0).all() and (targets[:, 2:] <= 64).all()
    assert (targets[:, 4:] > targets[:, 2:4]).all()
    seen = torch.cat([b["indices"] for b in batches]).sort().values
    assert seen.tolist() == list(range(8))


def test_same_seed_gives_identical_batches_with_0_and_2_workers(cache):
    serial = build_train_loader(cache, batch_size=4, seed=3, workers=0, epochs=3, close_mosaic=1)
    parallel = build_train_loader(cache, batch_size=4, seed=3, workers=2, epochs=3, close_mosaic=1)
    for epoch in (0, 2):
        _assert_same(_epoch(serial, epoch), _epoch(parallel, epoch))


def test_batches_are_the_same_with_or_without_the_disk_cache(tmp_path, cache):
    from tests.pipelines.preprocess.helpers import synthetic_tables
    from yolo_mlops.pipelines.preprocess.nodes import build_image_cache

    tables = synthetic_tables(tmp_path)  # the same synthetic dataset (same seed) as ``cache``
    in_memory = build_image_cache(*tables, {"imgsz": 64}).in_memory()
    assert in_memory.root is None and len(in_memory) == len(cache)
    on_disk = build_train_loader(cache, batch_size=4, seed=5, epochs=2, close_mosaic=1)
    in_ram = build_train_loader(
        in_memory, batch_size=4, seed=5, workers=2, epochs=2, close_mosaic=1
    )
    for epoch in (0, 1):
        _assert_same(_epoch(on_disk, epoch), _epoch(in_ram, epoch))


def test_different_seed_or_epoch_gives_different_batches(cache):
    first = _epoch(build_train_loader(cache, batch_size=8, seed=0), 0)[0]
    other = _epoch(build_train_loader(cache, batch_size=8, seed=1), 0)[0]
    later = _epoch(build_train_loader(cache, batch_size=8, seed=0), 1)[0]
    assert not torch.equal(first["images"], other["images"])
    assert not torch.equal(first["images"], later["images"])


@pytest.mark.parametrize(
    ("epochs", "close", "first_closed"), [(5, 10, 0), (10, 10, 0), (15, 10, 5), (3, 0, 3)]
)
def test_close_mosaic_switches_off_from_max_epochs_minus_n(cache, epochs, close, first_closed):
    loader = build_train_loader(cache, batch_size=8, epochs=epochs, close_mosaic=close)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        assert loader.mosaic == (epoch < first_closed)
        assert mosaic_enabled(epoch, epochs, close) == (epoch < first_closed)


def test_closed_mosaic_samples_show_one_image_and_resume_matches(cache):
    # With scale/translate 0 and mosaic closed, a sample is the letterboxed image itself.
    still = AugmentConfig(translate=0.0, scale=0.0, hsv_h=0, hsv_s=0, hsv_v=0, fliplr=0.0)
    loader = build_train_loader(cache, batch_size=8, augment=still, epochs=4, close_mosaic=2)
    batch = _epoch(loader, 2)[0]
    for image, index in zip(batch["images"], batch["indices"].tolist(), strict=True):
        height, width = cache.shape(index)
        rgb = cache.image(index)[:, :, ::-1]
        top, left = (64 - height) // 2, (64 - width) // 2
        np.testing.assert_array_equal(
            image.permute(1, 2, 0)[top : top + height, left : left + width], rgb
        )
    resumed = build_train_loader(
        cache, batch_size=8, augment=still, workers=2, epochs=4, close_mosaic=2
    )  # a fresh loader (as after a resume) whose workers must see the closed mosaic too
    _assert_same(_epoch(resumed, 2), [batch])
    _assert_same(_epoch(resumed, 3), _epoch(loader, 3))
    _assert_same(_epoch(resumed, 1), _epoch(loader, 1))
    assert resumed.mosaic


def test_train_loader_rejects_bad_arguments(cache):
    with pytest.raises(ValueError, match="batch_size"):
        build_train_loader(cache, batch_size=0)
    with pytest.raises(KeyError, match="nope"):
        build_train_loader(cache, split="nope")


def test_eval_loader_letterboxes_and_ratio_pad_maps_original_boxes(cache):
    loader = build_eval_loader(cache, "val", batch_size=5)
    batches = list(loader)
    assert [len(b["images"]) for b in batches] == [5, 3]
    for batch in batches:
        assert batch["images"].shape[1:] == (3, 64, 64)
        assert batch["orig_shapes"].dtype == torch.int64 and batch["ratio_pad"].shape[1] == 3
        for row, index in enumerate(batch["indices"].tolist()):
            gain, pad_x, pad_y = batch["ratio_pad"][row].tolist()
            assert tuple(batch["orig_shapes"][row].tolist()) == cache.orig_shape(index)
            orig_boxes = cache.boxes(index) / cache.resize_gain(index)
            mapped = orig_boxes * gain + np.array([pad_x, pad_y, pad_x, pad_y])
            targets = batch["targets"][batch["targets"][:, 0] == row]
            np.testing.assert_allclose(targets[:, 2:].numpy(), mapped, atol=1.0)


def test_to_tensor_gives_chw_rgb_of_any_hwc_bgr_array():
    image = np.random.default_rng(0).integers(0, 256, (9, 14, 3), dtype=np.uint8)
    read_only = image.copy()
    read_only.flags.writeable = False
    for array in (image, read_only, image[:, ::2], image[::-1]):
        expected = np.stack([array[:, :, 2], array[:, :, 1], array[:, :, 0]])
        tensor = _to_tensor(array)
        assert tensor.dtype == torch.uint8 and tensor.is_contiguous()
        assert np.array_equal(tensor.numpy(), expected)
