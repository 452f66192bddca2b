"""Training runs of the reference trainer (Ultralytics 8.4.190) for the quality benchmarks.

The project never installs or imports Ultralytics (AGPL). ``yolo`` is the command of an
installation the user made in a separate virtual environment (e.g.
``/work/reference-venv/bin/yolo``); this module only starts it, offline and with its logger
integrations off (:func:`reference_timer.offline_env`), and reads what it writes into the run
folder: ``results.csv`` (per-epoch losses), ``weights/last.pt`` (the final EMA weights, which our
evaluation scores) and ``args.yaml``; the command's output goes to ``<run>.log`` beside it.

A finished run (``results.csv`` with every epoch and ``weights/last.pt``) is reused; an
unfinished one is started again from scratch: the reference's resume does not restore its random
state, so a resumed run would not be the seed's run.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

from reference_timer import offline_env
from seed_runs import read_reference_losses

logger = logging.getLogger("benchmarks.reference_runs")

#: Keys of our ``training`` block that the reference's CLI takes under the same name and meaning.
SHARED_KEYS = (
    "epochs", "batch", "nbs", "optimizer", "lr0", "lrf", "momentum", "weight_decay",
    "warmup_epochs", "warmup_momentum", "warmup_bias_lr", "cos_lr", "close_mosaic", "patience",
    "seed", "deterministic", "workers", "val",
)  # fmt: skip


def reference_settings(config: dict, model: str | Path, imgsz: int) -> dict[str, object]:
    """The reference's train settings equal to our ``training`` block ``config``.

    ``model`` is ``yolo11n.yaml`` (from scratch) or a checkpoint to fine-tune. CPU, no AMP, no
    plots; ``warmup_min_iters`` must be 0 (8.4.190 has no warmup floor) and ``config``'s keys
    outside :data:`SHARED_KEYS` (threads, bf16, save_dir...) have no reference counterpart.
    """
    if config.get("warmup_min_iters", 0):
        raise ValueError("the reference (8.4.190) has no warmup floor: use warmup_min_iters 0")
    shared = {key: config[key] for key in SHARED_KEYS if key in config}
    return shared | {"model": str(model), "imgsz": imgsz, "device": "cpu", "amp": False,
                     "plots": False}  # fmt: skip


def finished(run_dir: Path, epochs: int) -> bool:
    """Whether ``run_dir`` holds a reference run that completed ``epochs`` epochs."""
    results = run_dir / "results.csv"
    if not (results.is_file() and (run_dir / "weights" / "last.pt").is_file()):
        return False
    return len(read_reference_losses(results)) == epochs


def train_reference(
    yolo: Path, data: Path, run_dir: Path, settings: dict, *, threads: int = 0
) -> Path:
    """Train the reference with ``settings`` on ``data`` into ``run_dir``, unless it is there.

    Returns the final weights ``run_dir/weights/last.pt``. ``threads`` > 0 caps its CPU threads
    (``OMP_NUM_THREADS``), as ``--threads`` does for ours.

    Raises:
        SystemExit: the reference command is missing or the run fails (the log's tail).
    """
    last = run_dir / "weights" / "last.pt"
    if finished(run_dir, int(settings["epochs"])):
        logger.info("reference: reusing the finished run in %s", run_dir)
        return last
    if not yolo.is_file():
        raise SystemExit(f"the reference's yolo command is not at {yolo}; pass --reference-yolo")
    if run_dir.exists():
        logger.info("reference: %s is unfinished; training it again from scratch", run_dir)
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    env = offline_env(yolo, run_dir.parent / "reference_config")
    if threads > 0:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [str(yolo), "detect", "train", f"data={data}", f"project={run_dir.parent}",
               f"name={run_dir.name}", "exist_ok=True",
               *(f"{key}={value}" for key, value in settings.items())]  # fmt: skip
    log = run_dir.parent / f"{run_dir.name}.log"
    logger.info("reference: %s (log %s)", " ".join(command), log)
    started = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(
            command, cwd=run_dir.parent, env=env, stdout=handle, stderr=subprocess.STDOUT,
            check=False,
        )  # fmt: skip
    if done.returncode != 0 or not finished(run_dir, int(settings["epochs"])):
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"the reference run failed (exit {done.returncode}), {log}:\n{tail}")
    logger.info("reference: trained in %.0f s", time.perf_counter() - started)
    (run_dir / "wall_s.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    return last
