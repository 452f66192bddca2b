"""Wiring of the ``training`` pipeline (tag ``train``)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from yolo_mlops.pipelines.train.nodes import train_model


def create_pipeline(**kwargs) -> Pipeline:
    """image_cache (+ training and augmentation parameters) → best/last checkpoints + history."""
    return Pipeline(
        [
            Node(
                train_model,
                inputs=["image_cache", "params:training", "params:preprocessing"],
                outputs=["model_checkpoint", "last_checkpoint", "training_history"],
                name="train_model",
                tags=["train"],
            )
        ]
    )
