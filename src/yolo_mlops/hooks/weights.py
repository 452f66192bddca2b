"""Fetch the initial weights when a run starts, before any node (and before the MLflow run).

Why a ``before_pipeline_run`` hook: it knows which nodes will run, so ``kedro run --pipelines data``
or ``kedro viz`` never download weights, while a run that trains (``train_model``) or evaluates a
named checkpoint (``evaluate_model`` with ``evaluation.checkpoint``) stops *before* the dataset
download, the image cache and training when the weights are unreachable, with an error that names
the URL and the parameter to point at a local file. Parameter validation at context creation is
too early (it runs for every command) and a first node would add a dataset to the DAG, the DVC
stages and the Kubeflow tasks.

The hook and the nodes go through the same functions
(:func:`~yolo_mlops.ingestion.weights_cache.fetch_pretrained`,
:func:`~yolo_mlops.pipelines.evaluate.evaluation.checkpoint_weights`): the hook downloads, the
node finds the file in the cache (no request), so a node run without this hook (a test, a
Kubeflow task) still works. The training weights stay on the hook
(:attr:`PretrainedWeightsHook.pretrained`) for the tracking hook's ``base_weights.*`` tags.

A resumed run (``training.resume``) fetches no initial weights: its checkpoint holds the weights
and the record of the initial ones (:meth:`PretrainedWeightsHook.record`), so it runs offline.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from yolo_mlops.ingestion.weights_cache import BaseWeights, fetch_pretrained
from yolo_mlops.pipelines.evaluate.evaluation import EvaluationParams, checkpoint_weights
from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.yolo.io.checkpoint import read_checkpoint
from yolo_mlops.yolo.train.run_guard import resume_path
from yolo_mlops.yolo.train.trainer import TrainConfig

logger = logging.getLogger(__name__)

TRAIN_NODE = "train_model"
EVALUATE_NODE = "evaluate_model"


def prepare_weights(params: Mapping[str, Any], node_names: Collection[str]) -> list[BaseWeights]:
    """Fetch and check the weights the nodes ``node_names`` will read; what was prepared.

    Raises:
        WeightsError: unknown value, official name of another scale than ``training.scale``
            (checked before downloading), download failure, checksum mismatch.
        CheckpointError: the file is unreadable or unsafe.
    """
    prepared = []
    if TRAIN_NODE in node_names and not _resumes(params):
        prepared.append(
            fetch_pretrained(parse_params(TrainConfig, params.get("training"), "training"))
        )
    if EVALUATE_NODE in node_names:
        evaluation = parse_params(EvaluationParams, params.get("evaluation"), "evaluation")
        prepared.append(checkpoint_weights(evaluation))
    return [weights for weights in prepared if weights is not None]


def _resumes(params: Mapping[str, Any]) -> bool:
    return bool(parse_params(TrainConfig, params.get("training"), "training").resume)


def resumed_weights_record(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``base_weights`` record in the checkpoint a resumed run continues (None: none)."""
    training = parse_params(TrainConfig, params.get("training"), "training")
    path = resume_path(training.resume, Path(training.save_dir))
    if path is None:
        return None
    return read_checkpoint(path)["config"].get("base_weights")


class PretrainedWeightsHook:
    """Fails a run whose initial weights are unavailable or wrong before anything else runs.

    Attributes:
        trains: the pipeline about to run trains (set by ``before_pipeline_run``).
        pretrained: then the :class:`BaseWeights` of ``training.pretrained`` (None: scratch).
    """

    def __init__(self) -> None:
        self._params: dict[str, Any] | None = None
        self.trains = False
        self.pretrained: BaseWeights | None = None
        self.resumed_record: dict[str, Any] | None = None

    def record(self) -> dict[str, Any] | None:
        """The ``base_weights`` record of the run: fetched now, or kept by the resumed run."""
        if self.pretrained is not None:
            return self.pretrained.record()
        return self.resumed_record

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._params = dict(context.params)

    @hook_impl(tryfirst=True)  # before the MLflow hook starts a run: a failure here leaves none
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        params = self._params
        if params is None:
            params = dict(catalog.load("parameters")) if "parameters" in catalog else {}
        node_names = {node.name for node in pipeline.nodes}
        self.trains, self.pretrained = False, None  # nothing from an earlier run in this process
        self.resumed_record = None
        prepared = prepare_weights(params, node_names)
        self.trains = TRAIN_NODE in node_names
        if self.trains and _resumes(params):
            self.resumed_record = resumed_weights_record(params)
        trained = [w for w in prepared if w.parameter == "training.pretrained"]
        self.pretrained = trained[0] if trained else None
