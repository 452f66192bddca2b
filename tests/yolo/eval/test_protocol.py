"""Metric protocols: 8.4.190's greedy matching, AP drop and unclipped matching vs 8.3.0's."""

from __future__ import annotations

import numpy as np
import pytest

from yolo_mlops.yolo.eval.metrics import DetectionStats, compute_ap, match_predictions
from yolo_mlops.yolo.eval.protocol import compute_ap_dropped, greedy_match, metric_rules

THRESHOLDS = np.array([0.5])


def test_greedy_match_gives_a_later_prediction_the_next_free_gt() -> None:
    # pred0 overlaps GT0 (0.9); pred1 overlaps GT0 (0.8) and GT1 (0.6)
    iou = np.array([[0.9, 0.8], [0.0, 0.6]])
    classes = np.array([0, 0])
    # 8.4.190: pred0 takes GT0, pred1 takes the still-free GT1
    assert greedy_match(classes, classes, iou, THRESHOLDS)[:, 0].tolist() == [True, True]
    # 8.3.0: pred1 keeps only its best pair (GT0), which pred0 wins: pred1 is a false positive
    assert match_predictions(classes, classes, iou, THRESHOLDS)[:, 0].tolist() == [True, False]


def test_greedy_match_never_pairs_different_classes_and_uses_each_gt_once() -> None:
    iou = np.array([[0.95, 0.9, 0.8]])
    flags = greedy_match(np.array([1, 0, 0]), np.array([0]), iou, np.array([0.5, 0.85, 0.95]))
    assert flags.tolist() == [[False, False, False], [True, True, False], [False, False, False]]


def test_greedy_match_handles_empty_inputs() -> None:
    assert greedy_match(np.zeros(0), np.array([0]), np.zeros((1, 0))).shape == (0, 10)
    assert not greedy_match(np.array([0]), np.zeros(0), np.zeros((0, 1))).any()


def test_dropped_ap_is_lower_than_the_ramp_when_recall_stops_short() -> None:
    recall, precision = np.array([0.25, 0.5]), np.array([1.0, 1.0])
    ramp, _, _ = compute_ap(recall, precision)
    dropped, _, _ = compute_ap_dropped(recall, precision)
    assert dropped == pytest.approx(0.5, abs=0.01)
    assert ramp == pytest.approx(0.75, abs=0.01)  # linear ramp from (0.5, 1) to (1, 0)


def test_dropped_ap_equals_the_ramp_at_full_recall() -> None:
    recall, precision = np.array([0.5, 1.0]), np.array([1.0, 0.5])
    assert compute_ap_dropped(recall, precision)[0] == pytest.approx(
        compute_ap(recall, precision)[0]
    )


def test_protocol_rules_feed_detection_stats() -> None:
    def metrics_of(stats: DetectionStats) -> dict[str, float]:
        box = np.array([[0.0, 0.0, 10.0, 10.0]])  # one hit, one missed GT: recall stops at 0.5
        stats.update(box, [0.9], [0], np.vstack([box, box + 50]), [0, 0])
        return stats.compute(["a"])[0]

    rules = metric_rules("8.4.190")
    metrics = metrics_of(DetectionStats(1, match=rules.match, ap_rule=rules.compute_ap))
    old_metrics = metrics_of(DetectionStats(1))
    # the ramp adds area beyond recall 0.5 that the drop does not
    assert metrics["mAP50"] < old_metrics["mAP50"]
    assert metrics["recall"] == pytest.approx(old_metrics["recall"])


def test_unknown_protocol_is_an_error_naming_the_choices() -> None:
    assert metric_rules("8.3.0").clip_before_matching
    assert not metric_rules("8.4.190").clip_before_matching
    with pytest.raises(ValueError, match=r"8\.4\.190"):
        metric_rules("9.0")
