"""The block every ``kedro run`` ends with: what it produced, where to look, how to recover.

The tracking hook feeds a :class:`RunSummary` while the pipeline runs (checkpoint files, the
evaluation metrics, the registration record) and logs :func:`render` of it when the pipeline
ends or fails::

    ==== yolo-mlops run summary: training (env ci) FINISHED in 1m52s ====
    checkpoints : data/06_models/best.pt, data/06_models/last.pt
    metrics     : P 0.0123  R 0.0456  mAP50 0.0100  mAP50-95 0.0031  inference 11.80 ms/image
    MLflow run  : yolo11n-96px-2ep-3f9c2a (3c1f...) http://127.0.0.1:5000/#/experiments/1/runs/3c1f...
    registry    : yolo11n-coco128 v2 @challenger; champion stays v1: not strictly better (+0.0000)

Pure formatting: the hook gathers the facts.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# (metrics.json key, label, format)
SUMMARY_METRICS: tuple[tuple[str, str, str], ...] = (
    ("precision", "P", "{:.4f}"),
    ("recall", "R", "{:.4f}"),
    ("mAP50", "mAP50", "{:.4f}"),
    ("mAP50-95", "mAP50-95", "{:.4f}"),
    ("speed_ms/inference", "inference", "{:.2f} ms/image"),
)
RESUME_STATE = "data/06_models/run/last.pt"
#: Statuses of a run that ended early; ``KILLED``: stopped by a signal (Ctrl-C, SIGTERM).
UNFINISHED = ("FAILED", "KILLED")


@dataclass
class RunSummary:
    """Facts about one pipeline execution, filled in as its datasets are saved."""

    pipeline: str
    env: str
    checkpoints: list[str] = field(default_factory=list)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    registration: Mapping[str, Any] = field(default_factory=dict)
    run_name: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    status: str = "FINISHED"
    error: str | None = None
    seconds: float = 0.0
    resume_state_exists: bool = False  # a resumable last.pt of this run is in its save_dir
    params: Mapping[str, Any] = field(default_factory=dict)  # the run's --params, dotted keys
    untracked: str = "this run was not tracked (see the warning above)"  # when run_id is None


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def metrics_line(metrics: Mapping[str, Any]) -> str | None:
    """``P 0.5120  R 0.4010  mAP50 ...`` for the headline metrics present."""
    parts = []
    for key, label, fmt in SUMMARY_METRICS:
        try:
            value = float(metrics[key])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(value):
            parts.append(f"{label} {fmt.format(value)}")
    return "  ".join(parts) or None


def _pipeline_arg(pipeline: str) -> str:
    return "" if pipeline in ("__default__", "") else f" --pipelines {pipeline}"


def params_arg(params: Mapping[str, Any], **extra: Any) -> str:
    """`` --params k=v,...`` for ``params`` (dotted keys, values as Kedro's CLI parsed them:
    ``None`` is written ``null``, booleans ``true``/``false``) updated with ``extra``; "" if none.

    ``extra`` keys use ``__`` for dots (``training__resume=True`` → ``training.resume=true``).
    """
    merged = {**params, **{key.replace("__", "."): value for key, value in extra.items()}}
    items = []
    for key, value in merged.items():
        text = "null" if value is None else str(value).lower() if isinstance(value, bool) else value
        items.append(f"{key}={text}")
    return f" --params {shlex.quote(','.join(items))}" if items else ""


def recovery_command(summary: RunSummary) -> str | None:
    """The command that continues from what this run left behind (``None``: nothing to do).

    A resume only when a resumable checkpoint of the run exists; the run's own ``--params`` and
    ``--env`` are repeated, so it continues the same run in the same ``save_dir``.
    """
    env = "" if summary.env in ("local", "None", "") else f" --env {summary.env}"
    run = f"kedro run{_pipeline_arg(summary.pipeline)}{env}"
    if summary.status in UNFINISHED:
        if summary.checkpoints and not summary.registration:
            return f"kedro run --pipelines register{env}"
        if summary.resume_state_exists:
            return run + params_arg(summary.params, training__resume=True)
        if summary.status == "KILLED":  # stopped on request before any checkpoint: start again
            return run + params_arg(summary.params)
        return None  # a failure: the error line names what to change first
    if summary.registration.get("status") == "skipped":
        return f"kedro run --pipelines register{env}  (once the tracking store is reachable)"
    return None


def registry_line(registration: Mapping[str, Any]) -> str | None:
    """``name vN <transition>`` or why nothing was registered."""
    if not registration:
        return None
    if registration.get("status") != "registered":
        reason = registration.get("reason", "unknown reason")
        return f"{registration.get('model_name', 'model')} NOT registered: {reason}"
    transition = registration.get("transition")
    if not transition:
        aliases = " ".join(f"@{alias}" for alias in registration.get("aliases", []))
        transition = f"v{registration.get('version')} {aliases}".strip()
    return f"{registration.get('model_name')}: {transition}"


def render(summary: RunSummary) -> str:
    """The summary block (one fact per line, plain text, no wrapping)."""
    title = (
        f"==== yolo-mlops run summary: {summary.pipeline} (env {summary.env}) "
        f"{summary.status} in {_duration(summary.seconds)} ===="
    )
    if summary.run_id:
        run = f"{summary.run_name or ''} ({summary.run_id}) {summary.run_url or ''}".strip()
    else:
        run = f"none: {summary.untracked}"
    rows = [
        ("error", summary.error),
        ("checkpoints", ", ".join(summary.checkpoints) or None),
        ("metrics", metrics_line(summary.metrics)),
        ("MLflow run", run),
        ("registry", registry_line(summary.registration)),
        ("recover with", recovery_command(summary)),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [title]
    lines += [f"{label:<{width}} : {value}" for label, value in rows if value]
    return "\n".join(lines)
