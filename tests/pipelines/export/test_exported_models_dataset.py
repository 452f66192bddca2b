"""ExportedModelsDataset: one folder of model files, written atomically, stale formats removed."""

from __future__ import annotations

import os

import pytest
from kedro.io import DatasetError

from yolo_mlops.datasets.exported_models_dataset import ExportedModelsDataset


def test_saves_loads_and_removes_files_no_longer_exported(tmp_path):
    dataset = ExportedModelsDataset(path=str(tmp_path / "export"))
    assert not dataset.exists()
    dataset.save({"model.onnx": b"fp32", "model_int8.onnx": b"int8"})
    assert {name: path.read_bytes() for name, path in dataset.load().items()} == {
        "model.onnx": b"fp32",
        "model_int8.onnx": b"int8",
    }
    (tmp_path / "export" / "notes.txt").write_text("not a model: left alone")
    dataset.save({"model.onnx": b"fp32 again"})
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["model.onnx", "notes.txt"]
    assert not [p for p in (tmp_path / "export").iterdir() if p.name.endswith(".tmp")]


def test_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        ExportedModelsDataset(path=str(tmp_path)).save({"model.onnx": b"x"})
    finally:
        os.umask(old)
    assert (tmp_path / "model.onnx").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("name", ["../model.onnx", "model.pt", "sub/model.onnx"])
def test_refuses_names_outside_the_folder_or_of_other_kinds(tmp_path, name):
    with pytest.raises(DatasetError, match="plain file name"):
        ExportedModelsDataset(path=str(tmp_path)).save({name: b"x"})


def test_loading_an_empty_folder_says_how_to_export(tmp_path):
    with pytest.raises(DatasetError, match="kedro run --pipelines export"):
        ExportedModelsDataset(path=str(tmp_path)).load()
