"""The export stage on a synthetic image cache with a small YOLO11n: files, report, parity gate."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from tests.conftest import PROJECT_ROOT
from tests.pipelines.preprocess.helpers import synthetic_cache
from tests.yolo.export.conftest import small_model
from yolo_mlops.datasets.checkpoint_dataset import CheckpointDataset
from yolo_mlops.pipelines.export import create_pipeline, exporting
from yolo_mlops.pipelines.export.exporting import ExportParityError
from yolo_mlops.pipelines.export.nodes import export_model
from yolo_mlops.pipelines.params import ParameterError, parse_params
from yolo_mlops.yolo.export.onnx_export import file_sha256
from yolo_mlops.yolo.export.parity import Parity
from yolo_mlops.yolo.export.runtime import OnnxRuntimeDetector
from yolo_mlops.yolo.io.checkpoint import make_config, save_checkpoint

IMGSZ = 64
PARAMS = {"calibration_images": 3, "parity_images": 2}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    return synthetic_cache(tmp_path_factory.mktemp("export"), imgsz=IMGSZ)


@pytest.fixture(scope="module")
def checkpoint_file(cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = small_model()
    config = make_config(scale="n", nc=3, names=list(cache.names), imgsz=IMGSZ)
    path = tmp_path_factory.mktemp("models") / "best.pt"
    return save_checkpoint(path, state_dict=model.state_dict(), config=config)


@pytest.fixture(scope="module")
def run(cache, checkpoint_file, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline run once through catalog datasets like conf/base's; the data folder."""
    root = tmp_path_factory.mktemp("run")
    catalog = DataCatalog.from_config(
        {
            "model_checkpoint": {
                "type": "yolo_mlops.datasets.checkpoint_dataset.CheckpointDataset",
                "filepath": str(checkpoint_file),
            },
            "exported_models": {
                "type": "yolo_mlops.datasets.exported_models_dataset.ExportedModelsDataset",
                "path": str(root / "06_models/export"),
            },
            "export_report": {"type": "json.JSONDataset", "filepath": str(root / "export.json")},
        }
    )
    catalog["image_cache"] = MemoryDataset(cache, copy_mode="assign")
    catalog["params:export"] = MemoryDataset(PARAMS)
    SequentialRunner().run(create_pipeline(), catalog)
    return root


def test_pipeline_writes_fp32_and_int8_models_and_a_report(run, checkpoint_file):
    files = sorted(p.name for p in (run / "06_models/export").iterdir())
    assert files == ["model.onnx", "model_int8.onnx"]
    report = json.loads((run / "export.json").read_text())
    assert report["imgsz"] == IMGSZ and report["opset"] == 18
    assert report["simplified"] is True and report["onnx_nodes"] > 0
    assert report["calibration"] == {"split": "train", "images": 3, "seed": 0}
    fp32, int8 = report["artifacts"]["onnx"], report["artifacts"]["int8"]
    assert fp32["parity_passed"] and fp32["parity_gated"] and not int8["parity_gated"]
    assert fp32["parity"]["images"] == 2 and fp32["parity"]["max_score_diff"] < 1e-4
    assert fp32["bytes"] == (run / "06_models/export/model.onnx").stat().st_size
    # the sha256 recorded in the file and the report is the checkpoint file's own
    assert report["checkpoint_sha256"] == file_sha256(checkpoint_file)
    detector = OnnxRuntimeDetector(run / "06_models/export/model_int8.onnx", num_classes=3)
    assert detector.metadata["checkpoint_sha256"] == file_sha256(checkpoint_file)
    assert detector.metadata["calibration_images"] == "3"


@pytest.mark.parametrize("env", ["base", "ci"])
def test_the_configured_export_blocks_parse(env):
    block = yaml.safe_load((PROJECT_ROOT / "conf" / env / "parameters_export.yml").read_text())
    params = parse_params(exporting.ExportParams, block["export"], "export")
    assert params.formats == ("onnx", "int8")


def test_fp32_only_writes_no_int8_file_and_removes_a_stale_one(cache, checkpoint_file, tmp_path):
    from yolo_mlops.datasets.exported_models_dataset import ExportedModelsDataset

    folder = ExportedModelsDataset(path=str(tmp_path / "export"))
    (tmp_path / "export").mkdir()
    (tmp_path / "export/model_int8.onnx").write_bytes(b"stale")
    checkpoint = CheckpointDataset(filepath=str(checkpoint_file)).load()
    outputs = export_model(checkpoint, cache, {**PARAMS, "formats": ["onnx"]})
    assert list(outputs["exported_models"]) == ["model.onnx"]
    assert list(outputs["export_report"]["artifacts"]) == ["onnx"]
    folder.save(outputs["exported_models"])
    assert list(folder.load()) == ["model.onnx"]
    onnx.checker.check_model(str(folder.load()["model.onnx"]))


def test_openvino_writes_the_ir_and_its_weights_with_gated_parity(cache, checkpoint_file):
    pytest.importorskip("openvino", reason="the optional openvino package is not installed")
    checkpoint = CheckpointDataset(filepath=str(checkpoint_file)).load()
    outputs = export_model(checkpoint, cache, {**PARAMS, "formats": ["onnx", "openvino"]})
    files = outputs["exported_models"]
    assert sorted(files) == ["model.onnx", "model_openvino.bin", "model_openvino.xml"]
    record = outputs["export_report"]["artifacts"]["openvino"]
    assert record["file"] == "model_openvino.xml" and record["weights"] == "model_openvino.bin"
    assert record["parity_gated"] and record["parity_passed"]
    assert record["parity"]["max_score_diff"] < 1e-4


def test_an_export_failing_parity_stops_the_run(cache, checkpoint_file, monkeypatch):
    def far_off(*args, **kwargs):
        return Parity(images=2, max_score_diff=0.3, max_box_diff_px=4.0, max_box_diff_rel=0.1)

    monkeypatch.setattr(exporting, "decoded_parity", far_off)
    checkpoint = CheckpointDataset(filepath=str(checkpoint_file)).load()
    with pytest.raises(ExportParityError, match=r"model\.onnx: .*export\.score_tolerance"):
        export_model(checkpoint, cache, {**PARAMS, "formats": ["onnx"]})


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"formats": ["int8", "onnx"]}, "must start with 'onnx'"),
        ({"formats": ["onnx", "tensorrt"]}, r"export\.formats\[1\]"),
        ({"imgsz": 100}, "multiple of 32"),
        ({"calibration_images": 0}, ">= 1"),
        ({"calibrate": 4}, r"export\.calibrate"),
    ],
)
def test_invalid_parameters_are_rejected(cache, parameters, message):
    with pytest.raises(ParameterError, match=message):
        export_model({}, cache, parameters)
