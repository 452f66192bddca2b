"""Kedro dataset for our checkpoint files (format of ``yolo_mlops.yolo.io.checkpoint``).

``save`` takes the checkpoint dict (``format``, ``format_version``, ``config``, ``state_dict``,
``training``) and writes it atomically (temporary file in the same folder, fsync, ``os.replace``),
so an interrupted run never leaves half a file; ``load`` reads it back with
``torch.load(weights_only=True)`` (plain data only: no code runs while loading).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from kedro.io import AbstractDataset, DatasetError

from yolo_mlops.yolo.io.checkpoint import atomic_torch_save

FORMAT = "yolo-mlops-checkpoint"
REQUIRED_KEYS = ("format", "format_version", "config", "state_dict")


def _check(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DatasetError(
            f"CheckpointDataset({where}): expected a checkpoint dict with format {FORMAT!r}, "
            f"got {type(data).__name__}"
            + (f" with format {data.get('format')!r}" if isinstance(data, dict) else "")
        )
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise DatasetError(f"CheckpointDataset({where}): checkpoint lacks {missing}")
    return data


class CheckpointDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """Catalog entry::

    model_checkpoint:
      type: yolo_mlops.datasets.checkpoint_dataset.CheckpointDataset
      filepath: data/06_models/best.pt
    """

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def _load(self) -> dict[str, Any]:
        if not self._filepath.is_file():
            raise DatasetError(f"CheckpointDataset: no checkpoint at {self._filepath}")
        data = torch.load(self._filepath, map_location="cpu", weights_only=True)
        return _check(data, str(self._filepath))

    def _save(self, data: dict[str, Any]) -> None:
        _check(data, str(self._filepath))
        atomic_torch_save(data, self._filepath)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
