"""The promotion gate: the floor, the margin, and a challenger that must be strictly better."""

from __future__ import annotations

from yolo_mlops.tracking.promotion import PromotionPolicy, decide_promotion


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
