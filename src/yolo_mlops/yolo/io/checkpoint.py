"""The project's checkpoint format: a plain dict that ``torch.load(weights_only=True)`` can read.

```
{"format": "yolo-mlops-checkpoint", "format_version": 1,
 "config": {"scale", "nc", "names", "imgsz", "stride", "project_version", "train_args"},
 "state_dict": {...float32 model weights...},
 "training": None | {...trainer resume state: plain python + tensors only...}}
```

Saving is atomic (temporary file in the same folder, then ``os.replace``), so a crash never leaves
a half-written checkpoint behind. ``read_checkpoint`` also reads Ultralytics ``.pt`` files through
the restricted unpickler in ``ultralytics_import.py``.
"""

from __future__ import annotations

import contextlib
import errno as errno_names
import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from yolo_mlops.yolo.file_modes import honour_umask
from yolo_mlops.yolo.io.format import (
    FORMAT,
    FORMAT_VERSION,
    LIBRARY_VERSION,
    CheckpointError,
    make_config,
    validate_config,
)
from yolo_mlops.yolo.io.ultralytics_import import read_ultralytics_checkpoint
from yolo_mlops.yolo.model.network import YOLO11

logger = logging.getLogger(__name__)

# The format's names are re-exported: callers import everything about checkpoints from here.
__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "CheckpointWriteError",
    "load_checkpoint",
    "make_config",
    "model_from_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]

_PLAIN_LEAVES = (type(None), bool, int, float, complex, str, bytes, torch.Tensor, torch.dtype)
_PLAIN_LEAVES += (torch.Size, torch.device)


class CheckpointWriteError(OSError):
    """The operating system refused to write a checkpoint (disk full, read-only, quota...).

    ``errno`` is the refusal's; the message names it, the folder and its free space. The file at
    ``path`` is as it was before the write (saving is atomic).
    """

    def __init__(self, path: Path, cause: OSError) -> None:
        folder = path.parent
        code = cause.errno or 0
        name = errno_names.errorcode.get(code, "unknown errno")
        try:
            free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free"
        except OSError:
            free = "free space unknown"
        super().__init__(
            code,
            f"cannot write checkpoint {path.name} in {folder}: {name} "
            f"({cause.strerror or cause}); {free} there. Free some space, or write the "
            "checkpoints to another disk (training.save_dir)",
        )
        self.path = path


def _os_error(error: BaseException) -> OSError | None:
    """The ``OSError`` behind ``error`` (torch wraps a failed write in a ``RuntimeError``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _check_plain(value: Any, where: str, source: str) -> None:
    """Raise unless ``value`` is data that ``torch.load(weights_only=True)`` reads back."""
    if isinstance(value, _PLAIN_LEAVES):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, f"{where} key {key!r}", source)
            _check_plain(item, f"{where}[{key!r}]", source)
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]", source)
        return
    raise CheckpointError(
        f"{source}: {where} is a {type(value).__module__}.{type(value).__qualname__}, which a "
        "weights_only checkpoint cannot hold; convert it to plain python/tensors first"
    )


def _plain_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU tensors; floating point ones as float32 (integer buffers keep their dtype)."""
    out = {}
    for key, tensor in state_dict.items():
        t = tensor.detach().cpu()
        out[key] = (t.float() if t.is_floating_point() else t).contiguous()
    return out


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    state_dict: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically; returns the path. ``config`` needs scale, nc, names."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": validate_config(config, str(path)),
        "state_dict": _plain_state_dict(state_dict),
        "training": dict(training) if training is not None else None,
    }
    _check_plain(payload["config"], "config", str(path))
    _check_plain(payload["training"], "training", str(path))
    atomic_torch_save(payload, path)
    logger.debug("saved checkpoint %s", path)
    return path


@contextlib.contextmanager
def _published(path: Path) -> Iterator[str]:
    """A temporary file name in ``path``'s folder for the block to fill.

    When the block succeeds the file is ``os.replace``d onto ``path`` (atomic on one file
    system); when it raises, the temporary file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp_name
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_torch_save(payload: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in ``path``'s folder, fsync, then ``os.replace``.

    A crash never leaves a half-written file at ``path``; the file honours the umask.

    Raises:
        CheckpointWriteError: the system refused the write (disk full...): errno, folder, space.
    """
    try:
        with _published(path) as tmp_name:
            with open(tmp_name, "wb") as handle:
                torch.save(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            honour_umask(tmp_name)  # mkstemp made it 0600
    except (OSError, RuntimeError) as error:
        cause = _os_error(error)
        if cause is None or isinstance(error, CheckpointWriteError):
            raise
        raise CheckpointWriteError(path, cause) from error


def atomic_copy(source: Path, path: Path) -> None:
    """Make ``path`` a copy of the file ``source`` atomically, without re-serialising it.

    A hard link when the file system allows it (no bytes copied): ``source`` is only ever
    replaced by :func:`atomic_torch_save`, never rewritten in place, so the two names stay
    independent files. Otherwise a byte copy, fsync'ed. Either way ``os.replace`` publishes it.
    """
    with _published(path) as tmp_name:
        os.unlink(tmp_name)
        try:
            os.link(source, tmp_name)
        except OSError:  # no hard links here (some network or FAT file systems)
            shutil.copyfile(source, tmp_name)
            with open(tmp_name, "rb+") as handle:
                os.fsync(handle.fileno())
            honour_umask(tmp_name)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a checkpoint: ours, or an Ultralytics ``.pt`` converted to our dict shape.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable, unknown layout, newer format version, or (Ultralytics files)
            a pickled global outside the allow-list (``UnsafeCheckpointError``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Not loadable as plain data: an Ultralytics file (pickled modules) or something unsafe.
        try:
            return read_ultralytics_checkpoint(path)
        except CheckpointError:
            raise
        except Exception as error:  # a text file, a truncated pickle: whatever the unpickler hit
            raise CheckpointError(
                f"{path}: not a readable checkpoint ({type(error).__name__}: {error}); expected a "
                "yolo-mlops or Ultralytics .pt file"
            ) from error
    except Exception as error:  # truncated zip, random bytes, a folder: never a raw torch error
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a yolo-mlops checkpoint (no 'format': {FORMAT!r} entry); "
            "Ultralytics files are recognised by their pickled model"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {version!r} is newer than this yolo-mlops "
            f"({LIBRARY_VERSION}) reads (<= {FORMAT_VERSION}); upgrade yolo-mlops to load it"
        )
    if not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"{path}: checkpoint has no state_dict")
    payload["config"] = validate_config(payload.get("config") or {}, str(path))
    payload.setdefault("training", None)
    return payload


def model_from_checkpoint(ckpt: Mapping[str, Any]) -> YOLO11:
    """Build the model a checkpoint dict describes, load its weights, eval mode, names set."""
    config = ckpt["config"]
    model = YOLO11(config["scale"], config["nc"], config["names"])
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"weights do not fit YOLO11{config['scale']} with nc={config['nc']}: {error}"
        ) from error
    return model.eval()


def load_checkpoint(path: str | os.PathLike[str]) -> YOLO11:
    """A ready (eval-mode) model from our checkpoint or an Ultralytics one."""
    return model_from_checkpoint(read_checkpoint(path))
