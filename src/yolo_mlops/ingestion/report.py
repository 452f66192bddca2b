"""Human-readable outputs of label validation: the summary line and the class-distribution chart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure


def summary_line(summary: Mapping[str, Any]) -> str:
    """The one-line summary, e.g. ``128 images, 126 labelled, 2 backgrounds, ...``."""
    return (
        f"{summary['images']} images, {summary['labelled']} labelled, "
        f"{summary['backgrounds']} backgrounds, {summary['corrupt']} corrupt, "
        f"{summary['instances']} instances, {summary['orphan_labels']} orphan label files"
    )


def class_distribution_figure(instances_per_class: Mapping[str, int], title: str = "") -> Figure:
    """Horizontal bar chart of instances per class (every class, absent ones at zero).

    Built on a bare :class:`~matplotlib.figure.Figure` (no pyplot, no GUI backend), so it is
    safe in worker threads and headless runs; ``savefig`` renders it with Agg.
    """
    names = list(instances_per_class)
    counts = [int(instances_per_class[n]) for n in names]
    height = max(3.0, 0.18 * len(names) + 1.2)
    figure = Figure(figsize=(7.0, height), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    positions = range(len(names))
    bars = axes.barh(positions, counts, color="#3b75af")
    axes.set_yticks(list(positions), names, fontsize=7 if len(names) > 30 else 9)
    axes.invert_yaxis()
    axes.set_xlabel("instances")
    present = sum(1 for c in counts if c > 0)
    axes.set_title(title or f"Instances per class ({present} of {len(names)} classes present)")
    axes.bar_label(bars, fontsize=6, padding=2)
    axes.margins(x=0.08)
    return figure
