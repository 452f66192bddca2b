"""Kedro dataset for the exported models: one folder of model files (``model.onnx``, …).

``save`` takes ``{file name: bytes}`` and writes each file atomically (temporary file in the
folder, fsync, ``os.replace``, the umask's mode), then removes the model files of the folder that
are not in the mapping, so a format dropped from ``export.formats`` leaves no stale file behind.
``load`` returns ``{file name: path}`` of the files present. One folder rather than one entry per
file: the set of formats is a parameter, and a DVC out must exist after every run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from yolo_mlops.yolo.file_modes import honour_umask

#: Suffixes of the files this dataset writes and owns in its folder.
MODEL_SUFFIXES = (".onnx", ".xml", ".bin")


def _write_atomically(path: Path, payload: bytes) -> None:
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        honour_umask(tmp_name)  # mkstemp made it 0600
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


class ExportedModelsDataset(AbstractDataset[dict[str, bytes], dict[str, Path]]):
    """Catalog entry::

    exported_models:
      type: yolo_mlops.datasets.exported_models_dataset.ExportedModelsDataset
      path: data/06_models/export
    """

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def _files(self) -> list[Path]:
        if not self._path.is_dir():
            return []
        return sorted(p for p in self._path.iterdir() if p.is_file() and p.suffix in MODEL_SUFFIXES)

    def _load(self) -> dict[str, Path]:
        files = self._files()
        if not files:
            raise DatasetError(
                f"ExportedModelsDataset: no exported model in {self._path}; run "
                "`kedro run --pipelines export`"
            )
        return {file.name: file for file in files}

    def _save(self, data: Mapping[str, bytes]) -> None:
        for name, payload in data.items():
            if Path(name).name != name or Path(name).suffix not in MODEL_SUFFIXES:
                raise DatasetError(
                    f"ExportedModelsDataset({self._path}): {name!r} is not a plain file name "
                    f"ending in one of {MODEL_SUFFIXES}"
                )
            if not isinstance(payload, bytes):
                raise DatasetError(f"ExportedModelsDataset: {name} must be bytes")
        self._path.mkdir(parents=True, exist_ok=True)
        for name, payload in data.items():
            _write_atomically(self._path / name, payload)
        for stale in self._files():
            if stale.name not in data:
                stale.unlink()

    def _exists(self) -> bool:
        return bool(self._files())

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
