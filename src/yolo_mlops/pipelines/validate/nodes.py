"""Nodes of the ``data_validation`` pipeline: thin adapters over :mod:`yolo_mlops.ingestion`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from yolo_mlops.ingestion.dataset_yaml import DatasetSpec
from yolo_mlops.ingestion.paths import project_root
from yolo_mlops.ingestion.report import class_distribution_figure
from yolo_mlops.ingestion.validation import LabelValidationError, ValidationConfig, validate_dataset
from yolo_mlops.pipelines.params import parse_params

# The parameter block is ValidationConfig itself (policy, tolerance, max_invalid_fraction,
# workers, executor, progress); see conf/base/parameters_data_validation.yml.
DataValidationParams = ValidationConfig


PER_CLASS_KEY = "instances_per_class"


def split_per_class_counts(summary: Mapping[str, Any]) -> tuple[dict[str, Any], pd.DataFrame]:
    """The summary without its per-class counts, and those counts as a table.

    ``validation_summary.json`` is a DVC metrics file: one key per class would give
    ``dvc metrics show`` ~80 columns, so the counts go to ``instances_per_class.csv`` instead.

    Returns:
        (summary without ``instances_per_class``, table with columns class_id, class,
        instances: one row per class of the dataset, in class-id order, zeros included).
    """
    rest = {key: value for key, value in summary.items() if key != PER_CLASS_KEY}
    counts = summary.get(PER_CLASS_KEY) or {}
    table = pd.DataFrame(
        {
            "class_id": range(len(counts)),
            "class": list(counts),
            "instances": [int(count) for count in counts.values()],
        }
    )
    return rest, table


def _class_figure(spec: DatasetSpec, summary: Mapping[str, Any]) -> Figure:
    """``class_distribution.png``: instances per class, titled with how many classes occur."""
    present = f"{summary['classes_present']} of {spec.nc} classes present"
    title = f"{spec.name}: instances per class ({present})"
    return class_distribution_figure(summary[PER_CLASS_KEY], title=title)


def validate_labels(
    dataset_spec: Mapping[str, Any], params: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any], pd.DataFrame, Figure]:
    """Check every image and label of the dataset; nothing under data/01_raw is modified.

    Returns:
        clean_labels (one row per box), image_index (one row per usable image per split),
        label_problems (file, line, code, message, action), validation_summary (JSON dict of
        counts), instances_per_class (class_id, class, instances), class_distribution_plot
        (matplotlib figure).

    Raises:
        LabelValidationError: the policy stops the run; it carries the problem table and a summary,
            which :class:`yolo_mlops.hooks.validation_report.ValidationReportHook` saves as
            ``label_problems`` and ``validation_summary`` before the run ends.
    """
    config = parse_params(DataValidationParams, params, "data_validation")
    root = project_root()
    spec = DatasetSpec.from_dict(dict(dataset_spec), base=root)
    try:
        result = validate_dataset(spec, config, path_base=root)
    except LabelValidationError as error:
        raise LabelValidationError(
            f"{error}; see the problems listed in data/08_reporting/label_problems.csv and the "
            "summary in data/08_reporting/validation_summary.json",
            error.problems,
            error.summary,
        ) from error
    summary, per_class = split_per_class_counts(result.summary)
    figure = _class_figure(spec, result.summary)
    return result.clean_labels, result.image_index, result.problems, summary, per_class, figure
