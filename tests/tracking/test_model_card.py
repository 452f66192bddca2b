"""The model card, the run summary block and the run names: pure formatting."""

from __future__ import annotations

import re

from yolo_mlops.tracking import model_card, summary, ui
from yolo_mlops.tracking.model_card import SpeedContext
from yolo_mlops.tracking.promotion import PromotionPolicy, decide_promotion

HERE = SpeedContext("Xeon x2", 0.4)


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


def _rows(table: str) -> dict[str, str]:
    """The text table's lines by their first column (the fenced block's markers dropped)."""
    lines = [line for line in table.splitlines() if not line.startswith("```")]
    return {line.split("  ")[0].strip(): line for line in lines}


def test_card_compares_each_metric_with_the_champion():
    rows = _rows(model_card.metrics_table(_card()))
    assert rows["mAP50-95 (gate metric)"].split()[-4:] == ["0.3000", "0.3000", "+0.0000", "(same)"]
    assert rows["precision"].split()[1:] == ["0.6000", "0.7000", "-0.1000", "(worse)"]
    assert rows["mAP50"].split()[1:] == ["0.5000", "n/a", "n/a"]  # the champion has no mAP50 tag


def test_card_table_columns_are_padded_and_right_aligned():
    metrics = {"mAP50-95": 0.0, "speed_ms/inference": 165.5}
    champion = {"mAP50-95": 0.0, "speed_ms/inference": 58.41}
    table = model_card.metrics_table(_card(metrics=metrics, champion_metrics=champion))
    assert table.startswith("```text\n") and table.endswith("\n```")
    assert "0.00000.0000" not in table and "165.5058.41" not in table
    lines = table.splitlines()[1:-1]
    cells = [re.split(r"\s{2,}", line) for line in lines]
    assert all(len(row) == 4 for row in cells)
    for column in (1, 2):  # the number columns end at one offset: right aligned
        ends = set()
        for line, row in zip(lines, cells, strict=True):
            start = line.index(row[column], len(row[0]) if column == 1 else line.index(row[1]) + 1)
            ends.add(start + len(row[column]))
        assert len(ends) == 1


def test_latency_gets_a_verdict_only_on_the_same_machine_and_load_beyond_the_noise():
    metrics = {"speed_ms/inference": 175.0}
    champion = {"speed_ms/inference": 68.0}

    def verdict(mine: SpeedContext, theirs: SpeedContext, value: float = 175.0) -> str:
        card = _card(metrics={"speed_ms/inference": value}, champion_metrics=champion,
                     speed=mine, champion_speed=theirs)  # fmt: skip
        return _rows(model_card.metrics_table(card))["inference, ms/image"]

    assert verdict(HERE, HERE).endswith("(worse)")
    assert verdict(HERE, HERE, value=80.0).endswith("(same within 25%)")
    assert verdict(HERE, SpeedContext("Xeon x2", 1.9)).endswith("(not compared: other load)")
    assert verdict(HERE, SpeedContext("EPYC x8", 0.4)).endswith("(not compared: other machine)")
    unknown = verdict(HERE, SpeedContext())
    assert unknown.endswith("(not compared: machine not recorded)") and metrics


def test_card_without_champion_has_no_differences():
    card = _card(champion_version=None, champion_metrics={}, promoted=True, reason="floor")
    row = _rows(model_card.metrics_table(card))["mAP50-95 (gate metric)"]
    assert row.split()[-3:] == ["0.3000", "n/a", "n/a"]
    assert model_card.transition(card) == "champion → v3; v3 @challenger"


def test_card_starts_with_a_plain_sentence_and_the_model_description_is_plain_text():
    first = model_card.render(_card()).splitlines()[0]
    assert first == "Not promoted: mAP50-95 0.3000 vs champion v2's 0.3000: not strictly better."
    assert not first.startswith(("#", "*", "|"))
    text = model_card.registered_model_description("m", min_map50_95=0.1, min_improvement=0.0)
    assert not any(mark in text for mark in ("#", "**", "`", "|"))
    assert text.startswith("A YOLO11 object detector") and "models:/m@champion" in text


def test_card_says_dvc_untracked_and_flags_only_a_dirty_tree():
    text = model_card.render(_card())
    assert "DVC hash of the raw data: not tracked by DVC" in text and "data: `unknown`" not in text
    assert "uncommitted" not in model_card.render(_card(git_dirty="false"))
    assert "(with uncommitted changes)" in model_card.render(_card(git_dirty="true"))
    dvc = model_card.DatasetFacts(dvc_md5="764efa883dda1e11db47671c4a3bbd9e")
    assert "raw data: `764efa883dda1e11db47671c4a3bbd9e`" in model_card.render(_card(dataset=dvc))


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


def test_run_url_opens_the_model_training_view_not_the_genai_overview():
    view = "?workflowType=machine_learning"
    assert ui.run_url("http://h:5000/", "1", "r") == f"http://h:5000/#/experiments/1/runs/r{view}"
    local = ui.run_url("sqlite:////p/mlflow.db", "1", "r")
    assert "mlflow ui --backend-store-uri sqlite:////p/mlflow.db" in local
    assert local.endswith(f"http://127.0.0.1:5000/#/experiments/1/runs/r{view}")
    assert ui.runs_route("1") == f"#/experiments/1/runs{view}"


EXPORT_REPORT = {
    "artifacts": {
        "onnx": {"file": "model.onnx", "bytes": 10_600_000, "parity_passed": True,
                 "parity_gated": True, "latency_ms": 21.5,
                 "parity": {"images": 4, "max_score_diff": 2.1e-6, "max_box_diff_px": 3.0e-4,
                            "max_box_diff_rel": 4.0e-6}},
        "int8": {"file": "model_int8.onnx", "bytes": 3_100_000, "parity_passed": False,
                 "parity_gated": False,
                 "parity": {"images": 4, "max_score_diff": 0.04, "max_box_diff_px": 1.5,
                            "max_box_diff_rel": 0.01}},
    }
}  # fmt: skip


def test_card_lists_each_exported_file_with_its_parity_and_latency():
    facts = model_card.artifact_facts(EXPORT_REPORT)
    text = model_card.render(_card(artifacts=facts, serving_backend="onnxruntime"))
    files = text.split("### Files (serving backend: onnxruntime)")[1].split("###")[0]
    onnx, int8 = (
        next(line for line in files.splitlines() if line.startswith(f"- `{name}`"))
        for name in ("onnx", "int8")
    )
    assert "model.onnx, 10.6 MB) **(served)**" in onnx and "parity passed (gated)" in onnx
    assert "max score diff 2.10e-06" in onnx and "max box diff 3.00e-04 px" in onnx
    assert "on 4 images" in onnx and "21.50 ms/image" in onnx
    assert "parity FAILED (reported, not gated)" in int8 and "max score diff 4.00e-02" in int8
    assert "(served)" not in int8 and "ms/image" not in int8
    assert "- `checkpoint` (model.pt): the PyTorch checkpoint\n" in files


def test_card_without_an_export_report_says_so_and_serves_the_checkpoint():
    text = model_card.render(_card())
    assert "### Files (serving backend: torch)" in text
    assert "the PyTorch checkpoint **(served)**" in text
    assert "no exported files" in text
    assert model_card.artifact_facts(None) == ()
