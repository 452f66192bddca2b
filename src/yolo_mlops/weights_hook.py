"""Fetch the initial weights when a run starts, before any node (and before the MLflow run).

Why a ``before_pipeline_run`` hook: it knows which nodes will run, so ``kedro run --pipelines data``
or ``kedro viz`` never download weights, while a run that trains (``train_model``) or evaluates a
named checkpoint (``evaluate_model`` with ``evaluation.checkpoint``) stops *before* the dataset
download, the image cache and training when the weights are unreachable, with an error that names
the URL and the parameter to point at a local file. Parameter validation at context creation is
too early (it runs for every command) and a first node would add a dataset to the DAG, the DVC
stages and the Kubeflow tasks. The nodes call :func:`~yolo_mlops.weights_cache.fetch_weights`
again; by then the file is cached and no request is made, so a node run without this hook (a
test, a Kubeflow task) still works.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from kedro.framework.hooks import hook_impl

from yolo_mlops.params import parse_params
from yolo_mlops.pipelines.evaluate.nodes import EvaluationParams
from yolo_mlops.weights_cache import BaseWeights, fetch_weights
from yolo_mlops.yolo.io.weights import check_scale, resolve_weights
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
    if TRAIN_NODE in node_names:
        train = parse_params(TrainConfig, params.get("training"), "training")
        source = resolve_weights(train.pretrained, train.weights_base_url, "training.pretrained")
        if source.scale is not None:  # an official name says its scale: check before fetching
            check_scale(source.scale, train.scale, f"training.pretrained={train.pretrained!r}")
        weights = fetch_weights(
            train.pretrained,
            parameter="training.pretrained",
            base_url=train.weights_base_url,
            sha256=train.pretrained_sha256,
        )
        if weights is not None:
            check_scale(weights.scale, train.scale, f"training.pretrained={train.pretrained!r}")
            prepared.append(weights)
    if EVALUATE_NODE in node_names:
        evaluation = parse_params(EvaluationParams, params.get("evaluation"), "evaluation")
        weights = fetch_weights(
            evaluation.checkpoint,
            parameter="evaluation.checkpoint",
            base_url=evaluation.weights_base_url,
            sha256=evaluation.checkpoint_sha256,
        )
        if weights is not None:
            prepared.append(weights)
    return prepared


class PretrainedWeightsHook:
    """Fails a run whose initial weights are unavailable or wrong before anything else runs."""

    def __init__(self) -> None:
        self._params: dict[str, Any] | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._params = dict(context.params)

    @hook_impl(tryfirst=True)  # before the MLflow hook starts a run: a failure here leaves none
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        params = self._params
        if params is None:
            params = dict(catalog.load("parameters")) if "parameters" in catalog else {}
        prepare_weights(params, {node.name for node in pipeline.nodes})
