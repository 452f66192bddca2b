"""Predict node: a model over ``predict.source`` → a detections table, streamed chunk by chunk.

A Kedro generator node: each chunk of images yields its detections (one Parquet part), the
running report and, with ``predict.save_images``, its annotated images; Kedro saves each as it
comes, so memory stays flat in the number of images. :mod:`.predicting` does the work.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.pipelines.predict.predicting import BLOCK, PredictParams, predict_source


def predict_images(
    parameters: dict[str, Any], tracking: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Detections of every image ``predict.source`` names (see :class:`PredictParams`);
    ``tracking`` (the ``tracking`` block) locates the registry for a ``models:/`` model.

    Yields, per chunk of ``predict.chunk_images`` images: ``detections`` (DataFrame: image,
    class, name, score, x1, y1, x2, y2 in original pixels), ``predict_report`` (images,
    detections and skipped files so far) and ``annotated_images`` (``{name: callable}``).
    """
    params = parse_params(PredictParams, parameters, BLOCK)
    for chunk in predict_source(params, tracking):
        yield {
            "detections": chunk.table,
            "predict_report": chunk.report,
            "annotated_images": chunk.annotated,
        }
