"""Decoding raw head maps into pixel boxes and class probabilities."""

from __future__ import annotations

from pathlib import Path

import torch

from yolo_mlops.yolo import decode
from yolo_mlops.yolo.model.blocks import DFL
from yolo_mlops.yolo.model.decode import dfl_expectation, flatten_maps

NC = 3


def _raw_maps(batch: int = 1, height: int = 64, width: int = 96) -> list[torch.Tensor]:
    return [torch.zeros(batch, 64 + NC, height // s, width // s) for s in (8, 16, 32)]


def test_decode_shape_is_batch_4_plus_nc_anchors() -> None:
    maps = _raw_maps(batch=2)
    out = decode(maps)
    assert out.shape == (2, 4 + NC, 8 * 12 + 4 * 6 + 2 * 3)


def test_peaked_bins_decode_to_exact_pixel_box_at_the_right_anchor() -> None:
    maps = _raw_maps()
    level, y, x = 1, 2, 3  # stride 16, cell (row 2, column 3): centre (3.5, 2.5) grid units
    bins = {0: 2, 1: 1, 2: 4, 3: 3}  # l, t, r, b distances in grid units
    for side, value in bins.items():
        maps[level][0, side * 16 + value, y, x] = 50.0  # softmax ~ one-hot
    maps[level][0, 64 + 2, y, x] = 3.0  # class 2 logit
    out = decode(maps)
    anchor = 8 * 12 + y * 6 + x  # level 0 anchors come first, row-major inside a level
    x1, y1, x2, y2 = (3.5 - 2) * 16, (2.5 - 1) * 16, (3.5 + 4) * 16, (2.5 + 3) * 16
    expected = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    torch.testing.assert_close(out[0, :4, anchor], expected, atol=1e-3, rtol=0)
    probs = out[0, 4:, anchor]
    torch.testing.assert_close(probs, torch.sigmoid(torch.tensor([0.0, 0.0, 3.0])))


def test_uniform_logits_give_mean_bin_distance() -> None:
    out = decode(_raw_maps())
    # every side = mean of bins 0..15 = 7.5 grid units -> width 15 strides, centred on the anchor
    first = out[0, :, 0]  # stride 8, cell (0, 0), centre (4, 4) px
    torch.testing.assert_close(first[:4], torch.tensor([4.0, 4.0, 15 * 8.0, 15 * 8.0]))


def test_dfl_expectation_equals_the_dfl_layer() -> None:
    logits = torch.randn(2, 64, 50)
    torch.testing.assert_close(dfl_expectation(logits), DFL(16)(logits), atol=1e-5, rtol=1e-5)


def test_flatten_maps_orders_levels_then_rows() -> None:
    maps = [torch.arange(6.0).view(1, 1, 2, 3), torch.tensor([[[[10.0]]]])]
    assert flatten_maps(maps).tolist() == [[[0, 1, 2, 3, 4, 5, 10]]]


def test_decode_of_reference_raw_maps_matches_reference_decoded(reference_dir: Path) -> None:
    ref = torch.load(reference_dir / "yolo11n_reference.pt", map_location="cpu", weights_only=True)
    torch.testing.assert_close(decode(ref["raw"]), ref["decoded"], atol=1e-4, rtol=0)


def test_low_precision_maps_are_decoded_in_float32() -> None:
    maps = [torch.randn(1, 64 + NC, 640 // s, 640 // s) for s in (8, 16, 32)]
    full = decode(maps)
    half = decode([m.bfloat16() for m in maps])
    assert half.dtype == torch.float32
    # only the bf16 rounding of the logits remains, not a bf16 rounding of ~600 px coordinates
    torch.testing.assert_close(half[:, :4], full[:, :4], atol=1.0, rtol=0)
