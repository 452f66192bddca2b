"""Hyperparameter search on coco16b: 16 pruned trials vs 16 unpruned, beside the default recipe.

The coco16b images (the 16 COCO128 images of ``../shared/reference/coco16b/images.txt``, train =
val, see ``anchor_coco16b.py``) at imgsz 320, the anchor's recipe (yolo11n from scratch, batch 8,
nbs 8, SGD lr0 0.01) with validation after every epoch, and a short budget per run (60 epochs).

1. The default recipe, one run per seed (``--baseline-seeds``): its best validation mAP50-95
   over the epochs, per seed, so the table shows the seed spread for scale.
2. A study of ``--trials`` trials with the median pruner (``conf/base/parameters_tune.yml``'s
   space and pruner), trial 0 being the default recipe.
3. The same study without pruning.

Both studies run through the ``tune`` pipeline's search (:mod:`yolo_mlops.pipelines.tune.search`:
the RDB study, the claim lock, the heartbeat), untracked, in ``--workdir``; a study that already
finished there is read back (delete its ``optuna.db`` to run it again). Time is compared as the
sum of the trials' durations recorded in the study (the wall time of a one-worker study, also for
a study read back). Prints a table and writes ``results/tune_coco16b_<machine kind>.json``.

Usage::

    python benchmarks/tune_coco16b.py                                  # 16 + 16 trials, 60 epochs
    python benchmarks/tune_coco16b.py --trials 2 --epochs 2 --baseline-seeds 0   # smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import optuna
import yaml
from anchor_coco16b import ANCHOR, build_anchor_dataset, recipe
from coco128 import DEFAULT_ZIP, ROOT, build_cache_from_dataset_yaml
from machine import results_path
from seed_runs import machine_record, train_run

from yolo_mlops.pipelines.tune import search

logger = logging.getLogger("benchmarks.tune_coco16b")

OBJECTIVE = "metrics/mAP50-95"


def training_block(epochs: int, threads: int, device: str) -> dict:
    """The anchor recipe with per-epoch validation (the search scores every epoch)."""
    return recipe(0, epochs, threads, Path("unused")) | {
        "val": True, "val_batch": 16, "device": device, "patience": epochs,
    }  # fmt: skip


def tune_block(args: argparse.Namespace, name: str, pruned: bool) -> dict:
    """conf/base's ``tune`` block resized to the benchmark (``pruned``: its median pruner)."""
    base = yaml.safe_load((ROOT / "conf/base/parameters_tune.yml").read_text())["tune"]
    pruner = dict(base["pruner"]) if pruned else {"kind": "none"}
    return base | {
        "study_name": name, "n_trials": args.trials, "epochs": args.epochs, "register": False,
        "storage": f"sqlite:///{args.workdir / name / 'optuna.db'}", "resume": True,
        "work_dir": str(args.workdir), "workers": args.workers, "pruner": pruner,
    }  # fmt: skip


def run_study(args: argparse.Namespace, cache, name: str, pruned: bool) -> dict:
    """Run (or read back) one study; its best value, counts, epochs trained and wall time."""
    tune = tune_block(args, name, pruned)
    training = training_block(args.epochs, args.threads, args.device)
    spec = search.SearchSpec(tune["storage"], tune, training, {}, cache_dir=str(cache.root))
    search.start_study(spec)
    started = time.perf_counter()
    counts = search.run_search(spec, cache)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=name, storage=tune["storage"])
    trials = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    recorded = sum((t.duration.total_seconds() for t in trials if t.duration), 0.0)
    return {
        "best": study.best_value, "best_trial": study.best_trial.number,
        "best_params": study.best_params, "counts": counts,
        "epochs_trained": sum(len(t.intermediate_values) for t in trials),
        "trial_seconds": recorded, "wall_s": wall,
    }  # fmt: skip


def baseline(args: argparse.Namespace, cache) -> dict[str, float]:
    """The default recipe's best validation mAP50-95 per seed at the same budget."""
    scores = {}
    for seed in args.baseline_seeds:
        config = training_block(args.epochs, args.threads, args.device) | {"seed": seed}
        history = train_run(cache, config, args.workdir / f"default_seed{seed}")
        scores[str(seed)] = max(row[OBJECTIVE] for row in history)
    return scores


def print_table(report: dict) -> None:
    seeds = report["default_recipe"]
    logger.info("%-26s %12s %8s %8s %10s", "run", "mAP50-95", "trials", "pruned", "trial s")
    for seed, value in seeds.items():
        logger.info("%-26s %12.4f %8s %8s %10s", f"default recipe, seed {seed}", value, "", "", "")
    if len(seeds) > 1:
        spread = f"{min(seeds.values()):.4f}-{max(seeds.values()):.4f}"
        logger.info("%-26s %12s", "default recipe, spread", spread)
    for name in ("pruned", "unpruned"):
        study = report[name]
        logger.info("%-26s %12.4f %8d %8d %10.0f", f"search, {name}", study["best"],
                    sum(study["counts"].values()), study["counts"]["PRUNED"],
                    study["trial_seconds"])  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and writes) the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--baseline-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=1, help="trial processes per study")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--device", default="cpu", help="training.device (cpu, cuda, 0,1...)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "benchmarks/work/tune_coco16b")
    parser.add_argument("--out", type=Path, default=results_path("tune_coco16b"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.zip.is_file():
        raise SystemExit(f"COCO128 archive not found at {args.zip}; pass --zip")
    if not (ANCHOR / "images.txt").is_file():
        raise SystemExit(f"the coco16b image list is not at {ANCHOR}")
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    cache = build_cache_from_dataset_yaml(
        build_anchor_dataset(args.zip, args.workdir), args.workdir / "cache", 320
    )
    seeds = baseline(args, cache)
    report = {
        "benchmark": "tune_coco16b", "objective": OBJECTIVE, "imgsz": 320,
        "epochs_per_trial": args.epochs, "trials": args.trials, "device": args.device,
        "recipe": training_block(args.epochs, args.threads, args.device),
        "default_recipe": seeds,
        "default_recipe_spread": statistics.pstdev(seeds.values()) if len(seeds) > 1 else None,
        "pruned": run_study(args, cache, f"coco16b-pruned-{args.epochs}ep", pruned=True),
        "unpruned": run_study(args, cache, f"coco16b-unpruned-{args.epochs}ep", pruned=False),
        "machine": machine_record(),
    }  # fmt: skip
    report["pruned_at_least_default_mean"] = report["pruned"]["best"] >= statistics.mean(
        seeds.values()
    )
    report["pruned_faster"] = report["pruned"]["trial_seconds"] < report["unpruned"][
        "trial_seconds"]  # fmt: skip
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    logger.info("wrote %s", args.out)
    return report


if __name__ == "__main__":
    main()
