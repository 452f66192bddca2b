"""`kedro run --pipelines data` end to end through a KedroSession, in a copy of the project.

The project's conf/ and pyproject.toml are copied into tmp_path, so nothing is written into the
real project's data/ folder; the archive is served over loopback HTTP like the real download.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.conftest import PROJECT_ROOT
from tests.ingestion.http_server import ServerState, serve
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset, zip_dataset

pytestmark = pytest.mark.integration

COCO128_SHA256 = "e19004a374c9d3c2d986ebd32662d19e38dde978ef8f3966aacc9c9d4f605322"
LAYERS = ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input", "06_models",
          "07_model_output", "08_reporting")  # fmt: skip


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away copy of the project skeleton (conf + pyproject) as the working directory."""
    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "src").mkdir()  # Kedro wants a source folder; the package itself is installed
    for layer in LAYERS:
        (root / "data" / layer).mkdir(parents=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    bootstrap_project(root)
    return root


def _run_data_pipeline(project: Path, params: dict[str, Any], name: str = "data") -> None:
    """``kedro run --pipelines data`` in the copied project."""
    runtime = {"tracking": {"enabled": False}, **params}
    with KedroSession.create(project_path=project, env="local", runtime_params=runtime) as session:
        session.run(pipeline_name=name)


def _real_data_listing() -> list[tuple[str, int]]:
    data = PROJECT_ROOT / "data"
    return sorted((str(p), p.stat().st_mtime_ns) for p in data.rglob("*")) if data.is_dir() else []


def test_data_pipeline_on_a_synthetic_dataset(project: Path, tmp_path: Path) -> None:
    yaml_path = write_synthetic_dataset(tmp_path / "synth", SyntheticSpec(n_images=8), seed=0)
    archive = zip_dataset(tmp_path / "synth", tmp_path / "synth.zip")
    state = ServerState(files={"/synth.zip": archive.read_bytes()})
    real_data_before = _real_data_listing()
    with serve(state) as base:
        params = {
            "data_ingestion": {"source": f"{base}/synth.zip", "name": "synth", "sha256": None,
                               "dataset_yaml": str(yaml_path), "retries": 0},
            "data_validation": {"workers": 1, "progress": False},
        }  # fmt: skip
        _run_data_pipeline(project, params)
        _run_data_pipeline(project, params)  # second run: archive present and valid
    assert len(state.requests) == 1
    reporting = project / "data" / "08_reporting"
    summary = json.loads((reporting / "validation_summary.json").read_text())
    keys = ("images", "labelled", "backgrounds", "corrupt", "orphan_labels")
    assert [summary[k] for k in keys] == [8, 7, 1, 0, 1]
    assert (reporting / "class_distribution.png").read_bytes()[:4] == b"\x89PNG"
    per_class = pd.read_csv(reporting / "instances_per_class.csv")
    assert per_class["instances"].sum() == summary["instances"]
    problems = pd.read_csv(reporting / "label_problems.csv")
    assert list(problems["code"]) == ["orphan_label"]
    assert problems["file"].iloc[0].startswith("data/01_raw/synth/labels/")
    clean = pd.read_parquet(project / "data" / "03_primary" / "clean_labels.parquet")
    assert len(clean) == 2 * summary["instances"]
    assert clean["image_path"].str.startswith("data/01_raw/synth/images/").all()
    index = pd.read_parquet(project / "data" / "03_primary" / "image_index.parquet")
    assert set(index["split"]) == {"train", "val"} and len(index) == 16
    manifest = json.loads((project / "data" / "01_raw" / "dataset_manifest.json").read_text())
    assert manifest["root"] == "data/01_raw/synth"
    assert _real_data_listing() == real_data_before


def test_pipeline_name_data_runs_both_stages(project: Path, tmp_path: Path) -> None:
    write_synthetic_dataset(tmp_path / "synth", SyntheticSpec(n_images=2), seed=0)
    params = {"data_ingestion": {"source": str(tmp_path / "synth"), "name": "synth", "sha256": None,
                                 "dataset_yaml": str(tmp_path / "synth" / "dataset.yaml")},
              "data_validation": {"workers": 1, "progress": False}}  # fmt: skip
    _run_data_pipeline(project, params, name="data")
    assert (project / "data" / "08_reporting" / "validation_summary.json").is_file()


@pytest.mark.coco128
def test_data_pipeline_on_coco128_over_http_reproduces_the_reference_figures(
    project: Path, coco128_zip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = ServerState(files={"/coco128.zip": coco128_zip.read_bytes()})
    with serve(state) as base, caplog.at_level(logging.INFO):
        _run_data_pipeline(
            project,
            {
                "data_ingestion": {"source": f"{base}/coco128.zip", "sha256": COCO128_SHA256},
                "data_validation": {"workers": 2, "progress": False},
            },
        )
    summary = json.loads(
        (project / "data" / "08_reporting" / "validation_summary.json").read_text()
    )
    keys = ("images", "labelled", "backgrounds", "corrupt", "instances")
    assert [summary[k] for k in keys] == [128, 126, 2, 0, 929]
    assert summary["orphan_labels"] == 2
    assert [Path(p).stem for p in summary["orphan_label_files"]] == ["000000000656", "000000000659"]
    assert summary["classes_present"] == 71
    assert "instances_per_class" not in summary
    per_class = pd.read_csv(project / "data" / "08_reporting" / "instances_per_class.csv")
    assert len(per_class) == 80 and (per_class["instances"] > 0).sum() == 71
    assert per_class.set_index("class").loc["person", "instances"] == 254
    expected = (
        "128 images, 126 labelled, 2 backgrounds, 0 corrupt, 929 instances, 2 orphan label files"
    )
    assert expected in caplog.text
    index = pd.read_parquet(project / "data" / "03_primary" / "image_index.parquet")
    backgrounds = index[(index["split"] == "train") & (index["status"] == "background")]
    assert sorted(Path(p).stem for p in backgrounds["image_path"]) == [
        "000000000250",
        "000000000508",
    ]


def test_report_and_summary_exist_when_validation_stops_the_run(
    project: Path, tmp_path: Path
) -> None:
    write_synthetic_dataset(tmp_path / "synth", SyntheticSpec(n_images=4), seed=0)
    first_label = sorted((tmp_path / "synth" / "labels").rglob("*.txt"))[0]
    first_label.write_text("0 0.5 0.5 0.2\n")  # 4 columns: a problem
    params = {"data_ingestion": {"source": str(tmp_path / "synth"), "name": "synth", "sha256": None,
                                 "dataset_yaml": str(tmp_path / "synth" / "dataset.yaml")},
              "data_validation": {"workers": 1, "progress": False, "policy": "fail"}}  # fmt: skip
    with pytest.raises(Exception, match=r"policy=fail.*data/08_reporting/label_problems\.csv"):
        _run_data_pipeline(project, params, name="data")
    reporting = project / "data" / "08_reporting"
    problems = pd.read_csv(reporting / "label_problems.csv")
    assert "wrong_column_count" in set(problems["code"])
    summary = json.loads((reporting / "validation_summary.json").read_text())
    assert summary["status"] == "failed" and "policy=fail" in summary["reason"]
