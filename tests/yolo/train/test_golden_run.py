"""Same seed, same numbers: a short CPU training run pinned to the values it gave before the
library was reorganised into subpackages (issue 13). A change that alters losses or learning rates
of this recipe is a change of behaviour and must say so (and update these values) on purpose.
"""

from __future__ import annotations

import pytest
import torch

from tests.yolo.tiny_cache import make_tiny_cache
from yolo_mlops.yolo.train.trainer import TrainConfig, Trainer

COLUMNS = ("train/box_loss", "train/cls_loss", "train/dfl_loss", "lr/pg0", "lr/pg1", "lr/pg2")
# (box, cls, dfl losses, lr of the three groups) after epochs 1..3; 2 torch threads, float32.
EXPECTED = [
    (
        0.054394617676734924,
        0.3673393726348877,
        0.03487393260002136,
        0.09910000000000001,
        0.0001,
        0.0001,
    ),
    (
        0.34945085644721985,
        0.5421863794326782,
        0.20392155647277832,
        0.09720100000000001,
        0.000201,
        0.000201,
    ),
    (0.7018812894821167, 0.6926593780517578, 0.4467872977256775, 0.09517, 0.00017, 0.00017),
]


@pytest.fixture()
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # float32 summation order depends on the thread count
    yield
    torch.set_num_threads(before)


def test_seeded_run_reproduces_the_recorded_losses_and_learning_rates(tmp_path, two_threads):
    cache = make_tiny_cache(tmp_path, n_images=8, imgsz=64)
    config = TrainConfig(
        epochs=3, batch=4, optimizer="SGD", save_dir=str(tmp_path / "run"), progress=False,
        workers=0, device="cpu", close_mosaic=1, seed=3, val_batch=4,
        warmup_min_iters=100,  # the recipe these values were recorded with (8.3.0's floor)
    )  # fmt: skip
    history = Trainer(config, cache).fit().history
    got = [tuple(row[key] for key in COLUMNS) for row in history]
    assert len(got) == len(EXPECTED)
    for epoch, (row, expected) in enumerate(zip(got, EXPECTED, strict=True), start=1):
        assert row == pytest.approx(expected, rel=1e-6, abs=1e-9), f"epoch {epoch}"
