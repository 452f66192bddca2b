"""Which saved datasets become run artifacts, and where their files are.

A dataset is logged as an artifact (under ``reports/``) when it is saved and its file lies in
``data/08_reporting`` (validation summary, problem report, class chart, mosaic preview,
per-class table, PR curve, confusion matrix, history CSV, metrics...). The file path comes from
the catalog's dataset (``_filepath``); when the catalog is not at hand (a ParallelRunner worker)
the contract's default paths below are used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

logger = logging.getLogger(__name__)

REPORTING_DIR = "data/08_reporting"
ARTIFACT_DIR = "reports"

# Prefixes of the one-off metrics (a single value per run). The MLflow UI (3.x) groups a run's
# charts into sections named after the key's prefix (the part before the last "/") and sorts the
# sections by name, unprefixed keys ("Model metrics") and system metrics last. The per-epoch curves
# are `lr/`, `metrics/`, `time/` and `train/`; every one-off prefix sorts after "train" (as code
# units and as locale order), so the curves open the Charts tab and the bar charts follow.
EVAL_PREFIX = "val"  # metrics.json: the evaluation of the trained model (val/mAP50-95, ...)
DATA_PREFIX = "validate"  # validation_summary.json: the validate stage's dataset counts
GATE_PREFIX = "verdict"  # the promotion gate's numbers (challenger and champion mAP50-95)

# Defaults of conf/base/catalog_*.yml, used only when the catalog cannot tell.
KNOWN_REPORTS: Mapping[str, str] = {
    "validation_summary": "data/08_reporting/validation_summary.json",
    "label_problems": "data/08_reporting/label_problems.csv",
    "instances_per_class": "data/08_reporting/instances_per_class.csv",
    "class_distribution_plot": "data/08_reporting/class_distribution.png",
    "mosaic_preview": "data/08_reporting/mosaic_preview.png",
    "per_class_metrics": "data/08_reporting/per_class_metrics.csv",
    "pr_curve_data": "data/08_reporting/pr_curve.csv",
    "confusion_matrix_plot": "data/08_reporting/confusion_matrix.png",
    "pr_curve_plot": "data/08_reporting/pr_curve.png",
    "f1_curve_plot": "data/08_reporting/f1_curve.png",
    "val_predictions_plot": "data/08_reporting/val_predictions.png",
    "training_history": "data/08_reporting/training_history.csv",
    "metrics": "data/08_reporting/metrics.json",
    "registration": "data/08_reporting/registration.json",
}


def dataset_filepath(catalog: Any, name: str) -> PurePosixPath | None:
    """The local file a catalog dataset wrote (the latest version for versioned datasets)."""
    if catalog is None:
        return None
    try:
        dataset = catalog.get(name) if hasattr(catalog, "get") else catalog[name]
    except Exception:  # any lookup failure means "unknown"
        return None
    if dataset is None or getattr(dataset, "_protocol", "file") not in ("file", None):
        return None
    try:
        if getattr(dataset, "_version", None) is not None:
            return PurePosixPath(dataset._get_load_path())
        path = getattr(dataset, "_filepath", None)
        return PurePosixPath(path) if path is not None else None
    except Exception:
        return None


def report_file(catalog: Any, name: str, project_path: Path) -> Path | None:
    """The reporting file of dataset ``name`` if it is a report and exists, else ``None``."""
    path = dataset_filepath(catalog, name)
    if path is None and name in KNOWN_REPORTS:
        path = PurePosixPath(KNOWN_REPORTS[name])
    if path is None:
        return None
    local = Path(path)
    if not local.is_absolute():
        local = Path(project_path) / local
    if REPORTING_DIR not in local.as_posix() or not local.is_file():
        return None
    return local


def numeric_items(data: Any, prefix: str) -> dict[str, float]:
    """Top-level numeric values of a JSON-like dict as ``{prefix/key: value}`` (others skipped)."""
    if not isinstance(data, Mapping):
        return {}
    return {
        f"{prefix}/{key}": float(value)
        for key, value in data.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
