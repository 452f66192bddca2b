"""COCO128 overfit sanity check: yolo11n from scratch, train = val (issue 5 benchmark).

Recipe (the issue's): yolo11n from scratch, imgsz 320, batch 16, SGD lr0 0.01, 60 epochs,
seed 0, CPU, COCO128 for both training and validation. Under the same recipe the reference
implementation reaches mAP50 0.014 and mAP50-95 0.004 at about 11.5 s per epoch on the 2-core
machines. Reports the best epoch's metrics (what best.pt holds), the last epoch's, and the mean
seconds per epoch (training + validation, and training alone), prints a table and writes JSON.

Usage (the lead runs the real figures on a quiet machine)::

    python benchmarks/overfit_coco128.py                        # the full recipe
    python benchmarks/overfit_coco128.py --epochs 1 --images 16 # smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from coco128 import DEFAULT_ZIP, build_coco128_cache
from machine import results_path

from yolo_mlops.yolo.train.trainer import Trainer

logger = logging.getLogger("benchmarks.overfit_coco128")

REFERENCE = {"mAP50": 0.014, "mAP50-95": 0.004, "seconds_per_epoch": 11.5}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and writes) the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--images", type=int, default=0, help="use the first N images (0 = all)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="loader processes")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast on CPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (the recipe), cuda:0, auto")
    parser.add_argument("--no-amp", action="store_true", help="float32 on CUDA too")
    parser.add_argument("--no-channels-last", action="store_true", help="NCHW instead of NHWC")
    parser.add_argument("--out", type=Path, default=results_path("overfit_coco128"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.zip.is_file():
        raise SystemExit(f"COCO128 archive not found at {args.zip}; pass --zip")

    with tempfile.TemporaryDirectory(prefix="overfit-coco128-") as tmp:
        cache = build_coco128_cache(args.zip, Path(tmp), args.imgsz, args.images)
        config = {
            "scale": "n",
            "epochs": args.epochs,
            "batch": args.batch,
            "optimizer": "SGD",
            "lr0": 0.01,
            "seed": args.seed,
            "device": args.device,
            "amp": not args.no_amp,
            "workers": args.workers,
            "threads": args.threads,
            "bf16": args.bf16,
            "channels_last": not args.no_channels_last,
            "save_dir": str(Path(tmp) / "run"),
            "progress": False,
        }
        started = time.perf_counter()
        result = Trainer(config, cache).fit()
        wall = time.perf_counter() - started
    history = result.history
    best = max(history, key=lambda row: row["fitness"])
    last = history[-1]
    per_epoch = sum(row["time/epoch"] for row in history) / len(history)
    train_only = sum(row["time/data"] + row["time/compute"] for row in history) / len(history)
    report = {
        "benchmark": "overfit_coco128",
        "recipe": config | {"imgsz": args.imgsz, "images": len(cache.indices("train"))},
        "best_epoch": int(best["epoch"]),
        "mAP50": best["metrics/mAP50"],
        "mAP50-95": best["metrics/mAP50-95"],
        "last_mAP50": last["metrics/mAP50"],
        "last_mAP50-95": last["metrics/mAP50-95"],
        "seconds_per_epoch": per_epoch,
        "train_seconds_per_epoch": train_only,
        "wall_seconds": wall,
        "reference": REFERENCE,
        "vs_reference": {
            "mAP50_ratio": best["metrics/mAP50"] / REFERENCE["mAP50"],
            "mAP50-95_ratio": best["metrics/mAP50-95"] / REFERENCE["mAP50-95"],
            "epoch_time_ratio": per_epoch / REFERENCE["seconds_per_epoch"],
        },
        "history": history,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
    }
    logger.info("%-22s %12s %12s", "", "ours", "reference")
    logger.info("%-22s %12.4f %12.4f", "mAP50 (best epoch)", report["mAP50"], REFERENCE["mAP50"])
    logger.info(
        "%-22s %12.4f %12.4f", "mAP50-95 (best epoch)", report["mAP50-95"], REFERENCE["mAP50-95"]
    )
    logger.info(
        "%-22s %12.2f %12.2f", "s/epoch (train+val)", per_epoch, REFERENCE["seconds_per_epoch"]
    )
    logger.info("%-22s %12.2f %12s", "s/epoch (train only)", train_only, "")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    logger.info("wrote %s", args.out)
    return report


if __name__ == "__main__":
    main()
