"""Wiring of the ``preprocessing`` pipeline (tag ``preprocess``)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from yolo_mlops.pipelines.preprocessing.nodes import build_mosaic_inputs, render_mosaic_preview


def create_pipeline(**kwargs) -> Pipeline:
    """image_index + clean_labels + dataset_spec → image_cache → mosaic_preview."""
    return Pipeline(
        [
            Node(
                build_mosaic_inputs,
                inputs=["image_index", "clean_labels", "dataset_spec", "params:preprocessing"],
                outputs="image_cache",
                name="build_mosaic_inputs",
                tags=["preprocess"],
            ),
            Node(
                render_mosaic_preview,
                inputs=["image_cache", "params:preprocessing"],
                outputs="mosaic_preview",
                name="render_mosaic_preview",
                tags=["preprocess"],
            ),
        ]
    )
