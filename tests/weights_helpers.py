"""A loopback stand-in for the official release: ``yolo11n.pt`` under the release path.

The file served is ``../shared/reference/yolo11n_ultralytics_format.pt`` (an Ultralytics-format
yolo11n, nc=80) when present, else a yolo11n checkpoint in our format made here, so the tests that
only need *a* yolo11n file run without ``../shared``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from tests.conftest import REFERENCE_DIR
from tests.ingestion.http_server import ServerState, serve
from yolo_mlops.yolo.io.checkpoint import make_config, save_checkpoint
from yolo_mlops.yolo.model.network import build_model

RELEASE_PATH = "/ultralytics/assets/releases/download/v8.3.0"
REFERENCE_PT = REFERENCE_DIR / "yolo11n_ultralytics_format.pt"


def yolo11n_file(folder: Path) -> Path:
    """The shared Ultralytics-format yolo11n, or (without ../shared) a yolo11n of our format."""
    if REFERENCE_PT.is_file():
        return REFERENCE_PT
    path = folder / "yolo11n-ours.pt"
    if not path.is_file():
        torch.manual_seed(0)
        model = build_model("n", num_classes=80)
        save_checkpoint(path, state_dict=model.state_dict(), config=make_config(scale="n", nc=80))
    return path


@contextmanager
def release_server(files: dict[str, bytes], **options) -> Iterator[tuple[str, ServerState]]:
    """Serve ``{name: body}`` under ``RELEASE_PATH``; yields (base URL for names, server state)."""
    state = ServerState(files={f"{RELEASE_PATH}/{name}": body for name, body in files.items()})
    for key, value in options.items():
        setattr(state, key, value)
    with serve(state) as root:
        yield f"{root}{RELEASE_PATH}", state


class _RunsCode:
    """Pickles as a call to ``os.system``: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def malicious_pt(path: Path, marker: Path) -> Path:
    """A ``.pt`` whose unpickling would run ``touch marker`` (plain torch.load would)."""
    torch.save({"model": _RunsCode(marker), "train_args": {}}, path, pickle_protocol=2)
    return path
