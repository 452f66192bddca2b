"""NMS on hand-made predictions and mapping boxes back to the original image."""

from __future__ import annotations

import torch

from yolo_mlops.yolo import non_max_suppression, scale_boxes


def _pred(rows: list[tuple[float, float, float, float, int, float]], nc: int = 3) -> torch.Tensor:
    """``[1, 4 + nc, A]`` from (cx, cy, w, h, class, score) rows; other classes score 0."""
    pred = torch.zeros(1, 4 + nc, len(rows))
    for i, (cx, cy, w, h, cls, score) in enumerate(rows):
        pred[0, :4, i] = torch.tensor([cx, cy, w, h])
        pred[0, 4 + cls, i] = score
    return pred


def test_overlapping_boxes_of_same_class_are_suppressed() -> None:
    pred = _pred([(50, 50, 20, 20, 0, 0.9), (51, 50, 20, 20, 0, 0.8), (150, 150, 20, 20, 0, 0.7)])
    (out,) = non_max_suppression(pred, conf=0.25, iou=0.5)
    assert out.shape == (2, 6)
    torch.testing.assert_close(out[0], torch.tensor([40.0, 40.0, 60.0, 60.0, 0.9, 0.0]))
    assert out[:, 4].tolist() == sorted(out[:, 4].tolist(), reverse=True)


def test_overlapping_boxes_of_different_classes_are_kept_unless_agnostic() -> None:
    pred = _pred([(50, 50, 20, 20, 0, 0.9), (51, 50, 20, 20, 1, 0.8)])
    (out,) = non_max_suppression(pred, iou=0.5)
    assert sorted(out[:, 5].tolist()) == [0.0, 1.0]
    (agnostic,) = non_max_suppression(pred, iou=0.5, agnostic=True)
    assert agnostic[:, 5].tolist() == [0.0]


def test_conf_threshold_and_class_filter() -> None:
    pred = _pred([(50, 50, 20, 20, 0, 0.9), (150, 50, 20, 20, 1, 0.8), (250, 50, 20, 20, 2, 0.1)])
    (out,) = non_max_suppression(pred, conf=0.25)
    assert out[:, 5].tolist() == [0.0, 1.0]
    (only_one,) = non_max_suppression(pred, conf=0.25, classes=[1])
    assert only_one[:, 5].tolist() == [1.0]


def test_max_det_keeps_the_highest_scores() -> None:
    rows = [(30.0 * i + 10, 10, 10, 10, 0, 0.3 + 0.05 * i) for i in range(10)]
    (out,) = non_max_suppression(_pred(rows), conf=0.25, max_det=3)
    assert out.shape == (3, 6)
    torch.testing.assert_close(out[:, 4], torch.tensor([0.75, 0.70, 0.65]))


def test_multi_label_gives_one_row_per_class_above_conf() -> None:
    pred = _pred([(50, 50, 20, 20, 0, 0.9)])
    pred[0, 4 + 2, 0] = 0.6
    (single,) = non_max_suppression(pred, conf=0.25)
    (multi,) = non_max_suppression(pred, conf=0.25, multi_label=True)
    assert single[:, 5].tolist() == [0.0]
    assert multi[:, 5].tolist() == [0.0, 2.0]


def test_max_candidates_caps_boxes_before_nms() -> None:
    rows = [(30.0 * i + 10, 10, 10, 10, 0, 0.3 + 0.01 * i) for i in range(20)]
    (out,) = non_max_suppression(_pred(rows), conf=0.25, max_candidates=5)
    assert out.shape[0] == 5 and out[:, 4].min() > 0.44


def test_empty_predictions_give_empty_tensors_per_image() -> None:
    outs = non_max_suppression(torch.zeros(2, 7, 0))
    assert len(outs) == 2 and all(o.shape == (0, 6) for o in outs)
    below = non_max_suppression(_pred([(50, 50, 20, 20, 0, 0.1)]), conf=0.25)
    assert below[0].shape == (0, 6)


def test_scale_boxes_inverts_letterbox_and_clips() -> None:
    gain, pad, orig = 0.5, (16.0, 8.0), (100, 200)  # original h=100, w=200
    orig_boxes = torch.tensor([[10.0, 20.0, 110.0, 80.0]])
    letterboxed = orig_boxes * gain + torch.tensor([pad[0], pad[1], pad[0], pad[1]])
    torch.testing.assert_close(scale_boxes(letterboxed, gain, pad, orig), orig_boxes)
    outside = torch.tensor([[0.0, 0.0, 400.0, 400.0]])
    assert scale_boxes(outside, gain, pad, orig).tolist() == [[0.0, 0.0, 200.0, 100.0]]
