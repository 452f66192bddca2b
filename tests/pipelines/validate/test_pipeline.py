"""data_validation pipeline: wiring, and validate_labels run through a SequentialRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure

from yolo_mlops.ingestion.dataset_yaml import parse_dataset_yaml
from yolo_mlops.ingestion.validation import LabelValidationError
from yolo_mlops.pipelines.params import ParameterError
from yolo_mlops.pipelines.validate import create_pipeline
from yolo_mlops.pipelines.validate.nodes import split_per_class_counts, validate_labels


def test_pipeline_node_is_named_and_tagged() -> None:
    (node,) = create_pipeline().nodes
    assert node.name == "validate_labels" and node.tags == {"validate"}
    assert node.inputs == ["dataset_spec", "params:data_validation"]


def test_validate_labels_outputs(synthetic_dataset: Path) -> None:
    spec = parse_dataset_yaml(synthetic_dataset).to_dict()
    catalog = DataCatalog()
    catalog["dataset_spec"] = spec
    catalog["params:data_validation"] = {"workers": 2, "progress": False}
    out = SequentialRunner().run(create_pipeline(), catalog)
    summary = out["validation_summary"].load()
    assert (summary["images"], summary["labelled"], summary["backgrounds"]) == (8, 7, 1)
    assert (summary["corrupt"], summary["orphan_labels"]) == (0, 1)
    clean = out["clean_labels"].load()
    assert list(clean.columns) == [
        "split", "image_path", "width", "height", "class_id", "class_name", "x1", "y1", "x2", "y2",
    ]  # fmt: skip
    assert len(clean) == 2 * summary["instances"]  # train and val share the folder
    assert list(out["label_problems"].load().columns) == [
        "file",
        "line",
        "code",
        "message",
        "action",
    ]
    assert isinstance(out["class_distribution_plot"].load(), Figure)
    per_class = out["instances_per_class"].load()
    assert list(per_class.columns) == ["class_id", "class", "instances"]
    assert per_class["instances"].sum() == summary["instances"]
    assert (per_class["instances"] > 0).sum() == summary["classes_present"]
    assert all(not isinstance(v, dict) or len(v) < 10 for v in summary.values())
    assert "instances_per_class" not in summary  # scalar counts only (dvc metrics show)


def test_split_per_class_counts_keeps_every_class_in_id_order() -> None:
    summary = {"images": 3, "instances_per_class": {"person": 2, "bicycle": 0, "car": 5}}
    rest, table = split_per_class_counts(summary)
    assert rest == {"images": 3}
    assert table.to_dict("list") == {
        "class_id": [0, 1, 2], "class": ["person", "bicycle", "car"], "instances": [2, 0, 5],
    }  # fmt: skip
    assert summary["instances_per_class"]["car"] == 5  # the input is not modified


def test_fail_policy_stops_the_node(synthetic_dataset: Path) -> None:
    label = next((synthetic_dataset.parent / "labels" / "train2017").glob("train2017_0*.txt"))
    label.write_text("0 0.5 0.5 0.2\n")
    spec = parse_dataset_yaml(synthetic_dataset).to_dict()
    with pytest.raises(LabelValidationError, match="wrong_column_count"):
        validate_labels(spec, {"policy": "fail", "workers": 1, "progress": False})


def test_bad_policy_value_is_rejected(synthetic_dataset: Path) -> None:
    spec = parse_dataset_yaml(synthetic_dataset).to_dict()
    with pytest.raises(ParameterError, match=r"data_validation\.policy"):
        validate_labels(spec, {"policy": "drop_everything"})
