"""Training throughput of yolo11n on a CUDA GPU: images/s of whole epochs, data loading included.

The GPU row of the training-speed benchmark: yolo11n from scratch on COCO128 (128 images, SGD,
mosaic on, validation off) through the real :class:`Trainer`, at ``--imgsz`` (640) and each
``--batch`` (16 and 64), in each mode:

- ``fp32``: float32, eager (``training.amp: false``);
- ``amp``: float16 autocast with a gradient scaler, eager (the default on CUDA);
- ``amp_compiled``: the same, the training forward compiled (``training.compile: true``).

All modes are NHWC and load with ``--workers`` processes (8, ``conf/base``'s value; the trainer
gives each training process up to its share of the cores) into page-locked batches. images/s
comes from the median wall time of the epochs after the first, as in ``train_throughput.py``: the
first pays for loader start-up, cuDNN's first calls and, when compiled, the compilation (reported
as ``first_epoch_s``). An epoch's wall time is everything the trainer does, the per-epoch
checkpoints included: with 128 images an epoch is 8 steps at batch 16 and 2 at batch 64.

Usage (on a GPU machine; ``benchmarks/gpu_check.sh`` runs it there with the CUDA tests)::

    python benchmarks/train_throughput_gpu.py                         # 640, batch 16 and 64
    python benchmarks/train_throughput_gpu.py --batch 64 --modes amp amp_compiled --epochs 8
    python benchmarks/train_throughput_gpu.py --device cpu --imgsz 64 --images 16 --batch 8 \
        --modes fp32 --epochs 2 --workers 0                           # smoke test, no GPU
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
from coco128 import DEFAULT_ZIP, build_coco128_cache
from epoch_timer import recipe
from machine import RESULTS, gpu_kind, machine_kind
from train_throughput import epoch_figures

from yolo_mlops.yolo import TrainConfig

logger = logging.getLogger("benchmarks.train_throughput_gpu")

MODES: dict[str, dict[str, Any]] = {
    "fp32": {"amp": False},
    "amp": {"amp": True},
    "amp_compiled": {"amp": True, "compile": True},
}


def measure(cache: Any, mode: str, *, batch: int, args: argparse.Namespace, workdir: Path) -> dict:
    """Train ``args.epochs`` epochs in ``mode`` at ``batch``; images/s from epochs 2..N."""
    settings = recipe(args.epochs, args.workers, workdir / f"{mode}-{batch}")
    settings |= {"device": args.device, "batch": batch, "channels_last": True} | MODES[mode]
    cuda = torch.device(args.device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    row = {"imgsz": cache.imgsz, "batch": batch, "mode": mode}
    row |= epoch_figures(cache, TrainConfig(**settings))
    row["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return row


def machine(device: str) -> dict:
    """What the figures were measured on."""
    cuda = torch.device(device).type == "cuda"
    return {
        "device": device,
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N (cpu: smoke test only)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--epochs", type=int, default=6, help="epochs per row (first = warm-up)")
    parser.add_argument("--images", type=int, default=0, help="first N COCO128 images (0 = all)")
    parser.add_argument("--workers", type=int, default=8, help="training.workers")
    parser.add_argument(
        "--out", type=Path, help="default: results/train_throughput_gpu_<gpu kind>.json"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.zip.is_file():
        raise SystemExit(f"COCO128 archive not found at {args.zip}; pass --zip")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA device here")
    if args.epochs < 2:
        raise SystemExit("--epochs must be at least 2 (the first is a warm-up)")
    if args.out is None:
        on_gpu = torch.device(args.device).type == "cuda"
        kind = gpu_kind(torch.cuda.get_device_name(args.device)) if on_gpu else machine_kind()
        args.out = RESULTS / f"train_throughput_gpu_{kind}.json"

    rows = []
    with tempfile.TemporaryDirectory(prefix="train-throughput-gpu-") as tmp:
        cache = build_coco128_cache(args.zip, Path(tmp), args.imgsz, args.images)
        for batch in args.batch:
            for mode in args.modes:
                rows.append(measure(cache, mode, batch=batch, args=args, workdir=Path(tmp)))
                logger.info("%s", {k: v for k, v in rows[-1].items() if k != "losses"})
    result = {
        "benchmark": "train_throughput_gpu",
        "model": "yolo11n",
        "recipe": "COCO128 from scratch, SGD, mosaic, validation off, NHWC",
        "workers": args.workers,
        "rows": rows,
        "machine": machine(args.device),
    }
    logger.info(
        "%6s %6s %13s %9s %9s %10s %10s",
        "imgsz", "batch", "mode", "img/s", "epoch s", "1st ep s", "peak GiB",
    )  # fmt: skip
    for row in rows:
        peak = row["peak_gpu_memory_gib"]
        logger.info(
            "%6d %6d %13s %9.1f %9.2f %10.1f %10s", row["imgsz"], row["batch"], row["mode"],
            row["images_per_s"], row["median_epoch_s"], row["first_epoch_s"],
            "-" if peak is None else f"{peak:.1f}",
        )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s", args.out)
    return result


if __name__ == "__main__":
    main()
