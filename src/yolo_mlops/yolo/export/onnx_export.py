"""Export a YOLO11 to ONNX with the decoded output of the reference's ``output0``.

The graph: input ``images`` float32 ``[batch, 3, height, width]`` RGB in [0, 1] (height and width
multiples of 32, every axis dynamic, so rectangular batches run); output ``output0`` float32
``[batch, 4 + nc, anchors]``: (centre-x, centre-y, w, h) in input pixels, then the class scores
after the sigmoid. NMS stays outside the graph (:mod:`.postprocess`). BatchNorms are folded into
the convolutions first (the model is copied, the caller's is untouched).

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript). The TorchScript
exporter (``dynamo=False``) gives the same numbers and, after ONNX Runtime's graph optimisation,
the same speed, but it is deprecated and leaves the class axis of the output unnamed-dynamic;
the dynamo graph states ``4 + nc`` and ``height = 32·k`` in its signature, which the runtime
checks rely on.

Simplification (``ExportSettings.simplify``, on by default): the exporter's ``optimize`` step,
onnxscript's optimiser (constant folding, unused-node and identity removal, common
subexpressions, pattern rewrites). On YOLO11n it takes the graph from 583 to 418 nodes with the
same outputs (fp32 parity holds) and ONNX Runtime a little faster; a second pass of onnxscript's
optimiser or onnx_ir's common passes changes nothing more (every axis is dynamic, so the anchor
grid cannot be folded). The metadata key ``simplified`` says whether it ran.

Metadata (``metadata_props``, read back by :class:`.runtime.OnnxRuntimeDetector`): ``task``,
``names`` and ``stride`` (JSON lists), ``nc``, ``imgsz``, ``scale``, ``checkpoint_sha256``,
``yolo_mlops_version``, ``opset``, ``exporter``, ``simplified``, ``output`` (the layout in words).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch
from torch import nn

from yolo_mlops.yolo.file_modes import honour_umask
from yolo_mlops.yolo.io.checkpoint import model_from_checkpoint, read_checkpoint
from yolo_mlops.yolo.io.format import LIBRARY_VERSION
from yolo_mlops.yolo.model.decode import decode
from yolo_mlops.yolo.model.network import YOLO11

logger = logging.getLogger(__name__)

#: ONNX opset written by default: the dynamo exporter's native floor, run by ONNX Runtime >= 1.14.
DEFAULT_OPSET = 18
OUTPUT_LAYOUT = "[batch, 4 + nc, anchors]: cx, cy, w, h (input pixels), class scores (sigmoid)"


@dataclass(frozen=True)
class ExportSettings:
    """What goes into an export besides the model.

    Attributes:
        imgsz: the nominal image side recorded in the metadata (inputs of any 32-multiple run).
        opset: ONNX opset of the graph.
        checkpoint_sha256: sha256 of the source checkpoint file ("" when exported from memory).
        simplify: run onnxscript's graph optimiser on the exported graph (module docstring).
        extra_metadata: more ``metadata_props`` entries (strings).
    """

    imgsz: int = 640
    opset: int = DEFAULT_OPSET
    checkpoint_sha256: str = ""
    simplify: bool = True
    extra_metadata: dict[str, str] = field(default_factory=dict)


class DecodedYOLO(nn.Module):
    """A YOLO11 whose forward returns the decoded ``[B, 4 + nc, A]`` (what the graph computes)."""

    def __init__(self, model: YOLO11) -> None:
        super().__init__()
        self.model = model
        self.strides = [int(s) for s in model.stride]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``float [B, 3, H, W]`` in [0, 1] → ``[B, 4 + nc, A]``."""
        return decode(self.model(images), self.strides)


def export_metadata(model: YOLO11, settings: ExportSettings) -> dict[str, str]:
    """The ``metadata_props`` written into the file (all values strings)."""
    return {
        "task": "detect",
        "names": json.dumps(list(model.names)),
        "nc": str(model.nc),
        "stride": json.dumps([int(s) for s in model.stride]),
        "imgsz": str(settings.imgsz),
        "scale": str(model.scale),
        "checkpoint_sha256": settings.checkpoint_sha256,
        "yolo_mlops_version": LIBRARY_VERSION,
        "opset": str(settings.opset),
        "exporter": f"torch.onnx dynamo (torch {torch.__version__.split('+')[0]})",
        "simplified": json.dumps(settings.simplify),
        "output": OUTPUT_LAYOUT,
        **settings.extra_metadata,
    }


def _trace(model: YOLO11, opset: int, simplify: bool) -> onnx.ModelProto:
    """The decoded, fused model as an ONNX proto with dynamic batch/height/width axes
    (``simplify``: through onnxscript's optimiser)."""
    wrapper = DecodedYOLO(copy.deepcopy(model).float().cpu().eval().fuse()).eval()
    example = torch.zeros(2, 3, 64, 96)  # any 32-multiple; small keeps tracing quick
    batch = torch.export.Dim("batch", min=1)
    rows, cols = torch.export.Dim("rows", min=1), torch.export.Dim("cols", min=1)
    program = torch.onnx.export(
        wrapper,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=["images"],
        output_names=["output0"],
        dynamic_shapes={"images": {0: batch, 2: 32 * rows, 3: 32 * cols}},
        optimize=simplify,
        verbose=False,
    )
    image_shape = program.model.graph.inputs[0].shape
    program.rename_axes({image_shape[2]: "height", image_shape[3]: "width"})
    program.rename_axes({program.model.graph.outputs[0].shape[2]: "anchors"})
    return program.model_proto


def export_onnx(
    model: YOLO11, path: str | os.PathLike[str], settings: ExportSettings | None = None
) -> Path:
    """Write ``model`` as ONNX to ``path`` (atomically; folders created); returns the path.

    The file passes ``onnx.checker`` (full check, shapes inferred) before it is published.
    """
    settings = settings or ExportSettings()
    path = Path(path)
    proto = _trace(model, settings.opset, settings.simplify)
    onnx.helper.set_model_props(proto, export_metadata(model, settings))
    proto.doc_string = f"YOLO11{model.scale} ({model.nc} classes), decoded output {OUTPUT_LAYOUT}"
    onnx.checker.check_model(proto, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        onnx.save_model(proto, tmp_name)
        honour_umask(tmp_name)  # mkstemp made it 0600
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    logger.info(
        "exported YOLO11%s to %s (opset %d, %d nodes%s)",
        model.scale,
        path,
        settings.opset,
        len(proto.graph.node),
        ", simplified" if settings.simplify else "",
    )
    return path


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    path: str | os.PathLike[str],
    imgsz: int | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export a checkpoint file (ours or Ultralytics') to ONNX; its sha256 goes in the metadata.

    ``imgsz`` defaults to the checkpoint's training size (640 when it records none).
    """
    ckpt = read_checkpoint(checkpoint)
    size = int(imgsz or ckpt["config"].get("imgsz") or 640)
    settings = ExportSettings(imgsz=size, opset=opset, checkpoint_sha256=file_sha256(checkpoint))
    return export_onnx(model_from_checkpoint(ckpt), path, settings)
