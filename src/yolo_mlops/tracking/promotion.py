"""The promotion gate: whether a new version becomes the registered model's champion.

The gate moves ``champion`` to the new version when its mAP50-95 clears the absolute floor
``min_map50_95`` AND beats the current champion's by at least ``min_improvement`` (strictly
better when the margin is 0); with no champion yet, clearing the floor is enough. A version
whose export report (``export.json``) says a gated export (the fp32 ONNX model) failed its
parity check is never promoted, whatever its mAP50-95. The champion's
figure is read from its ``mAP50-95`` version tag. :mod:`.registry` writes the decision and its
numbers as version tags (``promotion.*``), run tags and run metrics (``verdict/*``), holding
the registered model's promotion lock (:mod:`.promotion_lock`) from reading the champion to
moving the aliases, so concurrent pipelines are gated one after another.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from yolo_mlops.tracking import model_card, reports


@dataclass(frozen=True)
class PromotionPolicy:
    """``register.promotion``: when a challenger becomes champion."""

    min_improvement: float = 0.0
    min_map50_95: float = 0.0


@dataclass(frozen=True)
class PromotionDecision:
    """The gate's verdict and the numbers it was made on."""

    promoted: bool
    reason: str
    challenger_map50_95: float
    champion_map50_95: float | None
    champion_version: str | None
    min_improvement: float
    min_map50_95: float

    @property
    def label(self) -> str:
        """The run's ``promotion.decision`` tag: ``promoted`` or ``not_promoted``."""
        return "promoted" if self.promoted else "not_promoted"


def decide_promotion(
    challenger: float,
    champion: float | None,
    policy: PromotionPolicy,
    champion_version: str | None = None,
    export_failure: str | None = None,
) -> PromotionDecision:
    """Pure gate: promote iff the export passed parity (``export_failure`` is None), the floor
    is cleared and (no champion, or improvement >= margin and > 0)."""

    def verdict(promoted: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(
            promoted,
            reason,
            challenger,
            champion,
            champion_version,
            policy.min_improvement,
            policy.min_map50_95,
        )

    if export_failure is not None:
        return verdict(False, export_failure)
    if not math.isfinite(challenger) or challenger < policy.min_map50_95:
        return verdict(False, f"mAP50-95 {challenger:.4f} below floor {policy.min_map50_95:.4f}")
    if champion is None:
        return verdict(True, "no current champion with a mAP50-95 tag; floor cleared")
    gain = challenger - champion
    versus = f"mAP50-95 {challenger:.4f} vs champion v{champion_version}'s {champion:.4f}"
    if gain > 0 and gain >= policy.min_improvement:
        return verdict(True, f"{versus}: better by {gain:+.4f}")
    if gain <= 0:
        return verdict(False, f"{versus}: not strictly better ({gain:+.4f})")
    return verdict(
        False,
        f"{versus}: better by {gain:+.4f}, less than the required margin "
        f"{policy.min_improvement:.4f}",
    )


def export_parity_failure(report: Mapping[str, Any] | None) -> str | None:
    """Why the export report keeps a version from promotion (``None``: it does not).

    ``report`` is ``export.json``: ``artifacts`` maps a format to its record; a record with
    ``parity_gated`` true and ``parity_passed`` false is a failed export. An empty report (no
    export stage ran) does not block.
    """
    failed = [
        f"{record.get('file', name)} ({record.get('parity')})"
        for name, record in ((report or {}).get("artifacts") or {}).items()
        if record.get("parity_gated") and not record.get("parity_passed", False)
    ]
    if not failed:
        return None
    return f"export failed parity with the PyTorch model: {', '.join(failed)} (export.json)"


def read_metric(values: Mapping[str, Any], key: str) -> float:
    """``values[key]`` as a float; NaN when it is missing or not a number."""
    try:
        return float(values[key])
    except (KeyError, TypeError, ValueError):
        return float("nan")


def current_champion(
    client: MlflowClient, name: str, alias: str
) -> tuple[str | None, float | None]:
    """The version holding ``alias`` and its ``mAP50-95`` tag (``None`` where there is none)."""
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None, None
    try:
        return str(version.version), float(version.tags["mAP50-95"])
    except (KeyError, TypeError, ValueError):
        return str(version.version), None


def champion_tags(client: MlflowClient, name: str, version: str | None) -> dict[str, str]:
    """The champion's version tags (empty without a champion)."""
    if version is None:
        return {}
    try:
        return dict(client.get_model_version(name, version).tags)
    except MlflowException:
        return {}


def champion_metrics(tags: Mapping[str, str]) -> dict[str, float]:
    """The champion's headline metrics from its version tags (older versions: fewer)."""
    return {key: read_metric(tags, key) for key, *_ in model_card.HEADLINE_METRICS if key in tags}


def record_verdict(
    client: MlflowClient, card: model_card.ModelCard, decision: PromotionDecision
) -> None:
    """The registration and the gate's verdict on the run (tags and ``verdict/*`` metrics)."""
    run_id = card.run_id
    client.set_tag(run_id, "registry.model_name", card.model_name)
    client.set_tag(run_id, "registry.version", card.version)
    client.set_tag(run_id, "promotion.decision", decision.label)
    client.set_tag(run_id, "promotion.reason", decision.reason)
    gate_values = (
        ("challenger", decision.challenger_map50_95),
        ("champion_before", decision.champion_map50_95),
    )
    for key, value in gate_values:
        if value is not None and math.isfinite(value):
            client.log_metric(run_id, f"{reports.GATE_PREFIX}/{key}_mAP50-95", value)
