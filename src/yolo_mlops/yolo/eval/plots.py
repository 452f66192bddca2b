"""Evaluation plots: PR curve, F1-confidence curve, confusion matrix, prediction grid.

Every function returns a matplotlib ``Figure`` made without pyplot (no backend, no display, no
global state: importing this module leaves a notebook's inline backend alone; bundled fonts only,
no network), ready for Kedro's ``matplotlib.MatplotlibDataset``, which renders it with Agg.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from yolo_mlops.yolo.eval.metrics import smooth

MAX_LABELLED_CLASSES = 30  # above this, legends and tick labels would be unreadable
# Box labels of the prediction grid: 6 pt DejaVu Sans averages ~0.62 em per glyph; a label line
# with its padding is ~1.5 em tall; a 4-inch panel shows an image's longer side over ~260 pt.
LABEL_FONT_PT = 6
_GLYPH_PT = 0.62 * LABEL_FONT_PT
_LINE_PT = 1.5 * LABEL_FONT_PT
_PANEL_PT = 260.0


def plot_pr_curve(
    recall_axis: np.ndarray, precision: np.ndarray, ap50: np.ndarray, names: Sequence[str]
) -> Figure:
    """Precision-recall curves at IoU 0.5: one thin line per class, the class mean in bold.

    Args:
        recall_axis: ``[K]`` recall values (x).
        precision: ``[C, K]`` precision per class at those recalls.
        ap50: ``[C]`` AP at IoU 0.5 per class (shown in the legend).
        names: ``[C]`` class names, same order as the rows.
    """
    figure = Figure(figsize=(9, 6), layout="constrained")
    axes = figure.subplots()
    label_classes = 0 < len(names) <= MAX_LABELLED_CLASSES
    for row, name in enumerate(names):
        label = f"{name} {ap50[row]:.3f}" if label_classes else None
        axes.plot(recall_axis, precision[row], linewidth=1, label=label)
    if len(names):
        mean_ap = float(np.mean(ap50))
        axes.plot(
            recall_axis,
            precision.mean(0),
            linewidth=3,
            color="blue",
            label=f"all classes {mean_ap:.3f} mAP@0.5",
        )
    _finish(axes, "Recall", "Precision", "Precision-Recall Curve")
    return figure


def plot_metric_curve(
    confidence_axis: np.ndarray,
    values: np.ndarray,
    names: Sequence[str],
    ylabel: str = "F1",
    smooth_fraction: float = 0.05,
) -> Figure:
    """A metric versus confidence (F1 by default): one thin line per class, the smoothed mean bold.

    Args:
        confidence_axis: ``[K]`` confidences (x).
        values: ``[C, K]`` metric per class.
        names: ``[C]`` class names.
        ylabel: metric name for the axis and title.
        smooth_fraction: width of the box filter on the mean curve, as a fraction of ``K``.
    """
    figure = Figure(figsize=(9, 6), layout="constrained")
    axes = figure.subplots()
    label_classes = 0 < len(names) <= MAX_LABELLED_CLASSES
    for row, name in enumerate(names):
        axes.plot(confidence_axis, values[row], linewidth=1, label=name if label_classes else None)
    if len(names):
        mean = smooth(values.mean(0), smooth_fraction)
        best = int(mean.argmax())
        axes.plot(
            confidence_axis,
            mean,
            linewidth=3,
            color="blue",
            label=f"all classes {mean[best]:.2f} at {confidence_axis[best]:.3f}",
        )
    _finish(axes, "Confidence", ylabel, f"{ylabel}-Confidence Curve")
    return figure


def present_classes(matrix: np.ndarray) -> np.ndarray:
    """Class ids with at least one true or predicted box in a ``[nc+1, nc+1]`` confusion matrix
    (a non-zero row or column; the background, index ``nc``, is not a class)."""
    counts = matrix[:-1, :-1].sum(0) + matrix[:-1, :-1].sum(1) + matrix[-1, :-1] + matrix[:-1, -1]
    return np.flatnonzero(counts)


def plot_confusion_matrix(
    matrix: np.ndarray,
    names: Sequence[str],
    normalize: bool = True,
    all_classes: bool = False,
) -> Figure:
    """Confusion matrix ``[nc+1, nc+1]`` indexed [predicted, true] with "background" last.

    Only the classes with a true or predicted box are drawn unless ``all_classes``; the figure
    grows with the number of rows, so every cell and class name stays legible at 100 %. With
    ``normalize`` every column (true class) sums to 1.
    """
    num_classes = len(names)
    kept = np.arange(num_classes) if all_classes else present_classes(matrix)
    index = [*kept.tolist(), num_classes]
    values = matrix[np.ix_(index, index)].astype(np.float64)
    if normalize:
        values = values / (values.sum(0, keepdims=True) + 1e-9)
    values[values < 0.005] = np.nan  # leave empty cells blank
    labels = [*(names[c] for c in kept), "background"]
    annotate = len(labels) <= 16
    cell = 0.45 if annotate else 0.19  # inches per row: 8 pt labels need ~0.17
    side = max(5.0, cell * len(labels) + 2.5)  # + room for the class names and the colour bar
    figure = Figure(figsize=(side + 1.0, side), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    figure.colorbar(
        image, ax=axes, shrink=0.6, label="fraction of the true class" if normalize else "boxes"
    )
    ticks = np.arange(len(labels))
    axes.set_xticks(ticks, labels, rotation=90, fontsize=8)
    axes.set_yticks(ticks, labels, fontsize=8)
    if annotate:
        for (row, col), value in np.ndenumerate(values):
            if not np.isnan(value):
                text = f"{value:.2f}" if normalize else f"{int(value)}"
                color = "white" if normalize and value > 0.6 else "black"
                axes.text(col, row, text, ha="center", va="center", fontsize=8, color=color)
    axes.set_xlabel("True")
    axes.set_ylabel("Predicted")
    shown = "all" if all_classes else "with a true or predicted box"
    axes.set_title(
        f"Confusion matrix{' (normalized per true class)' if normalize else ''}: "
        f"{len(kept)} of {num_classes} classes ({shown})",
        fontsize=10,
    )
    return figure


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class id (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    names: Sequence[str],
    scores: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of ``image`` (HWC BGR uint8) with xyxy pixel ``boxes`` and their labels drawn."""
    canvas = np.ascontiguousarray(image.copy())
    thickness = max(1, round(min(canvas.shape[:2]) / 300))
    for k, (box, class_id) in enumerate(zip(boxes, classes, strict=True)):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        color = class_color(int(class_id))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_8)
        name = names[int(class_id)] if 0 <= int(class_id) < len(names) else str(int(class_id))
        label = name if scores is None else f"{name} {float(scores[k]):.2f}"
        cv2.putText(
            canvas, label, (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX,
            0.35 * thickness, color, thickness, cv2.LINE_AA,
        )  # fmt: skip
    return canvas


GROUND_TRUTH_STYLE = {"color": "#00d5ff", "linestyle": "--", "linewidth": 1.2}
PREDICTION_STYLE = {"color": "#ff7f0e", "linestyle": "-", "linewidth": 1.2}


def plot_prediction_grid(
    images: Sequence[np.ndarray],
    detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    names: Sequence[str],
    titles: Sequence[str] | None = None,
    columns: int = 4,
    *,
    ground_truth: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    score_label: str = "prediction",
) -> Figure:
    """A grid of images with their ground-truth boxes (dashed, cyan, name at the bottom) and
    predicted boxes (solid, orange, name and score on top), and a legend saying which is which.

    Args:
        images: HWC BGR uint8 images.
        detections: per image ``(boxes [n,4] xyxy pixels of that image, scores [n], classes [n])``.
        names: class names.
        titles: optional caption per image (e.g. the file name).
        columns: images per grid row.
        ground_truth: optional per image ``(boxes [m,4] xyxy pixels, classes [m])``.
        score_label: legend text of the predictions (e.g. ``"prediction (score ≥ 0.25)"``).
    """
    count = max(len(images), 1)
    columns = max(1, min(columns, count))
    rows = (count + columns - 1) // columns
    figure = Figure(figsize=(4 * columns, 4 * rows + 0.4), layout="constrained")
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    for slot, axes in enumerate(axes_grid.flat):
        axes.axis("off")
        if slot >= len(images):
            continue
        axes.imshow(cv2.cvtColor(images[slot], cv2.COLOR_BGR2RGB))
        space = _LabelSpace(images[slot].shape)
        boxes, scores, classes = detections[slot]
        _draw_labelled_boxes(
            axes, (boxes, classes, scores), names, space, style=PREDICTION_STYLE, top=True
        )
        if ground_truth is not None:
            boxes, classes = ground_truth[slot]
            _draw_labelled_boxes(
                axes, (boxes, classes, None), names, space, style=GROUND_TRUTH_STYLE, top=False
            )
        if titles is not None:
            axes.set_title(titles[slot], fontsize=8)
    handles = [Line2D([], [], label=score_label, **PREDICTION_STYLE)]
    if ground_truth is not None:
        handles.insert(0, Line2D([], [], label="ground truth", **GROUND_TRUTH_STYLE))
    figure.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize=9)
    return figure


class _LabelSpace:
    """The label rectangles already placed on one image (in its pixels), so that the next label
    goes where it covers none of them."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.height, self.width = int(shape[0]), int(shape[1])
        self.pixels_per_point = max(self.height, self.width, 1) / _PANEL_PT
        self.taken: list[tuple[float, float, float, float]] = []

    def place(self, x: float, y: float, text: str) -> tuple[float, float] | None:
        """Where to put ``text`` whose bottom-left corner would be ``(x, y)``: there, or one or
        more label heights above or below; ``None`` when every nearby slot is taken."""
        width = (len(text) * _GLYPH_PT + 2) * self.pixels_per_point
        height = _LINE_PT * self.pixels_per_point
        x = min(max(x, 0.0), max(self.width - width, 0.0))
        for step in (0, 1, -1, 2, -2, 3, -3):
            bottom = y - step * height  # image rows grow downwards: +step moves the label up
            rect = (x, bottom - height, x + width, bottom)
            if (
                bottom - height < 0
                or bottom > self.height
                or any(_overlaps(rect, other) for other in self.taken)
            ):
                continue
            self.taken.append(rect)
            return x, bottom
        return None


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether two ``(x1, y1, x2, y2)`` rectangles share area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _draw_labelled_boxes(
    axes: Axes,
    found: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    names: Sequence[str],
    space: _LabelSpace,
    *,
    style: dict[str, Any],
    top: bool,
) -> None:
    """``found`` = (xyxy pixel boxes [n, 4], classes [n], scores [n] or None) as rectangles in
    ``style``, each labelled with its class name (and score) on top of the box (``top``) or
    inside its bottom edge; a label that would cover another moves up or down by a line, and is
    left out when no nearby line is free (the box stays)."""
    boxes, classes, scores = found
    for k, (box, class_id) in enumerate(
        zip(np.asarray(boxes).reshape(-1, 4), classes, strict=True)
    ):
        x1, y1, x2, y2 = (float(v) for v in box)
        axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, **style))
        name = names[int(class_id)] if 0 <= int(class_id) < len(names) else str(int(class_id))
        label = name if scores is None else f"{name} {float(scores[k]):.2f}"
        where = space.place(x1, y1 if top else y2, label)
        if where is None:
            continue
        axes.text(
            *where, label, fontsize=LABEL_FONT_PT, color="black", va="bottom", clip_on=True,
            bbox={"facecolor": style["color"], "edgecolor": "none", "pad": 0.5, "alpha": 0.8},
        )  # fmt: skip


def _finish(axes: Axes, xlabel: str, ylabel: str, title: str) -> None:
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title(title)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(bbox_to_anchor=(1.04, 1), loc="upper left", fontsize=8)
