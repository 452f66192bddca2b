"""Nodes of the ``data_ingestion`` pipeline: thin adapters over :mod:`yolo_mlops.ingestion`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from yolo_mlops.ingestion.archive import ExtractLimits
from yolo_mlops.ingestion.dataset_yaml import parse_dataset_yaml as parse_yaml
from yolo_mlops.ingestion.dataset_yaml import shipped_yaml
from yolo_mlops.ingestion.download import COCO128_URL, RetryPolicy
from yolo_mlops.ingestion.ingest import ingest
from yolo_mlops.ingestion.paths import portable, project_root, resolve
from yolo_mlops.pipelines.params import parse_params

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataIngestionParams:
    """The ``data_ingestion`` parameter block (conf/base/parameters_data_ingestion.yml).

    Attributes:
        source: http(s) URL, local archive path, ``file://`` URL, or a folder with an extracted
            dataset (used in place).
        name: dataset name; the archive becomes ``<raw_dir>/<name>.zip``, the data
            ``<raw_dir>/<name>/``.
        sha256: expected archive digest (hex); ``None`` skips the check.
        dataset_yaml: a dataset YAML path (relative to the project root), or ``None`` for the
            YAML shipped with the package under the dataset's ``name`` (e.g. coco128).
        dataset_root: ``download``: the dataset lives where it was downloaded/extracted (the YAML's
            ``path`` is ignored); ``yaml``: use the YAML's ``path``.
        raw_dir: the raw data layer folder (relative to the project root).
        timeout_s / retries / backoff_s: HTTP socket timeout (s), extra attempts, first backoff (s).
        max_extracted_bytes / max_entries / max_compression_ratio: extraction caps against zip
            bombs (bytes, entries, uncompressed bytes per archive byte).
    """

    source: str = COCO128_URL
    name: str = "coco128"
    sha256: str | None = None
    dataset_yaml: str | None = None
    dataset_root: Literal["download", "yaml"] = "download"
    raw_dir: str = "data/01_raw"
    timeout_s: float = 60.0
    retries: int = 4
    backoff_s: float = 2.0
    max_extracted_bytes: int = 10 * 1024**3
    max_entries: int = 500_000
    max_compression_ratio: float = 100.0


def _params(params: Mapping[str, Any] | None) -> DataIngestionParams:
    return parse_params(DataIngestionParams, params, "data_ingestion")


def download_dataset(params: Mapping[str, Any]) -> dict[str, Any]:
    """Fetch and safely extract the dataset archive into the raw layer.

    Returns:
        The ``dataset_manifest``: ``{name, root, archive, sha256, source}`` (paths relative to
        the project root when inside it).
    """
    config = _params(params)
    root = project_root()
    raw = ingest(
        config.source,
        resolve(config.raw_dir, root),
        config.name,
        sha256=config.sha256,
        retry=RetryPolicy(config.retries, config.backoff_s, config.timeout_s),
        limits=ExtractLimits(
            config.max_extracted_bytes, config.max_entries, config.max_compression_ratio
        ),
    )
    return {
        "name": config.name,
        "root": portable(raw.root, root),
        "archive": portable(raw.archive, root) if raw.archive else None,
        "sha256": raw.sha256,
        "source": config.source,
    }


def parse_dataset_yaml(
    dataset_manifest: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, Any]:
    """Parse the dataset YAML against the downloaded data.

    Returns:
        The ``dataset_spec``: ``{name, root, yaml, names, nc, splits: {split: [image paths]}}``.
    """
    config = _params(params)
    root = project_root()
    yaml_path = (
        resolve(config.dataset_yaml, root) if config.dataset_yaml else shipped_yaml(config.name)
    )
    data_root = (
        resolve(dataset_manifest["root"], root) if config.dataset_root == "download" else None
    )
    spec = parse_yaml(yaml_path, root=data_root, name=config.name)
    return spec.to_dict(relative_to=root)
