"""The ``data_ingestion`` pipeline: download_dataset -> parse_dataset_yaml."""

from yolo_mlops.pipelines.ingest.pipeline import create_pipeline

__all__ = ["create_pipeline"]
