"""Every parameter block in conf/ matches its dataclass, and typos fail before any node runs."""

from __future__ import annotations

import pytest
import yaml
from kedro.config import OmegaConfigLoader

from tests.conftest import PROJECT_ROOT
from yolo_mlops.hooks.parameters import PARAMETER_BLOCKS, validate_parameters
from yolo_mlops.pipelines.params import ParameterError
from yolo_mlops.settings import CONFIG_LOADER_ARGS


def _params(env: str) -> dict:
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"),
        base_env="base",
        default_run_env=env,
        custom_resolvers=CONFIG_LOADER_ARGS["custom_resolvers"],
    )
    return dict(loader["parameters"])


@pytest.mark.parametrize("env", ["local", "ci"])
def test_shipped_parameters_of_every_environment_are_valid(env: str) -> None:
    params = _params(env)
    assert set(params) == set(PARAMETER_BLOCKS)
    validate_parameters(params)


def test_unknown_block_is_named_in_the_error() -> None:
    params = _params("local") | {"trainng": {"epochs": 3}}
    with pytest.raises(ParameterError, match="trainng"):
        validate_parameters(params)


def test_unknown_key_inside_a_block_is_named_with_its_dotted_path() -> None:
    params = _params("local")
    params["training"] = {**params["training"], "epoch": 3}
    with pytest.raises(ParameterError, match=r"training\.epoch\b"):
        validate_parameters(params)


def test_wrong_type_from_the_command_line_is_an_error() -> None:
    params = _params("local")
    params["training"] = {**params["training"], "epochs": "three"}
    with pytest.raises(ParameterError, match=r"training\.epochs"):
        validate_parameters(params)


def test_hook_is_registered_in_settings() -> None:
    from yolo_mlops.settings import HOOKS

    assert any(type(hook).__name__ == "ParameterValidationHook" for hook in HOOKS)


def test_no_configuration_file_repeats_a_key():
    class StrictLoader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        assert not repeated, f"{node.start_mark}: repeated keys {repeated}"
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    files = sorted((PROJECT_ROOT / "conf").rglob("*.yml"))
    assert files
    for path in files:
        yaml.load(path.read_text(encoding="utf-8"), StrictLoader)


def test_a_resumed_run_given_another_recipe_value_is_an_error_naming_it(tmp_path):
    import dataclasses

    from yolo_mlops.hooks.parameters import check_resume_params
    from yolo_mlops.yolo.io.checkpoint import make_config, save_checkpoint
    from yolo_mlops.yolo.train.resume import ResumeParameterError
    from yolo_mlops.yolo.train.trainer import TrainConfig

    trained = TrainConfig(epochs=3, lr0=0.02, save_dir=str(tmp_path))
    config = make_config(scale="n", nc=1, names=["a"], imgsz=64,
                         train_args=dataclasses.asdict(trained))  # fmt: skip
    save_checkpoint(tmp_path / "last.pt", state_dict={}, config=config, training={"epoch": 0})
    resumed = dataclasses.replace(trained, resume=True, lr0=0.05, epochs=5)
    with pytest.raises(ResumeParameterError, match=r"training\.lr0=0\.05 differs"):
        check_resume_params(resumed, {"lr0": 0.05, "resume": True})
    check_resume_params(resumed, {"epochs": 5, "resume": True})  # epochs may change
