"""Evaluation plots: PR curve, F1-confidence curve, confusion matrix, prediction grid.

Every function returns a matplotlib ``Figure`` (Agg backend, no display, bundled fonts only: no
network), ready for Kedro's ``matplotlib.MatplotlibDataset``; the caller closes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

MAX_LABELLED_CLASSES = 30  # above this, legends and tick labels would be unreadable


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
    figure, axes = plt.subplots(figsize=(9, 6), layout="constrained")
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
    from yolo_mlops.yolo.eval.metrics import smooth

    figure, axes = plt.subplots(figsize=(9, 6), layout="constrained")
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


def plot_confusion_matrix(
    matrix: np.ndarray, names: Sequence[str], normalize: bool = True
) -> Figure:
    """Confusion matrix ``[nc+1, nc+1]`` indexed [predicted, true] with "background" last.

    With ``normalize`` every column (true class) sums to 1.
    """
    values = matrix.astype(np.float64)
    if normalize:
        values = values / (values.sum(0, keepdims=True) + 1e-9)
    values[values < 0.005] = np.nan  # leave empty cells blank
    labels = [*names, "background"]
    size = min(max(6.0, 0.35 * len(labels) + 3), 20)
    figure, axes = plt.subplots(figsize=(size, size * 0.8), layout="constrained")
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    figure.colorbar(image, ax=axes, shrink=0.8)
    if len(labels) <= MAX_LABELLED_CLASSES + 1:
        ticks = np.arange(len(labels))
        axes.set_xticks(ticks, labels, rotation=90)
        axes.set_yticks(ticks, labels)
        if len(labels) <= 12:
            for (row, col), value in np.ndenumerate(values):
                if not np.isnan(value):
                    text = f"{value:.2f}" if normalize else f"{int(value)}"
                    axes.text(col, row, text, ha="center", va="center", fontsize=8)
    axes.set_xlabel("True")
    axes.set_ylabel("Predicted")
    axes.set_title("Confusion Matrix" + (" Normalized" if normalize else ""))
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


def plot_prediction_grid(
    images: Sequence[np.ndarray],
    detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    names: Sequence[str],
    titles: Sequence[str] | None = None,
    columns: int = 4,
) -> Figure:
    """A grid of images with their predicted boxes.

    Args:
        images: HWC BGR uint8 images.
        detections: per image ``(boxes [n,4] xyxy pixels of that image, scores [n], classes [n])``.
        names: class names.
        titles: optional caption per image (e.g. the file name).
        columns: images per grid row.
    """
    count = max(len(images), 1)
    columns = max(1, min(columns, count))
    rows = (count + columns - 1) // columns
    figure, axes_grid = plt.subplots(
        rows, columns, figsize=(4 * columns, 4 * rows), squeeze=False, layout="constrained"
    )
    for slot, axes in enumerate(axes_grid.flat):
        axes.axis("off")
        if slot >= len(images):
            continue
        boxes, scores, classes = detections[slot]
        drawn = draw_boxes(images[slot], boxes, classes, names, scores)
        axes.imshow(cv2.cvtColor(drawn, cv2.COLOR_BGR2RGB))
        if titles is not None:
            axes.set_title(titles[slot], fontsize=8)
    return figure


def _finish(axes: plt.Axes, xlabel: str, ylabel: str, title: str) -> None:
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title(title)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(bbox_to_anchor=(1.04, 1), loc="upper left", fontsize=8)
