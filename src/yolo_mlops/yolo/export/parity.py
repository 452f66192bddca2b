"""Parity of an exported model with its PyTorch model: decoded outputs on the same inputs.

Each image is letterboxed alone (batch 1, the smallest stride-multiple canvas, so rectangular
shapes are covered) and run through both models; the figures are the largest differences of the
decoded ``[1, 4 + nc, A]`` outputs over every anchor:

* ``max_score_diff``: absolute, class probabilities (fp32 exports stay within 1e-4);
* ``max_box_diff_px``: absolute, box centre/size in input pixels;
* ``max_box_diff_rel``: ``|Δ| / max(|reference|, 1 px)`` (fp32 exports stay within 1e-3).

The PyTorch side is the same fused, decoded model the export traced
(:class:`~.onnx_export.DecodedYOLO`), on a copy: the caller's model is not fused.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from yolo_mlops.yolo.data.letterbox import letterbox_batch
from yolo_mlops.yolo.export.onnx_export import DecodedYOLO
from yolo_mlops.yolo.export.runtime import ExportedDetector
from yolo_mlops.yolo.model.network import YOLO11


@dataclass(frozen=True)
class Parity:
    """Largest differences of an exported model's decoded output from the PyTorch model's.

    Attributes:
        images: how many images were compared.
        max_score_diff: absolute difference of class probabilities.
        max_box_diff_px: absolute difference of box (cx, cy, w, h), input pixels.
        max_box_diff_rel: box difference relative to the PyTorch value (at least 1 px).
    """

    images: int
    max_score_diff: float
    max_box_diff_px: float
    max_box_diff_rel: float

    def within(self, score_tolerance: float, box_tolerance: float) -> bool:
        """Scores within ``score_tolerance`` (absolute), boxes within ``box_tolerance`` (rel.)."""
        return self.max_score_diff <= score_tolerance and self.max_box_diff_rel <= box_tolerance

    def record(self) -> dict[str, float | int]:
        """Plain dict for JSON reports."""
        return asdict(self)


def decoded_parity(
    model: YOLO11, exported: ExportedDetector, images: Iterable[np.ndarray], imgsz: int
) -> Parity:
    """Compare ``exported`` with ``model`` on decoded images (HWC BGR uint8, any sizes).

    Raises:
        ValueError: no image was given.
    """
    fused = copy.deepcopy(model).float().cpu().eval().fuse()  # the caller's model is untouched
    reference_model = DecodedYOLO(fused).eval()
    count, score, box_px, box_rel = 0, 0.0, 0.0, 0.0
    for image in images:
        batch, _ = letterbox_batch([image], imgsz, max(exported.strides))
        with torch.inference_mode():
            reference = reference_model(torch.from_numpy(batch).float() / 255).numpy()
        found = exported(batch)
        box_diff = np.abs(found[:, :4] - reference[:, :4])
        score = max(score, float(np.abs(found[:, 4:] - reference[:, 4:]).max()))
        box_px = max(box_px, float(box_diff.max()))
        box_rel = max(box_rel, float((box_diff / np.maximum(np.abs(reference[:, :4]), 1)).max()))
        count += 1
    if not count:
        raise ValueError("parity needs at least one image")
    return Parity(count, score, box_px, box_rel)
