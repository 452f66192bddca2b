"""The library's defaults are what users run: TrainConfig and AugmentConfig against conf/base.

Kedro replaces a whole parameter block when an environment (conf/ci, conf/local) defines it, so
every key such a block leaves out takes the library default: the two must agree.
"""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.train.config import TrainConfig

#: Keys whose library default differs from conf/base on purpose: (conf/base value, default).
DELIBERATE = {
    # The library reads local files only; conf/base names the official weights, which the
    # Kedro layer fetches and hands to the trainer as a path.
    "pretrained": ("yolo11n.pt", ""),
}
#: TrainConfig fields only a benchmark sets (with --set): not offered to users in conf/.
BENCHMARK_ONLY = ("tal_min_side",)


def _block(env: str, name: str, key: str) -> dict:
    return yaml.safe_load((PROJECT_ROOT / f"conf/{env}/parameters_{name}.yml").read_text())[key]


def _differences(config: object, values: dict) -> dict:
    return {
        key: (value, getattr(config, key))
        for key, value in values.items()
        if hasattr(config, key) and getattr(config, key) != value
    }


def test_train_config_defaults_equal_conf_base_training():
    block = _block("base", "training", "training")
    assert _differences(TrainConfig(), block) == DELIBERATE, (
        "align TrainConfig with conf/base/parameters_training.yml, or say why in DELIBERATE"
    )


def test_conf_base_training_sets_every_user_facing_train_config_field():
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    assert set(_block("base", "training", "training")) == fields - set(BENCHMARK_ONLY)


@pytest.mark.parametrize("env", ["base", "ci"])
def test_benchmark_only_settings_are_not_offered_in_conf(env):
    assert not set(BENCHMARK_ONLY) & set(_block(env, "training", "training"))


def test_augment_config_defaults_equal_conf_base_augment_block():
    block = _block("base", "preprocessing", "preprocessing")["augment"]
    assert set(block) == {field.name for field in dataclasses.fields(AugmentConfig)}
    assert _differences(AugmentConfig(), block) == {}
