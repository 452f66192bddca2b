"""Reading Ultralytics checkpoints without Ultralytics and without running foreign code."""

from __future__ import annotations

import builtins
import io
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from yolo_mlops.yolo import decode, load_checkpoint, read_checkpoint
from yolo_mlops.yolo.io.checkpoint import CheckpointError
from yolo_mlops.yolo.io.convert import main as convert_main
from yolo_mlops.yolo.model.network import SCALES, YOLO11
from yolo_mlops.yolo.io.ultralytics_import import (
    _STANDINS,
    RestrictedUnpickler,
    UnsafeCheckpointError,
    _standin,
    infer_scale_and_nc,
    load_ultralytics_pickle,
)

ULTRALYTICS_FILE = "yolo11n_ultralytics_format.pt"


def _reference(reference_dir: Path) -> dict:
    return torch.load(reference_dir / "yolo11n_reference.pt", map_location="cpu", weights_only=True)


def test_ultralytics_file_gives_reference_weights_up_to_fp16(reference_dir: Path) -> None:
    ckpt = read_checkpoint(reference_dir / ULTRALYTICS_FILE)
    config = ckpt["config"]
    assert config["scale"] == "n" and config["nc"] == 80 and len(config["names"]) == 80
    assert config["stride"] == [8, 16, 32] and ckpt["training"] is None
    reference = _reference(reference_dir)["state_dict"]
    state = ckpt["state_dict"]
    assert list(state) == list(reference)
    for key, theirs in reference.items():
        ours = state[key]
        if theirs.is_floating_point():
            assert ours.dtype == torch.float32
            torch.testing.assert_close(ours, theirs.half().float(), atol=0, rtol=0)
        else:
            assert torch.equal(ours, theirs)


def test_ultralytics_model_output_is_close_to_reference(reference_dir: Path) -> None:
    ref = _reference(reference_dir)
    model = load_checkpoint(reference_dir / ULTRALYTICS_FILE)
    assert not model.training
    with torch.no_grad():
        decoded = decode(model(ref["input"]))
    torch.testing.assert_close(decoded[:, 4:], ref["decoded"][:, 4:], atol=1e-3, rtol=0)
    torch.testing.assert_close(decoded[:, :4], ref["decoded"][:, :4], atol=0.05, rtol=0)


def test_training_checkpoint_takes_ema_weights_and_namespace_args(
    reference_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``last.pt``-style file: model None, EMA model, train_args as an Ultralytics namespace."""
    ema = load_ultralytics_pickle(reference_dir / ULTRALYTICS_FILE)["model"]
    namespace = _standin("ultralytics.cfg", "IterableSimpleNamespace")()
    namespace.__dict__.update(imgsz=320, epochs=3, data="coco8.yaml")
    # Let pickle write the stand-ins under their Ultralytics names, as Ultralytics itself would.
    for (module, name), cls in list(_STANDINS.items()):
        monkeypatch.setattr(cls, "__module__", module)
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if prefix not in sys.modules:
                monkeypatch.setitem(sys.modules, prefix, types.ModuleType(prefix))
        monkeypatch.setattr(sys.modules[module], name, cls, raising=False)
    path = tmp_path / "last.pt"
    torch.save({"epoch": 2, "model": None, "ema": ema, "train_args": namespace}, path)
    monkeypatch.undo()

    ckpt = read_checkpoint(path)
    assert ckpt["config"]["imgsz"] == 320
    assert ckpt["config"]["train_args"] == {"imgsz": 320, "epochs": 3, "data": "coco8.yaml"}
    assert ckpt["config"]["scale"] == "n" and ckpt["training"] is None
    reference = _reference(reference_dir)["state_dict"]
    torch.testing.assert_close(
        ckpt["state_dict"]["model.0.conv.weight"], reference["model.0.conv.weight"].half().float()
    )


class _RunsCommand:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned_marker.txt",))


class _Evals:
    def __reduce__(self):
        return (builtins.eval, ("__import__('pathlib').Path('pwned_eval.txt').touch()",))


class _Popen:
    def __reduce__(self):
        return (subprocess.Popen, (["touch", "pwned_popen.txt"],))


@pytest.mark.parametrize(
    ("payload", "global_name"),
    [(_RunsCommand(), "posix.system"), (_Evals(), "builtins.eval"), (_Popen(), "subprocess.Popen")],
)
def test_pickle_that_tries_to_run_code_is_refused_and_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload, global_name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"model": payload, "train_args": {}}, evil)
    with pytest.raises(UnsafeCheckpointError, match=rf"evil\.pt: refusing to load '{global_name}'"):
        read_checkpoint(evil)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt"]  # nothing was created


def test_pickle_may_not_patch_allowed_classes() -> None:
    """BUILD on a global (here: torch.nn.Conv2d.forward = None) is refused, nothing is changed."""
    original = torch.nn.Conv2d.forward
    raw = (
        b"\x80\x02ctorch.nn.modules.conv\nConv2d\n"  # GLOBAL torch.nn.Conv2d
        b"N}X\x07\x00\x00\x00forwardNs\x86b."  # state (None, {"forward": None}); BUILD; STOP
    )
    unpickler = RestrictedUnpickler(io.BytesIO(raw))
    with pytest.raises(UnsafeCheckpointError, match="refusing to set attributes on"):
        unpickler.load()
    assert torch.nn.Conv2d.forward is original


class _Opaque:
    """Pickled by reference to this test module, which is not on the allow-list."""


def test_unknown_class_is_refused_naming_module_and_class(tmp_path: Path) -> None:
    path = tmp_path / "weird.pt"
    torch.save({"model": _Opaque()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"test_ultralytics_import\._Opaque"):
        read_checkpoint(path)


@pytest.mark.parametrize("scale", list(SCALES))
def test_scale_and_class_count_are_inferred_from_weight_shapes(scale: str) -> None:
    with torch.device("meta"):
        state = YOLO11(scale, 7).state_dict()
    assert infer_scale_and_nc(state) == (scale, 7)


def test_inference_refuses_non_yolo11_weights() -> None:
    with pytest.raises(CheckpointError, match="not a YOLO11 detection state_dict"):
        infer_scale_and_nc({"fc.weight": torch.zeros(2, 2)})


def test_convert_command_writes_our_format(reference_dir: Path, tmp_path: Path) -> None:
    destination = tmp_path / "converted" / "yolo11n.pt"
    assert convert_main([str(reference_dir / ULTRALYTICS_FILE), str(destination)]) == 0
    raw = torch.load(destination, weights_only=True)  # plain data now
    assert raw["format"] == "yolo-mlops-checkpoint"
    assert raw["config"]["scale"] == "n" and raw["config"]["nc"] == 80
    source = read_checkpoint(reference_dir / ULTRALYTICS_FILE)
    assert raw["config"]["names"] == source["config"]["names"]
    for key, value in source["state_dict"].items():
        assert torch.equal(raw["state_dict"][key], value)


def test_convert_command_help_and_missing_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        convert_main(["--help"])
    assert exit_info.value.code == 0 and "Ultralytics" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match=r"nothere\.pt"):
        convert_main([str(tmp_path / "nothere.pt"), str(tmp_path / "out.pt")])
    assert not (tmp_path / "out.pt").exists()
