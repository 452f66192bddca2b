"""Seeded training runs of the quality benchmarks: train or reuse, score, summarise, plot.

Shared by ``anchor_coco16b.py``, ``quality_subsets.py`` and ``finetune_reference.py``. A run of our
trainer lives in its own folder (``last.pt``, ``history.json``, ``val<imgsz>.json``): a finished
run is never trained again, an interrupted one continues exactly (``resume``), and a scored
checkpoint is not scored again, so a long benchmark can be stopped and started at will.

Scores come from our evaluation (:func:`evaluate_checkpoint`: rectangular batches of 16, conf
0.001, IoU 0.7, the metric rules of Ultralytics 8.4.190), which gives Ultralytics' own ``val``
figures to 5 decimals on its checkpoints; so the reference's runs are scored the same way.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch

from yolo_mlops.pipelines.evaluate.evaluation import evaluate_checkpoint
from yolo_mlops.yolo import TrainConfig, Trainer
from yolo_mlops.yolo.train.precision import autocast_dtype, float32_steps, native_bf16
from yolo_mlops.yolo.train.state import LOSS_KEYS

logger = logging.getLogger("benchmarks.seed_runs")

METRICS = ("precision", "recall", "mAP50", "mAP50-95")
#: Our precisions: the ``training`` overrides of each. ``auto`` is the default ``training.bf16:
#: auto`` (bf16 where the CPU has it natively, after ``bf16_after_steps`` float32 steps from
#: scratch, from the first step from trained weights); ``fp32`` turns bf16 off.
PRECISIONS: dict[str, dict] = {"fp32": {"bf16": False}, "auto": {}}
#: Acceptance (issue 33): our mean >= the reference's - MEAN_MARGIN, our spread (max - min over
#: seeds) <= the reference's + SPREAD_MARGIN; mAP50-95 at the training size.
MEAN_MARGIN = 0.01
SPREAD_MARGIN = 0.03


def train_run(cache, config: dict, run_dir: Path) -> list[dict]:
    """Train ``config`` (a ``training`` block) into ``run_dir`` unless it holds the finished run.

    Returns the per-epoch history rows (with ``wall_s``, seconds since this process started
    the run). ``config["save_dir"]`` is set to ``run_dir``.
    """
    history_file = run_dir / "history.json"
    if history_file.is_file() and (run_dir / "last.pt").is_file():
        history = json.loads(history_file.read_text())
        if len(history) == config["epochs"]:
            logger.info("reusing the finished run in %s", run_dir)
            return history
    run_dir.mkdir(parents=True, exist_ok=True)
    config = config | {"save_dir": str(run_dir)}
    if (run_dir / "last.pt").is_file():  # an interrupted run continues exactly
        config["resume"] = True
        logger.info("resuming the interrupted run in %s", run_dir)
    started = time.perf_counter()
    result = Trainer(TrainConfig(**config), cache).fit()
    history = [row | {"wall_s": time.perf_counter() - started} for row in result.history]
    history_file.write_text(json.dumps(history))
    return history


def score_run(checkpoint: Path, dataset_yaml: Path, imgsz: int, score_file: Path) -> dict:
    """Our evaluation of ``checkpoint`` on ``dataset_yaml`` at ``imgsz``, kept in ``score_file``.

    A score newer than the checkpoint is read back instead of evaluated again.
    """
    if score_file.is_file() and score_file.stat().st_mtime >= checkpoint.stat().st_mtime:
        return json.loads(score_file.read_text())
    metrics = evaluate_checkpoint(checkpoint, dataset_yaml, imgsz=imgsz, verbose=False)
    score = {key: float(metrics[key]) for key in METRICS}
    score_file.parent.mkdir(parents=True, exist_ok=True)
    score_file.write_text(json.dumps(score, indent=1) + "\n")
    return score


def precision_label(config: dict) -> str:
    """What a run of ``config`` computes in on this CPU: ``fp32``, ``bf16`` or ``bf16 after N
    fp32 steps`` (``training.bf16`` resolved)."""
    train = TrainConfig(**config)
    dtype = autocast_dtype(torch.device("cpu"), amp=train.amp, bf16=train.bf16, warn=False)
    if dtype is None:
        return "fp32"
    steps = float32_steps(
        dtype, fp32_steps=train.bf16_after_steps, from_scratch=not train.pretrained
    )
    return f"bf16 after {steps} fp32 steps" if steps else "bf16"


def mean_spread(scores: dict[int, float]) -> tuple[float | None, float | None]:
    """Mean and spread (max - min) of per-seed scores; None for no seeds."""
    values = list(scores.values())
    if not values:
        return None, None
    return statistics.mean(values), max(values) - min(values)


def seed_summary(
    ours: dict[int, float], reference: dict[int, float], *, check_spread: bool = True
) -> dict:
    """Means, spreads (max - min) and the acceptance check of two sets of per-seed scores.

    ``passes``: the mean clause, and the spread clause unless ``check_spread`` is off; None
    while either side has fewer than 2 seeds.
    """
    summary: dict = {"seeds_ours": sorted(ours), "seeds_reference": sorted(reference)}
    summary["mean_ours"], summary["spread_ours"] = mean_spread(ours)
    summary["mean_reference"], summary["spread_reference"] = mean_spread(reference)
    if len(ours) < 2 or len(reference) < 2:
        summary |= {"mean_ok": None, "spread_ok": None, "passes": None}
        return summary
    summary["mean_ok"] = summary["mean_ours"] >= summary["mean_reference"] - MEAN_MARGIN
    summary["spread_ok"] = summary["spread_ours"] <= summary["spread_reference"] + SPREAD_MARGIN
    summary["passes"] = summary["mean_ok"] and (summary["spread_ok"] or not check_spread)
    return summary


def machine_record() -> dict:
    """The CPU and software the figures came from."""
    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": native_bf16(),
    }


def read_reference_losses(results_csv: Path) -> pd.DataFrame:
    """An Ultralytics ``results.csv`` with its column names stripped (``epoch``, LOSS_KEYS...)."""
    frame = pd.read_csv(results_csv)
    frame.columns = [c.strip() for c in frame.columns]
    return frame


def plot_overlay(
    rows: dict[str, dict[int, list[dict]]],
    reference: dict[int, pd.DataFrame],
    out: Path,
    title: str,
) -> None:
    """Loss curves: one figure row per entry of ``rows`` (e.g. a precision), one column per loss.

    Each row draws the reference's per-seed epoch means (``results.csv``, black and grey) under
    our per-seed histories (coloured). ``rows[name][seed]`` is a history (``epoch`` and
    LOSS_KEYS per row); ``reference[seed]`` a frame from :func:`read_reference_losses`.
    """
    fig, axes = plt.subplots(
        max(len(rows), 1), 3, figsize=(15, 3.8 * max(len(rows), 1)), squeeze=False,
        constrained_layout=True,
    )  # fmt: skip
    greys = ("black", "dimgray", "darkgray", "silver")
    for axes_row, (name, histories) in zip(axes, rows.items(), strict=False):
        for ax, key in zip(axes_row, LOSS_KEYS, strict=True):
            for i, (seed, frame) in enumerate(sorted(reference.items())):
                ax.plot(frame["epoch"], frame[key], color=greys[i % len(greys)], lw=1.6,
                        label=f"Ultralytics 8.4.190, seed {seed}")  # fmt: skip
            for seed, history in sorted(histories.items()):
                ax.plot([r["epoch"] for r in history], [r[key] for r in history], lw=1,
                        alpha=0.85, label=f"ours ({name}), seed {seed}")  # fmt: skip
            ax.set_title(f"{key} — ours {name}")
            ax.set_xlabel("epoch")
            ax.set_ylabel("epoch-mean loss")
            ax.grid(alpha=0.3)
        axes_row[0].legend(fontsize=7)
    fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
