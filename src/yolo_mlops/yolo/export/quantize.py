"""INT8 static quantisation of an exported YOLO11 with ONNX Runtime (QDQ, per-channel weights).

The network is quantised (uint8 activations, int8 weights with one scale per output channel),
the decoding after the head is not: it concatenates pixel coordinates (0..imgsz) with
probabilities (0..1) in one tensor, which a single int8 scale would round to nothing. The
network's nodes are those the exporter records as created inside ``YOLO11`` (node metadata
``pkg.torch.onnx.class_hierarchy``); in a graph without that metadata only the convolutions and
matrix products are quantised. Quantising every network node, not only the convolutions, keeps
activations in int8 between layers: on an AVX512-VNNI CPU it ran faster than fp32, while
convolutions alone (a quantise/dequantise around each SiLU) ran slower. Activation ranges come
from calibration images run through the fp32 model (min/max), letterboxed as at inference.

The file keeps the fp32 export's metadata, plus ``quantization`` and ``calibration_images``.
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from yolo_mlops.yolo.data.letterbox import letterbox_batch

logger = logging.getLogger(__name__)

#: The class whose nodes are quantised, as the exporter names it in the node metadata.
NETWORK_CLASS = "yolo_mlops.yolo.model.network.YOLO11"
#: What is quantised in a graph without the exporter's node metadata.
FALLBACK_OPS = ("Conv", "MatMul")

Item = TypeVar("Item")


def choose_calibration(items: Sequence[Item], count: int, seed: int) -> list[Item]:
    """``count`` distinct items drawn with ``numpy.random.default_rng(seed)``, in input order.

    The same ``items``, ``count`` and ``seed`` always give the same choice; all items when
    ``count`` is at least their number.
    """
    if count <= 0:
        raise ValueError(f"calibration needs at least one image, got count={count}")
    if count >= len(items):
        return list(items)
    chosen = np.random.default_rng(seed).choice(len(items), size=count, replace=False)
    return [items[int(i)] for i in sorted(chosen)]


class _LetterboxedImages(CalibrationDataReader):
    """Feeds decoded images (HWC BGR uint8) one at a time, letterboxed, as the ``images`` input."""

    def __init__(self, images: Iterable[np.ndarray], imgsz: int, input_name: str) -> None:
        self._images: Iterator[np.ndarray] = iter(images)
        self.imgsz, self.input_name, self.count = imgsz, input_name, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)
        if image is None:
            return None
        batch, _ = letterbox_batch([image], self.imgsz)
        self.count += 1
        return {self.input_name: batch.astype(np.float32) / 255}


def _in_network(node: onnx.NodeProto) -> bool | None:
    """Whether the exporter made ``node`` inside the network (``None``: no metadata to tell)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.class_hierarchy":
            return NETWORK_CLASS in prop.value
    return None


def _quantizable_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes to quantise (unnamed nodes get a name so they can be listed)."""
    inside = [_in_network(node) for node in model.graph.node]
    if not any(inside):
        inside = [node.op_type in FALLBACK_OPS for node in model.graph.node]
    names = []
    for index, (node, chosen) in enumerate(zip(model.graph.node, inside, strict=True)):
        if chosen:
            node.name = node.name or f"{node.op_type.lower()}_{index}"
            names.append(node.name)
    return names


def _quantize(model: onnx.ModelProto, work: Path, reader: CalibrationDataReader) -> onnx.ModelProto:
    """ONNX Runtime's static QDQ quantisation of ``model`` (files go through ``work``)."""
    nodes = _quantizable_nodes(model)
    onnx.save_model(model, str(work / "fp32.onnx"))
    quantize_static(
        work / "fp32.onnx",
        work / "quantized.onnx",
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=nodes,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return onnx.load(str(work / "quantized.onnx"))


def quantize_onnx(
    model_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    calibration_images: Iterable[np.ndarray],
    imgsz: int | None = None,
) -> Path:
    """Write an INT8 (QDQ) copy of the fp32 export ``model_path`` to ``output_path``.

    Args:
        model_path: an fp32 ``.onnx`` from :func:`~.onnx_export.export_onnx`.
        output_path: where the quantised model goes (folders created).
        calibration_images: decoded images (HWC BGR uint8); see :func:`choose_calibration` for a
            seeded choice. Read once, one at a time (memory stays flat).
        imgsz: letterbox size of the calibration images (default: the export's ``imgsz``).
    """
    images = iter(calibration_images)
    first = next(images, None)
    if first is None:
        raise ValueError(f"no calibration images were given to quantise {model_path}")
    model = onnx.load(str(model_path))
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    size = int(imgsz or metadata.get("imgsz", 640))
    reader = _LetterboxedImages(itertools.chain([first], images), size, model.graph.input[0].name)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_path.parent) as work:
        result = _quantize(model, Path(work), reader)
        extra = {"quantization": "int8 static QDQ, per-channel weights, minmax calibration",
                 "calibration_images": str(reader.count)}  # fmt: skip
        onnx.helper.set_model_props(result, {**metadata, **extra})
        onnx.checker.check_model(result)
        onnx.save_model(result, str(Path(work) / "int8.onnx"))
        os.replace(Path(work) / "int8.onnx", output_path)
    logger.info("quantised %s to INT8 (%d calibration images): %s", model_path, reader.count,
                output_path)  # fmt: skip
    return output_path
