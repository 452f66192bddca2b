"""Random perspective / affine warp (spec 5.3 step 3) and the box candidate rule.

The matrix is ``M = T · S · R · P · C`` (C centres the input at the origin, P perspective,
R rotation with isotropic scale, S shear, T translation into the output).
:func:`warp_matrix` is deterministic; :func:`sample_warp` draws its parameters from a
``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from yolo_mlops.yolo.data.letterbox import PAD_VALUE
from yolo_mlops.yolo.data.mosaic import Tile


@dataclass(frozen=True)
class WarpParams:
    """One draw of the warp.

    Attributes:
        angle: rotation in degrees (counter-clockwise, OpenCV convention).
        scale: isotropic scale factor.
        shear_x, shear_y: shear angles in degrees.
        perspective_x, perspective_y: projective terms ``P[2, 0]``, ``P[2, 1]``.
        translate_x, translate_y: where the input centre lands, as a fraction of the output size
            (0.5 = centred).
    """

    angle: float = 0.0
    scale: float = 1.0
    shear_x: float = 0.0
    shear_y: float = 0.0
    perspective_x: float = 0.0
    perspective_y: float = 0.0
    translate_x: float = 0.5
    translate_y: float = 0.5


@dataclass(frozen=True)
class CandidateRule:
    """box_candidates thresholds: keep a box if w, h > ``min_size`` px, area kept / (area before ×
    scale²) > ``min_area_ratio`` and max(w/h, h/w) < ``max_aspect``."""

    min_size: float = 2.0
    min_area_ratio: float = 0.10
    max_aspect: float = 100.0


def sample_warp(
    rng: np.random.Generator,
    *,
    degrees: float,
    translate: float,
    scale: float,
    shear: float,
    perspective: float,
) -> WarpParams:
    """Draw :class:`WarpParams` uniformly within the given magnitudes (spec 4.1 names)."""
    p_x, p_y = rng.uniform(-perspective, perspective, 2)
    angle = rng.uniform(-degrees, degrees)
    factor = rng.uniform(1 - scale, 1 + scale)
    s_x, s_y = rng.uniform(-shear, shear, 2)
    t_x, t_y = rng.uniform(0.5 - translate, 0.5 + translate, 2)
    return WarpParams(
        float(angle), float(factor), float(s_x), float(s_y), float(p_x), float(p_y), float(t_x),
        float(t_y),
    )  # fmt: skip


def warp_matrix(
    params: WarpParams, in_size: tuple[int, int], out_size: tuple[int, int]
) -> np.ndarray:
    """The 3×3 matrix mapping input pixels ``(x, y, 1)`` to output pixels.

    Args:
        params: the warp.
        in_size: input ``(w, h)``; out_size: output ``(w, h)``.
    """
    centre = np.eye(3)
    centre[0, 2], centre[1, 2] = -in_size[0] / 2, -in_size[1] / 2
    persp = np.eye(3)
    persp[2, 0], persp[2, 1] = params.perspective_x, params.perspective_y
    rotate = np.eye(3)
    rotate[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=params.angle, scale=params.scale)
    shear = np.eye(3)
    shear[0, 1] = math.tan(math.radians(params.shear_x))
    shear[1, 0] = math.tan(math.radians(params.shear_y))
    move = np.eye(3)
    move[0, 2], move[1, 2] = params.translate_x * out_size[0], params.translate_y * out_size[1]
    return move @ shear @ rotate @ persp @ centre


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Warp the 4 corners of each xyxy box ``[n, 4]``; return their enclosing boxes ``[n, 4]``."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32)
    x1, y1, x2, y2 = boxes.T
    corners = np.stack(
        [np.stack([x1, y1]), np.stack([x2, y1]), np.stack([x2, y2]), np.stack([x1, y2])], axis=-1
    )  # [2, n, 4]
    points = np.concatenate([corners.reshape(2, -1), np.ones((1, corners[0].size))])  # [3, 4n]
    warped = matrix @ points
    if matrix[2, 0] != 0 or matrix[2, 1] != 0:
        warped = warped[:2] / warped[2:3]
    xs, ys = warped[0].reshape(-1, 4), warped[1].reshape(-1, 4)
    return np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1).astype(np.float32)


def box_candidates(
    before: np.ndarray, after: np.ndarray, scale: float, rule: CandidateRule = CandidateRule()
) -> np.ndarray:
    """Boolean mask ``[n]`` of boxes that survive a warp (see :class:`CandidateRule`).

    Args:
        before: boxes before the warp ``[n, 4]``; after: the same boxes warped and clipped.
        scale: the warp's scale factor (the area before is multiplied by ``scale²``).
    """
    w0, h0 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w1, h1 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    eps = 1e-16
    aspect = np.maximum(w1 / (h1 + eps), h1 / (w1 + eps))
    area_ratio = w1 * h1 / (w0 * h0 * scale**2 + eps)
    return (
        (w1 > rule.min_size)
        & (h1 > rule.min_size)
        & (area_ratio > rule.min_area_ratio)
        & (aspect < rule.max_aspect)
    )


def warp_tile(
    tile: Tile,
    params: WarpParams,
    out_size: tuple[int, int],
    rule: CandidateRule = CandidateRule(),
) -> Tile:
    """Warp a tile (image and boxes) into an ``out_size = (w, h)`` canvas, padded with 114.

    The image is warped once (``cv2.warpAffine``, or ``warpPerspective`` with a projective term);
    boxes are warped, clipped to the output and filtered by :func:`box_candidates`.
    """
    in_h, in_w = tile.image.shape[:2]
    matrix = warp_matrix(params, (in_w, in_h), out_size)
    if (in_w, in_h) == tuple(out_size) and np.allclose(matrix, np.eye(3)):
        image = tile.image
    elif params.perspective_x or params.perspective_y:
        image = cv2.warpPerspective(
            tile.image, matrix, out_size, flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3
        )
    else:
        image = cv2.warpAffine(
            tile.image, matrix[:2], out_size, flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3
        )
    boxes = transform_boxes(tile.boxes, matrix)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, out_size[0])
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, out_size[1])
    keep = box_candidates(tile.boxes, boxes, params.scale, rule)
    return Tile(image, boxes[keep], tile.classes[keep])
