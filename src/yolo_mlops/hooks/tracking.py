"""Kedro hooks: one MLflow run per ``kedro run``.

:class:`MlflowTrackingHook` owns the run's life (see ``yolo_mlops.tracking.run``):

- ``after_context_created``: remembers the resolved parameters, project path and env.
- ``before_pipeline_run``: checks the store is reachable (``tracking.on_unreachable``), starts
  or joins the run, exports ``MLFLOW_RUN_ID``/``MLFLOW_TRACKING_URI``, logs the flattened
  parameters, ``params.yaml`` and lineage tags.
- ``after_dataset_saved``: report files in ``data/08_reporting`` become artifacts, the metrics
  JSON and the validation summary's counts become metrics (``val/*``, ``validate/*``: prefixes
  the MLflow UI sorts after the per-epoch curves, see ``tracking.reports``), the dataset
  manifest's sha256 a tag.
- ``after_pipeline_run`` / ``on_pipeline_error``: end the run FINISHED / FAILED, or KILLED when
  a signal stopped it (``hooks.summary.INTERRUPTS``; the ``error`` tag says which signal, where,
  and the checkpoint to resume from). Only a run this hook started; a joined run is left to its
  owner. When tracking was on and the server was lost
  mid-run, the run still ends (every output is already saved) but with
  :class:`~yolo_mlops.tracking.recovery.TrackingLostError`: a non-zero exit naming the command
  that registers the kept model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from kedro.framework.hooks import hook_impl

from yolo_mlops.hooks.summary import INTERRUPTS
from yolo_mlops.hooks.weights import PretrainedWeightsHook
from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.tracking import lineage, precision_tag, recovery, registry, reports, ui
from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.tracking.config import TrackingParams
from yolo_mlops.tracking.params_flatten import flatten, flatten_for_mlflow

logger = logging.getLogger(__name__)


def _pipeline_name(run_params: dict[str, Any]) -> str:
    names = run_params.get("pipeline_names") or ["__default__"]
    return "+".join(names)


def _base_weights_tags(weights: PretrainedWeightsHook | None) -> dict[str, str]:
    """``base_weights.*`` of the weights the run trains from (none when it does not train)."""
    if weights is None or not weights.trains:
        return {}
    return lineage.weights_tags(weights.record())


class MlflowTrackingHook:
    """Starts/joins one MLflow run per pipeline execution and logs into it.

    Args:
        weights: the hook that prepares the initial weights (called before this one); the run's
            ``base_weights.*`` tags describe what it fetched. Without it, no such tags.
    """

    def __init__(self, weights: PretrainedWeightsHook | None = None) -> None:
        self._weights = weights
        self._params: dict[str, Any] | None = None
        self._project_path: Path | None = None
        self._default_env: str | None = None
        self._catalog: Any = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._params = dict(context.params)
        self._project_path = Path(context.project_path)
        # `kedro run` without --env: Kedro reports env None; the loader knows the default.
        self._default_env = getattr(context.config_loader, "default_run_env", None)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._catalog = catalog
        project_path = Path(run_params.get("project_path") or self._project_path or Path.cwd())
        self._project_path = project_path
        params = self._params
        if params is None:
            params = dict(catalog.load("parameters")) if "parameters" in catalog else {}
        settings = parse_params(TrackingParams, params.get("tracking"), "tracking")
        pipeline_name = _pipeline_name(run_params)
        session_id = str(run_params.get("run_id") or "")
        flat = flatten(params)
        tags = {
            "kedro.env": str(run_params.get("env") or self._default_env),
            "kedro.pipeline": pipeline_name,
            "kedro.session_id": session_id,
            "kedro.version": str(run_params.get("kedro_version")),
            **lineage.git_tags(project_path),
            **lineage.data_tags(project_path),
            **lineage.runtime_tags(flat),
            **_base_weights_tags(self._weights),
            **precision_tag.precision_tags(params, {node.name for node in pipeline.nodes}),
        }
        run_name = settings.run_name or ui.run_name(
            pipeline_name, flat, session_id, ui.pipeline_trains(pipeline)
        )
        run = tracking_run.start_or_join(settings, project_path, run_name, tags)
        if run is None:
            return
        ui.tag_experiment(run.client, run.run_id)
        mlflow_params, truncated = flatten_for_mlflow(params, settings.max_param_length)
        if truncated:
            logger.info("MLflow: truncated long params %s (full values in params.yaml)", truncated)
        tracking_run.log_params(mlflow_params)
        tracking_run.log_text(yaml.safe_dump(params, sort_keys=True), "params.yaml")

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        if tracking_run.current() is None:
            return
        project_path = self._project_path or Path.cwd()
        if dataset_name == "dataset_manifest" and isinstance(data, dict) and data.get("sha256"):
            tracking_run.set_tags({"data.archive_sha256": str(data["sha256"])})
        if dataset_name == "metrics":
            tracking_run.log_metrics(reports.numeric_items(data, reports.EVAL_PREFIX))
        if dataset_name == "validation_summary":
            tracking_run.log_metrics(reports.numeric_items(data, reports.DATA_PREFIX))
        if dataset_name == "model_checkpoint" and isinstance(data, dict):
            trained = registry.trained_precision(data)  # the planned value, now what happened
            if trained:
                tracking_run.set_tags({precision_tag.TAG: trained})
        path = reports.report_file(self._catalog, dataset_name, project_path)
        if path is not None:
            tracking_run.log_artifact(path, reports.ARTIFACT_DIR)

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict[str, Any], run_result: Any, pipeline: Any, catalog: Any
    ) -> None:
        if tracking_run.current() is not None and self._project_path is not None:
            # Data produced by this run (download, dvc) may now be known.
            tracking_run.set_tags(lineage.data_tags(self._project_path))
        lost = tracking_run.lost_reason()
        tracking_run.end("FINISHED")
        env = str(run_params.get("env") or self._default_env or "")
        self._reset()
        if lost is not None:
            raise recovery.TrackingLostError(lost, _pipeline_name(run_params), env)

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any
    ) -> None:
        tracking_run.set_tags({"error": f"{type(error).__name__}: {error}"[:5000]})
        tracking_run.end("KILLED" if isinstance(error, INTERRUPTS) else "FAILED")
        self._reset()

    def end_stopped_run(self, error: BaseException) -> None:
        """End the run that a stop outside the nodes' error path left open (``hooks.errors``):
        KILLED for a signal, FAILED otherwise. No-op when no run is open."""
        if tracking_run.current() is None:
            return
        tracking_run.set_tags({"error": f"{type(error).__name__}: {error}"[:5000]})
        tracking_run.end("KILLED" if isinstance(error, INTERRUPTS) else "FAILED")
        self._reset()

    def _reset(self) -> None:
        self._params, self._catalog = None, None
