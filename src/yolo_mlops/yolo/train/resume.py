"""A resumed run continues with the parameters its checkpoint was trained with.

``last.pt`` records the run's ``training`` block (``config["train_args"]``). On resume those
values win over the configured ones, except the settings in :data:`MAY_CHANGE` (how long to
train, where and how fast to run): those take the configured value and the change is logged.
:func:`check_given` is the run-start check: a recipe value given again on the command line that
differs from the checkpoint's is an error naming it (the run would silently not use it).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Mapping
from typing import Any

from yolo_mlops.yolo.train.config import TrainConfig
from yolo_mlops.yolo.train.run_guard import RunSettingsError

LOGGER = logging.getLogger(__name__)

#: Settings a resumed run may change: run length, hardware, speed knobs, where it writes.
MAY_CHANGE = frozenset(
    [
        "epochs",
        "patience",
        "device",
        "workers",
        "threads",
        "progress",
        "val_batch",
        "save_dir",
        "resume",
        "cpu_memory_reuse",
        "compile",
        "nproc",
    ]
)
#: Settings a resumed run takes from its checkpoint without a word: the initial weights (the
#: checkpoint holds the trained weights; these only say where training started).
IGNORED = frozenset({"pretrained", "pretrained_sha256", "weights_base_url"})


class ResumeParameterError(RunSettingsError):
    """A parameter given for a resumed run differs from the checkpoint's and may not change."""


def _differences(config: TrainConfig, recorded: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (checkpoint value, configured value)}`` for every recorded key that differs."""
    configured = dataclasses.asdict(config)
    return {
        key: (value, configured[key])
        for key, value in recorded.items()
        if key in configured and key not in IGNORED and configured[key] != value
    }


def check_given(config: TrainConfig, recorded: Mapping[str, Any], given: Collection[str]) -> None:
    """Raise when a key in ``given`` (``training.*`` keys from the command line, without the
    prefix) differs from the checkpoint's ``recorded`` value and may not change on resume.

    Raises:
        ResumeParameterError: naming the parameter, both values and the fix.
    """
    for key, (before, now) in sorted(_differences(config, recorded).items()):
        if key in given and key not in MAY_CHANGE:
            raise ResumeParameterError(
                f"training.{key}={now!r} differs from the value the resumed run was trained "
                f"with ({before!r}, in its last.pt); a resumed run keeps its recipe. Drop "
                f"training.{key} from --params to continue the run, or start a new run without "
                "training.resume. May change on resume: "
                + ", ".join(f"training.{name}" for name in sorted(MAY_CHANGE))
            )


def resumed_config(config: TrainConfig, recorded: Mapping[str, Any]) -> TrainConfig:
    """``config`` with the checkpoint's ``recorded`` values, except :data:`MAY_CHANGE` keys
    (logged when they change)."""
    kept: dict[str, Any] = {key: recorded[key] for key in IGNORED if key in recorded}
    for key, (before, now) in sorted(_differences(config, recorded).items()):
        if key in MAY_CHANGE:
            if key != "resume":
                LOGGER.info("resume: training.%s changes from %r to %r", key, before, now)
            continue
        LOGGER.info("resume: training.%s=%r as in the checkpoint (configured: %r)",
                    key, before, now)  # fmt: skip
        kept[key] = before
    return dataclasses.replace(config, **kept)
