"""Metric code on hand-built cases whose AP is known exactly.

Note on "perfect = 0.995": Ultralytics 8.3.0 appends the sentinel (recall 1, precision 0) and
samples the envelope at 101 recall points, so the value at recall 1.0 is 0 and the last trapezoid
[0.99, 1.0] contributes 0.005 instead of 0.01: perfect detections score AP = 0.995 (the familiar
"mAP50 0.995" of easy datasets). The COCO cross-check (test_coco_eval.py) gives 1.0 there.
"""

from __future__ import annotations

import numpy as np
import pytest

from yolo_mlops.yolo.eval.metrics import (
    IOU_THRESHOLDS,
    ConfusionMatrix,
    DetectionStats,
    ap_per_class,
    compute_ap,
    fitness,
    format_table,
    match_predictions,
    smooth,
)

PERFECT_AP = 0.995
# one FP ranked above the only TP of a class with one GT: precision 0.5 up to recall 1
# -> 0.5 over [0, 0.99] (0.495) + the ramp 0.5 -> 0 over [0.99, 1] (0.0025)
FP_ABOVE_TP_AP = 0.4975
NAMES = ["cat", "dog", "bird"]


def _box(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    return [x1, y1, x2, y2]


def _perfect_stats() -> DetectionStats:
    stats = DetectionStats(num_classes=3)
    gt = np.array([_box(10, 10, 50, 50), _box(60, 60, 120, 100)])
    stats.update(gt, [0.9, 0.8], [0, 1], gt, [0, 1])
    gt2 = np.array([_box(0, 0, 30, 40)])
    stats.update(gt2, [0.7], [0], gt2, [0])
    return stats


def test_perfect_predictions_give_reference_ap_at_every_threshold() -> None:
    metrics, table, result = _perfect_stats().compute(NAMES)
    assert result.ap == pytest.approx(np.full((2, 10), PERFECT_AP))
    assert metrics["mAP50"] == pytest.approx(PERFECT_AP)
    assert metrics["mAP50-95"] == pytest.approx(PERFECT_AP)
    assert metrics["precision"] == pytest.approx(1.0)
    assert metrics["recall"] == pytest.approx(1.0)
    assert metrics["fitness"] == pytest.approx(PERFECT_AP)
    assert list(table["class"]) == ["all", "cat", "dog"]


def test_compute_ap_of_perfect_curve_is_0995() -> None:
    ap, envelope, recall = compute_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0]))
    assert ap == pytest.approx(PERFECT_AP)
    assert recall[0] == 0.0 and recall[-1] == 1.0
    assert envelope[0] == 1.0 and envelope[-1] == 0.0


def test_false_positive_ranked_above_true_positive_halves_precision() -> None:
    stats = DetectionStats(num_classes=1)
    gt = np.array([_box(10, 10, 50, 50)])
    preds = np.array([_box(200, 200, 240, 240), _box(10, 10, 50, 50)])
    stats.update(preds, [0.9, 0.8], [0, 0], gt, [0])
    metrics, _, result = stats.compute(["cat"])
    assert result.ap[0] == pytest.approx(np.full(10, FP_ABOVE_TP_AP))
    assert metrics["mAP50"] == pytest.approx(FP_ABOVE_TP_AP)


def test_false_positive_ranked_below_true_positive_does_not_lower_ap() -> None:
    stats = DetectionStats(num_classes=1)
    gt = np.array([_box(10, 10, 50, 50)])
    preds = np.array([_box(10, 10, 50, 50), _box(200, 200, 240, 240)])
    stats.update(preds, [0.9, 0.8], [0, 0], gt, [0])
    metrics, _, _ = stats.compute(["cat"])
    assert metrics["mAP50"] == pytest.approx(PERFECT_AP)


def test_class_with_gt_but_no_predictions_has_ap_zero_and_lowers_the_mean() -> None:
    stats = DetectionStats(num_classes=3)
    gt = np.array([_box(10, 10, 50, 50), _box(60, 60, 120, 100)])
    stats.update(gt[:1], [0.9], [0], gt, [0, 1])  # class 1 ("dog") never predicted
    metrics, table, result = stats.compute(NAMES)
    assert list(result.classes) == [0, 1]
    assert result.ap[1] == pytest.approx(np.zeros(10))
    assert metrics["mAP50"] == pytest.approx(PERFECT_AP / 2)
    assert metrics["mAP50-95"] == pytest.approx(PERFECT_AP / 2)
    dog = table.set_index("class").loc["dog"]
    assert dog["mAP50"] == 0.0 and dog["instances"] == 1


def test_empty_images_contribute_nothing_but_the_image_count() -> None:
    reference, _, _ = _perfect_stats().compute(NAMES)
    stats = _perfect_stats()
    for _ in range(5):
        stats.update(np.zeros((0, 4)), [], [], np.zeros((0, 4)), [])
    metrics, table, _ = stats.compute(NAMES)
    assert metrics == pytest.approx(reference)
    assert table.loc[0, "images"] == 2 + 5


def test_predictions_on_an_image_without_gt_are_false_positives() -> None:
    stats = DetectionStats(num_classes=1)
    gt = np.array([_box(10, 10, 50, 50)])
    stats.update(gt, [0.5], [0], gt, [0])
    stats.update(np.array([_box(5, 5, 40, 40)]), [0.9], [0], np.zeros((0, 4)), [])
    metrics, _, _ = stats.compute(["cat"])
    assert metrics["mAP50"] == pytest.approx(FP_ABOVE_TP_AP)


def test_predictions_of_classes_absent_from_gt_are_ignored() -> None:
    stats = _perfect_stats()
    stats.update(np.array([_box(5, 5, 40, 40)]), [0.99], [2], np.zeros((0, 4)), [])
    metrics, table, _ = stats.compute(NAMES)
    assert metrics["mAP50"] == pytest.approx(PERFECT_AP)
    assert "bird" not in set(table["class"])


def test_no_predictions_at_all_give_zero_ap_for_every_gt_class() -> None:
    stats = DetectionStats(num_classes=2)
    stats.update(np.zeros((0, 4)), [], [], np.array([_box(0, 0, 9, 9), _box(5, 5, 20, 20)]), [0, 1])
    metrics, table, result = stats.compute(["a", "b"])
    assert result.ap.shape == (2, 10) and not result.ap.any()
    assert metrics["mAP50"] == 0.0 and metrics["recall"] == 0.0
    assert table["instances"].tolist() == [2, 1, 1]


def test_no_ground_truth_at_all_gives_zero_metrics() -> None:
    stats = DetectionStats(num_classes=2)
    stats.update(np.array([_box(5, 5, 40, 40)]), [0.9], [0], np.zeros((0, 4)), [])
    metrics, table, _ = stats.compute(["a", "b"])
    assert metrics["mAP50-95"] == 0.0 and metrics["fitness"] == 0.0
    assert list(table["class"]) == ["all"]


def test_match_counts_box_as_tp_only_up_to_its_iou() -> None:
    # a same-class pair with IoU 0.6 is a TP at 0.50, 0.55, 0.60 and not above
    iou = np.array([[0.6]])
    correct = match_predictions(np.array([0]), np.array([0]), iou)
    assert correct[0].tolist() == [t <= 0.6 + 1e-9 for t in IOU_THRESHOLDS]


def test_match_ignores_pairs_of_different_classes() -> None:
    correct = match_predictions(np.array([1]), np.array([0]), np.array([[1.0]]))
    assert not correct.any()


def test_match_gives_each_gt_its_most_confident_candidate_not_its_best_iou() -> None:
    # two predictions on one GT: pred 0 (higher score, IoU 0.6), pred 1 (IoU 0.9)
    iou = np.array([[0.6, 0.9]])
    correct = match_predictions(np.array([0, 0]), np.array([0]), iou)
    at_50 = correct[:, 0]
    assert at_50.tolist() == [True, False]  # 8.3.0: lowest prediction index wins
    at_70 = correct[:, 4]
    assert at_70.tolist() == [False, True]  # only pred 1 reaches IoU 0.7


def test_match_each_prediction_keeps_only_its_best_gt() -> None:
    # one prediction overlapping two GTs: it can be TP once
    iou = np.array([[0.8], [0.7]])
    correct = match_predictions(np.array([0]), np.array([0, 0]), iou)
    assert correct.shape == (1, 10)
    assert correct[0, 0]


def test_ap_per_class_precision_recall_read_at_best_f1() -> None:
    tp = np.ones((2, 10), dtype=bool)
    result = ap_per_class(tp, np.array([0.9, 0.8]), np.array([0, 0]), np.array([0, 0]))
    assert result.precision[0] == pytest.approx(1.0)
    assert result.recall[0] == pytest.approx(1.0)
    assert result.precision_curve.shape == (1, 1000)
    assert result.pr_precision.shape == (1, 1000)


def test_smooth_keeps_length_and_constant_signal() -> None:
    values = np.full(1000, 0.3)
    assert smooth(values) == pytest.approx(values)


def test_fitness_is_weighted_sum_of_map50_and_map50_95() -> None:
    assert fitness({"mAP50": 0.5, "mAP50-95": 0.3}) == pytest.approx(0.05 + 0.27)


def test_format_table_starts_with_header_and_all_row() -> None:
    _, table, _ = _perfect_stats().compute(NAMES)
    lines = format_table(table).splitlines()
    assert lines[0].split() == ["Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95"]
    assert lines[1].split()[0] == "all"


def test_confusion_matrix_counts_correct_wrong_missed_and_background() -> None:
    matrix = ConfusionMatrix(num_classes=2)
    gt_boxes = np.array([_box(0, 0, 10, 10), _box(20, 20, 30, 30), _box(50, 50, 60, 60)])
    gt_classes = np.array([0, 1, 1])
    pred_boxes = np.array(
        [_box(0, 0, 10, 10), _box(20, 20, 30, 30), _box(80, 80, 90, 90), _box(50, 50, 60, 60)]
    )
    pred_scores = np.array([0.9, 0.8, 0.7, 0.1])  # the last one is below conf 0.25
    pred_classes = np.array([0, 0, 1, 1])
    matrix.update(pred_boxes, pred_scores, pred_classes, gt_boxes, gt_classes)
    expected = np.array(
        [
            [1, 1, 0],  # predicted 0: true 0 correct, true 1 confused as 0
            [0, 0, 1],  # predicted 1: a background false positive
            [0, 1, 0],  # missed: the low-score GT of class 1
        ]
    )
    assert matrix.matrix.tolist() == expected.tolist()
    assert matrix.normalized().sum(0)[:2] == pytest.approx([1.0, 1.0])


def _match_by_the_rules(pred_classes, true_classes, iou) -> np.ndarray:
    """Spec 6.2 written as plain loops: the slow, obvious version of match_predictions."""
    correct = np.zeros((len(pred_classes), len(IOU_THRESHOLDS)), dtype=bool)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        pairs = [
            (float(iou[g, p]), g, p)
            for g in range(len(true_classes))
            for p in range(len(pred_classes))
            if true_classes[g] == pred_classes[p] and iou[g, p] >= threshold
        ]
        pairs.sort(key=lambda pair: -pair[0])  # (a) by IoU descending (stable)
        best_per_pred = {}
        for value, g, p in pairs:  # (b) each prediction keeps its highest-IoU pair
            best_per_pred.setdefault(p, (value, g, p))
        survivors = [best_per_pred[p] for p in sorted(best_per_pred)]  # by prediction index
        taken_gt = set()
        for _, g, p in survivors:  # (c) each GT keeps its first (lowest-index) pair
            if g not in taken_gt:
                taken_gt.add(g)
                correct[p, t] = True
    return correct


@pytest.mark.parametrize("seed", range(20))
def test_match_predictions_equals_the_rules_written_as_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_true, n_pred = int(rng.integers(1, 6)), int(rng.integers(1, 9))
    true_classes = rng.integers(0, 2, n_true)
    pred_classes = rng.integers(0, 2, n_pred)
    iou = np.round(rng.uniform(0.3, 1.0, (n_true, n_pred)), 2)  # rounding makes ties likely
    assert np.array_equal(
        match_predictions(pred_classes, true_classes, iou),
        _match_by_the_rules(pred_classes, true_classes, iou),
    )
