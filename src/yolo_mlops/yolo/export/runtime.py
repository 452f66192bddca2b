"""Exported YOLO11 models run without torch: the shared checks, and the ONNX Runtime backend.

:class:`ExportedDetector` holds what every runtime of an exported file shares: the contract of
the graph (input ``images`` float32 ``[B, 3, H, W]`` RGB in [0, 1], first output
``[B, 4 + nc, A]`` decoded as the reference's ``output0``), the metadata (class names, strides,
imgsz), the checks, and :meth:`ExportedDetector.detect_images`, the whole predict path
(letterbox, run, numpy NMS, back to original pixels) for serving without torch. A runtime
subclass opens the file and runs a batch:

* :class:`OnnxRuntimeDetector` (here): a ``.onnx`` file in an ONNX Runtime session;
* :class:`~.openvino_runtime.OpenVinoDetector`: an OpenVINO IR ``.xml`` (or a ``.onnx``) on
  OpenVINO's CPU plugin.

Every problem with the file raises :class:`OnnxModelError` naming it: unreadable or truncated
file, a graph whose output is not ``[B, 4 + nc, A]``, or a class count other than the one the
caller expects.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from yolo_mlops.yolo.data.letterbox import letterbox_batch
from yolo_mlops.yolo.export.postprocess import (
    ImageDetections,
    non_max_suppression,
    to_original,
)

INPUT_NAME = "images"
DEFAULT_STRIDES = (8, 16, 32)


class OnnxModelError(ValueError):
    """An exported file that is not a usable exported YOLO11; the message names the file."""


@dataclass(frozen=True)
class Signature:
    """A graph's input and first output as a runtime reports them.

    Attributes:
        inputs: ``(name, shape, is float32)`` of every input; a shape entry is an ``int`` or,
            for a dynamic axis, anything else (a name, ``None``, ``-1``).
        output_name: the first output's name.
        output_shape: its shape, entries as in ``inputs``.
    """

    inputs: list[tuple[str, list, bool]]
    output_name: str
    output_shape: list


def _parse_list(text: str) -> list | dict:
    """Metadata values: JSON (ours) or a Python literal (the reference's ``names`` dict)."""
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)


def _names_from(metadata: Mapping[str, str], path: Path) -> list[str] | None:
    if "names" not in metadata:
        return None
    try:
        names = _parse_list(metadata["names"])
    except (ValueError, SyntaxError) as error:
        raise OnnxModelError(f"{path}: metadata 'names' is not a list or dict ({error})") from None
    if isinstance(names, dict):  # the reference writes {0: 'person', 1: 'bicycle', ...}
        names = [names[key] for key in sorted(names)]
    return [str(name) for name in names]


class ExportedDetector:
    """An exported YOLO11 in some runtime (a subclass says which); see the module docstring.

    Attributes:
        path: the model file.
        names: class names (from the file's metadata; ``class<i>`` when it has none).
        nc: number of classes.
        strides: head strides (metadata ``stride``; 8, 16, 32 by default).
        imgsz: the export's nominal image size (metadata ``imgsz``; 640 by default).
        metadata: every metadata entry of the file.
    """

    #: The name :func:`yolo_mlops.yolo.inference.load_detector` knows the runtime by.
    backend = ""

    def __init__(
        self, path: str | os.PathLike[str], *, num_classes: int | None, threads: int | None
    ) -> None:
        """Open and check ``path``; ``num_classes``, if given, must equal the model's."""
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"exported model not found: {self.path}")
        self.metadata = self._open(threads)
        self.nc = self._check_signature(self._signature())
        self.names = _names_from(self.metadata, self.path) or [f"class{i}" for i in range(self.nc)]
        if len(self.names) != self.nc:
            raise OnnxModelError(
                f"{self.path}: metadata has {len(self.names)} class names but the graph predicts "
                f"{self.nc} classes"
            )
        stride = _parse_list(self.metadata.get("stride", "null"))
        self.strides = (
            tuple(int(s) for s in stride) if isinstance(stride, list) else DEFAULT_STRIDES
        )
        imgsz = _parse_list(self.metadata.get("imgsz", "640"))
        self.imgsz = int(max(imgsz) if isinstance(imgsz, list) else imgsz)
        if num_classes is not None and num_classes != self.nc:
            raise OnnxModelError(
                f"{self.path}: the model predicts {self.nc} classes but {num_classes} were "
                "expected; export a model trained on this dataset's classes"
            )

    # ------------------------------------------------------------------ what a runtime provides
    def _open(self, threads: int | None) -> dict[str, str]:
        """Load ``self.path`` (``threads``: intra-op threads, None = all cores); its metadata."""
        raise NotImplementedError

    def _signature(self) -> Signature:
        """The loaded graph's input and first output."""
        raise NotImplementedError

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """The first output of the graph for ``float32 [B, 3, H, W]``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def _check_signature(self, signature: Signature) -> int:
        """Number of classes the graph's output ``[B, 4 + nc, A]`` declares; checks the input."""
        inputs = signature.inputs
        if len(inputs) != 1 or len(inputs[0][1]) != 4 or not inputs[0][2]:
            raise OnnxModelError(
                f"{self.path}: expected one float input [B, 3, H, W], found {inputs}"
            )
        shape = signature.output_shape
        meta_nc = self.metadata.get("nc")
        width = shape[1] if len(shape) == 3 else None
        if not isinstance(width, int) and meta_nc is not None:
            width = int(meta_nc) + 4  # a dynamic class axis: trust the metadata, check at run time
        if len(shape) != 3 or not isinstance(width, int) or width < 5:
            raise OnnxModelError(
                f"{self.path}: output {signature.output_name!r} has shape {shape}; expected "
                "decoded predictions [batch, 4 + nc, anchors] (export with NMS outside the graph)"
            )
        return width - 4

    def anchors(self, height: int, width: int) -> int:
        """Number of anchor points of an ``height × width`` input (Σ over strides of cells)."""
        return sum((height // s) * (width // s) for s in self.strides)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Decoded predictions ``float32 [B, 4 + nc, A]`` of a letterboxed batch.

        ``images``: ``uint8 [B, 3, H, W]`` RGB (scaled by 1/255 here) or float32 in [0, 1].
        """
        if images.dtype == np.uint8:
            batch = images.astype(np.float32) / 255  # a division, as the torch path does
        else:
            batch = images.astype(np.float32, copy=False)
        output = self._run(batch)
        expected = (batch.shape[0], 4 + self.nc, self.anchors(*batch.shape[2:]))
        if output.shape != expected:
            raise OnnxModelError(
                f"{self.path}: output shape {output.shape} for input {batch.shape}; expected "
                f"{expected} = [batch, 4 + nc, anchors]"
            )
        return output

    def detect_images(
        self,
        images: Sequence[np.ndarray],
        imgsz: int | None = None,
        *,
        conf: float = 0.25,
        iou: float = 0.7,
        max_det: int = 300,
    ) -> list[ImageDetections]:
        """Detections of decoded images (HWC BGR uint8, any sizes) in their original pixels.

        The predict path of :func:`yolo_mlops.yolo.inference.detect_images` without torch:
        letterbox (smallest stride multiple for same-shape batches), run, numpy NMS, unletterbox.
        """
        if not images:
            return []
        batch, boxed = letterbox_batch(images, imgsz or self.imgsz, max(self.strides))
        found = non_max_suppression(self(batch), conf=conf, iou=iou, max_det=max_det)
        return [to_original(rows, item.gain, item.pad, image.shape[:2])
                for rows, item, image in zip(found, boxed, images, strict=True)]  # fmt: skip


class OnnxRuntimeDetector(ExportedDetector):
    """An exported ``.onnx`` in an ONNX Runtime session (all graph optimisations on)."""

    backend = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        num_classes: int | None = None,
        threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        """Open and check ``path``; ``num_classes``, if given, must equal the model's."""
        self.providers = list(providers)
        super().__init__(path, num_classes=num_classes, threads=threads)

    def _open(self, threads: int | None) -> dict[str, str]:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0 = ONNX Runtime's choice (all cores)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=self.providers)
        except Exception as error:  # InvalidProtobuf, Fail, NotImplemented: all "unreadable"
            raise OnnxModelError(
                f"{self.path}: not a readable ONNX model ({type(error).__name__}: {error}); "
                "re-export it with yolo_mlops.yolo.export.onnx_export.export_onnx"
            ) from error
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def _signature(self) -> Signature:
        inputs = [(i.name, list(i.shape), i.type == "tensor(float)")
                  for i in self.session.get_inputs()]  # fmt: skip
        output = self.session.get_outputs()[0]
        return Signature(inputs, output.name, list(output.shape))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.session.get_inputs()[0].name: batch})[0]
