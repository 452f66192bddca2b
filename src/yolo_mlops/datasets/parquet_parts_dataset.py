"""Kedro dataset for a table written in chunks: a folder of Parquet parts, read back as one table.

A node that streams (a generator node) saves one DataFrame per chunk; each ``save`` writes the
next part (``part-00000.parquet``, …) atomically, so memory stays at one chunk. The first ``save``
of a run (of this dataset instance) removes the parts of an earlier run. ``load`` concatenates the
parts in order; ``pandas.read_parquet(folder)`` and ``pyarrow.dataset`` read the folder as well.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from yolo_mlops.yolo.file_modes import honour_umask

PART_GLOB = "part-*.parquet"


class ParquetPartsDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """Catalog entry::

    detections:
      type: yolo_mlops.datasets.parquet_parts_dataset.ParquetPartsDataset
      path: data/07_model_output/detections
    """

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self._next_part: int | None = None  # None until this instance's first save
        self.metadata = metadata

    def _parts(self) -> list[Path]:
        return sorted(self._path.glob(PART_GLOB)) if self._path.is_dir() else []

    def _load(self) -> pd.DataFrame:
        parts = self._parts()
        if not parts:
            raise DatasetError(f"ParquetPartsDataset: no {PART_GLOB} in {self._path}")
        return pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)

    def _save(self, data: pd.DataFrame) -> None:
        if not isinstance(data, pd.DataFrame):
            raise DatasetError(f"ParquetPartsDataset({self._path}): expected a DataFrame chunk")
        if self._next_part is None:  # a new run: the earlier run's parts go
            for stale in self._parts():
                stale.unlink()
            self._next_part = 0
        self._path.mkdir(parents=True, exist_ok=True)
        target = self._path / f"part-{self._next_part:05d}.parquet"
        handle, tmp_name = tempfile.mkstemp(prefix=".part-", suffix=".tmp", dir=self._path)
        os.close(handle)
        try:
            data.to_parquet(tmp_name, index=False)
            honour_umask(tmp_name)  # mkstemp made it 0600
            os.replace(tmp_name, target)
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        self._next_part += 1

    def _exists(self) -> bool:
        return bool(self._parts())

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
