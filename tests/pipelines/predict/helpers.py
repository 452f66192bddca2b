"""Run the predict pipeline with a catalog under a tmp folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from yolo_mlops.pipelines.predict import create_pipeline


def run_predict(root: Path, parameters: dict, tracking: dict[str, Any] | None = None) -> Path:
    """``root`` after a predict run: ``detections/``, ``predict.json``, ``annotated/``."""
    catalog = DataCatalog.from_config(
        {
            "detections": {
                "type": "yolo_mlops.datasets.parquet_parts_dataset.ParquetPartsDataset",
                "path": str(root / "detections"),
            },
            "predict_report": {"type": "json.JSONDataset", "filepath": str(root / "predict.json")},
            "annotated_images": {
                "type": "partitions.PartitionedDataset",
                "path": str(root / "annotated"),
                "dataset": "pillow.ImageDataset",
                "filename_suffix": ".jpg",
            },
        }
    )
    catalog["params:predict"] = MemoryDataset(parameters)
    catalog["params:tracking"] = MemoryDataset(dict(tracking or {}))
    SequentialRunner().run(create_pipeline(), catalog)
    return root
