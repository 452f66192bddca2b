"""The model card: a registered version's Markdown description, written at registration.

A reviewer opening the version page in the MLflow UI reads, without leaving it: the gate's
decision in plain words, the headline metrics beside the current champion's (metric by metric),
the dataset (name, archive sha256, DVC hash, image and instance counts), the base weights, the
training recipe in one line, the git commit, the files the version carries (each exported model
with its size and its parity with the PyTorch model, from ``export.json``), and links to the run
and to its evaluation plots.

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
LATENCY_KEY = "speed_ms/inference"
#: Latency differences under this fraction of the champion's latency are noise (``same``).
LATENCY_NOISE = 0.25
#: Loads (1-minute load average per core) further apart than this are not compared.
LOAD_NOISE = 0.5
# Run artifacts linked from the card: (label, artifact path).
REPORT_LINKS: tuple[tuple[str, str], ...] = (
    ("PR curve", "reports/pr_curve.png"),
    ("confusion matrix", "reports/confusion_matrix.png"),
    ("prediction grid (ground truth and predictions)", "reports/val_predictions.png"),
    ("per-class metrics", "reports/per_class_metrics.csv"),
)
FROM_SCRATCH = "none (trained from scratch)"
NOT_DVC_TRACKED = "not tracked by DVC (no dvc.lock entry or .dvc file under data/01_raw)"


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
class SpeedContext:
    """Where a latency was measured: the machine kind and its load (1-minute average per core)."""

    machine: str | None = None
    load: float | None = None


@dataclass(frozen=True)
class ArtifactFacts:
    """One exported file of the version, from ``export.json`` (``None`` = not reported).

    Attributes:
        name: the format (``onnx``, ``int8``): also the pyfunc artifact's name.
        file: the file name.
        size_bytes: its size.
        parity: largest differences from the PyTorch model (``max_score_diff`` absolute,
            ``max_box_diff_px`` pixels, ``max_box_diff_rel`` relative, ``images``).
        passed: whether the parity is within the export's tolerances.
        gated: whether a failed parity stops the export (the fp32 model) or is only reported.
        latency_ms: inference latency per image, milliseconds, where the report has it.
    """

    name: str
    file: str
    size_bytes: int | None = None
    parity: Mapping[str, Any] = field(default_factory=dict)
    passed: bool | None = None
    gated: bool = False
    latency_ms: float | None = None


def artifact_facts(report: Mapping[str, Any] | None) -> tuple[ArtifactFacts, ...]:
    """The exported files of an ``export.json`` report, in its order (empty without one)."""
    return tuple(
        ArtifactFacts(
            name=str(name),
            file=str(record.get("file", name)),
            size_bytes=_int(record.get("bytes")),
            parity=dict(record.get("parity") or {}),
            passed=record.get("parity_passed"),
            gated=bool(record.get("parity_gated")),
            latency_ms=_number(record.get("latency_ms")),
        )
        for name, record in ((report or {}).get("artifacts") or {}).items()
    )


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
    speed: SpeedContext = field(default_factory=SpeedContext)
    champion_speed: SpeedContext = field(default_factory=SpeedContext)
    serving_backend: str = "torch"
    artifacts: tuple[ArtifactFacts, ...] = ()


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


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


def latency_comparable(mine: SpeedContext, theirs: SpeedContext) -> str | None:
    """Why two latencies cannot be compared (``None`` when they can): another or an unknown
    machine kind, or loads further apart than :data:`LOAD_NOISE`."""
    if mine.machine is None or theirs.machine is None:
        return "machine not recorded"
    if mine.machine != theirs.machine:
        return "other machine"
    if mine.load is None or theirs.load is None or abs(mine.load - theirs.load) > LOAD_NOISE:
        return "other load"
    return None


def _verdict(card: ModelCard, key: str, delta: float, theirs: float, higher: bool) -> str:
    """``better``/``worse``/``same``; latency only on the same machine and load, with a margin."""
    if key == LATENCY_KEY:
        why_not = latency_comparable(card.speed, card.champion_speed)
        if why_not is not None:
            return f"not compared: {why_not}"
        if abs(delta) <= LATENCY_NOISE * abs(theirs):
            return f"same within {LATENCY_NOISE:.0%}"
    better = delta > 0 if higher else delta < 0
    return "better" if better else ("same" if delta == 0 else "worse")


def metric_rows(card: ModelCard) -> list[tuple[str, str, str, str]]:
    """Header and one row per headline metric: label, this version, champion, difference."""
    champion = f"champion v{card.champion_version}" if card.champion_version else "champion"
    rows = [("metric", f"v{card.version}", champion, "difference")]
    for key, label, fmt, higher_is_better in HEADLINE_METRICS:
        mine = _number(card.metrics.get(key))
        theirs = _number(card.champion_metrics.get(key)) if card.champion_version else None
        if mine is None or theirs is None:
            diff = "n/a"
        else:
            delta = mine - theirs
            verdict = _verdict(card, key, delta, theirs, higher_is_better)
            diff = f"{fmt.replace(':', ':+', 1).format(delta)} ({verdict})"
        rows.append((label, _cell(mine, fmt), _cell(theirs, fmt), diff))
    return rows


def metrics_table(card: ModelCard) -> str:
    """The metric rows as a fixed-width text block: columns padded with spaces, numbers right
    aligned, so they read apart in any renderer (MLflow's Markdown tables have no cell padding)."""
    rows = metric_rows(card)
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = []
    for row in rows:
        label, mine, theirs, diff = row
        lines.append(
            f"{label:<{widths[0]}}  {mine:>{widths[1]}}  {theirs:>{widths[2]}}  {diff}".rstrip()
        )
    return "```text\n" + "\n".join(lines) + "\n```"


def _count(value: int | None, unit: str) -> str | None:
    return None if value is None else f"{value} {unit}"


def headline(card: ModelCard) -> str:
    """The card's first line, plain text (the registry's version list shows it as is)."""
    decision = "Promoted" if card.promoted else "Not promoted"
    return f"{decision}: {card.reason}."


def _speed_line(card: ModelCard) -> str:
    speed = card.speed
    load = "unknown" if speed.load is None else f"{speed.load:.2f}"
    return f"{speed.machine or 'unknown'}, load {load} per core"


def _parity_text(item: ArtifactFacts) -> str:
    parity = item.parity
    if not parity:
        return "parity not reported"
    if item.passed is None:
        verdict = "parity"
    else:
        verdict = "parity passed" if item.passed else "parity FAILED"
    scope = "gated" if item.gated else "reported, not gated"
    figures = [
        f"{label} {_cell(_number(parity.get(key)), fmt)}"
        for key, label, fmt in (
            ("max_score_diff", "max score diff", "{:.2e}"),
            ("max_box_diff_px", "max box diff", "{:.2e} px"),
            ("max_box_diff_rel", "relative", "{:.2e}"),
        )
    ]
    images = _int(parity.get("images"))
    on = f" on {images} images" if images is not None else ""
    return f"{verdict} ({scope}){on}: {', '.join(figures)}"


def artifact_lines(card: ModelCard) -> str:
    """One Markdown bullet per file the version carries: the checkpoint, then each export."""
    serves = " **(served)**" if card.serving_backend == "torch" else ""
    lines = [f"- `checkpoint` (model.pt): the PyTorch checkpoint{serves}"]
    for item in card.artifacts:
        size = "size n/a" if item.size_bytes is None else f"{item.size_bytes / 1e6:.1f} MB"
        latency = "" if item.latency_ms is None else f"; {item.latency_ms:.2f} ms/image"
        is_served = card.serving_backend == "onnxruntime" and item.name == "onnx"
        served = " **(served)**" if is_served else ""
        lines.append(
            f"- `{item.name}` ({item.file}, {size}){served}: {_parity_text(item)}{latency}"
        )
    if not card.artifacts:
        lines.append("- no exported files (the export stage's report was not given)")
    return "\n".join(lines)


def render(card: ModelCard) -> str:
    """The version's Markdown description (its first line plain text: the gate's decision)."""
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
    dvc = f"`{data.dvc_md5}`" if data.dvc_md5 else NOT_DVC_TRACKED
    return f"""{headline(card)}

## {card.model_name} v{card.version}

Aliases now: {transition(card, with_reason=False)}.

### Metrics (validation split)
{metrics_table(card)}

Latency measured on: {_speed_line(card)}. It is compared only with a champion measured on the
same machine kind under a similar load; a difference within {LATENCY_NOISE:.0%} counts as the same.

### Data
- dataset: **{data.name}**{f" ({counts})" if counts else ""}
- archive sha256: `{data.archive_sha256 or "unknown"}`
- DVC hash of the raw data: {dvc}

### Training
- base weights: {card.base_weights or FROM_SCRATCH}
- recipe: {card.recipe}
- numeric precision: {card.precision}
- git commit: {commit}

### Files (serving backend: {card.serving_backend})
{artifact_lines(card)}

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
    """The registered model's description, plain text: what it is and how versions are promoted.

    Plain paragraphs without Markdown syntax: the registry's lists show the text as it is.
    """
    margin = (
        "strictly higher than the champion's"
        if min_improvement <= 0
        else f"higher than the champion's by at least {min_improvement:.4f}"
    )
    return f"""A YOLO11 object detector (plain PyTorch, no Ultralytics) trained on COCO128 by the \
yolo-mlops Kedro project, logged as an MLflow pyfunc model. Input: a DataFrame with one column \
"image" of encoded JPEG/PNG bytes. Output: one row per detection (image_index, class_id, \
class_name, score, x1, y1, x2, y2 in original pixels).

How versions are promoted: every kedro run that trains registers a new version with the alias \
@{challenger_alias} and a model card as its description. The promotion gate moves \
@{champion_alias} to the new version when its validation mAP50-95 is at least \
{min_map50_95:.4f} and {margin}; otherwise @{champion_alias} stays where it is. The decision and \
its numbers are in each version's description and its promoted and promotion.* tags.

Load the champion: mlflow.pyfunc.load_model("models:/{model_name}@{champion_alias}")
"""
