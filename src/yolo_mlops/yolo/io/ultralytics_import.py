"""Read Ultralytics ``.pt`` checkpoints without Ultralytics and without running foreign code.

An Ultralytics checkpoint pickles the whole ``DetectionModel`` (spec section 7), so it cannot be
read with ``weights_only=True``. Here the pickle is read by :class:`RestrictedUnpickler`, whose
``find_class`` is the only way a pickle can reach Python objects, and which hands out:

* torch's tensor/parameter rebuild functions, ``torch.Size``, dtypes (storages are resolved by
  ``torch.load`` itself before ``find_class`` is asked);
* ``torch.nn`` module classes (their ``__setstate__`` is torch's own);
* ``collections.OrderedDict``, a few inert builtins (set, frozenset, slice, ...), numpy scalars and
  arrays, pure paths;
* for ``ultralytics.*``: inert stand-ins created here: ``nn.Module`` subclasses for
  ``ultralytics.nn.*`` (so ``state_dict()`` works on the unpickled tree), plain attribute bags
  for everything else. No Ultralytics code is imported or run.

Anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...) is refused with an
:class:`UnsafeCheckpointError` that names the global and the file, before it can be called.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import importlib
import logging
import os
import pathlib
import pickle
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from yolo_mlops.yolo.io.checkpoint import FORMAT, FORMAT_VERSION, CheckpointError, make_config
from yolo_mlops.yolo.model.network import SCALES, YOLO11

logger = logging.getLogger(__name__)


class UnsafeCheckpointError(CheckpointError):
    """The pickle references a global outside the allow-list; nothing from it was executed."""


_TORCH_REBUILD = {
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
}
_BUILTINS = {"set", "frozenset", "slice", "tuple", "list", "dict", "complex"}
_NUMPY = {
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
_PATHS = {
    "Path": pathlib.PurePosixPath,
    "PosixPath": pathlib.PurePosixPath,
    "PurePosixPath": pathlib.PurePosixPath,
    "WindowsPath": pathlib.PureWindowsPath,
    "PureWindowsPath": pathlib.PureWindowsPath,
}


class _InertObject:
    """Stand-in for a non-module Ultralytics class: stores whatever state the pickle gives it."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state


_STANDINS: dict[tuple[str, str], type] = {}


def _standin(module: str, name: str) -> type:
    """A cached inert class named like ``module.name`` (an nn.Module under ``ultralytics.nn``)."""
    key = (module, name)
    if key not in _STANDINS:
        base = nn.Module if module.startswith("ultralytics.nn") else _InertObject
        _STANDINS[key] = type(name, (base,), {"__module__": f"yolo_mlops_standin.{module}"})
    return _STANDINS[key]


def _resolve_allowed(module: str, name: str) -> Any | None:  # noqa: PLR0911 - one flat allow-list
    """The object a pickle may use for ``module.name``, or ``None`` if it is not allowed."""
    if module == "ultralytics" or module.startswith("ultralytics."):
        return _standin(module, name)
    if module == "torch._utils" and name in _TORCH_REBUILD:
        return getattr(torch._utils, name)
    if module == "torch":
        value = getattr(torch, name, None)
        if name == "Size" or isinstance(value, torch.dtype):
            return value
        if name == "device":
            return torch.device
        return None
    if module.startswith("torch.nn.modules.") and "." not in name:
        try:
            value = getattr(importlib.import_module(module), name, None)
        except ImportError:
            return None
        if isinstance(value, type) and issubclass(value, nn.Module):
            return value
        return None
    if module == "collections" and name == "OrderedDict":
        return OrderedDict
    if module == "builtins" and name in _BUILTINS:
        return getattr(builtins, name)
    if (module, name) in _NUMPY:
        import numpy as np

        if name == "ndarray":
            return np.ndarray
        if name == "dtype":
            return np.dtype
        return getattr(importlib.import_module(module.replace("numpy.core", "numpy._core")), name)
    if module.startswith("numpy.dtypes") and name.endswith("DType"):
        import numpy as np

        return getattr(np.dtypes, name, None)
    if module in ("pathlib", "pathlib._local") and name in _PATHS:
        return _PATHS[name]
    return None


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that resolves globals only through the allow-list above.

    Built on the pure-Python unpickler so that BUILD can be guarded too: a pickle may not set
    attributes on a class, function or module it got from ``find_class`` (that would let it
    patch e.g. ``torch.nn.Conv2d`` for the rest of the process). The files are small (the
    tensors live outside the pickle), so the slower unpickler costs little.
    """

    source = "<checkpoint>"  # the file name for error messages; set per load
    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)

    def _load_build(self) -> None:
        target = self.stack[-2]
        if isinstance(
            target, (type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType)
        ):
            raise UnsafeCheckpointError(
                f"{self.source}: refusing to set attributes on {target!r}: a checkpoint may only "
                "fill in the objects it creates"
            )
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = _load_build

    def find_class(self, module: str, name: str) -> Any:
        """Allowed object for ``module.name``; raises UnsafeCheckpointError otherwise."""
        # Protocol-2 pickles (what torch.save writes) name Python 2 modules, e.g. __builtin__.
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        value = _resolve_allowed(module, name)
        if value is None:
            raise UnsafeCheckpointError(
                f"{self.source}: refusing to load '{module}.{name}': the checkpoint references a "
                "global that is not a tensor, torch.nn module, Ultralytics module or plain data "
                "type; it may try to run code. Nothing from it was executed."
            )
        return value


def _pickle_module(source: str) -> types.ModuleType:
    """A module object usable as ``torch.load(pickle_module=...)`` with the restricted unpickler."""

    class _Unpickler(RestrictedUnpickler):
        pass

    _Unpickler.source = source
    module = types.ModuleType("yolo_mlops_restricted_pickle")
    module.Unpickler = _Unpickler  # type: ignore[attr-defined]
    module.load = lambda file, **kwargs: _Unpickler(file, **kwargs).load()  # type: ignore[attr-defined]
    module.__dict__["UnpicklingError"] = pickle.UnpicklingError
    return module


def load_ultralytics_pickle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw top-level dict of an Ultralytics checkpoint, read with the restricted unpickler."""
    path = Path(path)
    try:
        payload = torch.load(
            path, map_location="cpu", pickle_module=_pickle_module(str(path)), weights_only=False
        )
    except CheckpointError:
        raise
    except Exception as error:  # a malformed pickle can fail in many ways; report them all alike
        raise CheckpointError(
            f"{path}: cannot read as an Ultralytics checkpoint ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"{path}: expected a dict at the top level, got {type(payload).__name__}"
        )
    return payload


def infer_scale_and_nc(
    state_dict: dict[str, torch.Tensor], source: str = "<state_dict>"
) -> tuple[str, int]:
    """YOLO11 scale and class count from weight shapes (stem width, repeats, class conv bias)."""
    try:
        stem_width = state_dict["model.0.conv.weight"].shape[0]
        nc = int(state_dict["model.23.cv3.0.2.bias"].shape[0])
    except KeyError as error:
        raise CheckpointError(
            f"{source}: not a YOLO11 detection state_dict (missing {error})"
        ) from error
    two_repeats = "model.2.m.1.cv1.conv.weight" in state_dict
    for scale, (depth, width, _) in SCALES.items():
        if round(64 * width) == stem_width and (round(2 * depth) == 2) == two_repeats:
            return scale, nc
    raise CheckpointError(
        f"{source}: weights match no YOLO11 scale (stem width {stem_width}, "
        f"{'2' if two_repeats else '1'} repeats)"
    )


def _plain(value: Any, depth: int = 0) -> Any:
    """Plain python (str/int/float/bool/None/list/dict) for config fields; str() for the rest."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, _InertObject):  # e.g. Ultralytics' config namespace
        value = dict(vars(value))
    if depth < 4 and isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if depth < 4 and isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return str(value)


def _class_names(model: Any, nc: int) -> list[str]:
    names = getattr(model, "names", None)
    if names is None:
        names = (getattr(model, "yaml", None) or {}).get("names")
    if isinstance(names, dict) and sorted(int(k) for k in names) == list(range(nc)):
        return [str(names[k]) for k in sorted(names, key=int)]
    if isinstance(names, (list, tuple)) and len(names) == nc:
        return [str(n) for n in names]
    return [f"class{i}" for i in range(nc)]


def read_ultralytics_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """An Ultralytics checkpoint as a yolo-mlops checkpoint dict (``training`` is None).

    Takes the EMA model when the file has one (a training ``last.pt``), else ``model``. Scale and nc
    come from the weight shapes, class names from the file when present, weights become float32.
    """
    path = Path(path)
    payload = load_ultralytics_pickle(path)
    model = payload.get("ema") if payload.get("ema") is not None else payload.get("model")
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"{path}: no pickled model under 'ema' or 'model'")
    state_dict = {
        k: (v.float() if v.is_floating_point() else v).contiguous()
        for k, v in model.state_dict().items()
    }
    scale, nc = infer_scale_and_nc(state_dict, str(path))
    stride = getattr(model, "stride", None)
    train_args = _plain(payload.get("train_args") or {})
    config = make_config(
        scale=scale,
        nc=nc,
        names=_class_names(model, nc),
        imgsz=int(train_args.get("imgsz", 640)) if isinstance(train_args, dict) else 640,
        stride=[int(s) for s in stride.tolist()] if isinstance(stride, torch.Tensor) else None,
        train_args=train_args if isinstance(train_args, dict) else {},
    )
    config["source"] = {
        "format": "ultralytics",
        "file": str(path),
        "version": _plain(payload.get("version")),
        "date": _plain(payload.get("date")),
    }
    logger.info("read Ultralytics checkpoint %s: YOLO11%s, nc=%d", path, scale, nc)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config,
        "state_dict": state_dict,
        "training": None,
    }


def ultralytics_to_model(path: str | os.PathLike[str]) -> YOLO11:
    """Shortcut: a ready eval-mode model from an Ultralytics checkpoint."""
    from yolo_mlops.yolo.io.checkpoint import model_from_checkpoint

    return model_from_checkpoint(read_ultralytics_checkpoint(path))
