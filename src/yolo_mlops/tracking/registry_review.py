"""What a reviewer sees at registration: dataset input, model card, model description.

:mod:`yolo_mlops.tracking.registry` calls these after it logged and registered a version:

- :func:`dataset_facts` reads the dataset manifest (name, archive sha256, source) and the
  validation summary (image, instance and class counts) of the project;
- :func:`log_dataset_input` records the dataset as an MLflow dataset input of the run (the UI's
  "Datasets used"); the digest is the archive's sha256 prefix;
- :func:`recipe_line` reads the recipe as trained from the checkpoint (the resolved optimizer
  and learning rate) and the run's params; :func:`base_weights` the run's params and tags;
- :func:`speed_context` says where the latency was measured (machine kind and load), so the card
  compares latencies only between like measurements;
- :func:`describe` writes the model card as the version's description and the registered
  model's description.

Every call here is best effort: a failure is logged and never fails the registration.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from yolo_mlops.tracking import lineage, model_card

logger = logging.getLogger(__name__)

VALIDATION_SUMMARY = Path("data/08_reporting/validation_summary.json")
DATASET_CONTEXT = "training"
# Tag (or param) that the base-weights lineage sets; read when present.
BASE_WEIGHTS_KEYS = ("base_weights", "base_weights.path", "training.pretrained")
SPEED_MACHINE_TAG = "speed.machine"
SPEED_LOAD_TAG = "speed.load"
AUTO_UNRECORDED = "auto (the checkpoint does not record which optimizer it resolved to)"


def _read_json(path: Path) -> Mapping[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def dataset_facts(project_path: Path, run_tags: Mapping[str, str]) -> model_card.DatasetFacts:
    """Name, hashes and counts of the dataset this project trained on (unknown parts ``None``)."""
    project_path = Path(project_path)
    manifest = _read_json(project_path / lineage.MANIFEST)
    summary = _read_json(project_path / VALIDATION_SUMMARY)
    return model_card.DatasetFacts(
        name=str(manifest.get("name") or "unknown"),
        archive_sha256=run_tags.get("data.archive_sha256") or manifest.get("sha256"),
        dvc_md5=run_tags.get("data.dvc_md5") or lineage.dvc_data_hash(project_path),
        images=_int(summary.get("images")),
        instances=_int(summary.get("instances")),
        classes_present=_int(summary.get("classes_present")),
    )


def _source_uri(source: str | None, project_path: Path) -> str:
    if not source:
        return (Path(project_path) / lineage.RAW_DATA_PREFIX).resolve().as_uri()
    if "://" in source:
        return source
    path = Path(source)
    return (path if path.is_absolute() else Path(project_path) / path).resolve().as_uri()


def log_dataset_input(
    client: MlflowClient, run_id: str, project_path: Path, facts: model_card.DatasetFacts
) -> bool:
    """Log the dataset as a dataset input of ``run_id``; False when it is unknown or failed."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    if facts.name == "unknown" and facts.archive_sha256 is None:
        logger.info("MLflow: no dataset manifest; no dataset input logged")
        return False
    manifest = _read_json(Path(project_path) / lineage.MANIFEST)
    try:
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": same class
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(_source_uri(manifest.get("source"), project_path))
        digest = (facts.archive_sha256 or "")[:16] or None
        dataset = MetaDataset(source, name=facts.name, digest=digest)
        tags = [InputTag(MLFLOW_DATASET_CONTEXT, DATASET_CONTEXT)]
        client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags)])
    except Exception as error:  # best effort: never fail the registration for it
        logger.warning("MLflow: could not log the dataset input: %s", error)
        return False
    return True


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_kind(device: str | None) -> str:
    """``"<CPU model> x<cores>"``, plus the GPU's name when ``device`` is CUDA (or ``auto``
    with a GPU present): what a latency measured on this machine depends on."""
    import torch

    kind = f"{_cpu_model()} x{_cores()}"
    wants_cuda = str(device or "auto").startswith(("cuda", "auto"))
    if wants_cuda and torch.cuda.is_available():
        kind += f", {torch.cuda.get_device_name(0)}"
    return kind


def speed_context(params: Mapping[str, str]) -> model_card.SpeedContext:
    """This machine's kind and its load (1-minute load average per core) at registration, which
    follows the evaluation that measured the latency in the same process."""
    device = params.get("evaluation.device") or params.get("training.device")
    try:
        load = round(os.getloadavg()[0] / _cores(), 2)
    except (AttributeError, OSError):
        load = None
    return model_card.SpeedContext(machine_kind(device), load)


def speed_tags(context: model_card.SpeedContext) -> dict[str, str]:
    """The version tags that record where its latency was measured."""
    tags = {SPEED_MACHINE_TAG: context.machine or "unknown"}
    if context.load is not None:
        tags[SPEED_LOAD_TAG] = f"{context.load:.2f}"
    return tags


def speed_context_of(tags: Mapping[str, str]) -> model_card.SpeedContext:
    """The speed context a version's tags recorded (unknown parts ``None``)."""
    try:
        load = float(tags[SPEED_LOAD_TAG])
    except (KeyError, TypeError, ValueError):
        load = None
    machine = tags.get(SPEED_MACHINE_TAG)
    return model_card.SpeedContext(None if machine in (None, "unknown") else machine, load)


def trained_optimizer(config: Mapping[str, Any], training: Any) -> str | None:
    """``"AdamW, lr0 0.000714"``: the optimizer training used, ``optimizer: auto`` resolved.

    Read from the checkpoint: its ``config["optimizer"]`` record when the trainer wrote one, else
    its optimizer state (SGD groups carry ``nesterov``, AdamW groups ``betas``; ``initial_lr`` is
    lr0), else the configured optimizer when it is not ``auto``. ``None`` when none says.
    """
    record = config.get("optimizer")
    if isinstance(record, Mapping) and record.get("name"):
        return f"{record['name']}, lr0 {float(record['lr0']):g}"
    groups = ((training or {}).get("optimizer") or {}).get("param_groups") or []
    if groups:
        group = groups[0]
        name = "SGD" if "nesterov" in group else "AdamW" if "betas" in group else None
        lr0 = group.get("initial_lr", group.get("lr"))
        if name and lr0 is not None:
            return f"{name}, lr0 {float(lr0):g}"
    args = config.get("train_args") or {}
    if args.get("optimizer") not in (None, "auto") and args.get("lr0") is not None:
        return f"{args['optimizer']}, lr0 {float(args['lr0']):g}"
    return None


def recipe_line(params: Mapping[str, str], checkpoint: Mapping[str, Any] | None = None) -> str:
    """The training recipe in one line, as trained: the checkpoint's config first, the run's
    flattened params as a fallback; parts that neither records are left out."""
    config = (checkpoint or {}).get("config") or {}
    args = config.get("train_args") or {}
    if "training.epochs" not in params and not args:
        return "not in this run (the model was trained by an earlier run)"

    def value(arg: str, param: str) -> Any:
        found = args.get(arg)
        return params.get(param) if found in (None, "") else found

    scale = config.get("scale") or value("scale", "training.scale")
    imgsz = config.get("imgsz") or params.get("preprocessing.imgsz")
    optimizer = trained_optimizer(config, (checkpoint or {}).get("training"))
    configured = value("optimizer", "training.optimizer")
    if configured == "auto":
        optimizer = f"{optimizer} (optimizer: auto)" if optimizer else AUTO_UNRECORDED
    parts = (
        f"YOLO11{scale}" if scale else None,
        f"{imgsz} px" if imgsz else None,
        _part("{} epochs", value("epochs", "training.epochs")),
        _part("batch {}", value("batch", "training.batch")),
        f"optimizer {optimizer}" if optimizer else _part("optimizer {}", configured),
        _part("seed {}", value("seed", "training.seed")),
        _part("device {}", value("device", "training.device")),
    )
    return ", ".join(part for part in parts if part)


def _part(template: str, value: Any) -> str | None:
    return None if value in (None, "") else template.format(value)


def base_weights(params: Mapping[str, str], tags: Mapping[str, str]) -> str | None:
    """The base weights the model started from, or ``None`` (from scratch)."""
    for key in BASE_WEIGHTS_KEYS:
        value = tags.get(key) or params.get(key)
        if value:
            return str(value)
    return None


def describe(
    client: MlflowClient,
    card: model_card.ModelCard,
    *,
    min_map50_95: float,
    min_improvement: float,
) -> str:
    """Write the model card and the registered model's description (best effort); return the
    transition line (where the aliases point now), which is also logged."""
    try:
        client.update_model_version(card.model_name, card.version, model_card.render(card))
        client.update_registered_model(
            card.model_name,
            model_card.registered_model_description(
                card.model_name,
                min_map50_95=min_map50_95,
                min_improvement=min_improvement,
                challenger_alias=card.challenger_alias,
                champion_alias=card.champion_alias,
            ),
        )
    except Exception as error:  # best effort: the version and its aliases already exist
        logger.warning("MLflow: could not write the model descriptions: %s", error)
    transition = model_card.transition(card)
    logger.info("MLflow: %s v%s: %s", card.model_name, card.version, transition)
    return transition
