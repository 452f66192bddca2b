"""Wiring of the ``preprocessing`` pipeline (tag ``preprocess``)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from yolo_mlops.pipelines.preprocess.nodes import build_image_cache, render_mosaic_preview


def create_pipeline(**kwargs) -> Pipeline:
    """image_index + clean_labels + dataset_spec → image_cache → mosaic_preview."""
    return Pipeline(
        [
            Node(
                build_image_cache,
                inputs=["image_index", "clean_labels", "dataset_spec", "params:preprocessing"],
                outputs="image_cache",
                name="build_image_cache",
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
