"""The model card, the run summary block and the run names: pure formatting."""

from __future__ import annotations

from yolo_mlops.tracking import model_card, summary, ui
from yolo_mlops.tracking.promotion import PromotionPolicy, decide_promotion


def _card(**overrides) -> model_card.ModelCard:
    values = dict(
        model_name="m", version="3", run_id="r1", experiment_id="7", run_name="yolo11n-x",
        metrics={"mAP50-95": 0.30, "mAP50": 0.5, "precision": 0.6},
        promoted=False, reason="mAP50-95 0.3000 vs champion v2's 0.3000: not strictly better",
        champion_version="2", champion_metrics={"mAP50-95": 0.30, "precision": 0.7},
    )  # fmt: skip
    values.update(overrides)
    return model_card.ModelCard(**values)


def test_equal_map_is_reported_as_not_strictly_better_not_as_a_contradiction():
    decision = decide_promotion(0.3, 0.3, PromotionPolicy(), "1")
    assert not decision.promoted
    assert "not strictly better" in decision.reason and "does not reach" not in decision.reason


def test_small_gain_names_the_required_margin():
    decision = decide_promotion(0.31, 0.30, PromotionPolicy(min_improvement=0.02), "1")
    assert not decision.promoted and "less than the required margin 0.0200" in decision.reason


def test_card_compares_each_metric_with_the_champion():
    table = model_card.metrics_table(_card())
    assert "| mAP50-95 (gate metric) | 0.3000 | 0.3000 | +0.0000 (same) |" in table
    assert "| precision | 0.6000 | 0.7000 | -0.1000 (worse) |" in table
    assert "| mAP50 | 0.5000 | n/a | n/a |" in table  # the champion has no mAP50 tag


def test_card_without_champion_has_no_differences():
    card = _card(champion_version=None, champion_metrics={}, promoted=True, reason="floor")
    assert "| mAP50-95 (gate metric) | 0.3000 | n/a | n/a |" in model_card.metrics_table(card)
    assert model_card.transition(card) == "champion → v3; v3 @challenger"


def test_transition_says_where_the_champion_is():
    assert model_card.transition(_card(promoted=True)) == "champion → v3 (was v2); v3 @challenger"
    kept = model_card.transition(_card())
    assert kept.startswith("v3 @challenger; champion stays v2: ") and "not strictly" in kept
    assert model_card.transition(_card(), with_reason=False) == "v3 @challenger; champion stays v2"


def test_card_links_to_run_and_plots_and_reads_base_weights():
    text = model_card.render(_card(base_weights="yolo11n.pt (sha256 ab12)"))
    assert "[yolo11n-x](#/experiments/7/runs/r1)" in text
    assert "(#/experiments/7/runs/r1/artifactPath/reports/confusion_matrix.png)" in text
    assert "base weights: yolo11n.pt (sha256 ab12)" in text
    assert "from scratch" in model_card.render(_card())
    assert "numeric precision: unknown" in model_card.render(_card())
    assert "numeric precision: float32" in model_card.render(_card(precision="float32"))


def test_summary_block_names_checkpoints_metrics_run_and_registry():
    block = summary.render(
        summary.RunSummary(
            pipeline="__default__", env="ci", checkpoints=["data/06_models/best.pt"],
            metrics={"mAP50-95": 0.25, "precision": 0.5, "speed_ms/inference": 8.0},
            registration={"status": "registered", "model_name": "m", "transition": "champion → v1"},
            run_name="yolo11n-96px-2ep-abc123", run_id="r1", run_url="http://h/#/x", seconds=75,
        )
    )  # fmt: skip
    lines = block.splitlines()
    assert lines[0] == "==== yolo-mlops run summary: __default__ (env ci) FINISHED in 1m15s ===="
    assert "checkpoints  : data/06_models/best.pt" in lines
    assert "metrics      : P 0.5000  mAP50-95 0.2500  inference 8.00 ms/image" in lines
    assert "MLflow run   : yolo11n-96px-2ep-abc123 (r1) http://h/#/x" in lines
    assert "registry     : m: champion → v1" in lines
    assert not any(line.startswith("recover") for line in lines)


def test_failed_summary_gives_the_recovery_command():
    failed = summary.RunSummary(
        pipeline="training", env="ci", status="FAILED", error="ValueError: boom",
        checkpoints=["data/06_models/best.pt"],
    )  # fmt: skip
    block = summary.render(failed)
    assert "error        : ValueError: boom" in block
    assert "recover with : kedro run --pipelines register --env ci" in block
    failed.checkpoints, failed.resume_state_exists = [], True
    assert summary.recovery_command(failed) == (
        "kedro run --pipelines training --env ci --params training.resume=true"
    )
    assert "not tracked" in block


def test_run_names_are_readable_and_distinct():
    params = {"training.scale": "s", "training.epochs": 100, "preprocessing.imgsz": 640}
    first = ui.run_name("__default__", params, "2026-12-01T22.00.00.000Z", trains=True)
    second = ui.run_name("__default__", params, "2026-12-01T22.00.01.000Z", trains=True)
    assert (
        first.startswith("yolo11s-640px-100ep-") and len(first) == len("yolo11s-640px-100ep-") + 6
    )
    assert first != second
    assert ui.run_name("register", params, "x", trains=False).startswith("register-")


def test_run_url_points_at_the_server_or_says_how_to_open_the_ui():
    assert ui.run_url("http://h:5000/", "1", "r") == "http://h:5000/#/experiments/1/runs/r"
    local = ui.run_url("sqlite:////p/mlflow.db", "1", "r")
    assert "mlflow ui --backend-store-uri sqlite:////p/mlflow.db" in local
    assert local.endswith("http://127.0.0.1:5000/#/experiments/1/runs/r")
