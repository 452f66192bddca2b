"""Images/s of 1 vs N CPU training processes through ``kedro run --pipeline train`` (issue 17).

Builds the COCO128 image cache (``--images`` first images, ``--imgsz``) in a scratch copy of the
project (``conf/base`` + ``conf/ci``), then runs ``python -m kedro run --pipeline train --env ci``
once per process count with ``training.nproc=N``, tracking off. Reports two figures per run:

- ``train img/s``: training images per second of the epochs' own time (``time/epoch`` in the
  history, validation on rank 0 excluded), what the processes deliver once started;
- ``end-to-end img/s``: epochs x images over the wall time of the whole ``kedro run``, which
  includes Kedro's start-up, torchrun and the workers' imports: the overhead of launching.

On a 2-core machine expect no gain from 2 processes (both share the same cores); the figure
shows the launch overhead. GPU scaling (``training.device: 0,1``) is not measured here yet.

Usage::

    python benchmarks/scale_out.py                               # 1 vs 2 processes, 3 epochs
    python benchmarks/scale_out.py --images 32 --epochs 2 --imgsz 96    # quick run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from coco128 import DEFAULT_ZIP, ROOT, build_coco128_cache
from machine import results_path

logger = logging.getLogger("scale_out")


def scratch_project(workdir: Path) -> Path:
    """A copy of the project's configuration that runs against the installed package."""
    project = workdir / "project"
    (project / "src").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", project)
    for env in ("base", "ci"):
        shutil.copytree(ROOT / "conf" / env, project / "conf" / env)
    (project / "conf" / "local").mkdir()
    return project


def run_once(project: Path, processes: int, args: argparse.Namespace, images: int) -> dict:
    """One ``kedro run --pipeline train`` with ``training.nproc=processes``; its figures."""
    save_dir = f"data/06_models/nproc{processes}"
    params = {"training.nproc": processes, "training.epochs": args.epochs,
              "training.batch": args.batch, "training.save_dir": save_dir,
              "training.close_mosaic": 0, "tracking.enabled": False}  # fmt: skip
    command = [sys.executable, "-m", "kedro", "run", "--pipeline", "train", "--env", "ci",
               "--params", ",".join(f"{k}={v}" for k, v in params.items())]  # fmt: skip
    env = os.environ | {"KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"nproc={processes} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    history = pd.read_csv(project / "data/08_reporting/training_history.csv")
    epoch_s = float(history["time/epoch"].sum())
    return {
        "processes": processes,
        "epochs": args.epochs,
        "images": images,
        "wall_s": round(wall, 2),
        "epoch_s": round(epoch_s, 2),
        "train_img_s": round(args.epochs * images / epoch_s, 2),
        "end_to_end_img_s": round(args.epochs * images / wall, 2),
        "final_box_loss": float(history["train/box_loss"].iloc[-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, default=DEFAULT_ZIP)
    parser.add_argument("--images", type=int, default=64, help="first N COCO128 images")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16, help="global batch")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--output", type=Path, default=results_path("scale_out"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        project = scratch_project(Path(tmp))
        cache_dir = project / "data/05_model_input/image_cache"
        cache = build_coco128_cache(args.archive, Path(tmp) / "coco", args.imgsz, args.images)
        shutil.copytree(cache.root, cache_dir)
        images = args.images  # train = the first --images images (as val)
        for processes in args.processes:
            logger.info("kedro run with training.nproc=%d ...", processes)
            rows.append(run_once(project, processes, args, images))

    header = f"{'processes':>9} {'wall s':>8} {'epochs s':>9} {'train img/s':>12} {'e2e img/s':>10}"
    logger.info(header)
    for row in rows:
        logger.info(
            f"{row['processes']:>9} {row['wall_s']:>8.1f} {row['epoch_s']:>9.1f} "
            f"{row['train_img_s']:>12.2f} {row['end_to_end_img_s']:>10.2f}"
        )
    result = {
        "benchmark": "scale_out",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": {k: str(v) for k, v in vars(args).items()},
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
