"""CheckpointDataset: atomic save, weights_only load, describe, failure cases."""

from __future__ import annotations

import pytest
import torch
from kedro.io import DatasetError

from yolo_mlops.datasets.checkpoint_dataset import CheckpointDataset


def checkpoint() -> dict:
    return {
        "format": "yolo-mlops-checkpoint",
        "format_version": 1,
        "config": {"scale": "n", "nc": 1, "names": ["a"]},
        "state_dict": {"w": torch.arange(4.0)},
        "training": {"epoch": 3, "history": [{"fitness": 0.5}]},
    }


def test_save_then_load_round_trips_with_weights_only(tmp_path):
    dataset = CheckpointDataset(filepath=str(tmp_path / "models" / "best.pt"))
    assert not dataset.exists()
    dataset.save(checkpoint())
    assert dataset.exists()
    loaded = dataset.load()
    torch.testing.assert_close(loaded["state_dict"]["w"], torch.arange(4.0))
    assert loaded["training"]["epoch"] == 3
    assert torch.load(tmp_path / "models" / "best.pt", weights_only=True)["format_version"] == 1


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    dataset = CheckpointDataset(filepath=str(tmp_path / "last.pt"))
    dataset.save(checkpoint())

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(DatasetError):
        dataset.save(checkpoint() | {"training": None})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert dataset.load()["training"]["epoch"] == 3  # the old file is intact


def test_save_rejects_something_that_is_not_a_checkpoint(tmp_path):
    dataset = CheckpointDataset(filepath=str(tmp_path / "x.pt"))
    with pytest.raises(DatasetError, match="expected a checkpoint dict"):
        dataset.save({"state_dict": {}})
    with pytest.raises(DatasetError, match="lacks"):
        dataset.save({"format": "yolo-mlops-checkpoint"})


def test_load_refuses_pickled_code_and_missing_files(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "yolo-mlops-checkpoint", "obj": torch.nn.Linear(1, 1)}, path)
    with pytest.raises(DatasetError):
        CheckpointDataset(filepath=str(path)).load()
    with pytest.raises(DatasetError, match="no checkpoint"):
        CheckpointDataset(filepath=str(tmp_path / "missing.pt")).load()


def test_describe_names_the_file(tmp_path):
    dataset = CheckpointDataset(filepath=str(tmp_path / "best.pt"))
    assert "best.pt" in str(dataset)
    assert dataset._describe() == {"filepath": str(tmp_path / "best.pt")}
