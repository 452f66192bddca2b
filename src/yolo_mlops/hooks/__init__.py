"""Every Kedro hook of the project, and :data:`HOOKS`, the tuple ``settings.py`` registers.

What each hook does:

- :class:`~.console.ConsoleHook`: Rich console output on a terminal, plain lines elsewhere.
- :class:`~.parameters.ParameterValidationHook`: every parameter block parsed when the context
  exists; the training settings that need no data checked before the first node.
- :class:`~.weights.PretrainedWeightsHook`: the initial weights fetched and checked before any
  node and before the MLflow run.
- :class:`~.tracking.MlflowTrackingHook`: one MLflow run per ``kedro run``.
- :class:`~.summary.RunSummaryHook`: the summary block that ends every run.
- :class:`~.validation_report.ValidationReportHook`: a validation that stops the run still saves
  its report.

:mod:`~.errors` (no hook) is what the project's ``kedro run`` (``yolo_mlops.cli``) treats as an
error a user can fix, and ends a run that stopped outside the nodes' error path (a run-start hook
failing, a second Ctrl-C): its MLflow run and its summary block.

Their order. Pluggy calls the hook registered *last* first, except that ``tryfirst`` hooks come
before all others. Hence, for ``before_pipeline_run``:

1. ``ParameterValidationHook`` (``tryfirst``, registered last): bad settings fail before any
   download.
2. ``PretrainedWeightsHook`` (``tryfirst``): a missing or wrong weights file fails before the
   MLflow run starts, so a failure leaves no run behind.
3. ``MlflowTrackingHook``: starts (or joins) the run; it reads the training weights the weights
   hook prepared (``base_weights.*`` tags), hence it is given that hook.
4. ``RunSummaryHook``, registered before the tracking hook so that it is called after it: it
   finds the run started, and (``after_pipeline_run``) logs the summary after the run ended.
"""

from __future__ import annotations

from yolo_mlops.hooks.console import ConsoleHook
from yolo_mlops.hooks.parameters import ParameterValidationHook
from yolo_mlops.hooks.summary import RunSummaryHook
from yolo_mlops.hooks.tracking import MlflowTrackingHook
from yolo_mlops.hooks.validation_report import ValidationReportHook
from yolo_mlops.hooks.weights import PretrainedWeightsHook


def _hooks() -> tuple:
    weights = PretrainedWeightsHook()
    return (
        ConsoleHook(),
        RunSummaryHook(),
        MlflowTrackingHook(weights),
        weights,
        ValidationReportHook(),
        ParameterValidationHook(),
    )


#: The hooks in registration order (see the module docstring for why this order).
HOOKS = _hooks()
