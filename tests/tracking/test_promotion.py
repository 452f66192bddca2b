"""The promotion gate: the floor, the margin, a strictly better challenger, the export parity."""

from __future__ import annotations

from yolo_mlops.tracking.promotion import PromotionPolicy, decide_promotion, export_parity_failure


def test_first_version_is_promoted_when_it_clears_the_floor():
    decision = decide_promotion(0.2, None, PromotionPolicy(min_map50_95=0.1))
    assert decision.promoted and "no current champion" in decision.reason


def test_version_below_the_floor_is_not_promoted():
    decision = decide_promotion(0.05, None, PromotionPolicy(min_map50_95=0.1))
    assert not decision.promoted and "below floor" in decision.reason


def test_better_challenger_is_promoted_only_by_the_margin():
    policy = PromotionPolicy(min_improvement=0.02)
    assert decide_promotion(0.33, 0.30, policy, "4").promoted
    assert not decide_promotion(0.31, 0.30, policy, "4").promoted
    assert not decide_promotion(0.30, 0.30, PromotionPolicy(), "4").promoted  # equal: no
    assert not decide_promotion(float("nan"), 0.30, PromotionPolicy(), "4").promoted


def test_decision_label_is_the_promotion_tag_value():
    assert decide_promotion(0.2, None, PromotionPolicy()).label == "promoted"
    assert decide_promotion(0.1, 0.2, PromotionPolicy(), "1").label == "not_promoted"


def _report(passed: bool, gated: bool = True) -> dict:
    record = {"file": "model.onnx", "parity": {"max_score_diff": 0.3}, "parity_passed": passed,
              "parity_gated": gated}  # fmt: skip
    return {"artifacts": {"onnx": record}}


def test_a_version_whose_export_failed_parity_is_not_promoted():
    failure = export_parity_failure(_report(passed=False))
    assert failure is not None and "model.onnx" in failure and "export.json" in failure
    decision = decide_promotion(0.9, 0.3, PromotionPolicy(), "1", export_failure=failure)
    assert not decision.promoted and decision.reason == failure
    assert not decide_promotion(0.9, None, PromotionPolicy(), None, failure).promoted


def test_only_a_failed_gated_export_blocks_the_promotion():
    assert export_parity_failure(_report(passed=True)) is None
    assert export_parity_failure(_report(passed=False, gated=False)) is None  # INT8: reported
    assert export_parity_failure({}) is None and export_parity_failure(None) is None
    failure = export_parity_failure(_report(passed=True))
    assert decide_promotion(0.9, 0.3, PromotionPolicy(), "1", export_failure=failure).promoted
