"""Evaluation speed on COCO128: ms per image at 320 and 640, rectangular vs square batches.

    python benchmarks/evaluation.py                       # reference checkpoint, all 128 images
    python benchmarks/evaluation.py --images 32 --sizes 320        # quick run
    python benchmarks/evaluation.py --weights data/06_models/best.pt

Runs the whole evaluation (``yolo_mlops.pipelines.evaluate.evaluation``: original images decoded
and resized, letterboxed into the batch canvas, forward, decode, NMS, matching) once per (size,
batch layout) and reports the split that ``evaluate`` measures (preprocess: to device, /255;
inference: forward + decode; NMS), plus the wall time of the whole loop per image (image decoding
and letterboxing included) and the mean canvas area per image: rectangular batches pad less, so they
feed fewer pixels to the model (COCO128, batch 16: 97,152 vs 102,400 px per image at 320,
354,816 vs 409,600 at 640; a small ``--images`` subset can be the other way round, since a batch
mixing landscape and portrait images gets a square canvas half a stride larger). mAP50-95 is
written next to the times so the layouts can be compared (it differs slightly because the padding
around each image differs).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from coco128 import DEFAULT_ZIP, ROOT
from machine import results_path

from yolo_mlops.pipelines.evaluate.evaluation import dataset_images, evaluate_checkpoint_full
from yolo_mlops.yolo.data.rect import plan_batches

logger = logging.getLogger("benchmarks.evaluation")

DEFAULT_WEIGHTS = ROOT.parent / "shared" / "reference" / "yolo11n_coco16_ultralytics.pt"


def coco128_yaml(archive: Path, workdir: Path, images: int) -> Path:
    """Extract COCO128 into ``workdir``; a dataset YAML whose val is its first ``images``
    (0 = all)."""
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(workdir / "raw")
    root = next(p.parent.parent for p in (workdir / "raw").rglob("images/train2017"))
    files = sorted((root / "images" / "train2017").glob("*.jpg"))
    listing = workdir / "val.txt"
    listing.write_text("\n".join(str(p) for p in files[: images or None]) + "\n")
    dataset_yaml = workdir / "coco128.yaml"
    config = {"path": str(root), "train": str(listing), "val": str(listing)}
    dataset_yaml.write_text(yaml.safe_dump({**config, "names": [f"class{i}" for i in range(80)]}))
    return dataset_yaml


def canvas_pixels(dataset_yaml: Path, imgsz: int, batch: int, rect: bool) -> float:
    """Mean canvas area per image (pixels) of this batch layout."""
    shapes = dataset_images(dataset_yaml, "val", imgsz).orig_shapes()
    plan = plan_batches(shapes, batch, imgsz, rect=rect)
    areas = [
        h * w * len(members) for members, (h, w) in zip(plan.batches, plan.shapes, strict=True)
    ]
    return sum(areas) / len(shapes)


def bench_one(weights: Path, dataset_yaml: Path, imgsz: int, batch: int, rect: bool) -> dict:
    """One full evaluation; its speed split, wall time per image and mAP."""
    start = time.perf_counter()
    result = evaluate_checkpoint_full(weights, dataset_yaml, imgsz, batch_size=batch, rect=rect)
    wall = time.perf_counter() - start
    images = len(result.images)
    return {
        "imgsz": imgsz,
        "layout": "rect" if rect else "square",
        "images": images,
        **{f"{k}_ms_per_image": v for k, v in result.speed.items()},
        "model_ms_per_image": sum(result.speed.values()),
        "wall_ms_per_image": 1000 * wall / images,
        "canvas_pixels_per_image": canvas_pixels(dataset_yaml, imgsz, batch, rect),
        "mAP50-95": result.metrics["mAP50-95"],
    }


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Fixed-width table of the result rows."""
    header = (
        f"{'imgsz':>5} {'layout':>6} {'prep':>6} {'infer':>7} {'nms':>6} {'model':>7} "
        f"{'wall':>7} {'canvas px':>10} {'mAP50-95':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['imgsz']:>5} {r['layout']:>6} {r['preprocess_ms_per_image']:>6.2f} "
            f"{r['inference_ms_per_image']:>7.1f} {r['nms_ms_per_image']:>6.2f} "
            f"{r['model_ms_per_image']:>7.1f} {r['wall_ms_per_image']:>7.1f} "
            f"{r['canvas_pixels_per_image']:>10.0f} {r['mAP50-95']:>9.4f}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="checkpoint (80 cls)")
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/yolo_mlops_bench_evaluation"))
    parser.add_argument("--images", type=int, default=0, help="first N images (0 = all 128)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--batch", type=int, default=16, help="images per batch (reference: 16)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", type=Path, default=results_path("evaluation"), help="output file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, log the table, write the JSON; returns the JSON document."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name, path in (("--weights", args.weights), ("--zip", args.zip)):
        if not path.is_file():
            raise SystemExit(f"{name} {path} does not exist")
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset_yaml = coco128_yaml(args.zip, args.workdir, args.images)
    rows = []
    for imgsz in args.sizes:
        for rect in (True, False):
            logger.info("evaluating at %d, %s batches ...", imgsz, "rect" if rect else "square")
            rows.append(bench_one(args.weights, dataset_yaml, imgsz, args.batch, rect))
    document = {
        "weights": str(args.weights),
        "batch": args.batch,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "results": rows,
    }
    logger.info("evaluation ms per image (batch %d)\n%s", args.batch, format_table(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2))
    logger.info("wrote %s", args.json)
    return document


if __name__ == "__main__":
    main()
