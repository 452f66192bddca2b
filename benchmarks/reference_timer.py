"""Whole-epoch training images/s of the reference trainer (Ultralytics), run as a separate program.

``train_throughput.py --reference-yolo PATH`` runs this once per repetition, alternating with
``epoch_timer.py`` on this checkout, so that the reference and our trainer are measured side by
side on the same machine with the issue's recipe: yolo11n from scratch on COCO128, batch 16, SGD,
2 loader workers, validation off, mosaic in every epoch (the reference turns it off for the last
``close_mosaic`` epochs, which is every epoch of a short run), the reference's defaults otherwise.

The project never installs or imports Ultralytics (AGPL). ``PATH`` is the ``yolo`` command of an
installation the user made in a separate virtual environment; this script only starts that
command and reads the ``results.csv`` it writes. The reference runs offline (``YOLO_OFFLINE=1``)
with its settings in a temporary folder: analytics and logger integrations off.

Epoch times come from the ``time`` column of ``results.csv`` (seconds since training started,
written after each epoch). The reference validates after its last epoch even with ``val=False``,
so the last epoch is not counted; the first (start-up) is not either, as in ``epoch_timer.py``.

Usage::

    python benchmarks/reference_timer.py --yolo /path/to/venv/bin/yolo --imgsz 320 --epochs 5
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import matplotlib
from coco128 import DEFAULT_ZIP, extract_coco128


def reference_command(
    yolo: Path, data: Path, *, imgsz: int, epochs: int, workers: int, project: Path
) -> list[str]:
    """The reference's CLI call for the throughput recipe (the issue's side-by-side settings)."""
    return [
        str(yolo), "detect", "train", "model=yolo11n.yaml", f"data={data}", f"imgsz={imgsz}",
        "batch=16", "optimizer=SGD", f"workers={workers}", "val=False", f"epochs={epochs}",
        "close_mosaic=0", "device=cpu", "plots=False", f"project={project}", "name=run",
        "exist_ok=True",
    ]  # fmt: skip


def epoch_walls(results_csv: Path) -> list[float]:
    """Each epoch's wall time in seconds from the cumulative ``time`` column of ``results.csv``."""
    with results_csv.open(newline="") as handle:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(handle)]
    if not rows or "time" not in rows[0]:
        raise SystemExit(f"{results_csv}: no 'time' column; is this an Ultralytics results.csv?")
    marks = [0.0, *(float(row["time"]) for row in rows)]
    return [b - a for a, b in itertools.pairwise(marks)]


def offline_env(yolo: Path, config_dir: Path) -> dict[str, str]:
    """Environment for an offline reference run with no logging integrations.

    The reference's settings live in ``config_dir`` (``YOLO_CONFIG_DIR``): analytics and every
    logger integration off (it would otherwise log each epoch to the MLflow it finds installed),
    and a stand-in for the font it looks for before training, so that it never downloads one.
    """
    env = os.environ | {"YOLO_CONFIG_DIR": str(config_dir), "YOLO_OFFLINE": "1"}
    off = ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")
    subprocess.run(
        [str(yolo), "settings", *(f"{key}=False" for key in off)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for settings in config_dir.rglob("settings.json"):  # its folder is the reference's config
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            shutil.copy(font, settings.parent / name)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yolo", type=Path, required=True, help="the reference's yolo command")
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=5, help="epochs (first and last not timed)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.epochs < 3:
        raise SystemExit("--epochs must be at least 3: the first and the last are not timed")
    if not args.yolo.is_file():
        raise SystemExit(f"reference command not found: {args.yolo}")
    with tempfile.TemporaryDirectory(prefix="reference-timer-") as tmp:
        work = Path(tmp)
        data = extract_coco128(args.zip, work)
        env = offline_env(args.yolo, work / "config")
        command = reference_command(
            args.yolo,
            data,
            imgsz=args.imgsz,
            epochs=args.epochs,
            workers=args.workers,
            project=work,
        )
        done = subprocess.run(
            command, cwd=work, env=env, capture_output=True, text=True, check=False
        )
        results = work / "run" / "results.csv"
        if done.returncode != 0 or not results.is_file():
            tail = (done.stdout + done.stderr)[-3000:]
            raise SystemExit(f"the reference run failed (exit {done.returncode}):\n{tail}")
        walls = epoch_walls(results)
        images = len(list((work / "raw").rglob("images/train2017/*.jpg")))
    steady = statistics.median(walls[1:-1])
    print(json.dumps({"imgsz": args.imgsz, "reference": str(args.yolo), "epoch_wall_s": walls,
                      "images_per_s": images / steady}))  # fmt: skip


if __name__ == "__main__":
    main()
