"""A search from the Kedro node's side: start (or resume) the study, run its trial processes.

``tune.workers: 1`` runs the trials in the node's own process; ``N`` > 1 starts N worker
processes (:mod:`.worker`) on this machine, which share the study through its storage and each
run :func:`~.loop.run_trials`. What a worker needs travels as one JSON file (:class:`SearchSpec`)
in the study's work folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolo_mlops.ingestion.weights_cache import fetch_pretrained
from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.pipelines.train.launch import gpu_ids
from yolo_mlops.pipelines.tune import loop, space
from yolo_mlops.pipelines.tune import study as tune_study
from yolo_mlops.pipelines.tune.config import TuneParams
from yolo_mlops.pipelines.tune.trial import Tracking, TrialContext
from yolo_mlops.tracking import tune_runs
from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.data.image_cache import ImageCache
from yolo_mlops.yolo.train.config import TrainConfig
from yolo_mlops.yolo.train.loader_workers import available_cores

logger = logging.getLogger(__name__)

WORKER_MODULE = "yolo_mlops.pipelines.tune.worker"
SPEC_FILE = "search_spec.json"


class WorkerFailedError(RuntimeError):
    """A trial worker process exited with an error."""


@dataclass(frozen=True)
class SearchSpec:
    """Everything a trial process needs (JSON-able).

    Attributes:
        storage: the study's SQLAlchemy URL.
        tune, training, augment: the raw parameter blocks (``tune``, ``training``,
            ``preprocessing.augment``).
        cache_dir: the image cache folder (``data/05_model_input/image_cache``).
        tracking: ``{"uri", "parent_run_id"}`` of the study's MLflow parent run, or ``None``.
    """

    storage: str
    tune: dict[str, Any]
    training: dict[str, Any]
    augment: dict[str, Any]
    cache_dir: str | None = None
    tracking: dict[str, str] | None = None

    @property
    def settings(self) -> TuneParams:
        return parse_params(TuneParams, self.tune, "tune")

    def context(self, cache: Any, worker_index: int = 0) -> TrialContext:
        """The trials' context. Worker ``i`` of a GPU list ``training.device`` gets GPU i mod n;
        with ``training.threads: 0`` each of N workers gets 1/N of the cores as torch threads."""
        settings = self.settings
        training = parse_params(TrainConfig, self.training, "training")
        ids = gpu_ids(training.device)
        if ids:
            training = dataclasses.replace(training, device=f"cuda:{ids[worker_index % len(ids)]}")
        if settings.workers > 1 and training.threads == 0:
            share = max(1, available_cores() // settings.workers)
            training = dataclasses.replace(training, threads=share)
        tracking = Tracking(**self.tracking) if self.tracking else None
        return TrialContext(
            settings, training, parse_params(AugmentConfig, self.augment, "preprocessing.augment"),
            cache, loop.work_dir(settings.work_dir, settings.study_name), tracking,
        )  # fmt: skip

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2, default=str))
        return path

    @classmethod
    def read(cls, path: Path) -> SearchSpec:
        return cls(**json.loads(Path(path).read_text()))


def start_study(spec: SearchSpec) -> dict[str, Any]:
    """Create the study (or resume it); returns the study record for ``tune_study.json``.

    A new study records its MLflow parent run (the pipeline's run) and, with ``tune.baseline``,
    gets the configured recipe as its first trial. A resumed study keeps its parent run: new
    trials' runs go under it, and the resuming pipeline's run is tagged with its id.

    Raises:
        StudyExistsError: see :func:`~.study.open_study`.
    """
    settings = spec.settings
    rdb = tune_study.storage(spec.storage, settings)
    study = tune_study.open_study(settings, rdb, create=True)
    current = (spec.tracking or {}).get("parent_run_id")
    if not study.trials and tune_study.PARENT_RUN_ATTR not in study.user_attrs:
        study.set_user_attr(tune_study.PARENT_RUN_ATTR, current)
        study.set_user_attr(tune_study.SETTINGS_ATTR, spec.tune)
        if settings.baseline and settings.space:
            training = parse_params(TrainConfig, spec.training, "training")
            augment = parse_params(AugmentConfig, spec.augment, "preprocessing.augment")
            study.enqueue_trial(space.baseline_params(settings, training, augment),
                                skip_if_exists=True)  # fmt: skip
    _warn_if_changed(study, spec.tune)
    parent = study.user_attrs.get(tune_study.PARENT_RUN_ATTR) or current
    if spec.tracking and parent:
        tags = {"tune.study": settings.study_name, "tune.storage": safe_url(spec.storage)}
        tune_runs.set_run_tags(spec.tracking["uri"], parent, tags)
        if parent != current:  # a resume: this pipeline's run points at the study's parent
            tags_here = {**tags, "tune.parent_run_id": parent}
            tune_runs.set_run_tags(spec.tracking["uri"], current, tags_here)
    logger.info("study %r in %s: %s", settings.study_name, safe_url(spec.storage),
                tune_study.counts(study))  # fmt: skip
    return {"study_name": settings.study_name, "storage": safe_url(spec.storage),
            "parent_run_id": parent, "counts": tune_study.counts(study)}  # fmt: skip


def _warn_if_changed(study: Any, tune: dict[str, Any]) -> None:
    """Warn when a resumed study's space, budget or objective differ from those it started with
    (its earlier trials are then no longer comparable with the new ones)."""
    recorded = study.user_attrs.get(tune_study.SETTINGS_ATTR) or {}
    keys = ("space", "epochs", "objective")
    changed = [k for k in keys if k in recorded and recorded[k] != tune.get(k, recorded[k])]
    if changed:
        logger.warning("study %r resumed with another %s than it started with",
                       study.study_name, ", ".join(changed))  # fmt: skip


def safe_url(url: str) -> str:
    """``url`` without a password (``postgresql://user:***@host/db``)."""
    head, at, tail = url.rpartition("@")
    if not at or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, credentials = head.partition("//")
    return f"{scheme}//{credentials.split(':', 1)[0]}:***@{tail}"


def run_search(spec: SearchSpec, cache: Any) -> dict[str, int]:
    """Run the study's trials here (``tune.workers: 1``) or in N worker processes; returns the
    study's trial counts per state afterwards.

    Raises:
        WorkerFailedError: a worker process failed (the study stays resumable).
        SearchFailedError: too many trials in a row failed (one process).
    """
    settings = spec.settings
    rdb = tune_study.storage(spec.storage, settings, on_stale=loop.end_stale_run)
    # the initial weights once, here: the workers then find them in the cache (no two downloads)
    fetch_pretrained(parse_params(TrainConfig, spec.training, "training"))
    if settings.workers == 1:
        loop.run_trials(rdb, spec.context(cache), worker=f"{os.uname().nodename}:{os.getpid()}")
    else:
        root = getattr(cache, "root", None)
        if root is None:
            raise ValueError("tune.workers > 1 needs an image cache on disk (a folder)")
        spec = dataclasses.replace(spec, cache_dir=str(root))
        path = spec.write(loop.work_dir(settings.work_dir, settings.study_name) / SPEC_FILE)
        run_workers(path, settings.workers)
    return tune_study.counts(tune_study.open_study(settings, rdb, create=False))


def run_workers(spec_path: Path, workers: int) -> None:
    """Start ``workers`` trial processes on ``spec_path`` and wait for all of them.

    Ctrl-C (or a failing node) terminates them; their running trials are then marked FAIL when
    the study is resumed (heartbeat).

    Raises:
        WorkerFailedError: naming each worker that exited non-zero.
    """
    command = [sys.executable, "-m", WORKER_MODULE, "--spec", str(spec_path)]
    processes = [subprocess.Popen([*command, "--index", str(i)]) for i in range(workers)]
    try:
        codes = [process.wait() for process in processes]
    except BaseException:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()
        raise
    failed = [f"worker {i} exited with status {code}" for i, code in enumerate(codes) if code]
    if failed:
        raise WorkerFailedError("; ".join(failed) + " (see its log above; resume with "
                                "--params tune.resume=true)")  # fmt: skip


def open_cache(spec: SearchSpec) -> ImageCache:
    """The image cache a worker process trains on."""
    if not spec.cache_dir:
        raise ValueError("the search spec names no image cache folder")
    return ImageCache.open(spec.cache_dir)
