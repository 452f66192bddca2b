"""Project pipelines.

One name per stage, shared by its folder under ``pipelines/``, its registered pipeline, its node
tag, its DVC stage and its Kubeflow task: ``ingest``, ``validate``, ``preprocess``, ``train``,
``evaluate``, ``export``, ``register``. Two chains: ``data`` (ingest + validate) and
``end_to_end`` (all seven stages), which is also registered as ``training`` (the README's entry
point) and ``__default__``. ``export`` reads the trained checkpoint and the image cache;
``register`` logs its files with the version and reads its report (the parity gate).
``predict`` (batch prediction) and ``tune`` (hyperparameter search, docs/tune.md) are registered
alone, outside the chains.

The stage pipelines are imported explicitly (not discovered with ``find_pipelines``): Kedro 1.7's
discovery loads only the folders named on the command line, and the chains span several folders.
``evaluate`` run alone reads its checkpoint from ``evaluation.checkpoint`` instead of the
``train`` stage's output.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from yolo_mlops.pipelines import (
    evaluate,
    export,
    ingest,
    predict,
    preprocess,
    register,
    train,
    tune,
    validate,
)

#: The stages in run order (= the DVC stages and the Kubeflow tasks).
STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "export", "register")


def stage_pipelines() -> dict[str, Pipeline]:
    """The stage pipelines in run order, keyed by their registered names (= DVC/KFP stages)."""
    return {
        "ingest": ingest.create_pipeline(),
        "validate": validate.create_pipeline(),
        "preprocess": preprocess.create_pipeline(),
        "train": train.create_pipeline(),
        "evaluate": evaluate.create_pipeline(),
        "export": export.create_pipeline(),
        "register": register.create_pipeline(),
    }


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    stages = stage_pipelines()
    pipelines = dict(stages)
    pipelines["data"] = stages["ingest"] + stages["validate"]
    pipelines["end_to_end"] = sum(stages.values(), start=Pipeline([]))
    pipelines["training"] = pipelines["end_to_end"]
    pipelines["__default__"] = pipelines["end_to_end"]
    # Run alone, evaluate takes its checkpoint from `evaluation.checkpoint` (default: the
    # trained best.pt), so any checkpoint, ours or Ultralytics', can be evaluated.
    pipelines["evaluate"] = evaluate.create_pipeline(standalone=True)
    # Batch prediction with any checkpoint or exported file (predict.model): not a stage.
    pipelines["predict"] = predict.create_pipeline()
    # Hyperparameter search over `training` / `preprocessing.augment` (docs/tune.md): not a stage.
    pipelines["tune"] = tune.create_pipeline()
    return pipelines
