"""What a finished study leaves: the trials table, the best recipe as Kedro parameters, the plots.

The plots are Optuna's matplotlib ones (``optuna.visualization.matplotlib``): the optimisation
history (every trial's value and the best so far), the parameter importances (fANOVA over the
finished trials) and the parallel coordinates (one line per trial across the searched keys).
A plot that needs more finished trials than the study has is a figure saying so.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import matplotlib.pyplot as plt
import optuna
import pandas as pd
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState
from optuna.visualization import matplotlib as optuna_plots

from yolo_mlops.pipelines.tune import space
from yolo_mlops.pipelines.tune.loop import FAIL_ATTR, WORKER_ATTR
from yolo_mlops.pipelines.tune.trial import DIR_ATTR, METRICS_ATTR, RUN_ATTR


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, epochs run, seconds, the searched values, the
    worker, its MLflow run and checkpoint folder, and why it failed."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        seconds = trial.duration.total_seconds() if trial.duration is not None else None
        rows.append({
            "number": trial.number, "state": trial.state.name, "value": trial.value,
            "epochs": len(trial.intermediate_values), "seconds": seconds,
            **trial.params,
            "worker": trial.user_attrs.get(WORKER_ATTR),
            "mlflow_run_id": trial.user_attrs.get(RUN_ATTR),
            "save_dir": trial.user_attrs.get(DIR_ATTR),
            "fail_reason": trial.user_attrs.get(FAIL_ATTR),
        })  # fmt: skip
    return pd.DataFrame(rows)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best COMPLETE trial, or ``None`` when none completed."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def best_params_document(
    best: FrozenTrial, training: Mapping[str, Any], preprocessing: Mapping[str, Any]
) -> dict[str, Any]:
    """The configured ``training`` and ``preprocessing`` blocks with the best trial's values.

    Whole blocks, so the file can replace them in ``conf/local/`` (a block in a later
    environment replaces the earlier one as a whole); ``--params`` takes the dotted keys of
    :func:`best_overrides` instead.
    """
    tuned = space.split_params(best.params)
    document = {"training": {**copy.deepcopy(dict(training)), **tuned.get("training", {})}}
    blocks = copy.deepcopy(dict(preprocessing))
    blocks["augment"] = {**dict(blocks.get("augment") or {}), **tuned.get("augment", {})}
    document["preprocessing"] = blocks
    return document


def best_overrides(best: FrozenTrial) -> str:
    """The best values as ``kedro run --params`` takes them (``training.lr0=0.01,...``)."""
    nested = space.as_kedro_params(best.params)
    pairs = [f"training.{k}={v}" for k, v in nested.get("training", {}).items()]
    augment = nested.get("preprocessing", {}).get("augment", {})
    pairs += [f"preprocessing.augment.{k}={v}" for k, v in augment.items()]
    return ",".join(pairs)


def _placeholder(title: str, reason: str) -> Figure:
    figure = Figure(figsize=(6.4, 4.8))
    axes = figure.add_subplot()
    axes.set_axis_off()
    axes.set_title(title)
    axes.text(0.5, 0.5, reason, ha="center", va="center", wrap=True)
    return figure


def _plot(title: str, draw: Callable[[], Any]) -> Figure:
    """``draw()``'s figure, or a placeholder naming why it could not be drawn."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            axes = draw()
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        return _placeholder(title, f"not drawn: {error}")
    figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    plt.close(figure)  # Optuna draws with pyplot: hand the figure over, keep no global state
    figure.set_size_inches(10, 6)
    figure.tight_layout()
    return figure


def study_plots(study: optuna.Study) -> tuple[Figure, Figure, Figure]:
    """(optimisation history, parameter importances, parallel coordinates)."""
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    history = _plot("Optimisation history", lambda: optuna_plots.plot_optimization_history(study))
    if len(finished) < 2 or not finished[0].params:
        reason = "needs 2 completed trials and a searched key"
        return history, _placeholder("Parameter importances", reason), _placeholder(
            "Parallel coordinates", reason)  # fmt: skip
    importances = _plot("Parameter importances",
                        lambda: optuna_plots.plot_param_importances(study))  # fmt: skip
    parallel = _plot("Parallel coordinates", lambda: optuna_plots.plot_parallel_coordinate(study))
    return history, importances, parallel


def summary(study: optuna.Study, best: FrozenTrial | None, record: Mapping[str, Any]) -> dict:
    """``data/08_reporting/tune/summary.json``: counts, the best trial and where things are."""
    counts = {s.name: 0 for s in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    result: dict[str, Any] = {
        "study_name": study.study_name, "direction": study.direction.name.lower(),
        "counts": counts, "parent_run_id": record.get("parent_run_id"), "best": None,
    }  # fmt: skip
    if best is not None:
        result["best"] = {
            "number": best.number, "value": best.value, "params": best.params,
            "metrics": best.user_attrs.get(METRICS_ATTR, {}),
            "mlflow_run_id": best.user_attrs.get(RUN_ATTR),
            "save_dir": best.user_attrs.get(DIR_ATTR), "overrides": best_overrides(best),
        }  # fmt: skip
    return result
