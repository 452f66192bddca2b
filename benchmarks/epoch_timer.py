"""Whole-epoch training images/s of the project at a given source tree (a child process).

``train_throughput.py --against REV`` runs this script once per tree and repetition, alternating
this checkout and ``REV``'s, so that both are measured side by side on the same machine. It only
uses the parts of the trainer's interface that every version since the issue was filed has
(``TrainConfig``, ``Trainer(config, cache, callbacks=...)``, ``fit()``), with the tree's own
defaults otherwise, and prints one JSON line.

Usage::

    python benchmarks/epoch_timer.py --src /path/to/tree/src --imgsz 320 --epochs 4
    python benchmarks/epoch_timer.py --src src --imgsz 320 --set bf16=true --set bf16_after_steps=0
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml


def recipe(epochs: int, workers: int, save_dir: Path) -> dict[str, Any]:
    """The throughput recipe's ``TrainConfig`` fields: batch 16, SGD, mosaic on, no validation."""
    return dict(
        epochs=epochs, batch=16, optimizer="SGD", close_mosaic=0, val=False, progress=False,
        workers=workers, device="cpu", pretrained="", save_dir=str(save_dir),
    )  # fmt: skip


def timed_fit(trainer_cls: Any, config: Any, cache: Any) -> tuple[Any, list[float]]:
    """``trainer_cls(config, cache).fit()``: its result and each epoch's wall time in seconds."""
    marks: list[float] = []
    trainer = trainer_cls(config, cache, callbacks=[lambda *_: marks.append(time.perf_counter())])
    start = time.perf_counter()
    result = trainer.fit()
    return result, [b - a for a, b in itertools.pairwise([start, *marks])]


def steady_median(walls: list[float]) -> float:
    """Median epoch time after the first epoch (loader start-up, compilation), in seconds."""
    return statistics.median(walls[1:] or walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True, help="the tree's src/ folder")
    parser.add_argument("--zip", type=Path, required=True, help="COCO128 archive")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=4, help="epochs (first = warm-up)")
    parser.add_argument("--workers", type=int, default=2, help="training.workers")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a training setting of this tree (YAML value), e.g. --set bf16=false",
    )  # fmt: skip
    args = parser.parse_args()
    overrides = {k.strip(): yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.set)}
    sys.path.insert(0, str(args.src.resolve()))  # the tree under test, imported below
    from coco128 import build_coco128_cache

    import yolo_mlops
    from yolo_mlops.yolo import TrainConfig, Trainer

    if not Path(yolo_mlops.__file__).resolve().is_relative_to(args.src.resolve()):
        raise SystemExit(f"imported {yolo_mlops.__file__}, not the tree under {args.src}")
    with tempfile.TemporaryDirectory(prefix="epoch-timer-") as tmp:
        cache = build_coco128_cache(args.zip, Path(tmp), args.imgsz)
        config = TrainConfig(**recipe(args.epochs, args.workers, Path(tmp) / "run") | overrides)
        _, walls = timed_fit(Trainer, config, cache)
        images = len(cache.indices("train"))
    images_per_s = images / steady_median(walls)
    print(json.dumps({"imgsz": args.imgsz, "set": overrides, "epoch_wall_s": walls,
                      "images_per_s": images_per_s}))  # fmt: skip


if __name__ == "__main__":
    main()
