"""Concurrent registrations of one registered model on the team stack: with the promotion lock
the champion is the version the gate picks serially; without it the race shows."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from mlflow import MlflowClient

from tests.conftest import PROJECT_ROOT
from tests.deploy.promotion_worker import POLICY
from yolo_mlops.tracking.promotion import decide_promotion

pytestmark = pytest.mark.integration

WORKERS = 4
LOCKED_ROUNDS = 3  # 3 x 4 concurrent registrations, every one checked
UNLOCKED_ROUNDS = 1  # all 4 read the champion at once: the race shows in one round


def _serial_replay(versions: list) -> tuple[str | None, dict[str, str | None]]:
    """The champion the gate leaves when the versions register one after another (in version
    order), and the champion each version saw before it."""
    champion, value, seen = None, None, {}
    for version in sorted(versions, key=lambda v: int(v.version)):
        seen[version.version] = champion
        challenger = float(version.tags["mAP50-95"])
        if decide_promotion(challenger, value, POLICY, champion).promoted:
            champion, value = version.version, challenger
    return champion, seen


def _race(stack, tmp_path, mode: str, rounds: int) -> list[str]:
    """Run the workers; per round, what differs from the serial replay (empty: nothing)."""
    env = stack.env("pipeline")
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    workdir = tmp_path / mode
    workdir.mkdir()
    rng = np.random.default_rng(7)
    values = [0.30, 0.34, 0.40, 0.47]  # 0.05 margin: which wins depends on the order
    metrics = [[float(v) for v in rng.permutation(values)] for _ in range(rounds)]
    (workdir / "metrics.json").write_text(json.dumps(metrics))
    (workdir / "uri.json").write_text(json.dumps(env["MLFLOW_TRACKING_URI"]))
    from yolo_mlops.tracking.team_access import Account, signed_in

    with signed_in(Account("pipeline", env["MLFLOW_TRACKING_PASSWORD"])):
        experiment = client.get_experiment_by_name("race") or client.get_experiment(
            client.create_experiment("race")
        )
        source = client.create_logged_model(experiment.experiment_id, name=f"source-{mode}")
        command = [sys.executable, "-m", "tests.deploy.promotion_worker", str(workdir)]
        workers = [
            subprocess.Popen(
                [*command, str(i), str(rounds), source.model_id, mode], cwd=PROJECT_ROOT, env=env
            )
            for i in range(WORKERS)
        ]
        codes = [worker.wait(timeout=600) for worker in workers]
        assert codes == [0] * WORKERS
        problems = []
        for round_ in range(rounds):
            name = f"race-{mode}-r{round_}"
            versions = client.search_model_versions(f"name = '{name}'")
            assert len(versions) == WORKERS  # 4 runs, 4 versions
            expected, seen = _serial_replay(versions)
            champion = client.get_model_version_by_alias(name, "champion").version
            if champion != expected:
                problems.append(f"{name}: champion v{champion}, serially v{expected}")
            for version in versions:
                before = version.tags["promotion.champion_version_before"]
                if before != (seen[version.version] or "none"):
                    problems.append(f"{name} v{version.version} saw champion {before}")
        return problems


def test_four_concurrent_registrations_leave_the_serial_champion(stack, tmp_path):
    assert _race(stack, tmp_path, "lock", LOCKED_ROUNDS) == []


def test_without_the_promotion_lock_the_race_is_observed(stack, tmp_path):
    assert _race(stack, tmp_path, "nolock", UNLOCKED_ROUNDS) != []
