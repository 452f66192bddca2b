"""HOOKS: the registration order that hooks/__init__.py explains."""

from __future__ import annotations

from yolo_mlops.hooks import HOOKS
from yolo_mlops.hooks.weights import PretrainedWeightsHook


def test_hooks_are_registered_in_the_explained_order():
    assert [type(hook).__name__ for hook in HOOKS] == [
        "ConsoleHook",
        "RunSummaryHook",  # before the tracking hook: called after it
        "MlflowTrackingHook",
        "PretrainedWeightsHook",  # tryfirst: before the MLflow run starts
        "ValidationReportHook",
        "ParameterValidationHook",  # registered last, tryfirst: called first
    ]


def test_tracking_hook_reads_the_weights_the_weights_hook_prepared():
    (weights,) = [hook for hook in HOOKS if isinstance(hook, PretrainedWeightsHook)]
    (tracking,) = [hook for hook in HOOKS if type(hook).__name__ == "MlflowTrackingHook"]
    assert tracking._weights is weights
