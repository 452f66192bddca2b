"""Checks that protect a training run's folder before anything is written into it.

- :func:`check_train_settings`: the settings a run can get wrong without touching data (device,
  split names, the resume checkpoint), checked when the run starts with errors naming the key.
- :func:`set_aside_unfinished`: a plain (non-resume) run into a ``save_dir`` whose ``last.pt``
  holds an unfinished, resumable run moves it aside instead of overwriting it, and says how to
  resume it (the reference trainer never destroys a resumable run either).
- :func:`exclusive_save_dir`: one training run at a time per ``save_dir`` (a clear error for the
  second), and a record of the last holder so a run killed midway can be told apart.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

#: The split names a dataset YAML can declare.
SPLITS = ("train", "val", "test")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?|\d+)$")


class RunSettingsError(ValueError):
    """A training setting cannot work; the message names the parameter and the fix."""


class ResumeNotFoundError(RunSettingsError, FileNotFoundError):
    """``training.resume`` names a checkpoint that does not exist."""


def check_device(name: str, key: str = "training.device") -> None:
    """Raise unless ``name`` is ``auto``, ``cpu``, ``mps``, ``cuda``, ``cuda:N`` (N present)."""
    if not _DEVICE.match(str(name)):
        raise RunSettingsError(
            f"{key}={name!r} is not a device; use auto, cpu, cuda, cuda:N or mps"
        )
    if str(name).startswith("cuda") or str(name).isdigit():
        if not torch.cuda.is_available():
            raise RunSettingsError(
                f"{key}={name!r} but CUDA is not available here; use {key}=auto or cpu"
            )
        index = int(str(name).split(":")[-1]) if ":" in str(name) or str(name).isdigit() else 0
        if index >= torch.cuda.device_count():
            raise RunSettingsError(
                f"{key}={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if not (mps and mps.is_available()):
            raise RunSettingsError(f"{key}='mps' but MPS is not available here; use auto or cpu")


def check_splits(train_split: str, val_split: str, block: str = "training") -> None:
    """Raise unless both split names are dataset splits (train, val, test)."""
    for key, value in (("train_split", train_split), ("val_split", val_split)):
        if value not in SPLITS:
            raise RunSettingsError(f"{block}.{key}={value!r} is not one of {list(SPLITS)}")


def resume_path(resume: bool | str, save_dir: Path, key: str = "training.resume") -> Path | None:
    """The checkpoint ``resume`` names (``True`` = ``save_dir/last.pt``); checked readable."""
    from yolo_mlops.yolo.io.checkpoint import CheckpointError, read_checkpoint

    if resume is False or resume == "":
        return None
    path = Path(save_dir) / "last.pt" if resume is True else Path(str(resume))
    if not path.is_file():
        raise ResumeNotFoundError(f"{key}: no checkpoint at {path} to resume from")
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as error:
        raise RunSettingsError(f"{key}: {error}") from error
    if not ckpt.get("training"):
        raise RunSettingsError(
            f"{key}: {path} has no training state to resume from (a final or stripped "
            "checkpoint); use it as training.pretrained instead"
        )
    return path


def check_train_settings(config: Any) -> None:
    """All run-start checks of a ``TrainConfig`` (device, split names, resume checkpoint).

    ``training.device`` may list GPUs for multi-process training (``0,1`` or ``cuda:0,1``): each
    listed GPU must exist.
    """
    devices = str(config.device)
    if "," in devices:
        for index in devices.removeprefix("cuda:").split(","):
            check_device(f"cuda:{index.strip()}" if index.strip().isdigit() else index.strip())
    else:
        check_device(devices)
    check_splits(config.train_split, config.val_split)
    resume_path(config.resume, Path(config.save_dir))


def unfinished_run(last: Path) -> tuple[int, int] | None:
    """``(completed, planned)`` epochs when ``last`` holds a run that stopped before its end."""
    from yolo_mlops.yolo.io.checkpoint import CheckpointError, read_checkpoint

    try:
        ckpt = read_checkpoint(last)
    except (CheckpointError, FileNotFoundError):
        return None
    training = ckpt.get("training")
    if not training:
        return None
    args = ckpt["config"].get("train_args") or {}
    done, planned = int(training["epoch"]) + 1, int(args.get("epochs") or 0)
    patience = int(args.get("patience") or 0)
    stopped_early = patience and int(training.get("epochs_without_improvement", 0)) >= patience
    if done >= planned or stopped_early:
        return None
    return done, planned


def set_aside_unfinished(save_dir: Path) -> Path | None:
    """Move an unfinished ``save_dir/last.pt`` (and ``best.pt``) into ``save_dir/interrupted-*``.

    Returns:
        The folder they were moved to, or ``None`` when there was nothing unfinished.
    """
    save_dir = Path(save_dir)
    last = save_dir / "last.pt"
    found = unfinished_run(last)
    if found is None:
        return None
    aside = save_dir / time.strftime("interrupted-%Y%m%dT%H%M%S", time.gmtime())
    aside.mkdir(parents=True, exist_ok=True)
    for name in ("last.pt", "best.pt"):
        if (save_dir / name).is_file():
            os.replace(save_dir / name, aside / name)
    logger.warning(
        "%s held an unfinished run (%d of %d epochs) and training.resume is false: it was "
        "moved to %s, not overwritten. To continue it instead, run again with the parameters "
        "it was started with and training.resume=%s",
        last, found[0], found[1], aside, aside / "last.pt",
    )  # fmt: skip
    return aside


class SaveDirBusyError(RuntimeError):
    """Another live training run holds the same ``save_dir``."""


LOCK_NAME = ".train.lock"


@contextmanager
def exclusive_save_dir(
    save_dir: Path, owner: Mapping[str, Any] | None = None
) -> Iterator[dict[str, Any] | None]:
    """Hold ``save_dir/.train.lock`` (``flock``) while a run writes ``save_dir``.

    The lock file keeps a JSON record of its last holder (``pid``, ``released``, ``owner``, e.g.
    the tracking run, and once released its ``outcome``: ``finished`` or the exception that
    ended it). ``flock`` dies with its process, so a run killed with ``kill -9`` leaves
    ``released: false`` behind and the next holder can tell.

    Yields:
        The previous holder's record (``None`` for a fresh folder).

    Raises:
        SaveDirBusyError: a live process holds the lock; the message names it and the fix.
    """
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    path = save_dir / LOCK_NAME
    path.touch(exist_ok=True)
    with open(path, "r+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "unknown"
            raise SaveDirBusyError(
                f"training.save_dir {save_dir} is being written by another training run right "
                f"now ({holder}); wait for it to finish, or give this run its own folder: "
                "--params training.save_dir=<another folder>"
            ) from None
        try:
            previous = json.loads(handle.read() or "null")
        except ValueError:
            previous = None
        record = {"pid": os.getpid(), "released": False, "owner": dict(owner or {})}
        _rewrite(handle, record)
        outcome = "finished"
        try:
            yield previous if isinstance(previous, dict) else None
        except BaseException as error:
            outcome = f"{type(error).__name__}: {error}"[:500]
            raise
        finally:
            _rewrite(handle, {**record, "released": True, "outcome": outcome})
            fcntl.flock(handle, fcntl.LOCK_UN)


def _rewrite(handle: Any, record: Mapping[str, Any]) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(record))
    handle.flush()
