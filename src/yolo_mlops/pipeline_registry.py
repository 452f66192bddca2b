"""Project pipelines.

Pipelines are discovered from ``src/yolo_mlops/pipelines/<name>/`` and combined here into the
user-facing chains: ``data`` (ingestion + validation) and ``training`` (the whole chain, also the
default). The training stage alone (the ``pipelines/training`` folder) is registered as ``train``,
since ``training`` names the whole chain.
"""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# Stages in run order. A stage that is not (yet) present is simply left out of the chains.
DATA_STAGES = ("data_ingestion", "data_validation")
TRAINING_STAGES = (*DATA_STAGES, "preprocessing", "train", "evaluation", "register")


def _chain(pipelines: dict[str, Pipeline], stages: tuple[str, ...]) -> Pipeline:
    return sum((pipelines[s] for s in stages if s in pipelines), start=Pipeline([]))


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines = find_pipelines(raise_errors=True)
    if "training" in pipelines:
        pipelines["train"] = pipelines.pop("training")
    pipelines["data"] = _chain(pipelines, DATA_STAGES)
    pipelines["training"] = _chain(pipelines, TRAINING_STAGES)
    pipelines["__default__"] = pipelines["training"]
    return pipelines
