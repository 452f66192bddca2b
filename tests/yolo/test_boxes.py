"""Box conversions and overlaps (yolo_mlops.yolo.boxes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolo_mlops.yolo.boxes import (
    bbox_ciou,
    box_area,
    box_iou,
    clip_boxes,
    xywh_to_xyxy,
    xywhn_to_xyxy,
    xyxy_to_xywh,
    xyxy_to_xywhn,
    xyxy_to_xyxyn,
    xyxyn_to_xyxy,
)

XYXY = [[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 1.0, 1.0], [5.5, 6.5, 7.5, 100.0]]


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_xyxy_xywh_round_trip_keeps_boxes_and_type(kind: str) -> None:
    boxes = torch.tensor(XYXY) if kind == "torch" else np.array(XYXY)
    xywh = xyxy_to_xywh(boxes)
    assert type(xywh) is type(boxes)
    assert np.allclose(np.asarray(xywh[0]), [30.0, 50.0, 40.0, 60.0])
    assert np.allclose(np.asarray(xywh_to_xyxy(xywh)), XYXY)


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_normalised_round_trips_recover_pixels(kind: str) -> None:
    boxes = torch.tensor(XYXY) if kind == "torch" else np.array(XYXY)
    width, height = 200.0, 100.0
    xywhn = xyxy_to_xywhn(boxes, width, height)
    assert np.allclose(np.asarray(xywhn[0]), [30 / 200, 50 / 100, 40 / 200, 60 / 100])
    assert np.allclose(np.asarray(xywhn_to_xyxy(xywhn, width, height)), XYXY)
    xyxyn = xyxy_to_xyxyn(boxes, width, height)
    assert np.allclose(np.asarray(xyxyn[0]), [0.05, 0.2, 0.25, 0.8])
    assert np.allclose(np.asarray(xyxyn_to_xyxy(xyxyn, width, height)), XYXY)


def test_conversions_work_on_leading_batch_dimensions_and_do_not_modify_input() -> None:
    boxes = torch.tensor(XYXY).expand(2, 3, 4).clone()
    before = boxes.clone()
    out = xywh_to_xyxy(xyxy_to_xywh(boxes))
    assert out.shape == (2, 3, 4)
    assert torch.allclose(out, before)
    assert torch.equal(boxes, before)


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_clip_boxes_keeps_boxes_inside_image(kind: str) -> None:
    raw = [[-5.0, -1.0, 30.0, 200.0], [10.0, 10.0, 20.0, 20.0]]
    boxes = torch.tensor(raw) if kind == "torch" else np.array(raw)
    clipped = np.asarray(clip_boxes(boxes, 25.0, 100.0))
    assert np.allclose(clipped, [[0.0, 0.0, 25.0, 100.0], [10.0, 10.0, 20.0, 20.0]])
    assert np.allclose(np.asarray(boxes), raw)


def test_box_area_of_known_boxes() -> None:
    assert torch.allclose(box_area(torch.tensor(XYXY)), torch.tensor([2400.0, 1.0, 187.0]))


def test_box_iou_known_values() -> None:
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # identical -> 1
            [5.0, 5.0, 15.0, 15.0],  # 25 / 175
            [0.0, 0.0, 5.0, 10.0],  # contained half -> 0.5
            [20.0, 20.0, 30.0, 30.0],  # disjoint -> 0
            [10.0, 0.0, 20.0, 10.0],  # touching edge -> 0
        ]
    )
    iou = box_iou(a, b)
    assert iou.shape == (1, 5)
    assert torch.allclose(iou[0], torch.tensor([1.0, 25 / 175, 0.5, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(box_iou(b, a), iou.T)


def test_ciou_of_identical_boxes_is_one() -> None:
    boxes = torch.tensor(XYXY)
    assert torch.allclose(bbox_ciou(boxes, boxes), torch.ones(3), atol=1e-5)


def test_ciou_decreases_as_boxes_move_apart() -> None:
    base = torch.tensor([0.0, 0.0, 10.0, 10.0])
    shifts = torch.tensor([0.0, 2.0, 5.0, 9.0, 15.0, 40.0])
    moved = base.repeat(len(shifts), 1)
    moved[:, 0::2] += shifts[:, None]
    ciou = bbox_ciou(base.expand_as(moved), moved)
    assert torch.all(ciou[1:] < ciou[:-1])
    # Disjoint boxes still get a graded (negative) value from the centre-distance penalty.
    assert ciou[-1] < 0 < ciou[0]


def test_ciou_penalises_aspect_ratio_mismatch_beyond_iou() -> None:
    square = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    tall = torch.tensor([[2.5, -5.0, 7.5, 15.0]])  # same centre and area, aspect 1:4
    iou = box_iou(square, tall)[0, 0]
    ciou = bbox_ciou(square, tall)[0]
    assert ciou < iou


def test_ciou_is_symmetric_and_differentiable() -> None:
    a = torch.tensor([[0.0, 0.0, 10.0, 12.0]], requires_grad=True)
    b = torch.tensor([[3.0, 1.0, 14.0, 9.0]])
    ciou = bbox_ciou(a, b)
    assert torch.allclose(ciou, bbox_ciou(b, a.detach()), atol=1e-6)
    ciou.sum().backward()
    assert a.grad is not None
    assert torch.isfinite(a.grad).all()
    assert a.grad.abs().sum() > 0
