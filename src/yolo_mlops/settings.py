"""Kedro project settings. https://docs.kedro.org/en/stable/kedro_project_setup/settings.html"""

from kedro.config import OmegaConfigLoader

from yolo_mlops.hooks import MlflowTrackingHook

# The tracking hook owns one MLflow run per `kedro run` (see hooks.py).
HOOKS = (MlflowTrackingHook(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
