"""The training pipeline and node on a tiny image cache (imgsz 64, 8 images, CPU)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from tests.yolo.tiny_cache import make_tiny_cache
from yolo_mlops.pipelines.params import ParameterError, parse_params
from yolo_mlops.pipelines.train import callbacks as epoch_callbacks
from yolo_mlops.pipelines.train import create_pipeline
from yolo_mlops.pipelines.train.nodes import train_model
from yolo_mlops.yolo.io.checkpoint import model_from_checkpoint
from yolo_mlops.yolo.train.trainer import TrainConfig

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_tiny_cache(tmp_path_factory.mktemp("tiny"), n_images=8, imgsz=64)


def tiny_params(save_dir: Path, **overrides) -> dict:
    return {"epochs": 1, "batch": 4, "optimizer": "SGD", "device": "cpu", "workers": 0,
            "progress": False, "save_dir": str(save_dir)} | overrides  # fmt: skip


def test_pipeline_writes_checkpoints_and_history_through_the_catalog(cache, tmp_path):
    catalog = DataCatalog.from_config(
        {
            "model_checkpoint": {
                "type": "yolo_mlops.datasets.checkpoint_dataset.CheckpointDataset",
                "filepath": str(tmp_path / "06_models/best.pt"),
            },
            "last_checkpoint": {
                "type": "yolo_mlops.datasets.checkpoint_dataset.CheckpointDataset",
                "filepath": str(tmp_path / "06_models/last.pt"),
            },
            "training_history": {
                "type": "pandas.CSVDataset",
                "filepath": str(tmp_path / "08_reporting/training_history.csv"),
                "save_args": {"index": False},
            },
        }
    )
    catalog["image_cache"] = MemoryDataset(cache, copy_mode="assign")
    catalog["params:training"] = MemoryDataset(tiny_params(tmp_path / "run", epochs=2))
    catalog["params:preprocessing.augment"] = MemoryDataset({"mosaic": 1.0})
    SequentialRunner().run(create_pipeline(), catalog)
    history = pd.read_csv(tmp_path / "08_reporting/training_history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert {"train/box_loss", "metrics/mAP50-95", "lr/pg0", "time/data"} <= set(history.columns)
    best = torch.load(tmp_path / "06_models/best.pt", weights_only=True)
    assert best["training"] is None  # released form: no resume state
    assert torch.load(tmp_path / "06_models/last.pt", weights_only=True)["training"]["epoch"] == 1
    model = model_from_checkpoint(best)
    assert model.names == ["circle", "square", "bar"]


def test_node_logs_each_epoch_through_the_tracking_layer(cache, tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(
        epoch_callbacks, "tracking_callback", lambda: lambda e, r: logged.append((e, r))
    )
    best, last, history = train_model(cache, tiny_params(tmp_path), {"mosaic": 1.0})
    assert [epoch for epoch, _ in logged] == [1]
    assert len(history) == 1 and last["training"]["epoch"] == 0
    assert best["config"]["train_args"]["batch"] == 4


def test_node_rejects_unknown_parameters(cache, tmp_path):
    with pytest.raises(ParameterError, match=r"training\.epoch\b"):
        train_model(cache, tiny_params(tmp_path, epoch=3), {})


@pytest.mark.parametrize("env", ["base", "ci"])
def test_parameter_files_parse_and_ci_is_tiny(env):
    path = PROJECT_ROOT / "conf" / env / "parameters_training.yml"
    config = parse_params(TrainConfig, yaml.safe_load(path.read_text())["training"], "training")
    if env == "base":
        assert (config.epochs, config.batch, config.optimizer, config.scale) == (
            100,
            16,
            "auto",
            "n",
        )
    else:
        assert config.epochs <= 2 and config.workers == 0
