"""A registered version's files on local disk; batch prediction and evaluation of ``models:/``.

One small model is registered once in a tmp sqlite store (with its ONNX export, serving backend
``onnxruntime``); predicting from ``models:/<name>@champion`` must give the rows predicting from
the same ``.onnx`` file gives, and evaluating it the metrics of that file (its checkpoint's with
``backend: torch``).
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import cv2
import mlflow.artifacts
import numpy as np
import pandas as pd
import pytest

from tests.pipelines.predict.helpers import run_predict
from tests.pipelines.preprocess.helpers import synthetic_cache
from tests.tracking.export_helpers import export_report, export_small_model, small_checkpoint
from tests.tracking.helpers import embedded_store, start_run
from yolo_mlops.pipelines.evaluate.evaluation import EvaluationParams, checkpoint_weights
from yolo_mlops.pipelines.evaluate.nodes import evaluate_model
from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.pipelines.predict.predicting import PredictParams, model_file
from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.tracking.model_files import ExportedModels
from yolo_mlops.tracking.promotion import PromotionPolicy
from yolo_mlops.tracking.registry import Registration, log_and_register
from yolo_mlops.tracking.registry_files import RegisteredModelError, registered_model_file

MODEL = "yolo11n-files"


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> dict:
    """``{"uri": store, "onnx": the exported file, "version": "1"}``: one version, champion."""
    project = tmp_path_factory.mktemp("registry_files")
    uri = embedded_store(project)
    onnx = export_small_model(project / "export")
    start_run(uri, project, experiment="files-test")
    record = log_and_register(
        tracking_run.current(),
        small_checkpoint(),
        {"mAP50": 0.5, "mAP50-95": 0.3},
        Registration(MODEL, PromotionPolicy(min_map50_95=0.1), serving_backend="onnxruntime"),
        project,
        exported=ExportedModels(files={onnx.name: onnx}, report=export_report(onnx)),
    )
    tracking_run.end()
    assert record["aliases"] == ["challenger", "champion"]
    return {"uri": uri, "onnx": onnx, "version": record["version"]}


def test_an_alias_resolves_to_the_versions_onnx_file_in_the_cache(registered, tmp_path):
    path = registered_model_file(f"models:/{MODEL}@champion", registered["uri"], tmp_path)
    version = registered["version"]
    assert path.name == "model.onnx" and path.is_relative_to(tmp_path / f"{MODEL}-v{version}")
    assert filecmp.cmp(path, registered["onnx"], shallow=False)
    by_number = f"models:/{MODEL}/{version}"
    checkpoint = registered_model_file(by_number, registered["uri"], tmp_path, backend="torch")
    assert checkpoint.name == "model.pt" and checkpoint.parent.parent == path.parent.parent


def test_a_cached_version_is_not_downloaded_again(registered, tmp_path, monkeypatch):
    first = registered_model_file(f"models:/{MODEL}@champion", registered["uri"], tmp_path)

    def refuse(**kwargs):
        raise AssertionError(f"downloaded again: {kwargs}")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", refuse)
    assert registered_model_file(f"models:/{MODEL}/1", registered["uri"], tmp_path) == first


@pytest.mark.parametrize(
    ("uri", "message"),
    [(f"models:/{MODEL}@nosuch", r"models:/yolo11n-files@nosuch: .* no model .* alias 'nosuch'"),
     ("models:/unknown-model/1", r"models:/unknown-model/1: .* no model 'unknown-model'"),
     (f"models:/{MODEL}/99", r"version 99"),
     ("models:/a/b/c", r"not a registered model URI")],
)  # fmt: skip
def test_an_unknown_model_alias_or_version_is_an_error_naming_the_uri(
    registered, tmp_path, uri, message
):
    with pytest.raises(RegisteredModelError, match=message):
        registered_model_file(uri, registered["uri"], tmp_path)


def _images(folder: Path) -> Path:
    """Three synthetic images of two shapes."""
    from tests.yolo.export.conftest import synthetic_images

    folder.mkdir()
    for index, (height, width) in enumerate([(48, 64), (64, 40), (48, 64)]):
        image = synthetic_images(1, height, width, seed=index)[0].transpose(1, 2, 0)
        cv2.imwrite(str(folder / f"img{index}.png"), np.ascontiguousarray(image[..., ::-1]))
    return folder


def test_predict_from_a_registered_model_equals_predict_from_its_onnx_file(registered, tmp_path):
    source = _images(tmp_path / "images")
    settings = {"source": str(source), "conf": 0.05, "registry_cache": str(tmp_path / "cache")}
    tracking = {"uri": registered["uri"]}
    from_registry = run_predict(
        tmp_path / "registry", {**settings, "model": f"models:/{MODEL}@champion"}, tracking
    )
    from_file = run_predict(tmp_path / "file", {**settings, "model": str(registered["onnx"])})
    expected = pd.read_parquet(from_file / "detections")
    assert len(expected) > 0
    pd.testing.assert_frame_equal(pd.read_parquet(from_registry / "detections"), expected)
    assert (tmp_path / "cache" / f"{MODEL}-v{registered['version']}" / "artifacts").is_dir()


def test_a_file_model_needs_no_tracking_store(tmp_path):
    params = parse_params(PredictParams, {"source": "x", "model": "m.onnx"}, "predict")
    assert model_file(params, {"uri": "http://127.0.0.1:9/unreachable"}) == Path("m.onnx")


def _figures(outputs: dict) -> dict[str, float]:
    return {k: v for k, v in outputs["metrics"].items() if not k.startswith("speed")}


def test_evaluating_a_registered_version_gives_the_metrics_of_its_files(registered, tmp_path):
    cache = synthetic_cache(tmp_path / "data", imgsz=64)
    settings = {"device": "cpu", "batch_size": 4, "plot_images": 0, "coco_eval": False,
                "conf": 0.01, "registry_cache": str(tmp_path / "cache")}  # fmt: skip
    uri, number = registered["uri"], registered["version"]
    by_alias = evaluate_model(cache, {**settings, "checkpoint": f"models:/{MODEL}@champion"},
                              None, tracking_uri=uri)  # fmt: skip
    from_file = evaluate_model(cache, {**settings, "checkpoint": str(registered["onnx"])}, None)
    assert _figures(by_alias) == _figures(from_file)
    assert len(by_alias["val_predictions"]) == len(from_file["val_predictions"]) > 0
    checkpoint = {**settings, "checkpoint": f"models:/{MODEL}/{number}", "backend": "torch"}
    by_number = evaluate_model(cache, checkpoint, None, tracking_uri=uri)
    assert _figures(by_number) == pytest.approx(_figures(from_file), abs=1e-6)
    assert (tmp_path / "cache" / f"{MODEL}-v{number}" / "artifacts" / "model.pt").is_file()


def test_evaluating_an_unknown_registered_version_is_an_error_naming_it(registered, tmp_path):
    settings = {"checkpoint": f"models:/{MODEL}@nosuch", "registry_cache": str(tmp_path)}
    # the run-start hook leaves models:/ to the node, which names the URI and the store
    assert checkpoint_weights(EvaluationParams(**settings)) is None
    cache = synthetic_cache(tmp_path / "data", imgsz=64, n_images=2)
    with pytest.raises(RegisteredModelError, match=r"models:/yolo11n-files@nosuch: .*alias"):
        evaluate_model(cache, settings, None, tracking_uri=registered["uri"])
