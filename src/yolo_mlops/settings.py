"""Kedro project settings. https://docs.kedro.org/en/stable/kedro_project_setup/settings.html"""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from yolo_mlops.console import ConsoleHook
from yolo_mlops.hooks import MlflowTrackingHook
from yolo_mlops.param_validation import ParameterValidationHook
from yolo_mlops.tracking.summary_hook import RunSummaryHook
from yolo_mlops.validation_report import ValidationReportHook
from yolo_mlops.weights_hook import PretrainedWeightsHook

# The console switches to Rich on a terminal (console.py). Parameters are validated as soon as
# the context exists, and the run-start checks run before anything else; the initial weights are
# fetched before any node and before the MLflow run starts (weights_hook.py); the tracking hook
# owns one MLflow run per `kedro run` (hooks.py); the summary hook ends every run with a summary
# block; a validation that stops the run still saves its report (validation_report.py). Pluggy
# calls the hook registered last first (``tryfirst`` ones before the others): the summary hook
# comes before the tracking hook so that it sees the run started and logs after the run ended.
HOOKS = (
    ConsoleHook(),
    RunSummaryHook(),
    MlflowTrackingHook(),
    PretrainedWeightsHook(),
    ValidationReportHook(),
    ParameterValidationHook(),  # last registered = called first: checks precede any download
)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Kedro leaves `oc.env` out of parameters; we allow it so that deployment-specific values
    # (the dataset source in CI, a tracking URI in a cluster) can come from the environment,
    # always with a default: ${oc.env:NAME,default}.
    "custom_resolvers": {"oc.env": oc.env},
}
