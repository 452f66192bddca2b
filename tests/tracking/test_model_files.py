"""The export stage's files as the registry logs them."""

from __future__ import annotations

from pathlib import Path

from yolo_mlops.tracking.model_files import ExportedModels


def test_an_openvino_ir_travels_with_its_weights_file_and_absent_files_are_left_out():
    files = {
        "model.onnx": Path("/x/model.onnx"),
        "model_openvino.xml": Path("/x/model_openvino.xml"),
        "model_openvino.bin": Path("/x/model_openvino.bin"),
    }
    report = {
        "artifacts": {
            "onnx": {"file": "model.onnx"},
            "openvino": {"file": "model_openvino.xml", "weights": "model_openvino.bin"},
            "int8": {"file": "model_int8.onnx"},  # reported, but not among the files
        }
    }
    assert ExportedModels(files=files, report=report).artifacts() == {
        "onnx": Path("/x/model.onnx"),
        "openvino": Path("/x/model_openvino.xml"),
        "openvino_weights": Path("/x/model_openvino.bin"),
    }
