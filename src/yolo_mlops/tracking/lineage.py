"""Lineage tags for a run: code version, data version and runtime, all best effort.

Nothing here raises: a project without git, without DVC files or before the dataset was
downloaded simply gets fewer tags (the value ``"unknown"`` where a tag is always expected).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

UNKNOWN = "unknown"
MANIFEST = Path("data/01_raw/dataset_manifest.json")
RAW_DATA_PREFIX = "data/01_raw"


def _git(project_path: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=project_path,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_tags(project_path: Path) -> dict[str, str]:
    """``git.commit`` (also as MLflow's ``mlflow.source.git.commit``) and ``git.dirty``.

    ``git.dirty`` is ``"true"`` when tracked files have uncommitted changes (untracked files do
    not count). Without git or outside a repository both are ``"unknown"``.
    """
    commit = _git(project_path, "rev-parse", "HEAD")
    if commit is None:
        return {"git.commit": UNKNOWN, "git.dirty": UNKNOWN}
    status = _git(project_path, "status", "--porcelain", "--untracked-files=no")
    dirty = UNKNOWN if status is None else str(bool(status)).lower()
    return {"git.commit": commit, "git.dirty": dirty, "mlflow.source.git.commit": commit}


def dataset_sha256(project_path: Path) -> str | None:
    """The archive sha256 from ``data/01_raw/dataset_manifest.json`` (None when absent)."""
    path = Path(project_path) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    value = manifest.get("sha256") if isinstance(manifest, Mapping) else None
    return str(value) if value else None


def _outs_md5(outs: Any, prefix: str) -> dict[str, str]:
    found = {}
    for out in outs or []:
        if isinstance(out, Mapping) and str(out.get("path", "")).startswith(prefix):
            digest = out.get("md5") or out.get("hash")
            if digest:
                found[str(out["path"])] = str(digest)
    return found


def dvc_data_hash(project_path: Path) -> str | None:
    """The DVC md5 of the raw data: from ``dvc.lock`` outs under ``data/01_raw`` or from
    ``data/01_raw/*.dvc`` files. Several entries are joined as ``path:md5`` pairs."""
    project_path = Path(project_path)
    hashes: dict[str, str] = {}
    try:
        lock = yaml.safe_load((project_path / "dvc.lock").read_text())
        for stage in (lock or {}).get("stages", {}).values():
            hashes.update(_outs_md5(stage.get("outs"), RAW_DATA_PREFIX))
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    for dvc_file in sorted((project_path / RAW_DATA_PREFIX).glob("*.dvc")):
        try:
            spec = yaml.safe_load(dvc_file.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for path, digest in _outs_md5(spec.get("outs"), "").items():
            hashes[f"{RAW_DATA_PREFIX}/{path}"] = digest
    if not hashes:
        return None
    if len(hashes) == 1:
        return next(iter(hashes.values()))
    return ",".join(f"{path}:{digest}" for path, digest in sorted(hashes.items()))


def data_tags(project_path: Path) -> dict[str, str]:
    """``data.archive_sha256`` and ``data.dvc_md5`` when known."""
    tags = {}
    if sha := dataset_sha256(project_path):
        tags["data.archive_sha256"] = sha
    if md5 := dvc_data_hash(project_path):
        tags["data.dvc_md5"] = md5
    return tags


def _find(flat_params: Mapping[str, Any], name: str) -> Any:
    """``training.<name>`` when present, else the first ``*.<name>`` or ``<name>`` key."""
    if f"training.{name}" in flat_params:
        return flat_params[f"training.{name}"]
    for key, value in flat_params.items():
        if key == name or key.endswith(f".{name}"):
            return value
    return None


def runtime_tags(flat_params: Mapping[str, Any]) -> dict[str, str]:
    """``seed``, ``device`` (``auto``/absent resolved to cuda/cpu) and ``torch.version``."""
    tags = {}
    seed = _find(flat_params, "seed")
    tags["seed"] = UNKNOWN if seed is None else str(seed)
    device = _find(flat_params, "device")
    tags["torch.version"] = torch.__version__
    if device in (None, "", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    tags["device"] = str(device)
    return tags


def weights_tags(record: Mapping[str, Any] | None) -> dict[str, str]:
    """``base_weights.name``/``.url``/``.sha256`` of a :meth:`BaseWeights.record` (or a
    checkpoint's ``config["base_weights"]``); ``base_weights.name: none`` from scratch."""
    if not record:
        return {"base_weights.name": "none"}  # trained from scratch
    keys = ("name", "url", "sha256")
    return {f"base_weights.{key}": str(record.get(key) or UNKNOWN) for key in keys}


def checkpoint_weights_tags(checkpoint: Mapping[str, Any]) -> dict[str, str]:
    """The same tags from a checkpoint's ``config["base_weights"]`` (the registered version's)."""
    config = checkpoint.get("config") or {}
    if "base_weights" not in config:  # a checkpoint from before base weights were recorded
        return {f"base_weights.{key}": UNKNOWN for key in ("name", "url", "sha256")}
    return weights_tags(config["base_weights"])
