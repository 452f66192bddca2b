"""data_ingestion pipeline: wiring, and its nodes run in a tmp Kedro project folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset, zip_dataset
from yolo_mlops.pipelines.ingest import create_pipeline
from yolo_mlops.pipelines.ingest.nodes import download_dataset, parse_dataset_yaml
from yolo_mlops.pipelines.params import ParameterError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Kedro project folder as the working directory."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[tool.kedro]\npackage_name = "yolo_mlops"\n')
    monkeypatch.chdir(root)
    return root


def test_pipeline_nodes_are_named_and_tagged() -> None:
    pipeline = create_pipeline()
    assert [n.name for n in pipeline.nodes] == ["download_dataset", "parse_dataset_yaml"]
    assert all(n.tags == {"ingest"} for n in pipeline.nodes)
    assert pipeline.outputs() == {"dataset_spec"}


def test_nodes_download_and_parse_with_project_relative_paths(
    project: Path, tmp_path: Path
) -> None:
    yaml_path = write_synthetic_dataset(tmp_path / "synth", SyntheticSpec(n_images=4), seed=0)
    archive = zip_dataset(tmp_path / "synth", tmp_path / "synth.zip")
    params = {"source": str(archive), "name": "synth", "dataset_yaml": str(yaml_path)}
    manifest = download_dataset(params)
    spec = parse_dataset_yaml(manifest, params)
    assert manifest["root"] == "data/01_raw/synth"
    assert manifest["archive"] == "data/01_raw/synth.zip"
    assert manifest["source"] == str(archive) and len(manifest["sha256"]) == 64
    assert (project / "data" / "01_raw" / "synth" / "images").is_dir()
    assert spec["root"] == "data/01_raw/synth" and spec["nc"] == 3
    assert spec["splits"]["train"][0] == "data/01_raw/synth/images/train2017/train2017_000000.jpg"
    assert spec["splits"]["train"] == spec["splits"]["val"] and "test" not in spec["splits"]


def test_default_yaml_is_the_shipped_one_for_the_dataset_name(
    project: Path, tmp_path: Path
) -> None:
    write_synthetic_dataset(tmp_path / "coco128", SyntheticSpec(n_images=2), seed=0)
    catalog = DataCatalog()
    catalog["params:data_ingestion"] = {"source": str(tmp_path / "coco128")}  # a folder source
    spec = SequentialRunner().run(create_pipeline(), catalog)["dataset_spec"].load()
    assert spec["nc"] == 80 and spec["names"][0] == "person"
    assert spec["root"] == str(tmp_path / "coco128")


def test_unknown_parameter_is_rejected(project: Path) -> None:
    with pytest.raises(ParameterError, match=r"data_ingestion\.sourse"):
        download_dataset({"sourse": "x.zip"})


def test_archive_rebuilt_at_the_same_path_is_read_again_and_the_manifest_follows(
    project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import hashlib
    import os
    import shutil

    source = tmp_path / "mine.zip"
    yaml_path = write_synthetic_dataset(tmp_path / "mine", SyntheticSpec(n_images=16), seed=0)
    zip_dataset(tmp_path / "mine", source)
    params = {"source": str(source), "name": "mine", "dataset_yaml": str(yaml_path)}
    first = download_dataset(params)
    assert len(parse_dataset_yaml(first, params)["splits"]["train"]) == 16
    stat = source.stat()
    shutil.rmtree(tmp_path / "mine")
    write_synthetic_dataset(tmp_path / "mine", SyntheticSpec(n_images=12), seed=1)
    zip_dataset(tmp_path / "mine", source)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same path, same mtime
    with caplog.at_level("WARNING"):
        second = download_dataset(params)
    assert len(parse_dataset_yaml(second, params)["splits"]["train"]) == 12
    assert second["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest() != first["sha256"]
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert str(source) in warnings and first["sha256"] in warnings and second["sha256"] in warnings
