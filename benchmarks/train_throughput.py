"""Training throughput of yolo11n on CPU: images per second of whole epochs, data loading included.

For each image size (320 and 640 by default) and mode, trains yolo11n from scratch on COCO128
(128 images, batch 16, SGD, mosaic on, validation off) through the real :class:`Trainer` for
``--epochs`` epochs and reports images/s from the median wall time of the epochs after the first
(the first one pays for loader start-up and, when compiled, for the compilation). An epoch's wall
time is everything the trainer does: loading and augmenting, forward, loss, backward, optimizer,
EMA and the per-epoch checkpoints. This is the figure the reference's per-epoch time compares to.

Modes: ``nchw`` (fp32, NCHW), ``nhwc`` (fp32, channels_last), ``compiled``
(``training.compile: true``, NHWC, fp32) and ``bf16`` (CPU bfloat16 autocast from the first step,
NHWC: the steady state of ``training.bf16``, whose runs from scratch begin with float32 steps;
run only where the CPU has native bf16, unless ``--force-bf16``). ``--profile`` adds a
``torch.profiler`` split of one training step per mode by phase (forward, loss + assignment,
backward, optimizer, EMA) and the top operators. Prints tables and writes JSON.

Usage (quiet machine; the lead runs the real figures)::

    python benchmarks/train_throughput.py                               # 320 and 640, nchw + nhwc
    python benchmarks/train_throughput.py --imgsz 320 --modes nhwc compiled --epochs 3
    python benchmarks/train_throughput.py --imgsz 320 640 --profile --modes nhwc
    python benchmarks/train_throughput.py --imgsz 64 --images 16 --epochs 2 --modes nchw  # smoke
    python benchmarks/train_throughput.py --imgsz 320 --against HEAD~10 --repeats 3

``--against REV`` measures this checkout and the commit ``REV`` side by side instead: each
repetition runs ``benchmarks/epoch_timer.py`` once on each tree (a git worktree of ``REV`` in a
temporary folder), alternating, with each tree's own defaults, and reports the median images/s
of each and their ratio. Machines differ between sessions by up to 2x, so a ratio measured
this way is the figure to compare with the reference's, not images/s from another day.
``--set KEY=VALUE`` changes a setting of this checkout only (``--set bf16_after_steps=0``: the
bf16 phase of a run from scratch, which the 4-epoch default run does not reach).

``--reference-yolo PATH`` measures against the reference trainer itself the same way, through
``benchmarks/reference_timer.py``: ``PATH`` is the ``yolo`` command of an Ultralytics
installation in a virtual environment of its own (the project never installs or imports it).
Where the CPU has native bf16, each repetition times this checkout twice: ``ours`` (the first
epochs of a run from scratch, float32) and ``ours_bf16`` (its later epochs, and every epoch from
trained weights); the report adds the ratio of a whole default 100-epoch run from scratch.
``--isa-cap`` caps ATen and oneDNN at AVX2 in every timed process: the kernels of an AVX2 CPU
where ``auto`` trains in float32.

    python benchmarks/train_throughput.py --imgsz 320 640 --reference-yolo ../ref-venv/bin/yolo
    python benchmarks/train_throughput.py --imgsz 320 --reference-yolo ../ref-venv/bin/yolo \
        --isa-cap
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from coco128 import DEFAULT_ZIP, ROOT, build_coco128_cache
from epoch_timer import recipe, steady_median, timed_fit
from machine import results_path

from yolo_mlops.yolo import TrainConfig, Trainer
from yolo_mlops.yolo.data.loader import build_train_loader
from yolo_mlops.yolo.model.network import build_model
from yolo_mlops.yolo.train.cpu_memory import retain_freed_memory
from yolo_mlops.yolo.train.ema import ModelEMA
from yolo_mlops.yolo.train.engine import (
    LoopOptions,
    LoopState,
    RunObjects,
    StepSchedule,
    train_one_epoch,
)
from yolo_mlops.yolo.train.loader_workers import loader_workers
from yolo_mlops.yolo.train.loss import DetectionLoss
from yolo_mlops.yolo.train.optim import (
    LRFactor,
    OptimizerChoice,
    accumulate_steps,
    build_optimizer,
    build_scheduler,
)
from yolo_mlops.yolo.train.precision import first_bf16_epoch, native_bf16
from yolo_mlops.yolo.train.state import LOSS_KEYS, seed_everything

logger = logging.getLogger("benchmarks.train_throughput")

MODES = {
    "nchw": {"channels_last": False, "bf16": False},
    "nhwc": {"channels_last": True, "bf16": False},
    "compiled": {"channels_last": True, "compile": True, "bf16": False},
    "bf16": {"channels_last": True, "bf16": True, "bf16_after_steps": 0},  # steady state
}
PHASES = ("train/forward", "train/loss", "train/backward", "train/optimizer", "train/ema")

#: A default run (``training.epochs`` in conf/base) and the images of one COCO128 epoch.
RUN_EPOCHS = 100
COCO128_IMAGES = 128

#: ISA caps that make ATen and oneDNN choose the kernels of an AVX2 CPU.
AVX2_CAP = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def epoch_figures(cache: Any, config: TrainConfig) -> dict:
    """Train ``config`` on ``cache``, timing its epochs; images/s from the median of epochs 2..N."""
    result, walls = timed_fit(Trainer, config, cache)
    images = len(cache.indices("train"))
    median = steady_median(walls)
    return {
        "epochs": config.epochs,
        "images_per_epoch": images,
        "epoch_wall_s": walls,
        "first_epoch_s": walls[0],
        "median_epoch_s": median,
        "images_per_s": images / median,
        "data_s": [row["time/data"] for row in result.history],
        "losses": [[row[k] for k in LOSS_KEYS] for row in result.history],
    }


def measure_epochs(cache: Any, mode: str, *, epochs: int, workers: int, workdir: Path) -> dict:
    """Train ``epochs`` epochs in ``mode``; images/s from the median of epochs 2..N."""
    config = TrainConfig(**recipe(epochs, workers, workdir / mode), **MODES[mode])
    return {
        "imgsz": cache.imgsz,
        "mode": mode,
        "workers": workers,
        "effective_workers": loader_workers(
            workers, device_type="cpu", threads=torch.get_num_threads()
        ),
        **epoch_figures(cache, config),
    }


def profile_step(cache: Any, mode: str, *, steps: int = 3) -> dict:
    """``torch.profiler`` split of ``steps`` training steps in ``mode`` (after 2 warm-up steps)."""
    channels_last = MODES[mode]["channels_last"]
    dtype = torch.bfloat16 if MODES[mode].get("bf16") else None
    retain_freed_memory()  # as the Trainer does on a CPU: no page faults from freed activations
    seed_everything(0, deterministic=True)  # as the Trainer does (its torch settings included)
    model = build_model("n", num_classes=len(cache.names))
    for name, param in model.named_parameters():
        if ".dfl" in name:
            param.requires_grad_(False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, OptimizerChoice("SGD", 0.01, 0.937, 0.0), 5e-4)
    loader = build_train_loader(cache, batch_size=16, workers=0, epochs=100)
    schedule = StepSchedule(
        epochs=100, batches_per_epoch=steps, batch_size=16, nbs=16, warmup_iters=0,
        warmup_bias_lr=0.0, warmup_momentum=0.8, momentum=0.937, lr_factor=LRFactor(100, 0.01),
    )  # fmt: skip
    run = RunObjects(
        model, ModelEMA(model), optimizer, build_scheduler(optimizer, schedule.lr_factor),
        torch.amp.GradScaler("cpu", enabled=False), LoopState(accumulate=1),
    )  # fmt: skip
    options = LoopOptions(
        autocast_dtype=dtype, channels_last=channels_last, imgsz=cache.imgsz, progress=False
    )
    cpu = torch.device("cpu")
    batches: list[dict[str, torch.Tensor]] = []
    for epoch in itertools.count():  # small datasets: batches from several epochs
        loader.set_epoch(epoch)
        batches.extend(itertools.islice(iter(loader), steps + 2 - len(batches)))
        if len(batches) == steps + 2:
            break
    criterion = DetectionLoss(len(cache.names))
    train_one_epoch(model, criterion, batches[:2], run, cpu, 0, schedule, options)
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities) as prof:
        train_one_epoch(model, criterion, batches[2:], run, cpu, 1, schedule, options)
    events = prof.key_averages()
    per_step = {e.key: e.cpu_time_total / 1e3 / steps for e in events if e.key in PHASES}
    ops = sorted(
        (e for e in events if e.key.startswith("aten::")),
        key=lambda e: e.self_cpu_time_total,
        reverse=True,
    )[:10]
    return {
        "imgsz": cache.imgsz,
        "mode": mode,
        "steps": steps,
        "phase_ms_per_step": {phase: per_step.get(phase, 0.0) for phase in PHASES},
        "top_ops_self_ms_per_step": {e.key: e.self_cpu_time_total / 1e3 / steps for e in ops},
    }


def _child_json(args: argparse.Namespace, command: list[str], what: str) -> dict:
    """Run a timer script in a fresh process (ISA-capped with ``--isa-cap``); its last JSON line."""
    env = os.environ | (AVX2_CAP if args.isa_cap else {})
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _epoch_timer(args: argparse.Namespace, src: Path, imgsz: int, settings: Sequence[str]) -> dict:
    """Run ``epoch_timer.py`` on the tree ``src`` in a fresh process; its JSON result."""
    command = [
        sys.executable, str(ROOT / "benchmarks" / "epoch_timer.py"), "--src", str(src),
        "--zip", str(args.zip), "--imgsz", str(imgsz), "--epochs", str(args.epochs),
        "--workers", str(args.workers),
        *itertools.chain.from_iterable(("--set", s) for s in settings),
    ]  # fmt: skip
    return _child_json(args, command, f"epoch_timer.py on {src}")


def _reference_timer(args: argparse.Namespace, imgsz: int) -> dict:
    """Run ``reference_timer.py`` (the reference trainer, one more epoch: it validates last)."""
    command = [
        sys.executable, str(ROOT / "benchmarks" / "reference_timer.py"),
        "--yolo", str(args.reference_yolo), "--zip", str(args.zip), "--imgsz", str(imgsz),
        "--epochs", str(args.epochs + 1), "--workers", str(args.workers),
    ]  # fmt: skip
    return _child_json(args, command, f"the reference trainer {args.reference_yolo}")


def _ours_variants(args: argparse.Namespace) -> dict[str, list[str]]:
    """This checkout's settings per measured phase of a default run.

    ``ours``: ``--set`` only, i.e. the first epochs of a run from scratch (float32 where bf16 is
    on: ``training.bf16_after_steps``). Where the CPU has native bf16 and ``--set`` does not
    choose the precision, ``ours_bf16``: the same run past its float32 steps, i.e. every later
    epoch (and every epoch of a run from trained weights). With ``--isa-cap`` (an AVX2 CPU's
    kernels) ``ours`` is float32, as ``training.bf16: auto`` is on such a CPU.
    """
    variants = {"ours": list(args.set)}
    chosen = any(s.partition("=")[0].strip().startswith("bf16") for s in args.set)
    if args.isa_cap and not chosen:  # an AVX2 CPU has no native bf16: auto is float32 there
        variants["ours"].append("bf16=false")
    elif native_bf16() and not chosen:
        variants["ours_bf16"] = [*args.set, "bf16_after_steps=0"]
    return variants


def _alternate(args: argparse.Namespace, other: str, timer: Callable[[int], dict]) -> list[dict]:
    """Per image size: ``args.repeats`` alternating runs of our variants and ``other``."""
    variants = _ours_variants(args)
    rows = []
    for imgsz in args.imgsz:
        runs: dict[str, list[float]] = {name: [] for name in [*variants, other]}
        for repeat in range(args.repeats):
            for name, values in runs.items():
                if name in variants:
                    got = _epoch_timer(args, ROOT / "src", imgsz, variants[name])
                else:
                    got = timer(imgsz)
                values.append(got["images_per_s"])
                logger.info("%d repeat %d %s: %.2f img/s", imgsz, repeat, name,
                            got["images_per_s"])  # fmt: skip
        medians = {name: statistics.median(values) for name, values in runs.items()}
        row = {
            "imgsz": imgsz, "runs_img_s": runs, "ours_img_s": medians["ours"],
            "against_img_s": medians[other], "ratio": medians["ours"] / medians[other],
        }  # fmt: skip
        if "ours_bf16" in medians:
            row["ours_bf16_img_s"] = medians["ours_bf16"]
            row["ratio_bf16"] = medians["ours_bf16"] / medians[other]
            row["ratio_default_run"] = _default_run_img_s(medians) / medians[other]
        rows.append(row)
    return rows


def _default_run_img_s(medians: dict[str, float]) -> float:
    """Images/s over a whole default run from scratch on COCO128 (``training.epochs`` epochs).

    Its first ``first_bf16_epoch`` epochs run at the ``ours`` (float32) speed, the rest at the
    ``ours_bf16`` speed; time adds up per epoch, so this is a weighted harmonic mean.
    """
    config = TrainConfig(**recipe(RUN_EPOCHS, 2, Path("unused")))
    accumulate = accumulate_steps(config.nbs, config.batch)
    steps_per_epoch = math.ceil(COCO128_IMAGES / config.batch) / accumulate
    fp32 = first_bf16_epoch(torch.bfloat16, fp32_steps=config.bf16_after_steps,
                            steps_per_epoch=steps_per_epoch, from_scratch=True)  # fmt: skip
    fp32 = min(fp32, RUN_EPOCHS)
    seconds_per_image = fp32 / medians["ours"] + (RUN_EPOCHS - fp32) / medians["ours_bf16"]
    return RUN_EPOCHS / seconds_per_image


def side_by_side(args: argparse.Namespace) -> dict:
    """This checkout against the commit ``args.against`` or the reference trainer, alternating."""
    if args.reference_yolo:
        other = "reference"
        rows = _alternate(args, other, lambda imgsz: _reference_timer(args, imgsz))
    else:
        other = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", f"{args.against}^{{commit}}"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="throughput-against-") as tmp:
            tree = Path(tmp) / other
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), other],
                check=True,
            )
            try:
                rows = _alternate(
                    args, other, lambda imgsz: _epoch_timer(args, tree / "src", imgsz, ())
                )
            finally:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False,
                )
    bf16 = "ours_bf16_img_s" in rows[0]
    logger.info("%6s %10s %10s %10s %8s %s", "imgsz", "ours", "ours bf16" if bf16 else "", other,
                "ratio", "ratio bf16 / default run" if bf16 else "")  # fmt: skip
    for row in rows:
        logger.info(
            "%6d %10.2f %10s %10.2f %8.2f %s", row["imgsz"], row["ours_img_s"],
            f"{row['ours_bf16_img_s']:.2f}" if bf16 else "", row["against_img_s"], row["ratio"],
            f"{row['ratio_bf16']:.2f} / {row['ratio_default_run']:.2f}" if bf16 else "",
        )  # fmt: skip
    return {
        "benchmark": "train_throughput",
        "against": other,
        "ours_variants": _ours_variants(args),
        "isa_cap": AVX2_CAP if args.isa_cap else None,
        "default_run": f"{RUN_EPOCHS} epochs from scratch on COCO128" if bf16 else None,
        "repeats": args.repeats,
        "epochs": args.epochs,
        "workers": args.workers,
        "recipe": "COCO128 from scratch, batch 16, SGD, mosaic, validation off; each trainer's "
        "defaults otherwise",
        "rows": rows,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "bf16_native": native_bf16()},
    }  # fmt: skip


def default_out(args: argparse.Namespace) -> Path:
    """``train_throughput[_reference|_against]_<kind>[_avx2cap].json`` under ``results/``."""
    name = "train_throughput"
    if args.reference_yolo:
        name += "_reference"
    elif args.against:
        name += "_against"
    return results_path(name, "_avx2cap.json" if args.isa_cap else ".json")


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and writes) the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["nchw", "nhwc"])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per mode (first = warm-up)")
    parser.add_argument("--images", type=int, default=0, help="first N COCO128 images (0 = all)")
    parser.add_argument("--workers", type=int, default=2, help="training.workers (capped on CPU)")
    parser.add_argument("--profile", action="store_true", help="add a per-phase step profile")
    parser.add_argument("--force-bf16", action="store_true", help="run bf16 without native bf16")
    parser.add_argument("--against", help="measure side by side with this commit (see above)")
    parser.add_argument(
        "--reference-yolo", type=Path,
        help="measure side by side with the reference trainer: its yolo command (see above)",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="side by side: repetitions")
    parser.add_argument(
        "--isa-cap", action="store_true",
        help="side by side: cap ATen and oneDNN at AVX2 in both (an AVX2 CPU's kernels)",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="side by side: a training setting for this checkout only (YAML value)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="default: results/<benchmark>_<machine kind>.json")
    args = parser.parse_args(argv)
    args.out = args.out or default_out(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.zip.is_file():
        raise SystemExit(f"COCO128 archive not found at {args.zip}; pass --zip")
    if args.against and args.reference_yolo:
        raise SystemExit("pass --against or --reference-yolo, not both")
    if args.reference_yolo and not args.reference_yolo.is_file():
        raise SystemExit(f"--reference-yolo {args.reference_yolo}: no such command")
    if args.against or args.reference_yolo:
        result = side_by_side(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        logger.info("wrote %s", args.out)
        return result
    modes = [m for m in args.modes if m != "bf16" or native_bf16() or args.force_bf16]
    skipped = sorted(set(args.modes) - set(modes))

    rows, profiles = [], []
    for imgsz in args.imgsz:
        with tempfile.TemporaryDirectory(prefix="train-throughput-") as tmp:
            cache = build_coco128_cache(args.zip, Path(tmp), imgsz, args.images)
            for mode in modes:
                rows.append(
                    measure_epochs(
                        cache, mode, epochs=args.epochs, workers=args.workers, workdir=Path(tmp)
                    )
                )
                logger.info("%s", {k: v for k, v in rows[-1].items() if k != "losses"})
            if args.profile:
                profiles.extend(profile_step(cache, mode) for mode in modes if mode != "compiled")
    result = {
        "benchmark": "train_throughput",
        "model": "yolo11n",
        "recipe": "COCO128 from scratch, batch 16, SGD, mosaic, validation off",
        "rows": rows,
        "profiles": profiles,
        "skipped_modes": {m: "no native bf16 on this CPU" for m in skipped},
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "bf16_native": native_bf16(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
    }
    logger.info("%6s %9s %8s %8s %10s", "imgsz", "mode", "img/s", "epoch s", "1st ep s")
    for row in rows:
        logger.info(
            "%6d %9s %8.2f %8.1f %10.1f", row["imgsz"], row["mode"],
            row["images_per_s"], row["median_epoch_s"], row["first_epoch_s"],
        )  # fmt: skip
    for prof in profiles:
        logger.info(
            "step profile at %d, %s (ms per step of 16 images):", prof["imgsz"], prof["mode"]
        )
        for phase, ms in prof["phase_ms_per_step"].items():
            logger.info("  %-16s %8.1f", phase, ms)
        for op, ms in prof["top_ops_self_ms_per_step"].items():
            logger.info("  %-40s %8.1f", op, ms)
    for mode, why in result["skipped_modes"].items():
        logger.info("skipped %s: %s", mode, why)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s", args.out)
    return result


if __name__ == "__main__":
    main()
