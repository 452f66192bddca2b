"""Evaluation plots are produced without error on small inputs and have the expected content."""

from __future__ import annotations

import subprocess
import sys

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
    present_classes,
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


def _sparse_confusion(num_classes: int, present: list[int]) -> np.ndarray:
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=int)
    for c in present:
        matrix[c, c] = 3  # found
        matrix[num_classes, c] = 1  # missed: background row
    matrix[present[0], num_classes] = 2  # a false positive: background column
    return matrix


def test_confusion_matrix_shows_only_present_classes_by_name_with_background() -> None:
    names = [f"class{i}" for i in range(80)]
    matrix = _sparse_confusion(80, [0, 5, 42])
    matrix[7, 5] = 1  # class 7 only predicted (a confusion): still shown
    figure = plot_confusion_matrix(matrix, names)
    axes = figure.axes[0]
    expected = ["class0", "class5", "class7", "class42", "background"]
    assert [t.get_text() for t in axes.get_xticklabels()] == expected
    assert [t.get_text() for t in axes.get_yticklabels()] == expected
    assert "4 of 80 classes" in axes.get_title()
    assert present_classes(matrix).tolist() == [0, 5, 7, 42]


def test_confusion_matrix_can_show_all_classes() -> None:
    names = [f"class{i}" for i in range(80)]
    figure = plot_confusion_matrix(_sparse_confusion(80, [3]), names, all_classes=True)
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels == [*names, "background"]


def test_confusion_matrix_size_follows_the_class_count() -> None:
    names = [f"class{i}" for i in range(80)]
    small = plot_confusion_matrix(_sparse_confusion(80, [1, 2]), names)
    many = plot_confusion_matrix(_sparse_confusion(80, list(range(71))), names)
    everything = plot_confusion_matrix(_sparse_confusion(80, [1]), names, all_classes=True)
    small_h = small.get_size_inches()[1]
    many_w, many_h = many.get_size_inches()
    assert small_h < 6 and many_h > 12
    assert everything.get_size_inches()[1] > many_h
    # 8 pt class names need ~0.17 in per row; the matrix gets at least that much
    assert (many_h - 2.5) / 72 >= 0.17
    assert max(many_w, many_h) * 100 < 2000  # pixels at the catalog's 100 dpi: no 3000 px canvas


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


def test_prediction_grid_draws_ground_truth_and_predictions_in_distinct_styles() -> None:
    images = [np.full((48, 64, 3), 114, np.uint8) for _ in range(2)]
    detections = [(np.array([[5.0, 5.0, 30.0, 30.0]]), np.array([0.9]), np.array([1]))] * 2
    truth = [(np.array([[6.0, 6.0, 31.0, 29.0], [40, 10, 60, 40]]), np.array([1, 0]))] * 2
    figure = plot_prediction_grid(
        images, detections, ["cat", "dog"], ground_truth=truth, score_label="prediction ≥ 0.25"
    )
    axes = figure.axes[0]
    styles = {(p.get_linestyle(), p.get_edgecolor()) for p in axes.patches}
    assert len(axes.patches) == 3 and len(styles) == 2  # 2 GT boxes + 1 prediction, 2 styles
    assert sorted(t.get_text() for t in axes.texts) == ["cat", "dog", "dog 0.90"]
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["ground truth", "prediction ≥ 0.25"]
    gt_line, pred_line = legend.get_lines()
    assert gt_line.get_linestyle() != pred_line.get_linestyle()
    assert gt_line.get_color() != pred_line.get_color()


def test_prediction_grid_without_images_is_blank() -> None:
    figure = plot_prediction_grid([], [], ["cat"])
    assert sum(len(axes.images) for axes in figure.axes) == 0


def test_importing_the_plots_leaves_the_matplotlib_backend_alone() -> None:
    """A notebook's inline backend must survive loading the project (it imports this module)."""
    code = (
        "import matplotlib; matplotlib.use('svg'); import yolo_mlops.yolo.eval.plots; "
        "print(matplotlib.get_backend())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "svg"


def test_figures_save_as_png_without_pyplot(tmp_path) -> None:
    figure = plot_confusion_matrix(np.array([[3, 1, 0], [0, 2, 1], [1, 0, 0]]), ["cat", "dog"])
    figure.savefig(tmp_path / "confusion.png", dpi=50)
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def _label_extents(figure: Figure) -> list[list]:
    """Per image panel: the rendered extents (display pixels) of its box labels with their
    background patches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    return [
        [text.get_bbox_patch().get_window_extent(renderer) for text in axes.texts]
        for axes in figure.axes
    ]


def test_prediction_grid_labels_never_cover_each_other() -> None:
    """A row of touching boxes of one class (a herd of elephants), predicted and labelled."""
    images = [np.full((200, 640, 3), 114, np.uint8), np.full((480, 320, 3), 114, np.uint8)]
    row = np.array([[10.0 + 28 * k, 120.0, 40.0 + 28 * k, 160.0] for k in range(12)])
    column = np.array([[20.0, 10.0 + 20 * k, 120.0, 28.0 + 20 * k] for k in range(20)])
    detections = [
        (boxes, np.linspace(0.9, 0.3, len(boxes)), np.zeros(len(boxes), int))
        for boxes in (row, column)
    ]
    truth = [(boxes + 2, np.zeros(len(boxes), int)) for boxes in (row, column)]
    figure = plot_prediction_grid(images, detections, ["elephant"], ground_truth=truth)
    for extents in _label_extents(figure):
        assert extents, "every panel keeps some labels"
        for i, first in enumerate(extents):
            for second in extents[i + 1 :]:
                assert not first.overlaps(second), (first, second)
    assert sum(len(axes.patches) for axes in figure.axes) == 2 * (12 + 20)  # every box drawn
