"""The one inference path (yolo.inference): letterboxed batches and raw images of any size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolo_mlops.yolo import inference
from yolo_mlops.yolo.data.letterbox import letterbox, letterbox_batch
from yolo_mlops.yolo.inference import TIMING_KEYS, detect, detect_images, load_detector
from yolo_mlops.yolo.io.checkpoint import save_checkpoint
from yolo_mlops.yolo.io.format import make_config
from yolo_mlops.yolo.model.network import build_model
from yolo_mlops.yolo.model.postprocess import scale_boxes


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("n", num_classes=3).eval()


def test_detect_returns_rows_per_image_and_the_timing_split(model):
    images = torch.randint(0, 255, (2, 3, 64, 96), dtype=torch.uint8)
    times: dict[str, float] = {}
    found = detect(model, images, conf=0.0, max_det=7, times=times)
    assert len(found) == 2
    assert all(rows.shape == (7, 6) for rows in found)
    assert set(times) == set(TIMING_KEYS) and all(v >= 0 for v in times.values())
    with pytest.raises(ValueError, match="predicts 3 classes but 5"):
        detect(model, images, num_classes=5)


def test_detect_images_maps_boxes_to_original_pixels_like_the_letterboxed_batch(model):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (50, 120, 3), dtype=np.uint8),
              rng.integers(0, 255, (90, 40, 3), dtype=np.uint8)]  # fmt: skip
    found = detect_images(model, images, 64, conf=0.0, max_det=5)
    for image, item in zip(images, found, strict=True):
        height, width = image.shape[:2]
        assert item.boxes.shape == (5, 4) and item.scores.shape == item.classes.shape == (5,)
        assert (item.boxes[:, 0::2] >= 0).all() and (item.boxes[:, 0::2] <= width).all()
        assert (item.boxes[:, 1::2] >= 0).all() and (item.boxes[:, 1::2] <= height).all()
        # the same image through detect() by hand gives the same boxes
        boxed = letterbox(image, 64, scaleup=True, center=True)
        tensor = torch.from_numpy(np.ascontiguousarray(boxed.image[..., ::-1])).permute(2, 0, 1)
        rows = detect(model, tensor[None], conf=0.0, max_det=5)[0]
        expected = scale_boxes(rows[:, :4], boxed.gain, boxed.pad, (height, width)).numpy()
        np.testing.assert_allclose(item.boxes, expected, atol=1e-4)
    assert detect_images(model, [], 64) == []


@pytest.mark.parametrize(
    ("height", "width", "imgsz", "canvas"),
    [(480, 640, 640, (480, 640)), (375, 500, 640, (480, 640)), (1080, 810, 640, (640, 480)),
     (427, 640, 640, (448, 640)), (100, 100, 320, (320, 320)), (50, 120, 64, (32, 64))],
)  # fmt: skip
def test_a_same_shape_batch_gets_the_smallest_stride_multiple_canvas(height, width, imgsz, canvas):
    images = [np.full((height, width, 3), 7, np.uint8)] * 2
    batch, boxed = letterbox_batch(images, imgsz, stride=32)
    assert batch.shape == (2, 3, *canvas) and batch.dtype == np.uint8
    item = boxed[0]
    new_h, new_w = round(height * item.gain), round(width * item.gain)
    assert max(new_h, new_w) == imgsz  # scaled to fit imgsz, up or down
    assert 0 <= canvas[0] - new_h < 32 and 0 <= canvas[1] - new_w < 32
    top, left = item.pad[1], item.pad[0]
    assert (batch[0, :, top : top + new_h, left : left + new_w] == 7).all()  # image, centred
    assert (canvas[0] - new_h) // 2 == top and (canvas[1] - new_w) // 2 == left


def test_a_mixed_shape_batch_gets_the_full_square_canvas() -> None:
    images = [np.zeros((480, 640, 3), np.uint8), np.zeros((640, 480, 3), np.uint8)]
    batch, boxed = letterbox_batch(images, 640)
    assert batch.shape == (2, 3, 640, 640)
    assert [item.pad for item in boxed] == [(0, 80), (80, 0)]


def test_letterbox_batch_turns_bgr_into_rgb_channels_first() -> None:
    image = np.zeros((32, 64, 3), np.uint8)
    image[..., 0] = 255  # blue in OpenCV's BGR
    batch, _ = letterbox_batch([image], 64)
    assert batch.shape == (1, 3, 32, 64)
    assert (batch[0, 2] == 255).all() and (batch[0, 0] == 0).all()  # blue is the last RGB plane


def test_detect_images_runs_a_single_image_on_its_rectangular_canvas(model, monkeypatch):
    seen = []
    real_detect = inference.detect

    def spy(model, images, **kwargs):
        seen.append(tuple(images.shape))
        return real_detect(model, images, **kwargs)

    monkeypatch.setattr(inference, "detect", spy)
    image = np.random.default_rng(1).integers(0, 255, (96, 256, 3), dtype=np.uint8)
    found = detect_images(model, [image], 64, conf=0.0, max_det=4)
    assert seen == [(1, 3, 32, 64)]  # scaled to 24×64, padded to one stride: 32×64, not 64×64
    assert found[0].boxes.shape == (4, 4)


def test_load_detector_opens_a_checkpoint_with_the_torch_backend(model, tmp_path) -> None:
    config = make_config(scale="n", nc=3, names=["a", "b", "c"], imgsz=64)
    path = save_checkpoint(tmp_path / "best.pt", state_dict=model.state_dict(), config=config)
    loaded = load_detector(path)
    assert isinstance(loaded, torch.nn.Module) and loaded.names == ["a", "b", "c"]
    images = torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8)
    fused, unfused = detect(loaded, images, conf=0.0)[0], detect(model, images, conf=0.0)[0]
    torch.testing.assert_close(fused, unfused, atol=1e-3, rtol=1e-4)  # BatchNorm folded in
    with pytest.raises(ValueError, match=r"best\.pt: the model predicts 3 classes but 80"):
        load_detector(path, num_classes=80)
    with pytest.raises(ValueError, match="unknown inference backend 'tensorrt'"):
        load_detector(path, backend="tensorrt")
