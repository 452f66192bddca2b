"""The search's real worker entry (:func:`worker.main`) with each trial replaced by sleeps.

Every "epoch" sleeps ``$TUNE_TEST_EPOCH_S`` seconds and reports the trial number as its value,
so the kill/resume and parallel-worker tests exercise the study's bookkeeping in real processes
without paying for training.
"""

from __future__ import annotations

import os
import sys
import time

from yolo_mlops.pipelines.tune import loop, search, worker


def sleepy_trial(trial, ctx) -> float:
    trial.suggest_float("training.lr0", 1e-3, 1e-1, log=True)
    for epoch in range(1, ctx.settings.epochs + 1):
        time.sleep(float(os.environ.get("TUNE_TEST_EPOCH_S", "0.3")))
        trial.report(float(trial.number), epoch)
    return float(trial.number)


if __name__ == "__main__":
    loop.run_trial = sleepy_trial
    search.open_cache = lambda spec: None
    sys.exit(worker.main())
