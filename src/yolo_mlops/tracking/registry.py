"""Log the detector as a pyfunc model, register a version, and apply the promotion gate.

Registry review uses aliases and tags only (stages are deprecated in MLflow 3):

- the logged model is created in the run's experiment, named after the registered model, and
  is the run's output (the UI's "Logged models"), with the evaluation metrics;
- the logged model carries the checkpoint, the export stage's files and report
  (:mod:`.model_files`) and serves with ``serving_backend`` (ONNX Runtime or PyTorch);
- every new version gets the alias ``challenger``, the tags ``promoted`` (``yes``/``no``,
  short enough for the registry's version list), ``precision``, ``recall``, ``mAP50``,
  ``mAP50-95``, ``speed_ms/inference``, ``speed.machine`` and ``speed.load`` (where the latency
  was measured), ``dataset_sha256``, ``run_id``, ``git_commit``, ``base_weights.*``,
  ``training.precision`` (what the checkpoint trained in, else the run's tag, ``unknown`` for a
  run that did not train), and a model
  card as its description (:mod:`.model_card`, :mod:`.registry_review`);
- the gate (:mod:`.promotion`) moves ``champion`` to the new version when its mAP50-95 clears
  the floor and beats the current champion's by the margin, and never when the export report
  says the fp32 export failed parity. The decision and its numbers are
  written as version tags (``promotion.*``), run tags and run metrics (``verdict/*``);
- registering, reading the champion, deciding and moving the aliases run under the registered
  model's promotion lock (:mod:`.promotion_lock`), so N pipelines finishing together leave the
  champion the gate picks serially (in version order); a version that loses an alias is marked
  (:mod:`.alias_moves`), so its card's "Aliases now" line is visibly history.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus, Metric
from mlflow.models import Model

import yolo_mlops
from yolo_mlops.tracking import (
    alias_moves,
    lineage,
    model_card,
    promotion_lock,
    pyfunc_model,
    registry_review,
    reports,
)
from yolo_mlops.tracking.model_files import (
    ExportedModels,
    example_input,
    model_artifacts,
    pinned_requirements,
)
from yolo_mlops.tracking.promotion import (
    PromotionDecision,
    PromotionPolicy,
    champion_metrics,
    champion_tags,
    current_champion,
    decide_promotion,
    export_parity_failure,
    read_metric,
    record_verdict,
)
from yolo_mlops.tracking.run import TrackedRun, using_tracking_uri

logger = logging.getLogger(__name__)

ENTRY_FILE = Path(pyfunc_model.__file__).with_name("pyfunc_entry.py")


@dataclass(frozen=True)
class Registration:
    """What to register and how: the ``register`` block as the registry needs it.

    Attributes:
        model_name: the registered model's name (also the logged model's).
        policy: the promotion gate's thresholds.
        challenger_alias: the alias every new version gets.
        champion_alias: the alias the gate moves to a version that clears it.
        predict_defaults: defaults of the predict params ``conf``, ``iou``, ``max_det``.
        serving_limits: the model's ``model_config`` (``max_pixels``, ``max_request_bytes``,
            ``max_request_pixels``); keys left out keep
            :data:`pyfunc_model.DEFAULT_SERVING_LIMITS`.
        serving_backend: ``onnxruntime`` (the exported ``model.onnx``, no torch in the pip
            requirements) or ``torch`` (the checkpoint).
        lock: how long the promotion lock's lease lasts and how long a registration waits.
    """

    model_name: str
    policy: PromotionPolicy = field(default_factory=PromotionPolicy)
    challenger_alias: str = "challenger"
    champion_alias: str = "champion"
    predict_defaults: Mapping[str, Any] = field(default_factory=dict)
    serving_limits: Mapping[str, Any] = field(default_factory=dict)
    serving_backend: str = "torch"
    lock: promotion_lock.LockSettings = field(default_factory=promotion_lock.LockSettings)


@dataclass(frozen=True)
class _RunFacts:
    """What the registration reads about the run that trained the model."""

    run_id: str
    experiment_id: str
    run_name: str
    tags: Mapping[str, str]
    params: Mapping[str, str]
    dataset: model_card.DatasetFacts
    dataset_sha: str | None
    git_commit: str
    precision: str  # the checkpoint's config.precision, else the run's training.precision tag
    speed: model_card.SpeedContext  # where the latency was measured


@dataclass(frozen=True)
class _LoggedVersion:
    """The logged model and the registered version it became."""

    model_id: str
    model_uri: str
    version: str


def _ensure_eval_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, Any]) -> None:
    """Put the evaluation metrics on the run at step 0 when the hook has not (a standalone
    ``register`` run). ``Model.log`` copies a run's step-0 metrics to the logged model."""
    existing = client.get_run(run_id).data.metrics
    now = int(time.time() * 1000)
    missing = [
        Metric(key, value, now, 0)
        for key, value in reports.numeric_items(metrics, reports.EVAL_PREFIX).items()
        if key not in existing and math.isfinite(value)
    ]
    if missing:
        client.log_batch(run_id, metrics=missing)


def log_and_register(
    run: TrackedRun,
    checkpoint: Mapping[str, Any],
    metrics: Mapping[str, Any],
    registration: Registration,
    project_path: Path | None = None,
    *,
    exported: ExportedModels | None = None,
) -> dict[str, Any]:
    """Log ``checkpoint`` (and the exported files) as a pyfunc model in ``run``, register it,
    apply the gate.

    The logged model is created in the run's own experiment, named after the registered model,
    linked to the run as its output and carries the run's step-0 metrics (the evaluation
    metrics). The version gets a model card as its description (see
    :mod:`yolo_mlops.tracking.model_card`) and the run the dataset as a dataset input.

    Args:
        run: the pipeline's run (its store is also the registry).
        checkpoint: the checkpoint dict (``config`` + ``state_dict``; trainer state is dropped).
        metrics: evaluation metrics with ``mAP50`` and ``mAP50-95`` (fractions).
        registration: the model name, aliases, promotion thresholds and serving defaults.
        project_path: the Kedro project root (dataset manifest, validation summary); cwd if None.
        exported: the export stage's files and report: logged as artifacts, listed on the model
            card; a report whose gated (fp32) artifact failed parity keeps the version from
            being promoted. Required by the ``onnxruntime`` serving backend.

    Raises:
        ValueError: the ``onnxruntime`` backend without an exported ``model.onnx`` (nothing is
            registered).

    Returns:
        The registration record (JSON-able): model name, version, URIs, aliases, decision.
    """
    project_path = Path(project_path or Path.cwd())
    client = run.client
    facts = _read_run(client, run.run_id, project_path)
    facts = replace(facts, precision=trained_precision(checkpoint) or facts.precision)
    headline = {key: read_metric(metrics, key) for key, *_ in model_card.HEADLINE_METRICS}
    candidate = _Candidate(checkpoint, facts, headline, exported or ExportedModels())

    _ensure_eval_metrics(client, run.run_id, metrics)
    logged_model = _log_model(run, (checkpoint, candidate.exported), registration, facts, headline)
    registry_review.log_dataset_input(client, run.run_id, project_path, facts.dataset)
    registered = _register_and_promote(run, registration, candidate, logged_model)
    record_verdict(client, registered.card, registered.decision)
    alias_moves.complete_lost_run(client, run.run_id)
    return _record(run, registration, candidate, registered)


@dataclass(frozen=True)
class _Candidate:
    """What a version is registered from: the checkpoint dict, the facts of its run, its
    headline metrics (fractions) and the exported files."""

    checkpoint: Mapping[str, Any]
    facts: _RunFacts
    headline: dict[str, float]
    exported: ExportedModels


@dataclass(frozen=True)
class _Registered:
    """The version registered, the gate's decision, the aliases it holds and its card."""

    logged: _LoggedVersion
    decision: PromotionDecision
    aliases: list[str]
    card: model_card.ModelCard
    transition: str


def _register_and_promote(
    run: TrackedRun, registration: Registration, candidate: _Candidate, logged: tuple[str, str]
) -> _Registered:
    """Register the logged model (``logged``: its id and URI), read the champion, decide, move
    the aliases and write the cards: one version at a time per registered model (see
    :mod:`~yolo_mlops.tracking.promotion_lock` for how, across machines)."""
    client, name = run.client, registration.model_name
    holder = promotion_lock.holder_id(run.run_id)
    with promotion_lock.held(client, name, holder, registration.lock):
        model_id, model_uri = logged
        version = _register_version(run, name, model_uri)
        version_record = _LoggedVersion(model_id=model_id, model_uri=model_uri, version=version)
        report = candidate.exported.report
        decision, champion = _gate(client, registration, candidate.headline["mAP50-95"], report)
        tags = _version_tags(candidate.checkpoint, candidate.facts, candidate.headline, decision)
        before = alias_moves.holders(client, name, _aliases(registration))
        aliases = _tag_version(client, registration, version, tags, decision.promoted)
        alias_moves.note_moves(client, name, before, version, run.run_id)
        card = _model_card(
            registration, candidate.facts, version_record, decision, candidate.checkpoint,
            headline=candidate.headline, champion=champion, export_report=report,
        )  # fmt: skip
        policy = registration.policy
        transition = registry_review.describe(
            client, card, min_map50_95=policy.min_map50_95, min_improvement=policy.min_improvement
        )
    return _Registered(version_record, decision, aliases, card, transition)


def _record(
    run: TrackedRun, registration: Registration, candidate: _Candidate, registered: _Registered
) -> dict[str, Any]:
    """The registration record (JSON-able) that the register node writes."""
    name, version = registration.model_name, registered.logged.version
    return {
        "status": "registered",
        "model_name": name,
        "version": version,
        "model_uri": f"models:/{name}/{version}",
        "logged_model_uri": registered.logged.model_uri,
        "logged_model_id": registered.logged.model_id,
        "run_id": run.run_id,
        "experiment_id": candidate.facts.experiment_id,
        "tracking_uri": run.uri,
        "aliases": registered.aliases,
        "serving_backend": registration.serving_backend,
        "transition": registered.transition,
        "metrics": {key: _finite(value) for key, value in candidate.headline.items()},
        "dataset_sha256": candidate.facts.dataset_sha,
        "git_commit": candidate.facts.git_commit,
        "promotion": {key: _finite(value) for key, value in asdict(registered.decision).items()},
    }


def trained_precision(checkpoint: Mapping[str, Any]) -> str | None:
    """What the checkpoint's weights trained in (its ``config.precision``, written by the
    trainer), or ``None`` for a checkpoint from before that entry or from another trainer."""
    value = (checkpoint.get("config") or {}).get("precision")
    return str(value) if value else None


def _read_run(client: MlflowClient, run_id: str, project_path: Path) -> _RunFacts:
    """The run's tags and params, with the project's dataset and git facts as fallbacks."""
    mlflow_run = client.get_run(run_id)
    tags, params = mlflow_run.data.tags, mlflow_run.data.params
    return _RunFacts(
        run_id=run_id,
        experiment_id=mlflow_run.info.experiment_id,
        run_name=mlflow_run.info.run_name or run_id,
        tags=tags,
        params=params,
        dataset=registry_review.dataset_facts(project_path, tags),
        dataset_sha=tags.get("data.archive_sha256") or lineage.dataset_sha256(project_path),
        git_commit=tags.get("git.commit") or lineage.git_tags(project_path)["git.commit"],
        precision=tags.get("training.precision", lineage.UNKNOWN),  # set when the run trained
        speed=registry_review.speed_context(params),
    )


def _log_model(
    run: TrackedRun,
    payload: tuple[Mapping[str, Any], ExportedModels],
    registration: Registration,
    facts: _RunFacts,
    headline: Mapping[str, float],
) -> tuple[str, str]:
    """Log the pyfunc model (``payload``: the checkpoint and the exported files) into the run's
    experiment; ``(logged model id, model URI)``. Registering is left to the locked section."""
    checkpoint, exported = payload
    backend = registration.serving_backend
    name = registration.model_name
    with tempfile.TemporaryDirectory() as tmp, using_tracking_uri(run.uri):
        # Gathered first: a backend without its file registers nothing.
        artifacts = model_artifacts(checkpoint, exported, backend, Path(tmp))
        logged_id = _create_logged_model(run.client, name, facts, headline)
        info = Model.log(
            artifact_path=None,
            name=name,
            model_id=logged_id,
            flavor=mlflow.pyfunc,
            python_model=str(ENTRY_FILE),
            artifacts=artifacts,
            code_paths=[str(Path(yolo_mlops.__file__).parent)],
            signature=pyfunc_model.model_signature(**dict(registration.predict_defaults)),
            model_config={
                **pyfunc_model.DEFAULT_SERVING_LIMITS,
                **registration.serving_limits,
                "backend": backend,
            },
            input_example=example_input(),
            pip_requirements=pinned_requirements(backend),
            run_id=run.run_id,
        )
    run.client.finalize_logged_model(logged_id, LoggedModelStatus.READY)
    logger.info("MLflow: logged model %s (serving backend %s)", info.model_uri, backend)
    return logged_id, info.model_uri


def _register_version(run: TrackedRun, name: str, model_uri: str) -> str:
    """Register ``model_uri`` as a new version of ``name`` (created when missing), once: a
    creation the HTTP client sent twice (see :func:`~yolo_mlops.tracking.store.create_run`)
    leaves a copy of the same source from the same run, which is deleted."""
    with using_tracking_uri(run.uri):
        version = str(mlflow.register_model(model_uri, name).version)
    logger.info("MLflow: registered %s v%s from %s", name, version, model_uri)
    query = f"name = '{name}' and run_id = '{run.run_id}'"
    for copy in run.client.search_model_versions(query):
        if copy.source == model_uri and str(copy.version) != version:
            run.client.delete_model_version(name, copy.version)
            logger.warning("MLflow: %s v%s was registered twice (the request was retried); "
                           "the copy v%s is deleted", name, version, copy.version)  # fmt: skip
    return version


def _aliases(registration: Registration) -> tuple[str, str]:
    return registration.challenger_alias, registration.champion_alias


def _create_logged_model(
    client: MlflowClient, name: str, facts: _RunFacts, headline: Mapping[str, float]
) -> str:
    """The logged model's id, created in the run's experiment: ``Model.log`` alone would create
    it in the fluent API's current experiment ("Default" when none is set), away from its run."""
    logged = client.create_logged_model(
        facts.experiment_id,
        name=name,
        source_run_id=facts.run_id,
        tags={
            "mAP50": str(headline["mAP50"]),
            "mAP50-95": str(headline["mAP50-95"]),
            "git_commit": facts.git_commit,
        },
        model_type="object-detection",
    )
    return logged.model_id


def _gate(
    client: MlflowClient,
    registration: Registration,
    challenger: float,
    export_report: Mapping[str, Any],
) -> tuple[PromotionDecision, dict[str, str]]:
    """The gate's decision against the current champion, and the champion's version tags."""
    name = registration.model_name
    version, value = current_champion(client, name, registration.champion_alias)
    failure = export_parity_failure(export_report)
    decision = decide_promotion(challenger, value, registration.policy, version, failure)
    return decision, champion_tags(client, name, version)


def _version_tags(
    checkpoint: Mapping[str, Any],
    facts: _RunFacts,
    headline: Mapping[str, float],
    decision: PromotionDecision,
) -> dict[str, Any]:
    """The new version's tags: the short decision first (the version list shows tags in this
    order, cut to a narrow column), metrics, lineage, the gate's numbers."""
    return {
        "promoted": "yes" if decision.promoted else "no",
        **{key: value for key, value in headline.items() if math.isfinite(value)},
        "mAP50": headline["mAP50"],
        "mAP50-95": headline["mAP50-95"],
        "dataset_sha256": facts.dataset_sha or lineage.UNKNOWN,
        "run_id": facts.run_id,
        "git_commit": facts.git_commit,
        **lineage.checkpoint_weights_tags(checkpoint),
        **registry_review.speed_tags(facts.speed),
        "training.precision": facts.precision,
        "promotion.reason": decision.reason,
        "promotion.champion_version_before": decision.champion_version or "none",
        "promotion.champion_mAP50-95_before": decision.champion_map50_95,
        "promotion.min_improvement": decision.min_improvement,
        "promotion.min_map50_95": decision.min_map50_95,
    }


def _tag_version(
    client: MlflowClient,
    registration: Registration,
    version: str,
    tags: Mapping[str, Any],
    promoted: bool,
) -> list[str]:
    """Set the version's tags and the challenger alias (and champion, if promoted)."""
    name = registration.model_name
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    aliases = [registration.challenger_alias]
    if promoted:
        aliases.append(registration.champion_alias)
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version)
    return aliases


def _model_card(
    registration: Registration,
    facts: _RunFacts,
    logged: _LoggedVersion,
    decision: PromotionDecision,
    checkpoint: Mapping[str, Any],
    *,
    headline: Mapping[str, float],
    champion: Mapping[str, str],
    export_report: Mapping[str, Any],
) -> model_card.ModelCard:
    """The facts the version's description shows (``champion``: the champion's version tags;
    ``export_report``: export.json)."""
    return model_card.ModelCard(
        model_name=registration.model_name,
        version=logged.version,
        run_id=facts.run_id,
        experiment_id=facts.experiment_id,
        run_name=facts.run_name,
        metrics=headline,
        promoted=decision.promoted,
        reason=decision.reason,
        champion_version=decision.champion_version,
        champion_metrics=champion_metrics(champion),
        champion_speed=registry_review.speed_context_of(champion),
        challenger_alias=registration.challenger_alias,
        champion_alias=registration.champion_alias,
        dataset=facts.dataset,
        base_weights=registry_review.base_weights(facts.params, facts.tags),
        recipe=registry_review.recipe_line(facts.params, checkpoint),
        precision=facts.precision,
        git_commit=facts.git_commit,
        git_dirty=facts.tags.get("git.dirty"),
        logged_model_id=logged.model_id,
        speed=facts.speed,
        serving_backend=registration.serving_backend,
        artifacts=model_card.artifact_facts(export_report),
    )


def _finite(value: Any) -> Any:
    """NaN/inf -> None so the record stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
