"""A model parameter value → a local file: a path as it is, ``models:/...`` from the registry.

``predict.model`` and ``evaluation.checkpoint`` both take a registered version,
``models:/<name>@<alias>`` or ``models:/<name>/<version>``; :func:`local_model_file` is the one
way both resolve it: the store is the ``tracking`` block's (``MLFLOW_TRACKING_URI``, else
``tracking.uri``, else the project's ``mlflow.db``) and only the file the backend runs is
downloaded, once per version, into ``<cache>/<name>-v<version>/``
(:func:`yolo_mlops.tracking.registry_files.registered_model_file`). Any other value is a path and
never touches the tracking store (nor imports mlflow).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yolo_mlops.ingestion.paths import project_root, resolve
from yolo_mlops.pipelines.params import parse_params

logger = logging.getLogger(__name__)

REGISTRY_PREFIX = "models:/"
#: Which of a version's files each backend runs: ``onnxruntime`` (and ``openvino``, which reads
#: ONNX) its ``model.onnx``, ``torch`` its checkpoint.
REGISTRY_FILE_BACKENDS = {"onnxruntime": "onnxruntime", "openvino": "onnxruntime", "torch": "torch"}


def is_registered(value: str | None) -> bool:
    """Whether ``value`` names a registered version (``models:/...``)."""
    return str(value or "").startswith(REGISTRY_PREFIX)


def local_model_file(
    value: str, tracking: Mapping[str, Any] | None, cache: str, backend: str = "onnxruntime"
) -> Path:
    """The file ``value`` names; a ``models:/`` URI's file downloaded into ``cache``.

    Args:
        value: a path, or ``models:/<name>@<alias>`` / ``models:/<name>/<version>``.
        tracking: the ``tracking`` parameter block (or part of it: ``{"uri": ...}``).
        cache: folder (project-relative or absolute) of the downloaded versions.
        backend: which file of the version: see :data:`REGISTRY_FILE_BACKENDS`; a version
            without an ONNX file gives its checkpoint.

    Raises:
        RegisteredModelError: the URI names no version of the registry, or one without a file.
    """
    if not is_registered(value):
        return Path(value)
    # Imported here: mlflow is needed only for registered models.
    from yolo_mlops.tracking.config import TrackingParams, resolve_tracking_uri
    from yolo_mlops.tracking.registry_files import registered_model_file

    root = project_root()
    settings = parse_params(TrackingParams, dict(tracking or {}), "tracking")
    uri = resolve_tracking_uri(settings, root)
    if backend not in REGISTRY_FILE_BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {sorted(REGISTRY_FILE_BACKENDS)}")
    path = registered_model_file(value, uri, resolve(cache, root), REGISTRY_FILE_BACKENDS[backend])
    logger.info("%s is %s (from %s)", value, path, uri)
    return path
