"""Evaluation plots are produced without error on small inputs and have the expected content."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from yolo_mlops.yolo.eval.plots import (
    class_color,
    draw_boxes,
    plot_confusion_matrix,
    plot_metric_curve,
    plot_pr_curve,
    plot_prediction_grid,
)

AXIS = np.linspace(0, 1, 1000)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_pr_curve_has_one_line_per_class_plus_the_mean_with_map_in_legend() -> None:
    precision = np.stack([1 - AXIS, np.ones_like(AXIS)])
    figure = plot_pr_curve(AXIS, precision, np.array([0.5, 0.99]), ["cat", "dog"])
    assert isinstance(figure, Figure)
    axes = figure.axes[0]
    assert len(axes.lines) == 3
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert legend[-1] == "all classes 0.745 mAP@0.5"


def test_pr_curve_with_no_classes_is_an_empty_plot() -> None:
    figure = plot_pr_curve(AXIS, np.zeros((0, 1000)), np.zeros(0), [])
    assert len(figure.axes[0].lines) == 0


def test_f1_curve_marks_best_confidence() -> None:
    f1 = np.stack([np.sin(np.pi * AXIS)])
    figure = plot_metric_curve(AXIS, f1, ["cat"])
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend[-1].startswith("all classes 1.00 at ")
    assert float(legend[-1].split(" at ")[1]) == pytest.approx(0.5, abs=0.002)
    assert figure.axes[0].get_ylabel() == "F1"


def test_confusion_matrix_has_background_row_and_column() -> None:
    matrix = np.array([[3, 1, 0], [0, 2, 1], [1, 0, 0]])
    figure = plot_confusion_matrix(matrix, ["cat", "dog"])
    axes = figure.axes[0]
    labels = [t.get_text() for t in axes.get_xticklabels()]
    assert labels == ["cat", "dog", "background"]
    shown = axes.images[0].get_array()
    column_sums = np.nansum(np.ma.filled(shown.astype(float), np.nan), axis=0)
    assert column_sums[:2].tolist() == pytest.approx([1.0, 1.0], abs=1e-6)


def test_confusion_matrix_of_many_classes_skips_labels() -> None:
    figure = plot_confusion_matrix(np.eye(81, dtype=int), [f"c{i}" for i in range(80)])
    shown = {t.get_text() for t in figure.axes[0].get_xticklabels()}
    assert not shown & {"c0", "c1", "background"}


def test_draw_boxes_changes_pixels_inside_image_only_on_box_edges() -> None:
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    drawn = draw_boxes(image, np.array([[10, 20, 50, 60]]), np.array([1]), ["a", "b"])
    assert image.sum() == 0  # input untouched
    assert drawn[20, 30].tolist() == list(class_color(1))  # top edge
    assert drawn[40, 30].sum() == 0  # box interior


def test_prediction_grid_draws_every_image() -> None:
    images = [np.full((48, 64, 3), 114, np.uint8) for _ in range(5)]
    detections = [
        (np.array([[5.0, 5.0, 30.0, 30.0]]), np.array([0.9]), np.array([0])) for _ in images
    ]
    figure = plot_prediction_grid(images, detections, ["cat"], titles=list("abcde"), columns=4)
    assert isinstance(figure, Figure)
    assert sum(len(axes.images) for axes in figure.axes) == 5
    assert len(figure.axes) == 8  # 2 rows × 4 columns


def test_prediction_grid_without_images_is_blank() -> None:
    figure = plot_prediction_grid([], [], ["cat"])
    assert sum(len(axes.images) for axes in figure.axes) == 0
