"""Kedro pipeline -> stage groups, and the pre-flight check on datasets crossing tasks."""

from __future__ import annotations

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline

from tests.kubeflow.fake_project import CATALOG, EDGES, STAGES, fake_catalog
from yolo_mlops.kubeflow.grouping import (
    GroupingError,
    PreflightError,
    crossing_datasets,
    group_stages,
    node_stage,
    preflight_check,
)


def identity(x):
    return x


def pair(x, y):
    return x, y


def two_stage_pipeline() -> Pipeline:
    """prepare (ingest) -> features -> fit (train); a memory dataset inside the train stage."""
    return Pipeline(
        [
            Node(identity, "raw", "features", name="prepare", tags=["ingest"]),
            Node(identity, "features", "scratch", name="fit", tags=["train"]),
            Node(identity, "scratch", "model", name="save", tags=["train"]),
        ]
    )


def test_groups_follow_stage_tags_in_pipeline_order(fake_pipelines):
    groups = group_stages(fake_pipelines["training"])
    assert [g.name for g in groups] == STAGES
    by_name = {g.name: g for g in groups}
    assert by_name["train"].nodes == ["train_model", "save_checkpoint"]
    assert {name: g.dependencies for name, g in by_name.items()} == EDGES


def test_group_records_crossing_datasets_and_parameter_blocks(fake_pipelines):
    groups = {g.name: g for g in group_stages(fake_pipelines["training"])}
    assert groups["train"].inputs == {"image_cache"}
    assert groups["train"].outputs == {"model_checkpoint"}  # raw_model stays inside
    assert groups["train"].parameter_blocks == {"training"}
    assert crossing_datasets(groups.values())["model_checkpoint"] == (
        "train",
        ["evaluate", "register"],
    )


def test_data_pipeline_has_ingest_and_validate_only(fake_pipelines):
    groups = group_stages(fake_pipelines["data"])
    assert [(g.name, g.dependencies) for g in groups] == [("ingest", []), ("validate", ["ingest"])]


def test_untagged_node_falls_back_to_top_level_namespace():
    node = Node(identity, "a", "b", name="step", namespace="data_ingestion.inner")
    assert node_stage(node) == "data_ingestion"
    groups = group_stages(Pipeline([node]))
    assert groups[0].name == "data_ingestion"
    assert groups[0].task_name == "data-ingestion"


def test_namespace_grouping_ignores_tags():
    node = Node(identity, "a", "b", name="step", namespace="prep", tags=["train"])
    assert node_stage(node, group_by="namespace") == "prep"


def test_node_without_stage_tag_or_namespace_is_an_error_naming_it():
    with pytest.raises(GroupingError, match="'lonely'"):
        group_stages(Pipeline([Node(identity, "a", "b", name="lonely")]))


def test_node_with_two_stage_tags_is_an_error():
    with pytest.raises(GroupingError, match="several stage tags"):
        node_stage(Node(identity, "a", "b", name="both", tags=["ingest", "train"]))


def test_stages_depending_on_each_other_in_a_cycle_are_an_error():
    pipeline = Pipeline(
        [
            Node(identity, "a", "b", name="first", tags=["ingest"]),
            Node(identity, "b", "c", name="second", tags=["train"]),
            Node(identity, "c", "d", name="third", tags=["ingest"]),
        ]
    )
    with pytest.raises(GroupingError, match="cycle"):
        group_stages(pipeline)


def test_preflight_accepts_persisted_crossings_and_in_stage_memory(fake_pipelines):
    # raw_model is a MemoryDataset between two nodes of the train stage: allowed
    preflight_check(group_stages(fake_pipelines["training"]), fake_catalog())


def test_preflight_rejects_memory_dataset_crossing_tasks():
    catalog = DataCatalog(datasets={"features": MemoryDataset()})
    with pytest.raises(PreflightError, match=r"'features'.*'ingest'.*\['train'\].*MemoryDataset"):
        preflight_check(group_stages(two_stage_pipeline()), catalog)


def test_preflight_rejects_crossing_dataset_missing_from_catalog():
    with pytest.raises(PreflightError, match=r"'features'.*not in the catalog"):
        preflight_check(group_stages(two_stage_pipeline()), DataCatalog())


def test_preflight_names_every_offending_dataset(fake_pipelines):
    config = {k: v for k, v in CATALOG.items() if k not in {"image_cache", "metrics"}}
    config["metrics"] = {"type": "MemoryDataset"}
    with pytest.raises(PreflightError) as error:
        preflight_check(group_stages(fake_pipelines["training"]), fake_catalog(config))
    assert "'image_cache'" in str(error.value)
    assert "'metrics'" in str(error.value)


def test_preflight_resolves_dataset_factory_patterns():
    catalog = DataCatalog.from_config(
        {"{name}": {"type": "json.JSONDataset", "filepath": "data/{name}.json"}}
    )
    preflight_check(group_stages(two_stage_pipeline()), catalog)
    memory = DataCatalog.from_config({"{name}": {"type": "MemoryDataset"}})
    with pytest.raises(PreflightError, match="'features'"):
        preflight_check(group_stages(two_stage_pipeline()), memory)
