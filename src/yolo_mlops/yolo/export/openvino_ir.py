"""The OpenVINO backend: an exported YOLO11 as OpenVINO IR, run on OpenVINO's CPU plugin.

:func:`export_openvino` converts the fp32 ``.onnx`` written by :func:`~.onnx_export.export_onnx`
into IR (``model.xml`` + ``model.bin``, fp32 weights, the same dynamic ``[B, 3, H, W]`` input and
``[B, 4 + nc, A]`` output) and copies the ONNX file's metadata into the IR's ``rt_info``
(``model_info/<key>``). :class:`OpenVinoDetector` runs an IR (or an ``.onnx`` directly) with the
interface of :class:`~.runtime.OnnxRuntimeDetector` (numpy, no torch).

The ONNX file is read with ``openvino.Core.read_model`` (OpenVINO's ONNX frontend, what
``openvino.convert_model`` uses for a file) rather than ``convert_model``, whose converter sends
usage telemetry unless the user has opted out. Inference runs at fp32
(``INFERENCE_PRECISION_HINT``): on a CPU with bf16 or AMX, OpenVINO's default is bf16, which
would break the parity with the PyTorch model.

``openvino`` is an optional dependency (the ``openvino`` extra); this module imports it, so
import the module only where OpenVINO is wanted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
import openvino as ov

from yolo_mlops.yolo.export.runtime import ExportedDetector, OnnxModelError, Signature

logger = logging.getLogger(__name__)

#: ``rt_info`` section holding the export metadata (the key the reference's IR uses too).
RT_INFO_SECTION = "model_info"
#: CPU plugin settings: fp32 arithmetic (parity), latency-oriented streams.
CPU_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}


def onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (weights not loaded)."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # DecodeError and friends: an unreadable file
        raise OnnxModelError(f"{path}: not a readable ONNX model ({error})") from error
    return {prop.key: prop.value for prop in proto.metadata_props}


def export_openvino(onnx_path: str | os.PathLike[str], xml_path: str | os.PathLike[str]) -> Path:
    """Convert an exported ``.onnx`` to OpenVINO IR at ``xml_path`` (``.bin`` beside it).

    Weights stay fp32; the ONNX metadata is copied into ``rt_info``. Returns ``xml_path``.
    """
    xml_path = Path(xml_path)
    try:
        model = ov.Core().read_model(str(onnx_path))
    except RuntimeError as error:
        raise OnnxModelError(f"{onnx_path}: OpenVINO cannot read it ({error})") from error
    for key, value in onnx_metadata(onnx_path).items():
        model.set_rt_info(value, [RT_INFO_SECTION, key])
    model.set_rt_info("openvino " + ov.get_version().split("-")[0], [RT_INFO_SECTION, "converter"])
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    logger.info("converted %s to OpenVINO IR %s", onnx_path, xml_path)
    return xml_path


def _rt_metadata(model: ov.Model) -> dict[str, str]:
    if not model.has_rt_info([RT_INFO_SECTION]):
        return {}
    return {key: value.astype(str) for key, value in model.get_rt_info()[RT_INFO_SECTION].items()}


def _dims(shape: ov.PartialShape) -> list:
    return [dim.get_length() if dim.is_static else None for dim in shape]


class OpenVinoDetector(ExportedDetector):
    """An exported YOLO11 (IR ``.xml``, or ``.onnx``) compiled for OpenVINO's CPU plugin."""

    backend = "openvino"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        num_classes: int | None = None,
        threads: int | None = None,
    ) -> None:
        """Open and check ``path``; ``num_classes``, if given, must equal the model's."""
        super().__init__(path, num_classes=num_classes, threads=threads)

    def _open(self, threads: int | None) -> dict[str, str]:
        core = ov.Core()
        try:
            self.model = core.read_model(str(self.path))
        except RuntimeError as error:
            raise OnnxModelError(
                f"{self.path}: not a readable OpenVINO IR or ONNX model ({error}); export it "
                "again with `kedro run --pipelines export`"
            ) from error
        config = {**CPU_CONFIG, **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
        self.compiled = core.compile_model(self.model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        if self.path.suffix.lower() == ".onnx":
            return onnx_metadata(self.path)
        return _rt_metadata(self.model)

    def _signature(self) -> Signature:
        inputs = [
            (i.get_any_name(), _dims(i.get_partial_shape()), i.get_element_type() == ov.Type.f32)
            for i in self.model.inputs
        ]
        output = self.model.outputs[0]
        return Signature(inputs, output.get_any_name(), _dims(output.get_partial_shape()))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: np.ascontiguousarray(batch)}, share_inputs=True)
        return self.request.get_output_tensor(0).data.copy()  # the request reuses its buffer
