"""Wiring of the ``tune`` pipeline (tag ``tune``): study -> trials -> report -> registration."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from yolo_mlops.pipelines.tune.nodes import (
    create_study,
    register_best_trial,
    run_trials,
    summarize_study,
)

BLOCKS = ["params:tune", "params:training", "params:preprocessing.augment"]


def create_pipeline(**kwargs) -> Pipeline:
    """image_cache + ``tune`` (+ the recipe it varies) -> trials, best parameters, plots, model."""
    return Pipeline(
        [
            Node(create_study, inputs=BLOCKS, outputs="tune_study", name="create_study",
                 tags=["tune"]),
            Node(run_trials, inputs=["image_cache", "tune_study", *BLOCKS], outputs="tune_trials",
                 name="run_trials", tags=["tune"]),
            Node(
                summarize_study,
                inputs=["tune_study", "tune_trials", "params:tune", "params:training",
                        "params:preprocessing"],
                outputs=["tune_trials_table", "tune_best_params", "tune_summary",
                         "tune_history_plot", "tune_importance_plot", "tune_parallel_plot"],
                name="summarize_study",
                tags=["tune"],
            ),
            Node(register_best_trial, inputs=["tune_summary", "params:tune", "params:register"],
                 outputs="tune_registration", name="register_best_trial", tags=["tune"]),
        ]
    )  # fmt: skip
