"""The project's checkpoint format: round trip, weights_only loading, atomic save, validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from yolo_mlops.yolo import (
    build_model,
    load_checkpoint,
    model_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from yolo_mlops.yolo.io.checkpoint import (
    FORMAT,
    CheckpointError,
    atomic_copy,
    atomic_torch_save,
    make_config,
)


@pytest.fixture
def small_model():
    torch.manual_seed(0)
    return build_model("n", 2, names=["cat", "dog"])


def _save(path: Path, model, **extra) -> Path:
    config = make_config(scale="n", nc=2, names=model.names, imgsz=96, train_args={"epochs": 3})
    return save_checkpoint(path, state_dict=model.state_dict(), config=config, **extra)


def _interrupted_save(obj, handle) -> None:
    handle.write(b"half a checkpoint")
    raise KeyboardInterrupt


def test_checkpoint_is_plain_data_loadable_with_weights_only(tmp_path: Path, small_model) -> None:
    path = _save(tmp_path / "best.pt", small_model, training={"epoch": 4, "lr": torch.tensor(0.1)})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["format_version"] == 1
    config = raw["config"]
    assert config["scale"] == "n" and config["nc"] == 2 and config["names"] == ["cat", "dog"]
    assert config["imgsz"] == 96 and config["stride"] == [8, 16, 32]
    assert config["train_args"] == {"epochs": 3} and config["project_version"]
    assert raw["training"]["epoch"] == 4
    assert all(t.dtype in (torch.float32, torch.int64) for t in raw["state_dict"].values())


def test_round_trip_gives_identical_outputs_names_and_eval_mode(
    tmp_path: Path, small_model
) -> None:
    path = _save(tmp_path / "best.pt", small_model)
    loaded = load_checkpoint(path)
    assert loaded.names == ["cat", "dog"] and not loaded.training
    x = torch.rand(1, 3, 64, 64)
    small_model.eval()
    with torch.no_grad():
        for a, b in zip(small_model(x), loaded(x), strict=True):
            assert torch.equal(a, b)
    assert read_checkpoint(path)["training"] is None


def test_extra_config_keys_are_kept(tmp_path: Path, small_model) -> None:
    config = {**make_config(scale="n", nc=2, names=small_model.names), "source": {"file": "a.pt"}}
    path = save_checkpoint(tmp_path / "x.pt", state_dict=small_model.state_dict(), config=config)
    assert read_checkpoint(path)["config"]["source"] == {"file": "a.pt"}


def test_half_precision_weights_are_saved_as_float32(tmp_path: Path, small_model) -> None:
    config = make_config(scale="n", nc=2, names=small_model.names)
    half = {
        k: v.half() if v.is_floating_point() else v for k, v in small_model.state_dict().items()
    }
    path = save_checkpoint(tmp_path / "h.pt", state_dict=half, config=config)
    assert read_checkpoint(path)["state_dict"]["model.0.conv.weight"].dtype == torch.float32


def test_failed_save_keeps_the_previous_file_and_leaves_no_temp(
    tmp_path: Path, small_model
) -> None:
    path = _save(tmp_path / "last.pt", small_model)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"training\['not_data'\] is a builtins.function"):
        _save(path, small_model, training={"not_data": lambda: None})
    assert path.read_bytes() == before
    with pytest.raises(KeyboardInterrupt), pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "save", _interrupted_save)
        _save(path, small_model)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_newer_format_version_is_refused_naming_the_file(tmp_path: Path, small_model) -> None:
    path = _save(tmp_path / "future.pt", small_model)
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = 99
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=r"future\.pt.*format_version 99"):
        read_checkpoint(path)


def test_foreign_plain_dict_and_garbage_files_are_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match=r"plain\.pt: not a yolo-mlops checkpoint"):
        read_checkpoint(plain)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"garbage\.pt"):
        read_checkpoint(garbage)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        read_checkpoint(tmp_path / "missing.pt")


def test_invalid_config_is_refused(tmp_path: Path, small_model) -> None:
    state = small_model.state_dict()
    with pytest.raises(CheckpointError, match="lacks"):
        save_checkpoint(tmp_path / "a.pt", state_dict=state, config={"scale": "n"})
    with pytest.raises(CheckpointError, match="unknown scale 'z'"):
        save_checkpoint(
            tmp_path / "a.pt", state_dict=state, config={"scale": "z", "nc": 2, "names": ["a", "b"]}
        )
    with pytest.raises(CheckpointError, match="1 class names for nc=2"):
        save_checkpoint(
            tmp_path / "a.pt", state_dict=state, config={"scale": "n", "nc": 2, "names": ["a"]}
        )


def test_weights_that_do_not_fit_the_config_raise_checkpoint_error(small_model) -> None:
    ckpt = {
        "config": make_config(scale="n", nc=5),
        "state_dict": small_model.state_dict(),
    }
    with pytest.raises(CheckpointError, match="do not fit YOLO11n with nc=5"):
        model_from_checkpoint(ckpt)


@pytest.mark.parametrize(
    "content",
    [
        b"some notes\n",  # a text file: the unpickler used to hit IndexError
        b"hello world\n",  # ... or KeyError
        b"",
        b"\x80\x04\x95garbage",  # a pickle header and nothing valid after it
        b'{"format": "yolo-mlops-checkpoint"}',
        b"PK\x03\x04 truncated zip",
    ],
    ids=["text", "text_keyerror", "empty", "bad_pickle", "json", "truncated_zip"],
)
def test_every_unreadable_file_is_a_checkpoint_error_naming_it(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"^{path}: "):
        read_checkpoint(path)


def test_half_written_checkpoint_is_a_checkpoint_error(tmp_path: Path, small_model) -> None:
    whole = _save(tmp_path / "whole.pt", small_model).read_bytes()
    half = tmp_path / "half.pt"
    half.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match=r"half\.pt: "):
        read_checkpoint(half)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_checkpoint_mode_follows_the_umask(tmp_path: Path, small_model, umask, mode) -> None:
    import os

    old = os.umask(umask)
    try:
        path = _save(tmp_path / "m.pt", small_model)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_atomic_copy_stays_a_separate_file_when_the_source_is_saved_again(tmp_path: Path) -> None:
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    atomic_torch_save({"epoch": 1}, last)
    atomic_copy(last, best)
    atomic_torch_save({"epoch": 2}, last)  # the trainer's next epoch replaces last.pt
    assert torch.load(best, weights_only=True) == {"epoch": 1}
    assert torch.load(last, weights_only=True) == {"epoch": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temp left


def test_atomic_copy_falls_back_to_a_byte_copy_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    atomic_torch_save({"epoch": 1}, last)

    def no_links(*_args: object) -> None:
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    atomic_copy(last, best)
    assert best.read_bytes() == last.read_bytes()
    assert os.stat(best).st_ino != os.stat(last).st_ino


def _disk_full_save(obj, handle) -> None:
    """What torch.save does on a full disk: its writer wraps the OSError in a RuntimeError."""
    try:
        raise OSError(28, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos") from None


def test_disk_full_names_the_errno_the_folder_and_the_free_space(
    tmp_path: Path, small_model, monkeypatch
) -> None:
    from yolo_mlops.yolo.io.checkpoint import CheckpointWriteError

    path = _save(tmp_path / "last.pt", small_model)
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", _disk_full_save)
    with pytest.raises(CheckpointWriteError) as caught:
        _save(path, small_model)
    message = str(caught.value)
    assert caught.value.errno == 28 and isinstance(caught.value, OSError)
    assert message.startswith(f"[Errno 28] cannot write checkpoint last.pt in {tmp_path}")
    assert "ENOSPC" in message and "MiB free" in message and "training.save_dir" in message
    assert "inline_container" not in message
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_checkpoint_larger_than_the_disk_fails_with_the_errno_headline(
    small_tmpfs: Path, small_model
) -> None:
    from yolo_mlops.yolo.io.checkpoint import CheckpointWriteError

    with pytest.raises(CheckpointWriteError, match=r"\[Errno 28\] .*ENOSPC.* MiB free"):
        _save(small_tmpfs / "last.pt", small_model)  # YOLO11n: ~10 MB of float32 weights
    assert list(small_tmpfs.iterdir()) == []
