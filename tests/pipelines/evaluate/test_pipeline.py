"""The evaluation pipeline on a synthetic image cache with a tiny untrained YOLO11n."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from PIL import Image

from tests.pipelines.preprocess.helpers import synthetic_cache
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset
from yolo_mlops.ingestion.tables import dataset_tables
from yolo_mlops.pipelines.evaluate import create_pipeline
from yolo_mlops.pipelines.evaluate.evaluation import EvaluationParams
from yolo_mlops.pipelines.evaluate.nodes import evaluate_model
from yolo_mlops.pipelines.evaluate.pipeline import OUTPUTS
from yolo_mlops.pipelines.params import ParameterError
from yolo_mlops.pipelines.preprocess.nodes import build_image_cache
from yolo_mlops.yolo.io.checkpoint import make_config, read_checkpoint, save_checkpoint
from yolo_mlops.yolo.model.network import build_model

IMGSZ = 64
PLOTS = {
    "pr_curve_plot": "data/08_reporting/pr_curve.png",
    "f1_curve_plot": "data/08_reporting/f1_curve.png",
    "confusion_matrix_plot": "data/08_reporting/confusion_matrix.png",
    "val_predictions_plot": "data/08_reporting/val_predictions.png",
}
PARAMS = {"device": "cpu", "batch_size": 4, "plot_images": 4}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    return synthetic_cache(tmp_path_factory.mktemp("evaluation"), imgsz=IMGSZ)


@pytest.fixture(scope="module")
def checkpoint_path(cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model("n", num_classes=len(cache.names), names=cache.names)
    config = make_config(scale="n", nc=len(cache.names), names=list(cache.names), imgsz=IMGSZ)
    path = tmp_path_factory.mktemp("models") / "best.pt"
    return save_checkpoint(path, state_dict=model.state_dict(), config=config)


def _catalog(root: Path, cache, parameters: dict, checkpoint: dict | None) -> DataCatalog:
    config = {
        "metrics": {"type": "json.JSONDataset", "filepath": "data/08_reporting/metrics.json"},
        "per_class_metrics": {
            "type": "pandas.CSVDataset",
            "filepath": "data/08_reporting/per_class_metrics.csv",
            "save_args": {"index": False},
        },
        "pr_curve_data": {
            "type": "pandas.CSVDataset",
            "filepath": "data/08_reporting/pr_curve.csv",
            "save_args": {"index": False},
        },
        "val_predictions": {
            "type": "pandas.ParquetDataset",
            "filepath": "data/07_model_output/val_predictions.parquet",
        },
        **{
            name: {"type": "matplotlib.MatplotlibDataset", "filepath": path}
            for name, path in PLOTS.items()
        },
    }
    for entry in config.values():
        entry["filepath"] = str(root / entry["filepath"])
    catalog = DataCatalog.from_config(config)
    catalog["image_cache"] = MemoryDataset(cache, copy_mode="assign")
    catalog["params:evaluation"] = MemoryDataset(parameters)
    catalog["params:tracking.uri"] = MemoryDataset(None)  # read for models:/ checkpoints only
    if checkpoint is not None:
        catalog["model_checkpoint"] = MemoryDataset(checkpoint, copy_mode="assign")
    return catalog


def test_pipeline_writes_metrics_tables_plots_and_predictions(tmp_path, cache, checkpoint_path):
    catalog = _catalog(tmp_path, cache, PARAMS, read_checkpoint(checkpoint_path))
    pipeline = create_pipeline()
    assert "model_checkpoint" in pipeline.inputs()
    assert {n.name for n in pipeline.nodes} == {"evaluate_model"}
    assert all("evaluate" in n.tags for n in pipeline.nodes)
    SequentialRunner().run(pipeline, catalog)

    metrics = json.loads((tmp_path / "data/08_reporting/metrics.json").read_text())
    for key in (
        "precision",
        "recall",
        "mAP50",
        "mAP50-95",
        "fitness",
        "coco/mAP50-95",
        "coco/mAP50",
    ):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert {"speed_ms/preprocess", "speed_ms/inference", "speed_ms/nms"} <= set(metrics)

    per_class = pd.read_csv(tmp_path / "data/08_reporting/per_class_metrics.csv")
    assert list(per_class.columns) == [
        "class", "images", "instances", "precision", "recall", "mAP50", "mAP50-95",
    ]  # fmt: skip
    assert per_class.loc[0, "class"] == "all"
    assert per_class.loc[0, "images"] == len(cache.indices("val"))
    instances = sum(len(cache.classes(int(i))) for i in cache.indices("val"))
    assert per_class.loc[0, "instances"] == instances

    pr_curve = pd.read_csv(tmp_path / "data/08_reporting/pr_curve.csv")
    assert list(pr_curve.columns) == ["class", "recall", "precision"]
    assert "all" in set(pr_curve["class"])
    assert pr_curve["precision"].between(0, 1).all()

    predictions = pd.read_parquet(tmp_path / "data/07_model_output/val_predictions.parquet")
    assert {"image_path", "class_id", "class_name", "score", "x1", "y1", "x2", "y2"} <= set(
        predictions.columns
    )
    assert len(predictions) > 0  # an untrained model at conf 0.001 still predicts
    val_paths = {cache.path(int(i)) for i in cache.indices("val")}
    assert set(predictions["image_path"]) <= val_paths

    for path in PLOTS.values():
        with Image.open(tmp_path / path) as image:
            assert image.size[0] > 100 and np.asarray(image).std() > 0


def test_standalone_pipeline_evaluates_the_given_checkpoint_file(tmp_path, cache, checkpoint_path):
    pipeline = create_pipeline(standalone=True)
    assert "model_checkpoint" not in pipeline.inputs()
    parameters = {**PARAMS, "checkpoint": str(checkpoint_path), "coco_eval": False}
    SequentialRunner().run(pipeline, _catalog(tmp_path, cache, parameters, None))
    metrics = json.loads((tmp_path / "data/08_reporting/metrics.json").read_text())
    assert "mAP50-95" in metrics and "coco/mAP50-95" not in metrics


def test_checkpoint_parameter_overrides_the_trained_model(cache, checkpoint_path):
    wrong = read_checkpoint(checkpoint_path)
    wrong = {**wrong, "config": {**wrong["config"], "nc": 99}}  # would fail if it were used
    parameters = {**PARAMS, "checkpoint": str(checkpoint_path), "coco_eval": False}
    outputs = evaluate_model(cache, parameters, wrong)
    assert set(outputs) == set(OUTPUTS)
    assert outputs["metrics"]["fitness"] == pytest.approx(
        0.1 * outputs["metrics"]["mAP50"] + 0.9 * outputs["metrics"]["mAP50-95"]
    )


def test_grid_draws_ground_truth_and_confusion_matrix_shows_present_classes(cache, checkpoint_path):
    # every val image in the grid: it shows images in evaluation (rectangular-batch) order
    shown = cache.indices("val")
    parameters = {**PARAMS, "coco_eval": False, "plot_images": len(shown)}
    outputs = evaluate_model(cache, parameters, read_checkpoint(checkpoint_path))
    grid = outputs["val_predictions_plot"]
    truth = sum(len(cache.classes(int(i))) for i in shown)
    dashed = [p for axes in grid.axes for p in axes.patches if p.get_linestyle() == "--"]
    assert len(dashed) == truth > 0  # one dashed box per ground-truth box of the shown images
    (legend,) = grid.legends
    assert legend.get_texts()[0].get_text() == "ground truth"
    labels = [t.get_text() for t in outputs["confusion_matrix_plot"].axes[0].get_xticklabels()]
    assert labels[-1] == "background" and set(labels[:-1]) <= set(cache.names)
    everything = evaluate_model(
        cache, {**parameters, "confusion_all_classes": True}, read_checkpoint(checkpoint_path)
    )["confusion_matrix_plot"]
    labels = [t.get_text() for t in everything.axes[0].get_xticklabels()]
    assert labels == [*cache.names, "background"]


def test_same_checkpoint_gives_same_metrics_run_to_run(cache, checkpoint_path):
    parameters = {**PARAMS, "coco_eval": False}
    ckpt = read_checkpoint(checkpoint_path)
    first = evaluate_model(cache, parameters, ckpt)["metrics"]
    second = evaluate_model(cache, parameters, ckpt)["metrics"]
    assert {k: v for k, v in first.items() if not k.startswith("speed")} == {
        k: v for k, v in second.items() if not k.startswith("speed")
    }


def test_default_size_is_the_training_size_and_uses_the_cache(cache, checkpoint_path, caplog):
    with caplog.at_level(logging.INFO, logger="yolo_mlops.pipelines.evaluate.evaluation"):
        evaluate_model(cache, {**PARAMS, "coco_eval": False}, read_checkpoint(checkpoint_path))
    assert f"evaluating at imgsz {IMGSZ} (training size) from cached images" in caplog.text


@pytest.mark.parametrize("rect", [True, False])
def test_another_size_reads_the_original_images_in_one_run(cache, checkpoint_path, caplog, rect):
    parameters = {**PARAMS, "imgsz": 96, "rect": rect, "plot_images": 2}
    with caplog.at_level(logging.INFO, logger="yolo_mlops.pipelines.evaluate.evaluation"):
        outputs = evaluate_model(cache, parameters, read_checkpoint(checkpoint_path))
    assert "evaluating at imgsz 96 (evaluation.imgsz) from original images resized to 96" in (
        caplog.text
    )
    assert "not upscaled" in caplog.text
    per_class = outputs["per_class_metrics"]
    assert per_class.loc[0, "images"] == len(cache.indices("val"))
    assert 0.0 <= outputs["metrics"]["coco/mAP50-95"] <= 1.0
    predictions = outputs["val_predictions"]
    shapes = {cache.path(int(i)): cache.orig_shape(int(i)) for i in cache.indices("val")}
    heights = predictions["image_path"].map(lambda p: shapes[p][0])
    assert (predictions["y2"] <= heights + 1e-3).all()  # original pixels, clipped


def test_class_count_mismatch_is_an_error_naming_both_counts(cache, checkpoint_path):
    model = build_model("n", num_classes=5)
    ckpt = {
        "config": make_config(scale="n", nc=5),
        "state_dict": model.state_dict(),
        "training": None,
    }
    with pytest.raises(ValueError, match="5 classes but the dataset has 3"):
        evaluate_model(cache, PARAMS, ckpt)


def test_missing_checkpoint_file_is_an_error(cache, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        evaluate_model(cache, {**PARAMS, "checkpoint": str(tmp_path / "nope.pt")}, None)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"confidence": 0.1}, "evaluation.confidence"),
        ({"conf": 1.5}, "conf must be in"),
        ({"iou": 0.0}, "iou must be in"),
        ({"batch_size": 0}, "must be >= 1"),
        ({"max_det": "many"}, "evaluation.max_det"),
        ({"imgsz": 16}, "imgsz must be 0"),
        ({"imgsz": 100, "rect": False}, "multiple of 32 when rect is false"),
        ({"rect": "sometimes"}, "evaluation.rect"),
        ({"protocol": "8.2"}, "evaluation.protocol"),
    ],
)
def test_invalid_parameters_are_rejected(cache, parameters, message):
    with pytest.raises(ParameterError, match=message):
        evaluate_model(cache, parameters, None)


def test_ultralytics_checkpoint_with_other_class_count_is_refused(cache, reference_dir):
    path = reference_dir / "yolo11n_ultralytics_format.pt"
    # 80 COCO classes against the 3-class synthetic dataset: read fine, then refused clearly
    with pytest.raises(ValueError, match="80 classes"):
        evaluate_model(cache, {**PARAMS, "checkpoint": str(path)}, None)


def test_standalone_pipeline_evaluates_an_ultralytics_checkpoint(tmp_path, reference_dir):
    spec = SyntheticSpec(n_images=4, names=tuple(f"coco{i}" for i in range(80)))
    tables = dataset_tables(write_synthetic_dataset(tmp_path / "dataset", spec, seed=1))
    coco_like = build_image_cache(*tables, {"imgsz": IMGSZ}).materialise(tmp_path / "cache")
    parameters = {
        **PARAMS,
        "checkpoint": str(reference_dir / "yolo11n_ultralytics_format.pt"),
        "max_det": 50,
        "conf": 1e-6,  # untrained weights: class scores sit near their prior (~1e-5)
    }
    SequentialRunner().run(
        create_pipeline(standalone=True), _catalog(tmp_path, coco_like, parameters, None)
    )
    metrics = json.loads((tmp_path / "data/08_reporting/metrics.json").read_text())
    assert 0.0 <= metrics["mAP50-95"] <= 1.0
    predictions = pd.read_parquet(tmp_path / "data/07_model_output/val_predictions.parquet")
    assert 0 < predictions.groupby("image_id").size().max() <= 50
    assert set(predictions["class_name"]) <= set(coco_like.names)


@pytest.fixture(scope="module")
def onnx_path(checkpoint_path: Path) -> Path:
    from yolo_mlops.yolo.export.onnx_export import export_checkpoint

    return export_checkpoint(checkpoint_path, checkpoint_path.with_suffix(".onnx"))


def test_an_exported_onnx_checkpoint_gives_the_checkpoints_metrics(
    cache, checkpoint_path, onnx_path
):
    parameters = {**PARAMS, "coco_eval": False, "plot_images": 2}
    from_torch = evaluate_model(cache, {**parameters, "checkpoint": str(checkpoint_path)}, None)
    from_onnx = evaluate_model(cache, {**parameters, "checkpoint": str(onnx_path)}, None)
    figures = [
        {k: v for k, v in outputs["metrics"].items() if not k.startswith("speed")}
        for outputs in (from_torch, from_onnx)
    ]
    assert figures[1] == pytest.approx(figures[0], abs=1e-6)
    assert len(from_onnx["val_predictions"]) == len(from_torch["val_predictions"])


def test_a_missing_or_corrupt_onnx_file_is_an_error_naming_it(cache, tmp_path, onnx_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.onnx"):
        evaluate_model(cache, {**PARAMS, "checkpoint": str(tmp_path / "nope.onnx")}, None)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(onnx_path.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"truncated\.onnx"):
        evaluate_model(cache, {**PARAMS, "checkpoint": str(truncated)}, None)


def test_an_onnx_model_with_another_class_count_is_refused(tmp_path):
    from yolo_mlops.yolo.export.onnx_export import export_onnx

    five = tmp_path / "five.onnx"
    export_onnx(build_model("n", num_classes=5), five)
    small = synthetic_cache(tmp_path / "cache", imgsz=IMGSZ)
    with pytest.raises(ValueError, match=r"five\.onnx: the model predicts 5 classes but 3"):
        evaluate_model(small, {**PARAMS, "checkpoint": str(five)}, None)


def test_the_run_start_check_passes_an_onnx_file_and_names_a_missing_one(onnx_path, tmp_path):
    from yolo_mlops.pipelines.evaluate.evaluation import checkpoint_weights

    # nothing to fetch into the weights cache: the file is opened by ONNX Runtime at evaluation
    assert checkpoint_weights(EvaluationParams(checkpoint=str(onnx_path))) is None
    with pytest.raises(FileNotFoundError, match=r"evaluation\.checkpoint=.*missing\.onnx"):
        checkpoint_weights(EvaluationParams(checkpoint=str(tmp_path / "missing.onnx")))
