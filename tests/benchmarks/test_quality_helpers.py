"""The pure helpers of the quality benchmarks (``benchmarks/seed_runs.py``, ``coco128.py``,
``reference_runs.py``): subset numbering, the acceptance check, the reference's settings."""

import sys
import zipfile
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from coco128 import subset_names  # noqa: E402
from reference_runs import reference_settings  # noqa: E402
from seed_runs import seed_summary  # noqa: E402


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A COCO128-shaped zip with 40 images listed out of order (and a label file)."""
    path = tmp_path / "coco128.zip"
    with zipfile.ZipFile(path, "w") as handle:
        for i in reversed(range(40)):
            handle.writestr(f"coco128/images/train2017/{i:012d}.jpg", b"")
        handle.writestr("coco128/labels/train2017/000000000000.txt", "0 0.5 0.5 0.1 0.1\n")
    return path


def test_subset_numbering_is_one_based_in_sorted_order(archive: Path) -> None:
    assert subset_names(archive, 1, 16)[0] == "000000000000.jpg"
    names = subset_names(archive, 17, 16)
    assert names == [f"{i:012d}.jpg" for i in range(16, 32)]


def test_subset_outside_the_archive_is_an_error(archive: Path) -> None:
    with pytest.raises(ValueError, match="outside"):
        subset_names(archive, 33, 16)


def test_acceptance_needs_mean_and_spread_within_their_margins() -> None:
    reference = {0: 0.354, 1: 0.374, 2: 0.326}  # mean 0.3513, spread 0.048
    assert seed_summary({0: 0.35, 1: 0.36, 2: 0.34}, reference)["passes"] is True
    low = seed_summary({0: 0.33, 1: 0.34, 2: 0.33}, reference)
    assert (low["mean_ok"], low["passes"]) == (False, False)
    wide = seed_summary({0: 0.30, 1: 0.45, 2: 0.35}, reference)
    assert (wide["mean_ok"], wide["spread_ok"], wide["passes"]) == (True, False, False)
    assert seed_summary({0: 0.30, 1: 0.45, 2: 0.35}, reference, check_spread=False)["passes"]


def test_acceptance_is_undecided_with_fewer_than_two_seeds() -> None:
    summary = seed_summary({0: 0.4}, {0: 0.3, 1: 0.35})
    assert summary["passes"] is None
    assert summary["mean_ours"] == 0.4 and summary["spread_ours"] == 0.0


def test_reference_settings_carry_the_shared_recipe_keys_only() -> None:
    config = {"epochs": 300, "batch": 8, "nbs": 8, "seed": 2, "bf16": False, "threads": 1}
    settings = reference_settings(config, "yolo11n.yaml", 320)
    assert settings["seed"] == 2 and settings["model"] == "yolo11n.yaml"
    assert settings["imgsz"] == 320 and settings["amp"] is False
    assert "bf16" not in settings and "threads" not in settings


def test_reference_settings_refuse_a_warmup_floor() -> None:
    with pytest.raises(ValueError, match="warmup floor"):
        reference_settings({"epochs": 1, "warmup_min_iters": 100}, "yolo11n.yaml", 320)
