"""Acceptance: what a reviewer sees in the MLflow UI, checked on a real ``mlflow server``.

Two registrations (v1 becomes champion, v2 does not beat it) from runs named and tagged the
way the tracking hook names and tags them; then, through the client: the logged model in the
run's experiment and linked to its run, the model card (metrics, champion comparison, gate
decision, dataset, links), the dataset input, the experiment's kind tag, the run names. The
screenshot tests open the version page and the run page in headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from yolo_mlops.tracking import model_card, registry_review, ui
from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.tracking.config import TrackingParams
from yolo_mlops.tracking.promotion import PromotionPolicy
from yolo_mlops.tracking.registry import Registration, log_and_register

MODEL = "yolo11n-review"
EXPERIMENT = "review-test"
SHA = "5e1f" * 16
PRECISION = "bfloat16 autocast after 60 float32 optimizer steps"
RUN_TAGS = {"data.archive_sha256": SHA, "training.precision": PRECISION}
PARAMS = {
    "training.scale": "n",
    "training.epochs": "2",
    "training.batch": "8",
    "training.optimizer": "auto",
    "training.lr0": "0.01",
    "training.seed": "0",
    "training.device": "cpu",
    "preprocessing.imgsz": "96",
}
METRICS = (
    {"precision": 0.50, "recall": 0.40, "mAP50": 0.45, "mAP50-95": 0.30, "speed_ms/inference": 9.0},
    {"precision": 0.55, "recall": 0.35, "mAP50": 0.44, "mAP50-95": 0.25, "speed_ms/inference": 8.0},
)


def _project(root: Path) -> Path:
    """A project folder with the dataset manifest and validation summary a run leaves."""
    (root / "data/01_raw").mkdir(parents=True)
    (root / "data/08_reporting").mkdir(parents=True)
    manifest = {"name": "coco128", "sha256": SHA, "source": "https://example.com/coco128.zip"}
    (root / "data/01_raw/dataset_manifest.json").write_text(json.dumps(manifest))
    summary = {"images": 128, "instances": 929, "classes_present": 71}
    (root / "data/08_reporting/validation_summary.json").write_text(json.dumps(summary))
    return root


@pytest.fixture(scope="module")
def reviewed(mlflow_server, checkpoint, tmp_path_factory):
    """Two registered versions on the live server; their records and run names."""
    project = _project(tmp_path_factory.mktemp("review_project"))
    records, names = [], []
    for index, metrics in enumerate(METRICS):
        name = ui.run_name("__default__", PARAMS, f"session-{index}", trains=True)
        params = TrackingParams(uri=mlflow_server, experiment=EXPERIMENT)
        run = tracking_run.start_or_join(params, project, name, RUN_TAGS)
        assert run is not None
        ui.tag_experiment(run.client, run.run_id)
        tracking_run.log_params(PARAMS)
        records.append(
            log_and_register(
                run,
                checkpoint,
                metrics,
                Registration(MODEL, PromotionPolicy(min_improvement=0.0, min_map50_95=0.1)),
                project_path=project,
            )
        )
        names.append(name)
        tracking_run.end()
    return records, names


@pytest.mark.integration
def test_logged_model_lives_in_the_runs_experiment_and_is_the_runs_output(mlflow_server, reviewed):
    records, _ = reviewed
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    models = client.search_logged_models([experiment.experiment_id])
    assert {m.model_id for m in models} == {r["logged_model_id"] for r in records}
    for record in records:
        model = client.get_logged_model(record["logged_model_id"])
        assert model.name == MODEL and model.source_run_id == record["run_id"]
        assert model.experiment_id == experiment.experiment_id != "0"
        metrics = {m.key: m.value for m in model.metrics}
        assert metrics["val/mAP50-95"] == pytest.approx(float(model.tags["mAP50-95"]))
        outputs = client.get_run(record["run_id"]).outputs.model_outputs
        assert [o.model_id for o in outputs] == [record["logged_model_id"]]
    default = client.get_experiment("0")
    assert client.search_logged_models([default.experiment_id]) == []


@pytest.mark.integration
def test_version_description_is_a_model_card_against_the_champion(mlflow_server, reviewed):
    records, names = reviewed
    client = MlflowClient(mlflow_server)
    second = records[1]
    version = client.get_model_version(MODEL, second["version"])
    card = version.description
    assert card.startswith("Not promoted: mAP50-95 0.2500 vs champion v1's 0.3000: ")
    assert "champion stays v1" in card and "not strictly better" in card
    assert "does not reach" not in card
    rows = {line.split("  ")[0]: line.split() for line in card.splitlines() if "  " in line}
    assert rows["mAP50-95 (gate metric)"][-4:] == ["0.2500", "0.3000", "-0.0500", "(worse)"]
    assert rows["precision"][1:] == ["0.5500", "0.5000", "+0.0500", "(better)"]
    # one machine: 8 vs 9 ms is within the noise margin, or the load moved between the two
    latency = " ".join(rows["inference, ms/image"])
    assert latency.endswith(("(same within 25%)", "(not compared: other load)")), latency
    assert version.tags["promoted"] == "no" and "promotion.decision" not in version.tags
    assert version.tags["speed.machine"] and float(version.tags["speed.load"]) >= 0
    assert f"archive sha256: `{SHA}`" in card
    assert "?" not in card.split("- recipe:")[1].splitlines()[0]
    assert "**coco128** (128 images, 929 instances, 71 classes present)" in card
    assert "base weights: none (trained from scratch)" in card
    assert "recipe: YOLO11n, 64 px, 2 epochs, batch 8" in card  # imgsz: the checkpoint's
    assert "optimizer auto (the checkpoint does not record" in card
    assert f"numeric precision: {PRECISION}" in card
    tags = client.get_model_version(MODEL, second["version"]).tags
    assert tags["training.precision"] == PRECISION
    experiment_id = second["experiment_id"]
    run_route = model_card.run_link(experiment_id, second["run_id"])
    assert f"[{names[1]}]({run_route})" in card
    for artifact in ("pr_curve.png", "confusion_matrix.png", "val_predictions.png"):
        assert f"({run_route}/artifactPath/reports/{artifact})" in card
    first = client.get_model_version(MODEL, records[0]["version"]).description
    assert first.startswith("Promoted: ") and "champion → v1" in first
    registered = client.get_registered_model(MODEL).description
    assert registered.startswith("A YOLO11 object detector") and "#" not in registered
    assert "How versions are promoted" in registered and f"{MODEL}@champion" in registered


@pytest.mark.integration
def test_dataset_input_experiment_kind_and_run_names(mlflow_server, reviewed):
    records, names = reviewed
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.tags[ui.EXPERIMENT_KIND_TAG] == "custom_model_development"
    runs = [client.get_run(r["run_id"]) for r in records]
    assert [r.info.run_name for r in runs] == names
    assert len(set(names)) == 2 and all(n.startswith("yolo11n-96px-2ep-") for n in names)
    for run in runs:
        (dataset_input,) = run.inputs.dataset_inputs
        assert dataset_input.dataset.name == "coco128"
        assert dataset_input.dataset.digest == SHA[:16]
        assert {t.key: t.value for t in dataset_input.tags} == {"mlflow.data.context": "training"}


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _render(url: str, screenshot: Path) -> str:
    """The DOM of ``url`` after the single-page app rendered it; a screenshot beside it."""
    browser = _chromium()
    assert browser is not None
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        "--window-size=1400,1600", "--virtual-time-budget=20000",
    ]  # fmt: skip
    subprocess.run(
        [browser, *flags, f"--screenshot={screenshot}", url],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return dom.stdout


SCREENSHOT_DIR_ENV = "YOLO_MLOPS_SCREENSHOT_DIR"


@pytest.mark.integration
@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed")
def test_version_and_run_pages_render_card_and_logged_model(mlflow_server, reviewed, tmp_path):
    records, names = reviewed
    second = records[1]
    out = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    version_page = f"{mlflow_server}/#/models/{MODEL}/versions/{second['version']}"
    dom = _render(version_page, out / "version_page.png")
    assert "Not promoted: " in dom and "champion stays v1" in dom
    assert "mAP50-95 (gate metric)" in dom and PRECISION in dom
    assert re.search(r"0\.5500 {2,}0\.5000", dom) and "0.55000.5000" not in dom  # padded
    model_page = f"{mlflow_server}/#/models/{MODEL}"
    dom = _render(model_page, out / "model_page.png")
    assert "Not promoted: mAP50-95" in dom and "## yolo11n-review" not in dom
    run_page = f"{mlflow_server}/{ui.run_route(second['experiment_id'], second['run_id'])}"
    dom = _render(run_page, out / "run_page.png")
    assert names[1] in dom
    assert MODEL in dom and "coco128" in dom
    for png in ("version_page.png", "model_page.png", "run_page.png"):
        assert (out / png).stat().st_size > 10_000


def _optimizer_state(group: dict) -> dict:
    return {"optimizer": {"state": {}, "param_groups": [{**group, "params": [0]}]}}


def test_recipe_reads_the_optimizer_training_resolved_from_the_checkpoint():
    args = {"optimizer": "auto", "lr0": 0.01, "epochs": 2, "batch": 8, "seed": 0, "device": "cpu"}
    config = {"scale": "n", "imgsz": 96, "train_args": args}
    adamw = {"lr": 0.0007, "initial_lr": 0.000714, "betas": (0.9, 0.999), "amsgrad": False}
    line = registry_review.recipe_line({}, {"config": config, "training": _optimizer_state(adamw)})
    assert line == (
        "YOLO11n, 96 px, 2 epochs, batch 8, optimizer AdamW, lr0 0.000714 (optimizer: auto), "
        "seed 0, device cpu"
    )
    recorded = {**config, "optimizer": {"name": "SGD", "lr0": 0.01, "momentum": 0.9}}
    line = registry_review.recipe_line({}, {"config": recorded, "training": None})
    assert "optimizer SGD, lr0 0.01 (optimizer: auto)" in line
    stripped = registry_review.recipe_line({}, {"config": config, "training": None})
    assert (
        "optimizer auto (the checkpoint does not record" in stripped and "lr0 0.01" not in stripped
    )
    sgd = {**config, "train_args": {**args, "optimizer": "SGD"}}
    assert "optimizer SGD, lr0 0.01," in registry_review.recipe_line({}, {"config": sgd})
    assert "?" not in registry_review.recipe_line({"training.epochs": "3"}, None)


def test_dataset_facts_find_the_dvc_hash_of_a_dvc_tracked_archive(tmp_path):
    project = _project(tmp_path / "project")
    pointer = "outs:\n- md5: 764efa883dda1e11db47671c4a3bbd9e\n  size: 3\n  hash: md5\n"
    (project / "data/01_raw/coco128.zip.dvc").write_text(pointer + "  path: coco128.zip\n")
    facts = registry_review.dataset_facts(project, {})
    assert facts.dvc_md5 == "764efa883dda1e11db47671c4a3bbd9e"
    assert registry_review.dataset_facts(_project(tmp_path / "bare"), {}).dvc_md5 is None


def test_speed_context_round_trips_through_version_tags():
    context = registry_review.speed_context({"evaluation.device": "cpu"})
    assert context.machine and " x" in context.machine and context.load is not None
    tags = registry_review.speed_tags(context)
    assert registry_review.speed_context_of(tags) == context
    assert registry_review.speed_context_of({}) == model_card.SpeedContext()
