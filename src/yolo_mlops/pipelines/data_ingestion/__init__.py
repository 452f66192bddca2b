"""The ``data_ingestion`` pipeline: download_dataset -> parse_dataset_yaml."""

from yolo_mlops.pipelines.data_ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
