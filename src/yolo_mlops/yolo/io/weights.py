"""Initial weights: what a ``pretrained`` value names, and checked transfer into a model.

A ``training.pretrained`` / ``evaluation.checkpoint`` value is one of

* ``""``: none (train from scratch);
* an existing local file (``path`` or ``file://`` URL): our checkpoint or an Ultralytics ``.pt``;
* an official name ``yolo11n.pt`` … ``yolo11x.pt``: the release asset
  ``<base_url>/<name>`` (default base: Ultralytics' ``v8.3.0`` release);
* an ``http(s)://`` URL.

:func:`resolve_weights` says which (no I/O beyond ``is_file``); fetching a URL is the caller's job
(``yolo_mlops.ingestion.weights_cache``), the library only ever reads local files.
:func:`load_pretrained` reads a file (the restricted unpickler for Ultralytics files), checks
that its scale is the model's, and :func:`transfer_weights` copies tensors by name and shape,
refusing a transfer that matches less than 90 % of the backbone and neck (a file of another
architecture).
"""

from __future__ import annotations

import logging
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

import torch
from torch import nn

from yolo_mlops.yolo.io.checkpoint import CheckpointError, read_checkpoint
from yolo_mlops.yolo.model.network import SCALES

logger = logging.getLogger(__name__)

#: Where the official YOLO11 weights are published (AGPL-3.0 by their authors; never shipped).
OFFICIAL_BASE_URL = "https://github.com/ultralytics/assets/releases/download/v8.3.0"
#: Official file name -> the YOLO11 scale it holds.
OFFICIAL_WEIGHTS: dict[str, str] = {f"yolo11{scale}.pt": scale for scale in SCALES}
#: Fewer matched backbone + neck tensors than this fraction is an error.
MIN_BACKBONE_FRACTION = 0.9
HEAD = "model.23."  # the Detect layer's state_dict prefix (layer index 23, spec section 1)
#: The class branch of the head: its outputs have nc channels, and its hidden width is
#: max(c, min(nc, 100)) (spec section 1), so a class-count change may reshape all of it.
CLASS_BRANCH = f"{HEAD}cv3."


class WeightsError(CheckpointError):
    """Initial weights cannot be used: unknown name, wrong scale, too little transferred."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """The value is neither an existing file, an official name nor a URL."""


@dataclass(frozen=True)
class WeightsSource:
    """What a ``pretrained`` value names.

    Attributes:
        value: the parameter value as given.
        kind: ``none`` (scratch), ``file``, ``official`` (a release name) or ``url``.
        name: file name (``yolo11n.pt``, the URL's last segment, the file's name); "" for none.
        url: the download URL (official and url kinds), else None.
        path: the local file (file kind), else None.
        scale: the scale an official name promises, else None (known after reading the file).
    """

    value: str
    kind: Literal["none", "file", "official", "url"]
    name: str = ""
    url: str | None = None
    path: Path | None = None
    scale: str | None = None


def _local(value: str) -> Path:
    parsed = urllib.parse.urlparse(value)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path)).expanduser()
    return Path(value).expanduser()


def resolve_weights(
    value: str,
    base_url: str = OFFICIAL_BASE_URL,
    parameter: str = "training.pretrained",
) -> WeightsSource:
    """Classify a ``pretrained`` value (see the module docstring); an existing file wins.

    Raises:
        WeightsNotFoundError: a value that is neither empty, a URL, an official name nor an
            existing file; the message names ``parameter`` and the accepted forms.
    """
    value = str(value or "").strip()
    if not value:
        return WeightsSource(value, "none")
    scheme = urllib.parse.urlparse(value).scheme
    if scheme in {"http", "https"}:
        name = PurePosixPath(urllib.parse.urlparse(value).path).name or "weights.pt"
        return WeightsSource(value, "url", name=name, url=value, scale=OFFICIAL_WEIGHTS.get(name))
    path = _local(value)
    if path.is_file():
        return WeightsSource(value, "file", name=path.name, path=path)
    if value in OFFICIAL_WEIGHTS:
        url = f"{base_url.rstrip('/')}/{value}"
        return WeightsSource(value, "official", name=value, url=url, scale=OFFICIAL_WEIGHTS[value])
    raise WeightsNotFoundError(
        f"{parameter}={value!r}: no such file, and not an official name "
        f"({', '.join(OFFICIAL_WEIGHTS)}) or an http(s):// URL. Set {parameter} to one of "
        f'those, to a checkpoint path, or to "" to train from scratch'
    )


def check_sha256(value: str | None, parameter: str) -> str | None:
    """``value`` lower-cased when it is a hex SHA-256 (or None); raises naming ``parameter``."""
    if value is None or value == "":
        return None
    digest = str(value).strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise WeightsError(
            f"{parameter}={value!r} is not a SHA-256 (64 hex digits); fix it or set it to null"
        )
    return digest


def check_scale(
    weights_scale: str, model_scale: str, source: str, parameter: str = "training.scale"
) -> None:
    """Raise unless the weights' scale is the configured one (the weights decide)."""
    if weights_scale != model_scale:
        raise WeightsError(
            f"{source} holds YOLO11{weights_scale} weights but {parameter} is "
            f"{model_scale!r}: set {parameter}={weights_scale} (the weights decide the "
            "architecture), or choose the matching weights"
        )


@dataclass
class TransferReport:
    """What :func:`transfer_weights` copied.

    Attributes:
        transferred: tensors copied (name and shape matched).
        total: tensors of the model's state_dict.
        backbone_matched, backbone_total: the same for layers 0-22 (backbone + neck).
        reinitialised: class-branch tensors left at their fresh initialisation (nc change).
        skipped: other model tensors that found no match (logged as a warning).
    """

    transferred: int
    total: int
    backbone_matched: int
    backbone_total: int
    reinitialised: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def transfer_weights(
    model: nn.Module,
    state_dict: dict[str, torch.Tensor],
    source: str = "<state_dict>",
    min_backbone_fraction: float = MIN_BACKBONE_FRACTION,
) -> TransferReport:
    """Copy tensors whose name *and* shape match into ``model``.

    A different class count leaves only the class outputs (the tensors of the class branch
    ``model.23.cv3`` whose shape depends on nc) at their fresh initialisation and says so.
    Nothing is copied when fewer than ``min_backbone_fraction`` of the backbone + neck tensors
    match.

    Raises:
        WeightsError: too few backbone + neck tensors match (another architecture or scale).
    """
    own = model.state_dict()
    matched = {
        k: v.to(own[k].dtype) for k, v in state_dict.items() if k in own and v.shape == own[k].shape
    }
    backbone = [k for k in own if not k.startswith(HEAD)]
    backbone_matched = sum(k in matched for k in backbone)
    if backbone_matched < min_backbone_fraction * len(backbone):
        raise WeightsError(
            f"{source}: only {backbone_matched}/{len(backbone)} backbone+neck tensors match the "
            f"model by name and shape (< {min_backbone_fraction:.0%}); these are not weights "
            "of this YOLO11 scale. Check training.pretrained and training.scale"
        )
    model.load_state_dict(matched, strict=False)
    missing = [k for k in own if k not in matched]
    report = TransferReport(
        transferred=len(matched),
        total=len(own),
        backbone_matched=backbone_matched,
        backbone_total=len(backbone),
        reinitialised=[k for k in missing if k.startswith(CLASS_BRANCH)],
        skipped=[k for k in missing if not k.startswith(CLASS_BRANCH)],
    )
    logger.info("transferred %d/%d tensors from %s", report.transferred, report.total, source)
    if report.reinitialised:
        nc_weights = _class_count(state_dict)
        logger.info(
            "class count %s -> %s: re-initialised only the %d class-output tensors of %s* "
            "(their shapes depend on nc)",
            nc_weights,
            _class_count(own),
            len(report.reinitialised),
            CLASS_BRANCH,
        )
    if report.skipped:
        logger.warning(
            "%d tensors of the model found no match in %s: %s",
            len(report.skipped),
            source,
            ", ".join(report.skipped[:8]) + (" ..." if len(report.skipped) > 8 else ""),
        )
    return report


def _class_count(state_dict: dict[str, torch.Tensor]) -> int | str:
    bias = state_dict.get(f"{CLASS_BRANCH}0.2.bias")
    return int(bias.shape[0]) if bias is not None else "?"


def load_pretrained(
    model: nn.Module,
    path: str | os.PathLike[str],
    scale: str,
    parameter: str = "training.pretrained",
) -> TransferReport:
    """Read the local weights file ``path``, check its scale, transfer it into ``model``.

    Raises:
        WeightsError: ``path`` is an official name or URL (fetch it first, e.g. with
            ``yolo_mlops.ingestion.weights_cache.fetch_weights``; ``kedro run`` does), or the
            scale or transfer checks fail.
        CheckpointError: the file is unreadable or unsafe.
    """
    source = resolve_weights(str(path), parameter=parameter)
    if source.kind != "file" or source.path is None:
        raise WeightsError(
            f"{parameter}={str(path)!r} is not a local file; the YOLO11 library reads local "
            "files only. Fetch it first (yolo_mlops.ingestion.weights_cache.fetch_weights; "
            "`kedro run` does this) and pass the path"
        )
    checkpoint = read_checkpoint(source.path)
    check_scale(checkpoint["config"]["scale"], scale, str(source.path))
    return transfer_weights(model, checkpoint["state_dict"], str(source.path))
