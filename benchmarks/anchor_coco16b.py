"""Training-quality anchor: the coco16b recipe through our trainer, seeds beside the reference.

The public anchor (``../shared/reference/coco16b/``) is a complete Ultralytics 8.4.190 run on 16
COCO128 images (``images.txt``): yolo11n from scratch, 300 epochs, imgsz 320, batch 8, nbs 8,
SGD lr0 0.01, default augmentation, 0 loader workers, CPU, validation off during training, then
Ultralytics' own val of the final EMA weights on the same 16 images (``val.json``).

This script builds the same 16-image dataset from the COCO128 archive, trains the same recipe with
our trainer for each seed (the final EMA weights, ``last.pt``), evaluates them with our
evaluation (rectangular batches, batch 16, conf 0.001, IoU 0.7: the protocol that reproduces
Ultralytics' figures) at 320 and 640, and prints per seed and on average precision, recall, mAP50
and mAP50-95 next to ``val.json``. Writes ``results/anchor_coco16b_<machine kind>.json`` and
draws ``..._losses.png`` beside it: our per-epoch box/cls/dfl losses (every seed) over
``results.csv``'s.

Training is the slow part (~20-30 min per seed on 2 cores); a seed whose ``last.pt`` already
finished the recipe in ``--workdir`` is not trained again, so ``--evaluate-only`` re-scores
existing runs. Quality figures do not depend on machine load (CPU training is deterministic for a
fixed thread count), so seeds may run in parallel with ``--threads 1``.

Usage::

    python benchmarks/anchor_coco16b.py --seeds 0 1 2
    python benchmarks/anchor_coco16b.py --seeds 0 --epochs 2      # smoke run (not comparable)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import time
import zipfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch
import yaml
from coco128 import DEFAULT_ZIP, ROOT, build_cache_from_dataset_yaml
from machine import results_path

from yolo_mlops.pipelines.evaluate.evaluation import evaluate_checkpoint
from yolo_mlops.yolo import TrainConfig, Trainer
from yolo_mlops.yolo.train.precision import autocast_dtype, first_bf16_epoch, native_bf16
from yolo_mlops.yolo.train.state import LOSS_KEYS

logger = logging.getLogger("benchmarks.anchor_coco16b")

ANCHOR = ROOT.parent / "shared" / "reference" / "coco16b"
METRICS = ("precision", "recall", "mAP50", "mAP50-95")


def recipe(seed: int, epochs: int, threads: int, save_dir: Path) -> dict:
    """The coco16b recipe (``args.yaml``) in our ``training`` parameter block."""
    return {
        "scale": "n",
        "epochs": epochs,
        "batch": 8,
        "nbs": 8,
        "optimizer": "SGD",
        "lr0": 0.01,
        "lrf": 0.01,
        "momentum": 0.937,
        "weight_decay": 0.0005,
        "warmup_epochs": 3.0,
        "warmup_momentum": 0.8,
        "warmup_bias_lr": 0.1,
        "close_mosaic": 10,
        "patience": 100,
        "seed": seed,
        "deterministic": True,
        "device": "cpu",
        "workers": 0,
        "threads": threads,
        "val": False,
        "progress": False,
        "save_dir": str(save_dir),
    }


def precision(overrides: dict) -> str:
    """What the runs compute in on this CPU: fp32 or bf16 (``training.bf16`` resolved)."""
    config = TrainConfig(**recipe(0, 1, 0, Path("run")) | overrides)
    dtype = autocast_dtype(torch.device("cpu"), amp=config.amp, bf16=config.bf16)
    if dtype is None:
        return "fp32"
    first = first_bf16_epoch(
        dtype, fp32_steps=config.bf16_after_steps, steps_per_epoch=1,
        from_scratch=not config.pretrained,
    )  # fmt: skip
    return f"bf16 after {config.bf16_after_steps} fp32 steps" if first else "bf16"


def build_anchor_dataset(archive: Path, workdir: Path) -> Path:
    """Extract COCO128 and copy the 16 anchor images (``images.txt``) with their labels.

    Returns the dataset YAML (train = val = the 16 images, COCO's 80 class names).
    """
    names = (ANCHOR / "images.txt").read_text().split()
    raw = workdir / "raw"
    if not raw.is_dir():
        with zipfile.ZipFile(archive) as handle:
            handle.extractall(raw)
    root = next(p.parent.parent for p in raw.rglob("images/train2017"))
    subset = workdir / "coco16b"
    for kind in ("images", "labels"):
        (subset / kind / "train2017").mkdir(parents=True, exist_ok=True)
    for name in names:
        image = root / "images" / "train2017" / Path(name).name
        shutil.copy(image, subset / "images" / "train2017" / image.name)
        label = root / "labels" / "train2017" / f"{image.stem}.txt"
        shutil.copy(label, subset / "labels" / "train2017" / label.name)
    coco_yaml = yaml.safe_load(
        (ROOT / "src/yolo_mlops/ingestion/configs/coco128.yaml").read_text(encoding="utf-8")
    )
    dataset_yaml = workdir / "coco16b.yaml"
    dataset_yaml.write_text(
        yaml.safe_dump(
            {
                "path": str(subset),
                "train": "images/train2017",
                "val": "images/train2017",
                "names": coco_yaml["names"],
            }
        )
    )
    return dataset_yaml


def train_seed(
    cache, seed: int, epochs: int, threads: int, run_dir: Path, *, overrides: dict | None = None
) -> list[dict]:
    """Train one seed (unless ``run_dir`` holds a finished run); returns its history rows."""
    history_file = run_dir / "history.json"
    if history_file.is_file() and (run_dir / "last.pt").is_file():
        history = json.loads(history_file.read_text())
        if len(history) == epochs:
            logger.info("seed %d: reusing the finished run in %s", seed, run_dir)
            return history
    run_dir.mkdir(parents=True, exist_ok=True)
    config = recipe(seed, epochs, threads, run_dir) | (overrides or {})
    if (run_dir / "last.pt").is_file():  # an interrupted run continues exactly
        config["resume"] = True
        logger.info("seed %d: resuming the interrupted run in %s", seed, run_dir)
    started = time.perf_counter()
    result = Trainer(TrainConfig(**config), cache).fit()
    history = [row | {"wall_s": time.perf_counter() - started} for row in result.history]
    history_file.write_text(json.dumps(history))
    return history


def plot_losses(
    histories: dict[int, list[dict]], reference: pd.DataFrame, out: Path, mode: str
) -> None:
    """Overlay our per-epoch losses (one line per seed) on the reference run's ``results.csv``."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    for ax, key in zip(axes, LOSS_KEYS, strict=True):
        ax.plot(
            reference["epoch"], reference[key], color="black", lw=2, label="Ultralytics 8.4.190"
        )
        for seed, history in histories.items():
            ax.plot(
                [row["epoch"] for row in history],
                [row[key] for row in history],
                lw=1,
                alpha=0.8,
                label=f"ours ({mode}), seed {seed}",
            )
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("epoch-mean loss")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"coco16b: training losses, ours ({mode}) vs the reference run (fp32)")
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and writes) the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "benchmarks/work/anchor_coco16b")
    parser.add_argument("--evaluate-only", action="store_true", help="score finished runs only")
    parser.add_argument("--train-only", action="store_true", help="train, do not score")
    parser.add_argument("--out", type=Path, default=results_path("anchor_coco16b"))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a training setting (YAML value), e.g. --set tal_min_side=16; "
        "use a separate --workdir and --out per variant",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.zip.is_file():
        raise SystemExit(f"COCO128 archive not found at {args.zip}; pass --zip")
    if not (ANCHOR / "val.json").is_file():
        raise SystemExit(f"the coco16b anchor is not at {ANCHOR}")
    reference_val = json.loads((ANCHOR / "val.json").read_text())["val"]
    reference_losses = pd.read_csv(ANCHOR / "results.csv")
    reference_losses.columns = [c.strip() for c in reference_losses.columns]

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    args.workdir = args.workdir.resolve()  # the dataset YAML names absolute paths
    args.workdir.mkdir(parents=True, exist_ok=True)
    dataset_yaml = build_anchor_dataset(args.zip, args.workdir)
    cache = build_cache_from_dataset_yaml(dataset_yaml, args.workdir / "cache", 320)
    histories: dict[int, list[dict]] = {}
    scores: dict[int, dict[str, dict[str, float]]] = {}
    for seed in args.seeds:
        run_dir = args.workdir / f"seed{seed}"
        if args.evaluate_only:
            if not (run_dir / "history.json").is_file():
                logger.info("seed %d: no finished run in %s, skipped", seed, run_dir)
                continue
            histories[seed] = json.loads((run_dir / "history.json").read_text())
        else:
            histories[seed] = train_seed(
                cache, seed, args.epochs, args.threads, run_dir, overrides=overrides
            )
        if args.train_only:
            continue
        scores[seed] = {
            str(imgsz): evaluate_checkpoint(run_dir / "last.pt", dataset_yaml, imgsz=imgsz)
            for imgsz in (320, 640)
        }
    if args.train_only:
        return {}
    if not scores:
        raise SystemExit("no finished run to score")
    plot = args.out.with_name(f"{args.out.stem}_losses.png")
    plot.parent.mkdir(parents=True, exist_ok=True)
    mode = precision(overrides)
    plot_losses(histories, reference_losses, plot, mode)

    mean = {
        size: {k: statistics.mean(s[size][k] for s in scores.values()) for k in METRICS}
        for size in ("320", "640")
    }
    final_losses = {
        seed: {key: history[-1][key] for key in LOSS_KEYS} for seed, history in histories.items()
    }
    reference_final = {key: float(reference_losses[key].iloc[-1]) for key in LOSS_KEYS}
    report = {
        "benchmark": "anchor_coco16b",
        "recipe": recipe(0, args.epochs, args.threads, Path("<workdir>"))
        | overrides
        | {"imgsz": 320},
        "epochs": args.epochs,
        "precision": mode,
        "seeds": {str(seed): scores[seed] for seed in scores},
        "mean": mean,
        "reference": reference_val,
        "final_losses": {str(k): v for k, v in final_losses.items()},
        "reference_final_losses": reference_final,
        "train_wall_s": {str(s): h[-1].get("wall_s") for s, h in histories.items()},
        "reference_train_wall_s": 1511,
        "loss_plot": str(plot.relative_to(ROOT)) if plot.is_relative_to(ROOT) else str(plot),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "bf16_native": native_bf16(),
        },
    }
    logger.info("precision: %s", mode)
    header = f"{'':>14} " + " ".join(f"{k:>10}" for k in METRICS)
    for size in ("320", "640"):
        logger.info("imgsz %s\n%s", size, header)
        for seed, score in scores.items():
            logger.info(
                "%14s %s", f"seed {seed}", " ".join(f"{score[size][k]:10.4f}" for k in METRICS)
            )
        logger.info("%14s %s", "mean", " ".join(f"{mean[size][k]:10.4f}" for k in METRICS))
        logger.info(
            "%14s %s", "reference", " ".join(f"{reference_val[size][k]:10.4f}" for k in METRICS)
        )
    logger.info("final epoch losses (box cls dfl): reference %s", reference_final)
    for seed, losses in final_losses.items():
        logger.info("  seed %d: %s", seed, losses)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    logger.info("wrote %s and %s", args.out, plot)
    return report


if __name__ == "__main__":
    main()
