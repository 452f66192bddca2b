"""A registered version's model file on local disk: ``models:/name@alias`` or ``models:/name/N``.

:func:`registered_model_file` finds the version in the registry, reads its ``MLmodel`` for where
the pyfunc keeps its artifacts (:mod:`.model_files`: ``onnx`` → ``model.onnx``, ``checkpoint`` →
``model.pt``) and downloads only the one file asked for into ``<cache>/<name>-v<version>/``. A
version's artifacts never change, so a later call finds the file there and reads nothing from
the store; ``source.json`` in the folder records the store and the version's source, and a folder
filled from another store (same name and version) is downloaded again.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import mlflow.artifacts
import yaml
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

PREFIX = "models:/"
#: Which pyfunc artifact each backend runs.
BACKEND_ARTIFACT = {"onnxruntime": "onnx", "torch": "checkpoint"}
SOURCE_FILE = "source.json"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


class RegisteredModelError(LookupError):
    """A ``models:/`` URI that is malformed or names no version, or a version without a file."""


def is_registry_uri(value: str) -> bool:
    """Whether ``value`` names a registered model (``models:/...``)."""
    return str(value).startswith(PREFIX)


def registered_model_file(
    uri: str, tracking_uri: str, cache: Path, backend: str = "onnxruntime"
) -> Path:
    """The local path of the file ``backend`` runs for the version ``uri`` names.

    Args:
        uri: ``models:/<name>@<alias>`` or ``models:/<name>/<version>``.
        tracking_uri: the store holding the registry (``sqlite:///...``, ``http://...``).
        cache: folder under which each version gets ``<name>-v<version>/``.
        backend: ``onnxruntime`` (the version's ``model.onnx``; its checkpoint when it has
            none) or ``torch`` (the checkpoint).

    Raises:
        RegisteredModelError: malformed URI, unknown model, alias or version, or a version
            without a file to run.
    """
    if backend not in BACKEND_ARTIFACT:
        raise ValueError(f"backend {backend!r} is not one of {sorted(BACKEND_ARTIFACT)}")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = _find_version(client, uri, tracking_uri)
    folder = Path(cache) / f"{version.name}-v{version.version}"
    source = {"tracking_uri": tracking_uri, "source": version.source}
    _reset_if_stale(folder, source)
    root = client.get_model_version_download_uri(version.name, version.version).rstrip("/")
    artifacts = _artifact_paths(folder, root, tracking_uri)
    wanted = BACKEND_ARTIFACT[backend]
    relative = artifacts.get(wanted) or artifacts.get(BACKEND_ARTIFACT["torch"])
    if relative is None:
        raise RegisteredModelError(
            f"{uri} (version {version.version}) has no '{wanted}' or 'checkpoint' artifact "
            f"(artifacts: {sorted(artifacts)}); register it again with `kedro run --pipelines "
            "register`"
        )
    return _download(folder, f"{root}/{relative}", relative, tracking_uri)


def _find_version(client: MlflowClient, uri: str, tracking_uri: str) -> ModelVersion:
    """The version ``uri`` names, or an error naming the URI, the store and the fix."""
    match = _URI.match(uri)
    if match is None:
        raise RegisteredModelError(
            f"{uri!r} is not a registered model URI: use models:/<name>@<alias> or "
            "models:/<name>/<version>"
        )
    name, alias, number = match["name"], match["alias"], match["version"]
    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, number)
    except MlflowException as error:
        what = f"alias '{alias}'" if alias else f"version {number}"
        raise RegisteredModelError(
            f"{uri}: the registry at {tracking_uri} has no model '{name}' with {what} "
            f"({error.message.splitlines()[0]}); list the versions with `mlflow ui` or point "
            "MLFLOW_TRACKING_URI (or tracking.uri) at the store that holds it"
        ) from None


def _reset_if_stale(folder: Path, source: dict[str, str]) -> None:
    """Empty ``folder`` when it was filled from another store or version; record ``source``."""
    record = folder / SOURCE_FILE
    if record.is_file() and json.loads(record.read_text(encoding="utf-8")) == source:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    record.write_text(json.dumps(source, indent=2), encoding="utf-8")


def _artifact_paths(folder: Path, root: str, tracking_uri: str) -> dict[str, str]:
    """The pyfunc's artifact name → path inside the model folder, from its ``MLmodel``."""
    mlmodel = _download(folder, f"{root}/MLmodel", "MLmodel", tracking_uri)
    flavor = (yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}).get("flavors", {})
    artifacts = (flavor.get("python_function") or {}).get("artifacts") or {}
    return {name: str(entry["path"]) for name, entry in artifacts.items() if "path" in entry}


def _download(folder: Path, artifact_uri: str, relative: str, tracking_uri: str) -> Path:
    """``folder/relative``, downloaded from ``artifact_uri`` unless already there.

    The file lands in a temporary folder beside it first, so an interrupted download never
    leaves a partial file under the final name.
    """
    target = folder / relative
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=tmp, tracking_uri=tracking_uri
        )
        Path(local).replace(target)
    return target
