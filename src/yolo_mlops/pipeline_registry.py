"""Project pipelines.

The stage pipelines are imported explicitly (not discovered with ``find_pipelines``): Kedro 1.7's
discovery loads only the folders named on the command line, and our user-facing pipelines are
chains of several folders. The chains: ``data`` (ingestion + validation) and ``training`` (the
whole chain, also the default). The training stage alone (the ``pipelines/training`` folder) is
registered as ``train``, since ``training`` names the whole chain. ``evaluation`` run alone reads
its checkpoint from a parameter instead of the ``train`` stage's output.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from yolo_mlops.pipelines import (
    data_ingestion,
    data_validation,
    evaluation,
    preprocessing,
    register,
    training,
)


def stage_pipelines() -> dict[str, Pipeline]:
    """The stage pipelines in run order, keyed by their registered names (= DVC/KFP stages)."""
    return {
        "data_ingestion": data_ingestion.create_pipeline(),
        "data_validation": data_validation.create_pipeline(),
        "preprocessing": preprocessing.create_pipeline(),
        "train": training.create_pipeline(),
        "evaluation": evaluation.create_pipeline(),
        "register": register.create_pipeline(),
    }


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    stages = stage_pipelines()
    pipelines = dict(stages)
    pipelines["data"] = stages["data_ingestion"] + stages["data_validation"]
    pipelines["training"] = sum(stages.values(), start=Pipeline([]))
    pipelines["__default__"] = pipelines["training"]
    # Run alone, evaluation takes its checkpoint from `evaluation.checkpoint` (default: the
    # trained best.pt), so any checkpoint, ours or Ultralytics', can be evaluated.
    pipelines["evaluation"] = evaluation.create_pipeline(standalone=True)
    return pipelines
