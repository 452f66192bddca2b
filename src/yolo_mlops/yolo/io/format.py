"""Our checkpoint format's identity and its ``config`` entry: the constants, the error, the checks.

Shared by :mod:`checkpoint` (our files) and :mod:`ultralytics_import` (files converted from the
reference's pickles), so neither imports the other's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from yolo_mlops.yolo.model.network import SCALES, STRIDES


def _library_version() -> str:
    """The installed yolo-mlops version (recorded in every checkpoint's config)."""
    try:
        return metadata.version("yolo-mlops")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


LIBRARY_VERSION = _library_version()

FORMAT = "yolo-mlops-checkpoint"
FORMAT_VERSION = 1
REQUIRED_CONFIG = ("scale", "nc", "names")


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or does not describe a valid model; names the file."""


def make_config(
    *,
    scale: str,
    nc: int,
    names: list[str] | None = None,
    imgsz: int = 640,
    stride: list[int] | None = None,
    train_args: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete checkpoint ``config`` dict (default names ``class0..``, strides 8/16/32)."""
    return {
        "scale": scale,
        "nc": int(nc),
        "names": list(names) if names is not None else [f"class{i}" for i in range(nc)],
        "imgsz": int(imgsz),
        "stride": [int(s) for s in (stride or STRIDES)],
        "project_version": LIBRARY_VERSION,
        "train_args": dict(train_args or {}),
    }


def validate_config(config: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The complete config of a checkpoint read from ``source``; raises :class:`CheckpointError`."""
    missing = [key for key in REQUIRED_CONFIG if key not in config]
    if missing:
        raise CheckpointError(f"{source}: checkpoint config lacks {missing}")
    if config["scale"] not in SCALES:
        raise CheckpointError(
            f"{source}: unknown scale {config['scale']!r} (expected one of {sorted(SCALES)})"
        )
    if not isinstance(config["nc"], int) or config["nc"] < 1:
        raise CheckpointError(f"{source}: nc must be a positive int, got {config['nc']!r}")
    if len(config["names"]) != config["nc"]:
        raise CheckpointError(f"{source}: {len(config['names'])} class names for nc={config['nc']}")
    full = make_config(
        scale=config["scale"],
        nc=config["nc"],
        names=[str(n) for n in config["names"]],
        imgsz=config.get("imgsz", 640),
        stride=config.get("stride"),
        train_args=config.get("train_args"),
    )
    full["project_version"] = config.get("project_version", full["project_version"])
    # extra keys (e.g. "source" of an imported file) are kept as they are
    full.update({key: value for key, value in config.items() if key not in full})
    return full
