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
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from yolo_mlops.ingestion.download import DownloadError, RetryPolicy, fetch_archive, sha256_of
from yolo_mlops.yolo.io.checkpoint import CheckpointError, read_checkpoint
from yolo_mlops.yolo.io.weights import (
    OFFICIAL_BASE_URL,
    WeightsError,
    check_sha256,
    resolve_weights,
)

logger = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "YOLO_MLOPS_WEIGHTS_DIR"
#: HTTP behaviour of weight downloads: a dropped connection resumes (Range) on the next attempt;
#: an offline machine fails after about 7 s of retries (tests lower them further).
RETRY_POLICY = RetryPolicy(retries=3, backoff_s=1.0)


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


def _forget(path: Path) -> None:
    for stale in (path, path.with_name(path.name + ".json")):
        stale.unlink(missing_ok=True)


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


def fetch_weights(
    value: str,
    *,
    parameter: str = "training.pretrained",
    base_url: str = OFFICIAL_BASE_URL,
    sha256: str | None = None,
    cache_dir: Path | None = None,
) -> BaseWeights | None:
    """Make the weights ``value`` names available locally and check them; None for "".

    Args:
        value: "", a path, an ``http(s)://`` URL or an official name (``yolo11n.pt``).
        parameter: the parameter holding ``value``, named in errors.
        base_url: release folder that official names resolve against.
        sha256: expected digest; a mismatch refuses the file (a downloaded one is deleted).
        cache_dir: where downloads live (default :func:`weights_cache_dir`).

    Raises:
        WeightsFetchError: download failed (message names the URL and how to use a local file),
            or checksum mismatch.
        WeightsError / CheckpointError: unknown value; a file that is truncated, not a
            checkpoint, or whose pickle would run code (downloads of those are deleted).
    """
    expected = check_sha256(sha256, f"{parameter}_sha256")
    source = resolve_weights(value, base_url, parameter)
    if source.kind == "none":
        return None
    if source.path is not None:
        path, url = source.path, ""
        digest = sha256_of(path)
    else:
        assert source.url is not None
        path, url = cached_file(source.url, source.name, cache_dir), source.url
        digest = _download(url, path, parameter, source.name)
    if expected is not None and digest != expected:
        if url:
            _forget(path)
        raise WeightsFetchError(
            f"{parameter}: checksum mismatch for {url or path}: expected sha256 {expected}, got "
            f"{digest}; {'the download was deleted, nothing was kept' if url else 'not used'}. "
            f"Fix {parameter} or {parameter}_sha256 (null skips the check)"
        )
    try:
        checkpoint = read_checkpoint(path)
    except CheckpointError as error:
        if url:
            _forget(path)
        where = f"downloaded from {url} ({path.stat().st_size if path.exists() else 0} B)"
        raise type(error)(
            f"{parameter}: {url or path} is not usable weights: {error}. "
            + (f"The file {where} was deleted from the cache. " if url else "")
            + "A truncated or interrupted copy gives this error: fetch it again or fix "
            + parameter
        ) from error
    config = checkpoint["config"]
    if source.scale is not None and config["scale"] != source.scale:
        raise WeightsError(
            f"{parameter}={value!r}: the file holds YOLO11{config['scale']} weights, not "
            f"YOLO11{source.scale} as its name says"
        )
    weights = BaseWeights(
        parameter=parameter,
        value=str(value),
        name=source.name,
        url=url,
        path=str(path),
        size=path.stat().st_size,
        sha256=digest,
        scale=str(config["scale"]),
        nc=int(config["nc"]),
    )
    logger.info(
        "%s: %s (YOLO11%s, nc=%d), %s, %.1f MB, sha256 %s",
        parameter,
        weights.name,
        weights.scale,
        weights.nc,
        f"{url} cached at {path}" if url else str(path),
        weights.size / 1e6,
        digest,
    )
    return weights


def describe_weights(
    value: str,
    *,
    parameter: str = "training.pretrained",
    base_url: str = OFFICIAL_BASE_URL,
    cache_dir: Path | None = None,
) -> dict[str, str]:
    """Name, URL and sha256 of the weights ``value`` names, without any network request.

    The sha256 comes from the download's sidecar record (or the local file); ``"unknown"``
    when the weights were not fetched yet. Empty dict for "" or an unresolvable value.
    """
    try:
        source = resolve_weights(value, base_url, parameter)
    except WeightsError:
        return {}
    if source.kind == "none":
        return {}
    digest = "unknown"
    if source.path is not None:
        digest = sha256_of(source.path)
    else:
        assert source.url is not None
        sidecar = cached_file(source.url, source.name, cache_dir).with_name(source.name + ".json")
        try:
            record = json.loads(sidecar.read_text())
            if record.get("source") == source.url and record.get("sha256"):
                digest = str(record["sha256"])
        except (OSError, ValueError):
            pass
    return {"name": source.name, "url": source.url or "", "sha256": digest}
