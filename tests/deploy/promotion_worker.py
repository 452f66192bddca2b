"""One of N concurrent registrations (run by tests/deploy/test_promotion_race.py).

``python -m tests.deploy.promotion_worker WORKDIR INDEX ROUNDS MODEL_ID {lock,nolock}``

For each round ``r``: a run in the experiment ``race``, then, once all workers of the round are
ready (a file barrier), the register stage's :func:`registry.log_and_register` of the forced
metrics ``WORKDIR/metrics.json[r][INDEX]`` into the registered model ``race-<mode>-r<r>``. The model
files are the logged model ``MODEL_ID`` (made once by the test): the gate, the lock, the tags,
the aliases and the cards are the real ones, only the upload is skipped. ``nolock`` replaces
the promotion lock by nothing, to show the race it closes.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

from mlflow import MlflowClient

from yolo_mlops.tracking import promotion_lock, registry, store
from yolo_mlops.tracking.promotion import PromotionPolicy
from yolo_mlops.tracking.run import TrackedRun

POLICY = PromotionPolicy(min_improvement=0.05, min_map50_95=0.1)
CHECKPOINT = {"config": {"scale": "n", "imgsz": 64}}


def _barrier(workdir: Path, name: str, index: int, workers: int, timeout_s: float = 300) -> None:
    (workdir / f"{name}-{index}.ready").touch()
    deadline = time.monotonic() + timeout_s
    while len(list(workdir.glob(f"{name}-*.ready"))) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {name}: not every worker arrived")
        time.sleep(0.05)


def main() -> None:
    workdir, index, rounds, model_id, mode = sys.argv[1:6]
    workdir, index, rounds = Path(workdir), int(index), int(rounds)
    metrics = json.loads((workdir / "metrics.json").read_text())
    uri = json.loads((workdir / "uri.json").read_text())
    client = MlflowClient(uri)
    if mode == "nolock":
        registry.promotion_lock.held = lambda *args, **kwargs: contextlib.nullcontext()
    logged_uri = f"models:/{model_id}"
    registry._log_model = lambda *args, **kwargs: (model_id, logged_uri)
    experiment = store.experiment_id(client, "race", None)
    settings = promotion_lock.LockSettings(timeout_s=300, poll_s=0.2)
    for round_ in range(rounds):
        run = TrackedRun(uri, client.create_run(experiment).info.run_id)
        value = metrics[round_][index]
        registration = registry.Registration(f"race-{mode}-r{round_}", policy=POLICY, lock=settings)
        _barrier(workdir, f"round{round_}", index, len(metrics[round_]))
        registry.log_and_register(
            run, CHECKPOINT, {"mAP50": value, "mAP50-95": value}, registration, workdir
        )
        client.set_terminated(run.run_id, "FINISHED")


if __name__ == "__main__":
    main()
