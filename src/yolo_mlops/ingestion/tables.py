"""The data stage's tables for a dataset YAML in one call, outside a Kedro run.

Benchmarks, tests and offline tools that start from a YOLO-format folder go through the same
parsing (:func:`~yolo_mlops.ingestion.dataset_yaml.parse_dataset_yaml`) and label checks
(:func:`~yolo_mlops.ingestion.validation.validate_dataset`) as the ``ingest`` and ``validate``
stages, so they see exactly the rows a pipeline run would keep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from yolo_mlops.ingestion.dataset_yaml import parse_dataset_yaml
from yolo_mlops.ingestion.validation import ValidationConfig, validate_dataset


def dataset_tables(
    dataset_yaml: str | Path, workers: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """``(image_index, clean_labels, dataset_spec)`` of ``dataset_yaml`` with absolute paths.

    The same three tables the ``validate`` stage hands to ``preprocess`` (default policy
    ``drop_row``), without writing any report. ``workers``: label-check threads (1 = inline).

    Raises:
        DatasetYamlError: the YAML or its folders are invalid (names the file).
        LabelValidationError: too many images are invalid.
    """
    spec = parse_dataset_yaml(Path(dataset_yaml))
    result = validate_dataset(spec, ValidationConfig(workers=workers, progress=False))
    return result.image_index, result.clean_labels, spec.to_dict()
