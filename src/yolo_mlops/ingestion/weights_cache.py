"""Initial weights on disk: official names and URLs fetched once into a per-user cache.

``fetch_weights("yolo11n.pt", ...)`` resolves the value (:mod:`yolo_mlops.yolo.io.weights`),
downloads a URL with the project's downloader (:func:`yolo_mlops.ingestion.download.fetch_archive`:
progress bar, retries, ``Range`` resume, ``.part`` then atomic rename, a ``.json`` sidecar with
source and sha256) into :func:`weights_cache_dir`, and reads it back through the restricted
unpickler before anyone uses it. A present, intact file is reused without any request. What was used
(name, URL, path, size, sha256, scale, nc) comes back as :class:`BaseWeights` for logs, checkpoints
and lineage tags.

Why a per-user cache (``~/.cache/yolo-mlops/weights``, ``$YOLO_MLOPS_WEIGHTS_DIR`` overrides) and
not a DVC-tracked file under ``data/06_models``: the official weights are AGPL-3.0 files of their
authors that this project must not redistribute, and a DVC out would be pushed to the project's
remote with every ``dvc push``; they are also the same bytes for every clone, worktree and benchmark
on the machine, so one copy serves all of them. Reproducibility comes from the sha256 recorded in
the checkpoint and in MLflow (and ``training.pretrained_sha256`` pins it).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from yolo_mlops.ingestion.download import DownloadError, RetryPolicy, fetch_archive, sha256_of
from yolo_mlops.yolo.io.checkpoint import CheckpointError, read_checkpoint
from yolo_mlops.yolo.io.weights import (
    OFFICIAL_BASE_URL,
    WeightsError,
    WeightsSource,
    check_scale,
    check_sha256,
    resolve_weights,
)

logger = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "YOLO_MLOPS_WEIGHTS_DIR"
#: HTTP behaviour of weight downloads: a dropped connection resumes (Range) on the next attempt;
#: an offline machine fails after about 7 s of retries (tests lower them further).
RETRY_POLICY = RetryPolicy(retries=3, backoff_s=1.0)


class PretrainedSettings(Protocol):
    """The keys of the ``training`` block that name the initial weights (``TrainConfig`` has
    them; a protocol keeps this module, and the DVC stages that use it, off the trainer)."""

    pretrained: str | None
    pretrained_sha256: str | None
    weights_base_url: str
    scale: str


class WeightsFetchError(WeightsError):
    """The weights could not be downloaded, or the download is not what was expected."""


@dataclass(frozen=True)
class BaseWeights:
    """The initial weights a run used.

    Attributes:
        parameter: the parameter that named them (``training.pretrained``).
        value: its value (``yolo11n.pt``, a URL or a path).
        name: file name; url: download URL ("" for a local file); path: the file read.
        size: bytes; sha256: hex digest; scale, nc: what the file holds.
    """

    parameter: str
    value: str
    name: str
    url: str
    path: str
    size: int
    sha256: str
    scale: str
    nc: int

    def record(self) -> dict[str, str | int]:
        """Plain dict for checkpoints and JSON (without this machine's ``path``)."""
        record = asdict(self)
        del record["path"]
        return record


def weights_cache_dir() -> Path:
    """``$YOLO_MLOPS_WEIGHTS_DIR``, else ``$XDG_CACHE_HOME/yolo-mlops/weights`` (~/.cache)."""
    if os.environ.get(WEIGHTS_DIR_ENV):
        return Path(os.environ[WEIGHTS_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "yolo-mlops" / "weights"


def cached_file(url: str, name: str, cache_dir: Path | None = None) -> Path:
    """Where the download of ``url`` lives: ``<cache>/<16 hex of sha256(url)>/<name>``.

    Keyed by the whole URL, so two releases (or a mirror) with the same file name never collide.
    """
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return (cache_dir or weights_cache_dir()) / key / name


def _offline_hint(parameter: str, name: str) -> str:
    return (
        f"If this machine is offline, download the file elsewhere and point {parameter} at it "
        f"(`--params {parameter}=/path/to/{name}`), or train from scratch with "
        f'`--params {parameter}=""`'
    )


def _weights_are_checked_later(path: Path, source: str | None) -> None:
    """The downloader's completeness check for weights: none here; every fetched or cached file
    is read back through the restricted unpickler (``fetch_weights``), naming the parameter."""


def _download(url: str, target: Path, parameter: str, name: str) -> str:
    """Fetch ``url`` into ``target`` (or reuse it); its sha256."""
    try:
        return fetch_archive(
            url, target, sha256=None, policy=RETRY_POLICY, verify=_weights_are_checked_later
        )
    except DownloadError as error:
        reason = error.__cause__ or error
        raise WeightsFetchError(
            f"{parameter}: cannot download {url} ({type(reason).__name__}: {reason}). "
            + _offline_hint(parameter, name)
        ) from error


@dataclass(frozen=True)
class _LocalCopy:
    """Where the weights are on this machine: ``url`` is "" for a user's file read in place."""

    path: Path
    url: str
    sha256: str

    @property
    def downloaded(self) -> bool:
        """True for a file of the cache (deleted when refused), False for the user's own file."""
        return bool(self.url)

    def forget(self) -> None:
        """Delete a refused download (a user's own file is never touched)."""
        if self.downloaded:
            for stale in (self.path, self.path.with_name(self.path.name + ".json")):
                stale.unlink(missing_ok=True)


def _local_copy(source: WeightsSource, parameter: str, cache_dir: Path | None) -> _LocalCopy:
    """A local file as it is; a URL downloaded into the cache, or reused from it."""
    if source.path is not None:
        return _LocalCopy(source.path, "", sha256_of(source.path))
    assert source.url is not None
    path = cached_file(source.url, source.name, cache_dir)
    return _LocalCopy(path, source.url, _download(source.url, path, parameter, source.name))


def _check_digest(copy: _LocalCopy, expected: str | None, parameter: str) -> None:
    if expected is None or copy.sha256 == expected:
        return
    copy.forget()
    raise WeightsFetchError(
        f"{parameter}: checksum mismatch for {copy.url or copy.path}: expected sha256 "
        f"{expected}, got {copy.sha256}; "
        f"{'the download was deleted, nothing was kept' if copy.downloaded else 'not used'}. "
        f"Fix {parameter} or {parameter}_sha256 (null skips the check)"
    )


def _read_weights(copy: _LocalCopy, parameter: str) -> dict:
    """The checkpoint, read through the restricted unpickler; a refused download is deleted."""
    try:
        return read_checkpoint(copy.path)
    except CheckpointError as error:
        size = copy.path.stat().st_size if copy.path.exists() else 0
        copy.forget()
        where = f"downloaded from {copy.url} ({size} B)"
        raise type(error)(
            f"{parameter}: {copy.url or copy.path} is not usable weights: {error}. "
            + (f"The file {where} was deleted from the cache. " if copy.downloaded else "")
            + "A truncated or interrupted copy gives this error: fetch it again or fix "
            + parameter
        ) from error


def _check_file_scale(
    file_scale: str, source: WeightsSource, scale: str | None, where: str
) -> None:
    """The scale the file holds is the one its name promises, and the model's (when given)."""
    if source.scale is not None and file_scale != source.scale:
        raise WeightsError(
            f"{where}: the file holds YOLO11{file_scale} weights, not YOLO11{source.scale} as "
            "its name says"
        )
    if scale is not None:
        check_scale(file_scale, scale, where)


def _log(weights: BaseWeights) -> None:
    where = f"{weights.url} cached at {weights.path}" if weights.url else weights.path
    logger.info(
        "%s: %s (YOLO11%s, nc=%d), %s, %.1f MB, sha256 %s", weights.parameter, weights.name,
        weights.scale, weights.nc, where, weights.size / 1e6, weights.sha256,
    )  # fmt: skip


def fetch_weights(
    value: str,
    *,
    parameter: str = "training.pretrained",
    base_url: str = OFFICIAL_BASE_URL,
    sha256: str | None = None,
    scale: str | None = None,
    cache_dir: Path | None = None,
) -> BaseWeights | None:
    """Make the weights ``value`` names available locally and check them; None for "".

    Args:
        value: "", a path, an ``http(s)://`` URL or an official name (``yolo11n.pt``).
        parameter: the parameter holding ``value``, named in errors.
        base_url: release folder that official names resolve against.
        sha256: expected digest; a mismatch refuses the file (a downloaded one is deleted).
        scale: the model's scale (``training.scale``), when the weights must match it: an
            official name of another scale fails before any request, a file after reading.
        cache_dir: where downloads live (default :func:`weights_cache_dir`).

    Raises:
        WeightsFetchError: download failed (message names the URL and how to use a local file),
            or checksum mismatch.
        WeightsError / CheckpointError: unknown value, scale mismatch; a file that is truncated,
            not a checkpoint, or whose pickle would run code (downloads of those are deleted).
    """
    expected = check_sha256(sha256, f"{parameter}_sha256")
    source = resolve_weights(value, base_url, parameter)
    if source.kind == "none":
        return None
    where = f"{parameter}={value!r}"
    if scale is not None and source.scale is not None:  # the name says its scale: no request
        check_scale(source.scale, scale, where)
    copy = _local_copy(source, parameter, cache_dir)
    _check_digest(copy, expected, parameter)
    config = _read_weights(copy, parameter)["config"]
    _check_file_scale(str(config["scale"]), source, scale, where)
    weights = BaseWeights(
        parameter=parameter, value=str(value), name=source.name, url=copy.url,
        path=str(copy.path), size=copy.path.stat().st_size, sha256=copy.sha256,
        scale=str(config["scale"]), nc=int(config["nc"]),
    )  # fmt: skip
    _log(weights)
    return weights


def fetch_pretrained(training: PretrainedSettings) -> BaseWeights | None:
    """The weights ``training.pretrained`` names, on disk and checked; None to train from scratch.

    The one way from the ``training`` block to a weights file (its ``pretrained``,
    ``pretrained_sha256``, ``weights_base_url`` and ``scale``). The run-start hook calls it, so a
    download happens there, before the MLflow run and the dataset; the ``train_model`` node calls
    it again and finds the file in the cache (no request), as do the torchrun workers.
    """
    return fetch_weights(
        training.pretrained or "",
        parameter="training.pretrained",
        base_url=training.weights_base_url,
        sha256=training.pretrained_sha256,
        scale=training.scale,
    )


def base_weights_meta(weights: BaseWeights | None) -> dict[str, dict[str, str | int] | None]:
    """``{"base_weights": record}`` for a trainer's ``checkpoint_meta``: what the checkpoints
    record of the initial weights (:meth:`BaseWeights.record`; None from scratch)."""
    return {"base_weights": weights.record() if weights is not None else None}
