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
import statistics
from pathlib import Path

import yaml
from coco128 import DEFAULT_ZIP, ROOT, build_cache_from_dataset_yaml, build_image_subset
from machine import results_path
from seed_runs import (
    METRICS,
    machine_record,
    plot_overlay,
    precision_label,
    read_reference_losses,
    train_run,
)

from yolo_mlops.pipelines.evaluate.evaluation import evaluate_checkpoint
from yolo_mlops.yolo.train.state import LOSS_KEYS

logger = logging.getLogger("benchmarks.anchor_coco16b")

ANCHOR = ROOT.parent / "shared" / "reference" / "coco16b"


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
    return precision_label(recipe(0, 1, 0, Path("run")) | overrides)


def build_anchor_dataset(archive: Path, workdir: Path) -> Path:
    """Extract COCO128 and copy the 16 anchor images (``images.txt``) with their labels.

    Returns the dataset YAML (train = val = the 16 images, COCO's 80 class names).
    """
    names = (ANCHOR / "images.txt").read_text().split()
    return build_image_subset(archive, workdir, names, "coco16b")


def train_seed(
    cache, seed: int, epochs: int, threads: int, run_dir: Path, *, overrides: dict | None = None
) -> list[dict]:
    """Train one seed of the recipe (unless ``run_dir`` holds a finished run); its history."""
    config = recipe(seed, epochs, threads, run_dir) | (overrides or {})
    return train_run(cache, config, run_dir)


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
    reference_losses = read_reference_losses(ANCHOR / "results.csv")

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
    title = f"coco16b: training losses, ours ({mode}) vs the reference run (fp32)"
    plot_overlay({mode: histories}, {0: reference_losses}, plot, title)

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
        "machine": machine_record(),
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
