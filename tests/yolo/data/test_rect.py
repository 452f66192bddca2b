"""Rectangular evaluation batches: grouping by aspect ratio and the canvas rule (design §5)."""

from __future__ import annotations

import numpy as np
import pytest

from yolo_mlops.yolo.data.rect import plan_batches, rect_canvas


def test_landscape_batch_at_640_gets_the_reference_512_by_672_canvas() -> None:
    # 4:3 landscape (480 x 640): ceil(0.75*20 + 0.5)*32 = 512, ceil(20 + 0.5)*32 = 672
    assert rect_canvas(np.array([0.75, 0.75]), 640) == (512, 672)


def test_mixed_or_square_batch_at_640_gets_672_by_672() -> None:
    assert rect_canvas(np.array([0.75, 1.33]), 640) == (672, 672)
    assert rect_canvas(np.array([1.0]), 640) == (672, 672)


def test_portrait_batch_uses_the_widest_image() -> None:
    # all h/w > 1: width = ceil(imgsz / min_ar / 32 + 0.5) * 32 with min_ar = 1.25 -> 0.8 * 320
    assert rect_canvas(np.array([1.25, 1.5]), 320) == (352, 288)


def test_canvas_holds_every_image_at_imgsz_on_its_long_side() -> None:
    rng = np.random.default_rng(0)
    shapes = rng.integers(40, 900, size=(200, 2))
    for imgsz in (320, 416, 640):
        plan = plan_batches(shapes, 16, imgsz)
        for batch, (height, width) in zip(plan.batches, plan.shapes, strict=True):
            assert height % 32 == 0 and width % 32 == 0
            ratio = imgsz / shapes[batch].max(1)
            assert (np.ceil(shapes[batch, 0] * ratio) <= height).all()
            assert (np.ceil(shapes[batch, 1] * ratio) <= width).all()


def test_batches_are_sorted_by_aspect_ratio_and_cover_every_image_once() -> None:
    shapes = np.array([[480, 640], [640, 480], [500, 500], [427, 640], [640, 360]])
    plan = plan_batches(shapes, 2, 320)
    order = np.concatenate(plan.batches)
    assert sorted(order.tolist()) == list(range(5))
    ratios = shapes[order, 0] / shapes[order, 1]
    assert (np.diff(ratios) >= 0).all()
    assert [len(b) for b in plan.batches] == [2, 2, 1]
    assert plan.canvas_of()[int(order[0])] == plan.shapes[0]


def test_square_batches_keep_the_input_order_and_an_imgsz_canvas() -> None:
    shapes = np.array([[480, 640], [640, 480], [500, 500]])
    plan = plan_batches(shapes, 2, 320, rect=False)
    assert [b.tolist() for b in plan.batches] == [[0, 1], [2]]
    assert plan.shapes == [(320, 320), (320, 320)]


def test_bad_plans_are_errors_that_name_the_value() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches(np.array([[10, 10]]), 0, 320)
    with pytest.raises(ValueError, match="divisible by 32"):
        plan_batches(np.array([[10, 10]]), 1, 100, rect=False)
    with pytest.raises(ValueError, match="positive"):
        plan_batches(np.array([[0, 10]]), 1, 320)
