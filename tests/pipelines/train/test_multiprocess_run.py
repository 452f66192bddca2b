"""`kedro run --pipelines train` with ``training.nproc=2``: one MLflow run with rank 0's
per-epoch metrics, the usual checkpoints, the single-process parameters in the workers, and the
same losses as one process training the same global batch (rtol/atol 1e-5, the tolerance of
``tests/yolo/train/test_distributed.py``).

Why equality holds here: the cache holds identical images with augmentation off, so each
16-image shard has the BatchNorm statistics of the whole 32-image batch; the loss normaliser is
the global batch's (``loss.global_normaliser``); both start from the weights of a short
training run (a fresh model's predictions are symmetric around each box, ties that float noise
breaks either way); and the layout is NCHW in float32 (no bf16 autocast). With channels_last
(NHWC) the CPU convolution kernels round differently for 16 and 32 images; the top-k target
assignment turns those 1e-7 differences into different positives (epoch-1 cls 6.6625 vs 6.6537,
about 4 % apart after one update), so NHWC runs agree in expectation only (design §11); bf16's
coarser rounding does the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow import MlflowClient

from tests.conftest import PROJECT_ROOT
from tests.tracking.helpers import embedded_store
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset
from yolo_mlops.yolo.boxes import xywhn_to_xyxy
from yolo_mlops.yolo.data.image_cache import CacheImage, ImageCacheSource

NO_AUGMENT = {"mosaic": 0.0, "translate": 0.0, "scale": 0.0, "hsv_h": 0.0, "hsv_s": 0.0,
              "hsv_v": 0.0, "fliplr": 0.0}  # fmt: skip
LOSSES = ["train/box_loss", "train/cls_loss", "train/dfl_loss"]


def write_twin_cache(root: Path, path: Path, copies: int = 32) -> None:
    """An image cache of ``copies`` identical images (train = val) at ``path``."""
    yaml_path = write_synthetic_dataset(root, SyntheticSpec(n_images=2, backgrounds=0), seed=0)
    file = sorted((yaml_path.parent / "images" / "train2017").glob("*.jpg"))[0]
    rows = np.loadtxt(yaml_path.parent / "labels/train2017" / f"{file.stem}.txt", ndmin=2)
    rows = rows.astype(np.float32)
    boxes = np.asarray(xywhn_to_xyxy(rows[:, 1:5], 1, 1), np.float32)
    image = CacheImage(str(file), file, boxes, rows[:, 0].astype(np.int64))
    every = list(range(copies))
    names = list(SyntheticSpec().names)
    ImageCacheSource([image] * copies, {"train": every, "val": every}, names, 64, "twins", 1
                     ).materialise(path)  # fmt: skip


def run_training(
    project: Path, nproc: int, pretrained: str = "", tag: str = "", **training: object
) -> pd.DataFrame:
    # batch 32: each 16-image shard has a target-score sum above 1, where DetectionLoss's
    # max(sum, 1) clamp would make a shard's normalisation differ from the whole batch's
    runtime = {"training": {"nproc": nproc, "save_dir": f"data/06_models/run{tag or nproc}",
                            "pretrained": pretrained, **training,
                            "threads": 1, "batch": 32, "val_batch": 32,
                            "channels_last": False, "bf16": False},
               "preprocessing": {"augment": NO_AUGMENT}}  # fmt: skip
    with KedroSession.create(project_path=project, env="ci", runtime_params=runtime) as session:
        session.run(pipeline_name="train")
    return pd.read_csv(project / "data/08_reporting/training_history.csv")


@pytest.mark.integration
def test_two_cpu_processes_log_one_run_and_match_single_process_losses(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    for env in ("base", "ci"):
        shutil.copytree(PROJECT_ROOT / "conf" / env, project / "conf" / env)
    (project / "conf/local").mkdir()
    write_twin_cache(tmp_path / "synth", project / "data/05_model_input/image_cache")
    uri = embedded_store(project)
    monkeypatch.chdir(project)
    bootstrap_project(project)

    # Start both from weights one short run trained: a fresh model's predictions are symmetric
    # around each box, and the assigner would break those exact ties by float noise.
    run_training(project, nproc=1, tag="pre", epochs=30, warmup_epochs=0, val=False)
    start = str(project / "data/06_models/runpre/last.pt")
    single = run_training(project, nproc=1, pretrained=start)
    ddp = run_training(project, nproc=2, pretrained=start)

    assert len(single) == len(ddp) == 2
    assert np.isfinite(ddp[LOSSES].to_numpy()).all()
    workers = yaml.safe_load((project / "data/06_models/run2/launch_params.yml").read_text())
    assert workers["training"]["batch"] == 32 and workers["training"]["device"] == "cpu"
    assert workers["preprocessing"]["augment"]["mosaic"] == 0.0
    assert (project / "data/06_models/best.pt").is_file()
    assert (project / "data/06_models/last.pt").is_file()
    assert (project / "data/06_models/run2/last.pt").is_file()
    config = torch.load(project / "data/06_models/best.pt", weights_only=True)["config"]
    assert config["train_args"]["pretrained"] == start  # as configured: the workers fetched it
    assert (config["base_weights"]["value"], config["base_weights"]["name"]) == (start, "last.pt")

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("yolo-mlops")
    runs = client.search_runs([experiment.experiment_id])
    (run,) = [r for r in runs if r.data.params.get("training.nproc") == "2"]
    assert len(runs) == 3 and run.info.status == "FINISHED"
    np.testing.assert_allclose(ddp[LOSSES].to_numpy(), single[LOSSES].to_numpy(),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    for column in LOSSES:
        history = client.get_metric_history(run.info.run_id, column)
        assert sorted(m.step for m in history) == [1, 2], column
        logged = [m.value for m in sorted(history, key=lambda m: m.step)]
        np.testing.assert_allclose(logged, ddp[column], rtol=1e-6, err_msg=column)
