"""What the logged pyfunc model carries: its artifacts, pip requirements and input example.

The export stage's outputs (``data/06_models/export`` and ``data/08_reporting/export.json``)
travel with the version as :class:`ExportedModels`: each file of the report's ``artifacts`` is
logged under the report's name for it (``onnx`` → ``model.onnx``, ``int8`` →
``model_int8.onnx``; an OpenVINO IR's ``.xml`` and, as ``<name>_weights``, its ``.bin``), the
report itself as ``export_report``, the checkpoint as ``checkpoint``.
The pip requirements follow the serving backend: ``onnxruntime`` pins ``onnxruntime`` and no
torch (a smaller serving image), ``torch`` pins ``torch`` and ``torchvision``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from yolo_mlops.tracking import pyfunc_model

#: Packages every served model imports, whatever its backend.
COMMON_PACKAGES = ("numpy", "opencv-python-headless", "pandas", "mlflow", "pyyaml")
#: The packages of each serving backend.
BACKEND_PACKAGES = {"torch": ("torch", "torchvision"), "onnxruntime": ("onnxruntime",)}


@dataclass(frozen=True)
class ExportedModels:
    """The export stage's outputs as the registry takes them.

    Attributes:
        files: file name → path of the exported models (``model.onnx``, ``model_int8.onnx``).
        report: ``export.json``: per artifact its ``file``, ``bytes``, ``parity`` figures,
            ``parity_passed`` and ``parity_gated`` (optional ``latency_ms``).
    """

    files: Mapping[str, Path] = field(default_factory=dict)
    report: Mapping[str, Any] = field(default_factory=dict)

    def artifacts(self) -> dict[str, Path]:
        """The report's artifact name → its file, for every reported file that is present."""
        found = {}
        for name, record in (self.report.get("artifacts") or {}).items():
            path = self.files.get(str(record.get("file")))
            if path is not None:
                found[name] = Path(path)
            weights = self.files.get(str(record.get("weights")))
            if path is not None and weights is not None:  # an OpenVINO IR's .bin, beside its .xml
                found[f"{name}_weights"] = Path(weights)
        return found


def pinned_requirements(backend: str = "torch") -> list[str]:
    """``pkg==version`` of what ``backend`` serves with, as installed (local tags like +cu130
    cut); no torch for ``onnxruntime``."""
    if backend not in BACKEND_PACKAGES:
        raise ValueError(f"unknown serving backend {backend!r}; choose one of {BACKEND_PACKAGES}")
    pins = []
    for package in (*BACKEND_PACKAGES[backend], *COMMON_PACKAGES):
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
        pins.append(f"{package}=={version.split('+')[0]}")
    return pins


def example_input(size: int = 64) -> pd.DataFrame:
    """A one-row input example: a synthetic JPEG (grey gradient with a dark square)."""
    ramp = np.linspace(40, 220, size, dtype=np.uint8)
    image = np.repeat(np.tile(ramp, (size, 1))[..., None], 3, axis=2)
    image[size // 4 : size // 2, size // 4 : size // 2] = 20
    ok, encoded = cv2.imencode(".jpg", image)
    if not ok:  # pragma: no cover - opencv always encodes a valid uint8 image
        raise RuntimeError("could not encode the example image")
    return pd.DataFrame({pyfunc_model.IMAGE_COLUMN: [encoded.tobytes()]})


def _inference_checkpoint(checkpoint: Mapping[str, Any], folder: Path) -> Path:
    """The checkpoint without trainer state (smaller; only what inference needs)."""
    from yolo_mlops.yolo.io.checkpoint import save_checkpoint

    return save_checkpoint(
        folder / "model.pt", state_dict=checkpoint["state_dict"], config=checkpoint["config"]
    )


def model_artifacts(
    checkpoint: Mapping[str, Any], exported: ExportedModels, backend: str, folder: Path
) -> dict[str, str]:
    """The pyfunc's ``artifacts``: the checkpoint, every exported file and the export report.

    Raises:
        ValueError: ``backend`` is ``onnxruntime`` and there is no ``onnx`` file to serve.
    """
    files = exported.artifacts()
    if backend == "onnxruntime" and "onnx" not in files:
        raise ValueError(
            "register.serving.backend is 'onnxruntime' but the export stage's outputs hold no "
            f"model.onnx (data/06_models/export: {sorted(exported.files)}); run `kedro run "
            "--pipelines export` first, or set register.serving.backend=torch"
        )
    artifacts = {"checkpoint": str(_inference_checkpoint(checkpoint, folder))}
    artifacts.update({name: str(path) for name, path in files.items()})
    if exported.report:
        report = folder / "export.json"
        report.write_text(json.dumps(exported.report, indent=2))
        artifacts["export_report"] = str(report)
    return artifacts
