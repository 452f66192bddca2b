"""Evaluation images at any size in rectangular or square batches (yolo/eval_data.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import yolo_mlops.yolo.inference as inference_module
from tests.pipelines.preprocess.helpers import synthetic_cache
from yolo_mlops.ingestion.synthetic import _colour
from yolo_mlops.yolo.data.eval_data import (
    CacheImages,
    EvalImageError,
    FileImages,
    build_eval_images,
    build_letterbox_loader,
)
from yolo_mlops.yolo.eval.evaluate import evaluate
from yolo_mlops.yolo.model.postprocess import scale_boxes

CACHE_IMGSZ = 64


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    return synthetic_cache(tmp_path_factory.mktemp("eval_data"), imgsz=CACHE_IMGSZ, n_images=10)


def _original_boxes(cache, index: int) -> np.ndarray:
    height, width = cache.shape(index)
    orig_h, orig_w = cache.orig_shape(index)
    return cache.boxes(index) / [width, height, width, height] * [orig_w, orig_h, orig_w, orig_h]


def test_cache_at_the_same_size_is_used_as_it_is(cache) -> None:
    images, how = build_eval_images(cache, "val", CACHE_IMGSZ)
    assert isinstance(images, CacheImages)
    assert "cached" in how


@pytest.mark.parametrize("imgsz", [32, 96])
def test_other_sizes_read_the_originals_and_say_so(cache, imgsz: int) -> None:
    images, how = build_eval_images(cache, "val", imgsz)
    assert isinstance(images, FileImages)
    assert "original" in how
    assert ("not upscaled" in how) == (imgsz > CACHE_IMGSZ)
    loaded = images.load(0)
    assert max(loaded.image.shape[:2]) == imgsz
    assert loaded.orig_shape == cache.orig_shape(loaded.index)
    height, width = loaded.image.shape[:2]
    expected = _original_boxes(cache, loaded.index)
    expected = expected * ([width / loaded.orig_shape[1], height / loaded.orig_shape[0]] * 2)
    np.testing.assert_allclose(loaded.boxes, expected, atol=1e-3)


def test_missing_originals_are_an_error_naming_a_file(cache, tmp_path: Path) -> None:
    images = FileImages.from_cache(cache, "val", 96)
    images.paths[0] = str(tmp_path / "gone.jpg")
    with pytest.raises(EvalImageError, match=r"gone\.jpg"):
        images.load(0)


@pytest.mark.parametrize(("imgsz", "rect"), [(64, True), (64, False), (96, True), (50, True)])
def test_ground_truth_comes_back_to_original_pixels(cache, imgsz: int, rect: bool) -> None:
    images, _ = build_eval_images(cache, "val", imgsz)
    loader = build_letterbox_loader(images, batch_size=3, rect=rect)
    seen = set()
    for batch in loader:
        assert batch["images"].shape[-1] % 32 == 0 and batch["images"].shape[-2] % 32 == 0
        if not rect:
            assert tuple(batch["images"].shape[-2:]) == (imgsz, imgsz)
        for position, index in enumerate(batch["indices"].tolist()):
            seen.add(index)
            gain, pad_x, pad_y = batch["ratio_pad"][position].tolist()
            mine = batch["targets"][:, 0] == position
            back = scale_boxes(batch["targets"][mine, 2:], gain, (pad_x, pad_y), (1e9, 1e9))
            # the height ratio maps both axes (as the reference): width off by < 1 resized px
            np.testing.assert_allclose(back.numpy(), _original_boxes(cache, index), atol=2 / gain)
            assert batch["paths"][position] == cache.path(index)
    assert seen == set(cache.indices("val").tolist())


class ColourDetector(nn.Module):
    """Detects the synthetic rectangles by colour: each connected region of a class colour is one
    box. Its boxes depend only on the image pixels, not on the canvas around them, so every batch
    layout must give the same metrics."""

    def __init__(self, num_classes: int, anchors: int = 16) -> None:
        super().__init__()
        self.num_classes, self.anchors = num_classes, anchors

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(images.shape[0], 4 + self.num_classes, self.anchors)
        for b, image in enumerate((images * 255).round().byte().permute(0, 2, 3, 1).numpy()):
            slot = 0
            for class_id in range(self.num_classes):
                colour = np.array(_colour(class_id)[::-1])  # drawn as BGR, the model sees RGB
                mask = (np.abs(image.astype(int) - colour).max(-1) < 40).astype(np.uint8)
                count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
                for x, y, w, h, area in stats[1:count]:
                    if area < 4 or slot == self.anchors:
                        continue
                    score = 0.2 + 0.7 * (int(area) % 101) / 101
                    out[b, :4, slot] = torch.tensor([x + w / 2, y + h / 2, w, h])
                    out[b, 4 + class_id, slot] = score
                    slot += 1
        return out


@pytest.mark.parametrize("protocol", ["8.3.0", "8.4.190"])
def test_batch_composition_does_not_change_the_metrics(
    cache, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inference_module, "decode", lambda output, strides: output)
    images, _ = build_eval_images(cache, "val", 96)
    model = ColourDetector(len(cache.names))
    results = []
    for batch_size, rect in [(1, True), (3, True), (16, True), (4, False)]:
        loader = build_letterbox_loader(images, batch_size, rect=rect)
        results.append(evaluate(model, loader, cache.names, protocol=protocol).metrics)
    assert 0.1 < results[0]["mAP50-95"] < 0.99  # a non-trivial score: the check can fail
    for metrics in results[1:]:
        for key, value in results[0].items():
            assert metrics[key] == pytest.approx(value, abs=1e-9), key
