"""CPU inference speed of YOLO11 through ``yolo.inference``: preprocess, inference, NMS (ms/image).

    python benchmarks/inference.py                      # yolo11n, 640, batch 1 and 16, fp32 + bf16
    python benchmarks/inference.py --repeats 2 --batch-sizes 1 --imgsz 320   # quick smoke run
    python benchmarks/inference.py --device cuda --json benchmarks/results/inference_cuda.json

Each figure is the median over ``--repeats`` timed runs (after ``--warmup`` untimed ones), divided
by the batch size. bf16 runs the forward under ``torch.autocast("cpu", torch.bfloat16)`` and is
skipped when the CPU has no bf16 support. ``inference`` is forward + decode (the reference's model
returns decoded boxes), as in the evaluation's speed split.

Without ``--weights`` the model is freshly initialised, whose class scores are all far below any
useful threshold, so NMS has almost nothing to do; pass trained weights (any checkpoint that
``read_checkpoint`` accepts, ours or Ultralytics') for representative NMS times. The number of
detections per image is written next to the times so the NMS figure can be judged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from machine import results_path

from yolo_mlops.yolo import build_model, load_checkpoint
from yolo_mlops.yolo.inference import TIMING_KEYS, detect

logger = logging.getLogger("benchmarks.inference")


def bf16_supported() -> bool:
    """Whether this CPU runs bf16 kernels natively (oneDNN), i.e. autocast is worth timing."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bench_one(
    model: torch.nn.Module,
    batch: int,
    *,
    imgsz: int,
    dtype: str,
    repeats: int,
    warmup: int,
    conf: float,
) -> dict[str, Any]:
    """Median ms/image of preprocess, inference (forward + decode) and NMS for one setting.

    Runs :func:`yolo_mlops.yolo.inference.detect`, the same path as evaluation and the MLflow model.
    """
    device = next(model.parameters()).device
    images = torch.rand(batch, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    images = images.to(device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if dtype == "bf16"
        else contextlib.nullcontext()
    )
    times: dict[str, list[float]] = {key: [] for key in TIMING_KEYS}
    detections = 0
    for run in range(warmup + repeats):
        split: dict[str, float] = {}
        with autocast:
            found = detect(model, images, conf=conf, times=split)
        if run >= warmup:
            for key in TIMING_KEYS:
                times[key].append(split[key])
            detections = sum(len(d) for d in found)
    row: dict[str, Any] = {"batch": batch, "dtype": dtype}
    for stage, values in times.items():
        row[f"{stage}_ms_per_image"] = 1000 * statistics.median(values) / batch
    row["total_ms_per_image"] = sum(row[f"{s}_ms_per_image"] for s in times)
    row["detections_per_image"] = detections / batch
    return row


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Fixed-width table of the result rows."""
    columns = (("batch", 5), ("dtype", 5), ("prep", 8), ("infer", 9), ("nms", 8), ("total", 9))
    header = " ".join(f"{name:>{width}}" for name, width in (*columns, ("dets", 6)))
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['batch']:>5} {r['dtype']:>5} {r['preprocess_ms_per_image']:>8.3f} "
            f"{r['inference_ms_per_image']:>9.2f} {r['nms_ms_per_image']:>8.3f} "
            f"{r['total_ms_per_image']:>9.2f} {r['detections_per_image']:>6.1f}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="n", choices=list("nsmlx"))
    parser.add_argument("--imgsz", type=int, default=640, help="square input side (multiple of 32)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per setting (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per setting")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--conf", type=float, default=0.25, help="NMS confidence threshold")
    parser.add_argument("--weights", type=Path, default=None, help="checkpoint to time with")
    parser.add_argument("--device", default="cpu", help="cpu (the figure asked for) or cuda")
    parser.add_argument("--no-fuse", action="store_true", help="keep BatchNorm layers unfused")
    parser.add_argument("--json", type=Path, default=results_path("inference"), help="output file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, log the table, write the JSON; returns the JSON document."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.imgsz % 32:
        raise SystemExit(f"--imgsz must be a multiple of 32, got {args.imgsz}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_checkpoint(args.weights) if args.weights else build_model(args.scale)
    device = torch.device(args.device)
    model.to(device).eval()
    if not args.no_fuse:
        model.fuse()
    dtypes = [d for d in args.dtypes if d != "bf16" or device.type == "cuda" or bf16_supported()]
    if len(dtypes) < len(args.dtypes):
        logger.info("bf16 skipped: this CPU has no native bf16 support")
    rows = []
    for batch in args.batch_sizes:
        for dtype in dtypes:
            logger.info("timing batch %d %s ...", batch, dtype)
            rows.append(
                bench_one(
                    model,
                    batch,
                    imgsz=args.imgsz,
                    dtype=dtype,
                    repeats=args.repeats,
                    warmup=args.warmup,
                    conf=args.conf,
                )
            )
    document = {
        "model": f"yolo11{model.scale}",
        "weights": str(args.weights) if args.weights else None,
        "fused": not args.no_fuse,
        "imgsz": args.imgsz,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "conf": args.conf,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "results": rows,
    }
    logger.info(
        "yolo11%s @ %d, ms per image (median of %d)\n%s",
        model.scale,
        args.imgsz,
        args.repeats,
        format_table(rows),
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2))
    logger.info("wrote %s", args.json)
    return document


if __name__ == "__main__":
    main()
