"""Data loader throughput next to the yolo11n training step rate (issue 4 benchmark).

Measures augmented training samples per second (mosaic on, spec defaults) with 0 and N loader
workers on COCO128, and the training step rate of yolo11n at the same batch size on this machine
(forward + loss + backward + SGD step on CPU, one process, ``--threads`` torch threads). The loader
must deliver at least 3× what training consumes. Prints a table and writes JSON.

Usage (the lead runs the real figures on a quiet machine)::

    python benchmarks/dataloader.py                       # imgsz 640, batch 16, workers 0 and 2
    python benchmarks/dataloader.py --imgsz 128 --batches 2 --train-steps 1   # smoke run
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

from yolo_mlops.yolo.data.image_cache import ImageCache
from yolo_mlops.yolo.data.loader import build_train_loader

logger = logging.getLogger("benchmarks.dataloader")

REQUIRED_RATIO = 3.0


def build_cache(archive: Path, workdir: Path, imgsz: int) -> ImageCache:
    """Extract ``archive`` into ``workdir`` and build its image cache there (train = val)."""
    started = time.perf_counter()
    cache = build_coco128_cache(archive, workdir, imgsz)
    logger.info(
        "image cache built in %.1f s (%d images)", time.perf_counter() - started, len(cache)
    )
    return cache


def loader_rate(cache: ImageCache, batch: int, workers: int, batches: int) -> dict:
    """Samples/s of the training loader over ``batches`` batches (after one warm-up batch)."""
    loader = build_train_loader(cache, batch_size=batch, workers=workers, epochs=1000)
    epoch, produced, started = 0, 0, None
    warm = True
    while produced < batches:
        loader.set_epoch(epoch)
        for _ in loader:
            if warm:  # worker start-up and first-touch page faults are not the steady state
                warm, started = False, time.perf_counter()
                continue
            produced += 1
            if produced >= batches:
                break
        epoch += 1
    seconds = time.perf_counter() - started
    return {"workers": workers, "batches": batches, "samples_per_s": batches * batch / seconds}


def training_rate(cache: ImageCache, batch: int, steps: int) -> dict:
    """yolo11n training images/s (forward + loss + backward + step); guarded if missing."""
    try:
        from yolo_mlops.yolo import build_model
        from yolo_mlops.yolo.train.loss import DetectionLoss
    except ImportError as error:
        return {"available": False, "reason": f"model/loss not importable: {error}"}
    model = build_model("n", num_classes=80).train()
    criterion = DetectionLoss(80)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    loader = build_train_loader(cache, batch_size=batch, workers=0, epochs=1000)
    loader.set_epoch(0)
    data = next(iter(loader))
    images = data["images"].float() / 255
    timings = []
    for step in range(steps + 1):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        total, _ = criterion(model(images), data["targets"], len(images))
        total.backward()
        optimizer.step()
        if step:  # the first step pays for allocations and lazy initialisation
            timings.append(time.perf_counter() - started)
    seconds = sum(timings) / len(timings)
    return {
        "available": True,
        "steps": steps,
        "seconds_per_step": seconds,
        "images_per_s": batch / seconds,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and writes) the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batches", type=int, default=20, help="timed loader batches per setting")
    parser.add_argument("--train-steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--out", type=Path, default=results_path("dataloader"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.zip.is_file():
        raise SystemExit(f"COCO128 archive not found at {args.zip}; pass --zip")
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="dataloader-bench-") as tmp:
        cache = build_cache(args.zip, Path(tmp), args.imgsz)
        loaders = [loader_rate(cache, args.batch, w, args.batches) for w in args.workers]
        training = (
            training_rate(cache, args.batch, args.train_steps)
            if args.train_steps > 0
            else {"available": False, "reason": "skipped (--train-steps 0)"}
        )
    for row in loaders:
        row["ratio_to_training"] = (
            row["samples_per_s"] / training["images_per_s"] if training["available"] else None
        )
        row["meets_3x"] = (
            row["ratio_to_training"] >= REQUIRED_RATIO if training["available"] else None
        )
    result = {
        "benchmark": "dataloader",
        "imgsz": args.imgsz,
        "batch": args.batch,
        "loader": loaders,
        "training_yolo11n": training,
        "required_ratio": REQUIRED_RATIO,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
    }
    logger.info("imgsz %d, batch %d", args.imgsz, args.batch)
    logger.info("%-10s %14s %12s %8s", "workers", "samples/s", "ratio", ">=3x")
    for row in loaders:
        ratio = row["ratio_to_training"]
        logger.info(
            "%-10d %14.1f %12s %8s",
            row["workers"],
            row["samples_per_s"],
            f"{ratio:.2f}" if ratio is not None else "n/a",
            row["meets_3x"],
        )
    if training["available"]:
        logger.info("yolo11n training: %.2f img/s", training["images_per_s"])
    else:
        logger.info("yolo11n training: not measured (%s)", training["reason"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s", args.out)
    return result


if __name__ == "__main__":
    main()
