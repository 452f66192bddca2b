"""The model card: a registered version's Markdown description, written at registration.

A reviewer opening the version page in the MLflow UI reads, without leaving it: the gate's
decision in plain words, the headline metrics beside the current champion's (metric by metric),
the dataset (name, archive sha256, DVC hash, image and instance counts), the base weights, the
training recipe in one line, the git commit, and links to the run and to its evaluation plots.

Pure functions of plain data (no mlflow import): the registry module gathers the facts.
Links are relative hash routes of the MLflow UI (``#/experiments/...``), so they work on
whatever host serves the UI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# (metrics.json key, label, format, higher is better)
HEADLINE_METRICS: tuple[tuple[str, str, str, bool], ...] = (
    ("precision", "precision", "{:.4f}", True),
    ("recall", "recall", "{:.4f}", True),
    ("mAP50", "mAP50", "{:.4f}", True),
    ("mAP50-95", "mAP50-95 (gate metric)", "{:.4f}", True),
    ("speed_ms/inference", "inference, ms/image", "{:.2f}", False),
)
# Run artifacts linked from the card: (label, artifact path).
REPORT_LINKS: tuple[tuple[str, str], ...] = (
    ("PR curve", "reports/pr_curve.png"),
    ("confusion matrix", "reports/confusion_matrix.png"),
    ("prediction grid (ground truth and predictions)", "reports/val_predictions.png"),
    ("per-class metrics", "reports/per_class_metrics.csv"),
)
FROM_SCRATCH = "none (trained from scratch)"


@dataclass(frozen=True)
class DatasetFacts:
    """What the card says about the training data (``None`` = unknown)."""

    name: str = "unknown"
    archive_sha256: str | None = None
    dvc_md5: str | None = None
    images: int | None = None
    instances: int | None = None
    classes_present: int | None = None


@dataclass(frozen=True)
class ModelCard:
    """Everything the card shows. Metrics are fractions (``speed_ms/*`` in milliseconds)."""

    model_name: str
    version: str
    run_id: str
    experiment_id: str
    run_name: str
    metrics: Mapping[str, Any]
    promoted: bool
    reason: str
    champion_version: str | None = None
    champion_metrics: Mapping[str, Any] = field(default_factory=dict)
    challenger_alias: str = "challenger"
    champion_alias: str = "champion"
    dataset: DatasetFacts = field(default_factory=DatasetFacts)
    base_weights: str | None = None
    recipe: str = "unknown"
    precision: str = "unknown"  # the run's training.precision tag
    git_commit: str = "unknown"
    git_dirty: str | None = None
    logged_model_id: str | None = None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _cell(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def run_link(experiment_id: str, run_id: str) -> str:
    """Relative MLflow UI route of a run page."""
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def artifact_link(experiment_id: str, run_id: str, path: str) -> str:
    """Relative MLflow UI route that opens ``path`` in the run's artifact browser."""
    return f"{run_link(experiment_id, run_id)}/artifactPath/{path}"


def transition(card: ModelCard, with_reason: bool = True) -> str:
    """One line: where the aliases point after this registration.

    ``"champion → v3 (was v2); v3 @challenger"`` or
    ``"v3 @challenger; champion stays v2: <reason>"`` (the reason only ``with_reason``).
    """
    version = f"v{card.version}"
    if card.promoted:
        before = f" (was v{card.champion_version})" if card.champion_version else ""
        return f"{card.champion_alias} → {version}{before}; {version} @{card.challenger_alias}"
    if card.champion_version:
        stays = f"{card.champion_alias} stays v{card.champion_version}"
    else:
        stays = f"no {card.champion_alias} yet"
    reason = f": {card.reason}" if with_reason else ""
    return f"{version} @{card.challenger_alias}; {stays}{reason}"


def metrics_table(card: ModelCard) -> str:
    """Markdown table: this version, the champion before it, and the difference per metric."""
    champion = f"champion v{card.champion_version}" if card.champion_version else "champion"
    lines = [
        f"| metric | v{card.version} | {champion} | difference |",
        "|---|---:|---:|---:|",
    ]
    for key, label, fmt, higher_is_better in HEADLINE_METRICS:
        mine = _number(card.metrics.get(key))
        theirs = _number(card.champion_metrics.get(key)) if card.champion_version else None
        if mine is None or theirs is None:
            diff = "n/a"
        else:
            delta = mine - theirs
            better = delta > 0 if higher_is_better else delta < 0
            verdict = "better" if better else ("same" if delta == 0 else "worse")
            diff = f"{fmt.replace(':', ':+', 1).format(delta)} ({verdict})"
        lines.append(f"| {label} | {_cell(mine, fmt)} | {_cell(theirs, fmt)} | {diff} |")
    return "\n".join(lines)


def _count(value: int | None, unit: str) -> str | None:
    return None if value is None else f"{value} {unit}"


def render(card: ModelCard) -> str:
    """The version's Markdown description."""
    decision = "promoted" if card.promoted else "not promoted"
    data = card.dataset
    counts = ", ".join(
        part
        for part in (
            _count(data.images, "images"),
            _count(data.instances, "instances"),
            _count(data.classes_present, "classes present"),
        )
        if part
    )
    commit = f"`{card.git_commit}`"
    if card.git_dirty == "true":
        commit += " (with uncommitted changes)"
    run = run_link(card.experiment_id, card.run_id)
    reports = "\n".join(
        f"- [{label}]({artifact_link(card.experiment_id, card.run_id, path)})"
        for label, path in REPORT_LINKS
    )
    model_line = (
        f"\n- logged model: [{card.logged_model_id}](#/experiments/{card.experiment_id}"
        f"/models/{card.logged_model_id})"
        if card.logged_model_id
        else ""
    )
    return f"""## {card.model_name} v{card.version}

**Gate decision: {decision}** ({card.reason}).
Aliases now: {transition(card, with_reason=False)}.

### Metrics (validation split)
{metrics_table(card)}

### Data
- dataset: **{data.name}**{f" ({counts})" if counts else ""}
- archive sha256: `{data.archive_sha256 or "unknown"}`
- DVC hash of the raw data: `{data.dvc_md5 or "unknown"}`

### Training
- base weights: {card.base_weights or FROM_SCRATCH}
- recipe: {card.recipe}
- numeric precision: {card.precision}
- git commit: {commit}

### Links
- run: [{card.run_name}]({run}){model_line}
{reports}
"""


def registered_model_description(
    model_name: str,
    *,
    min_map50_95: float,
    min_improvement: float,
    challenger_alias: str = "challenger",
    champion_alias: str = "champion",
) -> str:
    """The registered model's description: what it is and how versions are promoted."""
    margin = (
        "strictly higher than the champion's"
        if min_improvement <= 0
        else f"higher than the champion's by at least {min_improvement:.4f}"
    )
    return f"""## {model_name}

A YOLO11 object detector (plain PyTorch, no Ultralytics) trained on COCO128 by the
`yolo-mlops` Kedro project, logged as an MLflow **pyfunc** model: input a DataFrame with one
column `image` of encoded JPEG/PNG bytes, output one row per detection (`image_index,
class_id, class_name, score, x1, y1, x2, y2` in original pixels).

### How versions are promoted
Every `kedro run` that trains registers a new version with the alias `@{challenger_alias}` and
a model card as its description. The promotion gate moves `@{champion_alias}` to the new version
when its validation mAP50-95 is at least {min_map50_95:.4f} and {margin}; otherwise
`@{champion_alias}` stays where it is. The decision and its numbers are in each version's
description and its `promotion.*` tags.

Load the champion: `mlflow.pyfunc.load_model("models:/{model_name}@{champion_alias}")`.
"""
