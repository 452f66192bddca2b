"""Training throughput of yolo11n on CPU: images per second, data loading included (issue 5).

For each image size (320 and 640 by default) and precision (fp32, bf16 autocast), runs the real
training step of :func:`yolo_mlops.yolo.train.engine.train_one_epoch` (augmenting loader, forward,
loss, backward, accumulation, clipping, optimizer step, EMA) over COCO128 at batch 16, after one
warm-up batch, and reports images/s with the split into data-wait and compute seconds. Prints a
table and writes JSON.

Usage (the lead runs the real figures on a quiet machine)::

    python benchmarks/train_throughput.py                          # 320 and 640, fp32 and bf16
    python benchmarks/train_throughput.py --imgsz 64 --batches 1 --images 16   # smoke run
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from coco128 import DEFAULT_ZIP, ROOT, build_coco128_cache

from yolo_mlops.yolo.train.ema import ModelEMA
from yolo_mlops.yolo.train.engine import LoopState, StepSchedule, train_one_epoch
from yolo_mlops.yolo.data.loader import build_train_loader
from yolo_mlops.yolo.train.loss import DetectionLoss
from yolo_mlops.yolo.model.network import build_model
from yolo_mlops.yolo.train.optim import (
    LRFactor,
    OptimizerChoice,
    accumulate_steps,
    build_optimizer,
    build_scheduler,
)

logger = logging.getLogger("benchmarks.train_throughput")


class FirstBatches:
    """The first ``count`` batches of each pass over ``loader`` (epochs advance per pass)."""

    def __init__(self, loader: Any, count: int) -> None:
        self.loader, self.count, self.epoch = loader, count, 0

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        self.loader.set_epoch(self.epoch)
        self.epoch += 1
        return itertools.islice(iter(self.loader), self.count)


def measure(cache: Any, *, batch: int, batches: int, workers: int, bf16: bool,
            channels_last: bool) -> dict[str, Any]:  # fmt: skip
    """Images/s of ``batches`` training steps (after a 1-batch warm-up)."""
    torch.manual_seed(0)
    model = build_model("n", num_classes=len(cache.names))
    for name, param in model.named_parameters():
        if ".dfl" in name:
            param.requires_grad_(False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    accumulate = accumulate_steps(64, batch)
    optimizer = build_optimizer(model, OptimizerChoice("SGD", 0.01, 0.937, 0.0), 5e-4)
    factor = LRFactor(100, 0.01)
    build_scheduler(optimizer, factor)
    loader = build_train_loader(cache, batch_size=batch, workers=workers, epochs=100)
    criterion = DetectionLoss(len(cache.names))
    ema = ModelEMA(model)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    state = LoopState(accumulate=accumulate)
    common = dict(
        optimizer=optimizer, scaler=scaler, ema=ema, state=state, device=torch.device("cpu"),
        autocast_dtype=torch.bfloat16 if bf16 else None, channels_last=channels_last,
        imgsz=cache.imgsz, progress=False,
    )  # fmt: skip
    # no warmup: steady-state accumulation (4 batches per optimizer step at batch 16)
    schedule = StepSchedule(
        epochs=100, batches_per_epoch=batches, batch_size=batch, nbs=64, warmup_iters=0,
        warmup_bias_lr=0.0, warmup_momentum=0.8, momentum=0.937, lr_factor=factor,
    )  # fmt: skip
    warm = FirstBatches(loader, 1)
    train_one_epoch(model, criterion, warm, epoch=0, schedule=schedule, **common)
    timed = FirstBatches(loader, batches)
    timed.epoch = 1
    stats = train_one_epoch(model, criterion, timed, epoch=1, schedule=schedule, **common)
    seconds = stats.time_data + stats.time_compute
    return {
        "imgsz": cache.imgsz,
        "precision": "bf16" if bf16 else "fp32",
        "channels_last": channels_last,
        "batch": batch,
        "batches": batches,
        "images": stats.images,
        "images_per_s": stats.images / seconds,
        "seconds_per_batch": seconds / batches,
        "data_seconds": stats.time_data,
        "compute_seconds": stats.time_compute,
        "losses": stats.losses,
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and writes) the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    parser.add_argument(
        "--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"]
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per setting")
    parser.add_argument("--images", type=int, default=0, help="first N COCO128 images (0 = all)")
    parser.add_argument("--workers", type=int, default=2, help="loader processes")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--channels-last", action="store_true", help="also time channels_last")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/train_throughput.json"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.zip.is_file():
        raise SystemExit(f"COCO128 archive not found at {args.zip}; pass --zip")
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    layouts = [False, True] if args.channels_last else [False]
    for imgsz in args.imgsz:
        with tempfile.TemporaryDirectory(prefix="train-throughput-") as tmp:
            cache = build_coco128_cache(args.zip, Path(tmp), imgsz, args.images)
            for precision, layout in itertools.product(args.precision, layouts):
                rows.append(
                    measure(
                        cache,
                        batch=args.batch,
                        batches=args.batches,
                        workers=args.workers,
                        bf16=precision == "bf16",
                        channels_last=layout,
                    )
                )
                logger.info("%s", {k: v for k, v in rows[-1].items() if k != "losses"})
    result = {
        "benchmark": "train_throughput",
        "model": "yolo11n",
        "rows": rows,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "workers": args.workers,
            "bf16_supported": torch.backends.mkldnn.is_available(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
    }
    logger.info("%6s %6s %6s %10s %10s %10s", "imgsz", "prec", "NHWC", "img/s", "data s", "comp s")
    for row in rows:
        logger.info(
            "%6d %6s %6s %10.2f %10.2f %10.2f", row["imgsz"], row["precision"],
            row["channels_last"], row["images_per_s"], row["data_seconds"], row["compute_seconds"],
        )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s", args.out)
    return result


if __name__ == "__main__":
    main()
