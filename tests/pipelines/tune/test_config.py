"""The ``tune`` block, its search space, the study's storage and pruner, and the best recipe as
Kedro parameters."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from yolo_mlops.hooks.parameters import validate_parameters
from yolo_mlops.pipeline_registry import register_pipelines
from yolo_mlops.pipelines.params import ParameterError, parse_params
from yolo_mlops.pipelines.preprocess.nodes import PreprocessingParams
from yolo_mlops.pipelines.tune import report, search, space
from yolo_mlops.pipelines.tune import study as tune_study
from yolo_mlops.pipelines.tune.config import PrunerParams, SamplerParams, TuneParams
from yolo_mlops.yolo.train.config import TrainConfig

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("env", ["base", "ci"])
def test_parameter_files_parse_and_ci_is_tiny(env):
    block = yaml.safe_load((PROJECT_ROOT / "conf" / env / "parameters_tune.yml").read_text())
    settings = parse_params(TuneParams, block["tune"], "tune")
    validate_parameters({"tune": block["tune"]})
    if env == "ci":
        assert settings.n_trials <= 3 and settings.epochs <= 2 and not settings.register
    else:
        assert (settings.objective, settings.direction, settings.storage) == (
            "metrics/mAP50-95", "maximize", None)  # fmt: skip


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"model": {"lr0": {"type": "float", "low": 0.1, "high": 1}}}, r"tune\.space\.model"),
        ({"training": {"lr": {"type": "float", "low": 0.1, "high": 1}}}, r"no key .lr."),
        ({"training": {"epochs": {"type": "int", "low": 1, "high": 9}}}, r"set by the search"),
        ({"augment": {"mosaic": {"type": "float", "low": 1, "high": 0}}}, r"mosaic: .*low < high"),
        ({"training": {"lr0": {"type": "float", "low": 0, "high": 1, "log": True}}}, r"low > 0"),
        ({"training": {"optimizer": {"type": "categorical"}}}, r"choices"),
        ({"training": {"lr0": {"type": "normal", "low": 0, "high": 1}}}, r"lr0\.type"),
    ],
)
def test_bad_search_space_is_an_error_naming_the_key(space, message):
    with pytest.raises(ParameterError, match=message):
        parse_params(TuneParams, {"space": space}, "tune")


def test_bad_budget_is_an_error():
    with pytest.raises(ParameterError, match=r"tune\.grace_s"):
        parse_params(TuneParams, {"heartbeat_s": 10, "grace_s": 5}, "tune")


def test_study_storage_defaults_beside_the_embedded_mlflow_store(tmp_path):
    db = tmp_path / "store" / "mlflow.db"
    assert tune_study.default_storage(f"sqlite:///{db}", tmp_path) == (
        f"sqlite:///{tmp_path}/store/optuna.db")  # fmt: skip
    assert tune_study.default_storage("http://127.0.0.1:5000", tmp_path) == (
        f"sqlite:///{tmp_path}/optuna.db")  # fmt: skip
    assert search.safe_url("postgresql://me:secret@db:5432/optuna") == (
        "postgresql://me:***@db:5432/optuna")  # fmt: skip


def test_pruners_and_seeded_samplers():
    assert isinstance(tune_study.build_pruner(PrunerParams()), optuna.pruners.MedianPruner)
    halving = tune_study.build_pruner(PrunerParams(kind="halving"))
    assert isinstance(halving, optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(tune_study.build_pruner(PrunerParams(kind="none")), optuna.pruners.NopPruner)

    def first_value(number: int) -> float:
        study = optuna.create_study(sampler=tune_study.build_sampler(SamplerParams(), number))
        return study.ask().suggest_float("x", 0, 1)

    assert first_value(3) == first_value(3) != first_value(4)


def test_best_trial_becomes_whole_kedro_blocks_and_dotted_overrides():
    best = optuna.trial.create_trial(
        params={"training.lr0": 0.02, "augment.mosaic": 0.5},
        distributions={"training.lr0": optuna.distributions.FloatDistribution(1e-3, 0.1),
                       "augment.mosaic": optuna.distributions.FloatDistribution(0, 1)},
        value=0.3,
    )  # fmt: skip
    preprocessing = {"imgsz": 320, "augment": {"fliplr": 0.0}}
    document = report.best_params_document(best, {"epochs": 60, "lr0": 0.01}, preprocessing)
    assert document == {
        "training": {"epochs": 60, "lr0": 0.02},
        "preprocessing": {"imgsz": 320, "augment": {"fliplr": 0.0, "mosaic": 0.5}},
    }
    assert parse_params(TrainConfig, document["training"], "training").lr0 == 0.02
    parse_params(PreprocessingParams, document["preprocessing"], "preprocessing")
    assert report.best_overrides(best) == "training.lr0=0.02,preprocessing.augment.mosaic=0.5"
    assert space.as_kedro_params(best.params)["preprocessing"] == {"augment": {"mosaic": 0.5}}


def test_tune_pipeline_is_registered_alone_and_its_outputs_are_catalog_files():
    pipelines = register_pipelines()
    tune = pipelines["tune"]
    assert {n.name for n in tune.nodes} == {"create_study", "run_trials", "summarize_study",
                                            "register_best_trial"}  # fmt: skip
    assert not set(tune.nodes) & set(pipelines["__default__"].nodes)
    catalog = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog_tune.yml").read_text())
    assert tune.all_outputs() <= set(catalog)
