"""Label-validation throughput: images checked per second, and how it scales with workers.

Runs :func:`yolo_mlops.ingestion.validation.validate_dataset` (full decode of every image, label
parsing, policy, tables) on COCO128 (when ``../shared/data/coco128.zip`` exists) and on a
synthetic COCO-sized set of ``--n`` images, with each pool size in ``--workers`` and each pool
kind in ``--executors``. Speed-up is relative to 1 worker of the same kind; efficiency =
speed-up / workers (1.0 = linear scaling). Times include starting the pool (process pools spawn
fresh interpreters). The best of ``--repeat`` runs is kept. Prints a table and writes JSON.

Usage (the lead runs the real figures on a quiet machine)::

    python benchmarks/validate_labels.py                      # N=5000, workers 1 and 2
    python benchmarks/validate_labels.py --n 40 --size 128 --repeat 1   # smoke run
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
from typing import Any

import cv2
from machine import results_path

from yolo_mlops.ingestion.archive import safe_extract
from yolo_mlops.ingestion.dataset_yaml import DatasetSpec, parse_dataset_yaml, shipped_yaml
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset
from yolo_mlops.ingestion.validation import ValidationConfig, validate_dataset

logger = logging.getLogger("benchmarks.validate_labels")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "coco128.zip"
DEFAULT_OUT = results_path("validate_labels")


def coco128_spec(archive: Path, workdir: Path) -> DatasetSpec:
    """Extract COCO128 into ``workdir`` and parse the shipped YAML against it."""
    root = safe_extract(archive, workdir / "coco128")
    return parse_dataset_yaml(shipped_yaml("coco128"), root=root, name="coco128")


def synthetic_spec(n_images: int, size: int, workdir: Path) -> DatasetSpec:
    """A synthetic set of ``n_images`` JPEGs, sides in [0.75*size, size] (COCO-like at 640)."""
    started = time.perf_counter()
    spec = SyntheticSpec(
        n_images=n_images,
        names=tuple(f"c{i}" for i in range(10)),
        size_range=(size * 3 // 4, size),
        max_boxes=8,
        backgrounds=0,
        orphans=0,
    )
    yaml_path = write_synthetic_dataset(workdir / "synthetic", spec, seed=0)
    logger.info(
        "synthetic set of %d images written in %.1f s", n_images, time.perf_counter() - started
    )
    return parse_dataset_yaml(yaml_path, name=f"synthetic{n_images}")


def measure(spec: DatasetSpec, workers: int, executor: str, repeat: int) -> dict[str, Any]:
    """Best-of-``repeat`` wall time of one validation; returns the row of the results table."""
    images = len({p for paths in spec.splits.values() for p in paths})
    config = ValidationConfig(workers=workers, executor=executor, progress=False,  # type: ignore[arg-type]
                              max_invalid_fraction=1.0)  # fmt: skip
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        validate_dataset(spec, config)
        best = min(best, time.perf_counter() - started)
    return {"dataset": spec.name, "images": images, "executor": executor, "workers": workers,
            "seconds": round(best, 4), "images_per_s": round(images / best, 1)}  # fmt: skip


def add_scaling(rows: list[dict[str, Any]]) -> None:
    """Speed-up and efficiency against the 1-worker row of the same dataset and executor."""
    for row in rows:
        base = next((r for r in rows if r["dataset"] == row["dataset"]
                     and r["executor"] == row["executor"] and r["workers"] == 1), None)  # fmt: skip
        if base is not None:
            row["speedup"] = round(row["images_per_s"] / base["images_per_s"], 2)
            row["efficiency"] = round(row["speedup"] / row["workers"], 2)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="synthetic images")
    parser.add_argument("--size", type=int, default=640, help="largest synthetic image side (px)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--executors", nargs="+", default=["thread", "process"],
                        choices=["thread", "process"])  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--coco128", type=Path, default=DEFAULT_ZIP)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("yolo_mlops").setLevel(logging.WARNING)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="validate_labels_bench_") as tmp:
        specs = []
        if args.coco128.is_file():
            specs.append(coco128_spec(args.coco128, Path(tmp)))
        else:
            logger.info("COCO128 not found at %s: skipped", args.coco128)
        specs.append(synthetic_spec(args.n, args.size, Path(tmp)))
        for spec in specs:
            for executor in args.executors:
                for workers in sorted(set(args.workers) | {1}):
                    rows.append(measure(spec, workers, executor, args.repeat))
    add_scaling(rows)
    header = (
        f"{'dataset':<16}{'images':>7}{'pool':>9}{'workers':>8}{'s':>9}{'img/s':>9}"
        f"{'speedup':>9}{'eff.':>6}"
    )
    logger.info(header)
    for r in rows:
        logger.info(f"{r['dataset']:<16}{r['images']:>7}{r['executor']:>9}{r['workers']:>8}"
                    f"{r['seconds']:>9.3f}{r['images_per_s']:>9.1f}{r.get('speedup', 1):>9.2f}"
                    f"{r.get('efficiency', 1):>6.2f}")  # fmt: skip
    result = {
        "benchmark": "validate_labels",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "opencv": cv2.__version__,
        },
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    logger.info("wrote %s", args.out)
    return result


if __name__ == "__main__":
    main()
