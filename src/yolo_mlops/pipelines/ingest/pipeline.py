"""Wiring of the ``data_ingestion`` pipeline (tag ``ingest``)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from yolo_mlops.pipelines.ingest.nodes import download_dataset, parse_dataset_yaml


def create_pipeline(**kwargs) -> Pipeline:
    """download_dataset (the only node that touches the network) then parse_dataset_yaml."""
    return Pipeline(
        [
            Node(
                download_dataset,
                inputs="params:data_ingestion",
                outputs="dataset_manifest",
                name="download_dataset",
                tags=["ingest"],
            ),
            Node(
                parse_dataset_yaml,
                inputs=["dataset_manifest", "params:data_ingestion"],
                outputs="dataset_spec",
                name="parse_dataset_yaml",
                tags=["ingest"],
            ),
        ]
    )
