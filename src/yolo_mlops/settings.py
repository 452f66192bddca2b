"""Kedro project settings. https://docs.kedro.org/en/stable/kedro_project_setup/settings.html"""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from yolo_mlops.hooks import HOOKS  # noqa: F401 - read by Kedro; their order: hooks/__init__.py

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Kedro leaves `oc.env` out of parameters; we allow it so that deployment-specific values
    # (the dataset source in CI, a tracking URI in a cluster) can come from the environment,
    # always with a default: ${oc.env:NAME,default}.
    "custom_resolvers": {"oc.env": oc.env},
}
