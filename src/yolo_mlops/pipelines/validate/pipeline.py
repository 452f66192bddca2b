"""Wiring of the ``data_validation`` pipeline (tag ``validate``)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from yolo_mlops.pipelines.validate.nodes import validate_labels


def create_pipeline(**kwargs) -> Pipeline:
    """validate_labels: dataset_spec -> clean tables, problems, summary, per-class counts, chart."""
    return Pipeline(
        [
            Node(
                validate_labels,
                inputs=["dataset_spec", "params:data_validation"],
                outputs=[
                    "clean_labels",
                    "image_index",
                    "label_problems",
                    "validation_summary",
                    "instances_per_class",
                    "class_distribution_plot",
                ],
                name="validate_labels",
                tags=["validate"],
            )
        ]
    )
