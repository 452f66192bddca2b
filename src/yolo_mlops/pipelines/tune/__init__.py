"""The ``tune`` pipeline: hyperparameter search with Optuna (tag ``tune``, see docs/tune.md).

``create_pipeline`` imports the nodes when called, so the trial worker processes
(``python -m yolo_mlops.pipelines.tune.worker``) do not load the reporting and registry code.
"""

from kedro.pipeline import Pipeline


def create_pipeline(**kwargs) -> Pipeline:
    """The ``tune`` pipeline (see :mod:`.pipeline`)."""
    from yolo_mlops.pipelines.tune import pipeline

    return pipeline.create_pipeline(**kwargs)


__all__ = ["create_pipeline"]
