"""Fine-tune vs scratch on COCO128: yolo11n from a trained Ultralytics checkpoint (issue 12).

Recipe: yolo11n, imgsz 320, batch 16, SGD lr0 0.01, a few epochs, seed 0, CPU, COCO128 for both
training and validation (as ``coco128.yaml``). Run twice with the same recipe: from
``../shared/reference/yolo11n_coco16_ultralytics.pt`` (Ultralytics' yolo11n trained on the first
16 COCO128 images at 320; AGPL weights, read in place, never copied) and from scratch. Reports the
training loss and validation mAP per epoch of both, prints a table and writes JSON.

Usage::

    python benchmarks/finetune_coco128.py                          # 3 epochs, all 128 images
    python benchmarks/finetune_coco128.py --epochs 1 --images 16   # smoke run
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
from coco128 import DEFAULT_ZIP, ROOT, build_coco128_cache
from machine import results_path

from yolo_mlops.yolo.train.state import LOSS_KEYS
from yolo_mlops.yolo.train.trainer import Trainer

logger = logging.getLogger("benchmarks.finetune_coco128")

DEFAULT_CHECKPOINT = ROOT.parent / "shared" / "reference" / "yolo11n_coco16_ultralytics.pt"


def _train(cache, config: dict, save_dir: Path, pretrained: str) -> list[dict]:
    """One run; its per-epoch rows reduced to loss, mAP and time."""
    started = time.perf_counter()
    result = Trainer(config | {"save_dir": str(save_dir), "pretrained": pretrained}, cache).fit()
    logger.info("run took %.0f s", time.perf_counter() - started)
    return [
        {
            "epoch": int(row["epoch"]),
            "loss": sum(row[key] for key in LOSS_KEYS),
            **{key.split("/")[1]: row[key] for key in LOSS_KEYS},
            "mAP50": row["metrics/mAP50"],
            "mAP50-95": row["metrics/mAP50-95"],
            "seconds": row["time/epoch"],
        }
        for row in result.history
    ]


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and writes) the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=0, help="use the first N images (0 = all)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="loader processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (the recipe), cuda:0, auto")
    parser.add_argument("--out", type=Path, default=results_path("finetune_coco128"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for path, what in ((args.zip, "COCO128 archive"), (args.checkpoint, "trained checkpoint")):
        if not path.is_file():
            raise SystemExit(f"{what} not found at {path}; pass --zip / --checkpoint")

    config = {
        "scale": "n",
        "epochs": args.epochs,
        "batch": args.batch,
        "optimizer": "SGD",
        "lr0": 0.01,
        "close_mosaic": 0,
        "seed": args.seed,
        "device": args.device,
        "workers": args.workers,
        "progress": False,
    }
    with tempfile.TemporaryDirectory(prefix="finetune-coco128-") as tmp:
        cache = build_coco128_cache(args.zip, Path(tmp), args.imgsz, args.images)
        runs = {
            "finetune": _train(cache, config, Path(tmp) / "finetune", str(args.checkpoint)),
            "scratch": _train(cache, config, Path(tmp) / "scratch", ""),
        }
        images = len(cache.indices("train"))
    report = {
        "benchmark": "finetune_coco128",
        "recipe": config | {"imgsz": args.imgsz, "images": images},
        "checkpoint": args.checkpoint.name,
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
    }
    logger.info("%5s | %32s | %32s", "", "fine-tuned", "scratch")
    logger.info("%5s | %10s %10s %10s | %10s %10s %10s", "epoch", "loss", "mAP50", "mAP50-95",
                "loss", "mAP50", "mAP50-95")  # fmt: skip
    for tuned, scratch in zip(runs["finetune"], runs["scratch"], strict=True):
        logger.info(
            "%5d | %10.3f %10.4f %10.4f | %10.3f %10.4f %10.4f",
            tuned["epoch"], tuned["loss"], tuned["mAP50"], tuned["mAP50-95"],
            scratch["loss"], scratch["mAP50"], scratch["mAP50-95"],
        )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    logger.info("wrote %s", args.out)
    return report


if __name__ == "__main__":
    main()
