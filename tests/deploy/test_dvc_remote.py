"""The DVC remote in the team stack's S3 store: `dvc push` from one clone, `dvc pull` + `dvc repro`
in another restores every output byte-identical with every stage up to date; a wrong secret is a
clear error naming the remote and deletes nothing."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_dvc import DvcProject, _copy_working_tree, _out_files
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset, zip_dataset

pytestmark = pytest.mark.integration

REMOTE = "team"


@pytest.fixture(scope="module")
def pushed(stack, tmp_path_factory) -> DvcProject:
    """A repository with a ci-sized pipeline's outputs in dvc.lock (committed), pushed to the
    S3 remote."""
    root = tmp_path_factory.mktemp("dvc_s3")
    dataset = write_synthetic_dataset(root / "synth", SyntheticSpec(n_images=8), seed=0)
    archive = zip_dataset(dataset.parent, root / "synthetic.zip", top_level="coco128")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "KEDRO_ENV": "ci",
        "YOLO_MLOPS_DATA_SOURCE": str(archive),
        "YOLO_MLOPS_DATA_SHA256": "null",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "OMP_NUM_THREADS": "1",
    }
    for name in ("MLFLOW_RUN_ID", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name, None)
    project = DvcProject(root, root / "repo", env)
    _copy_working_tree(project.repo)
    project.run("git", "init", "-q")
    project.commit("working tree")
    # One `kedro run` makes every stage's outputs; `dvc commit` records them in dvc.lock as
    # `dvc repro` would (seven kedro processes instead of one cost a minute more).
    project.run(sys.executable, "-m", "kedro", "run")
    project.dvc("commit", "--force")
    project.commit("kedro run + dvc commit")
    stack.script.dvc_remote(stack.state, project.repo, REMOTE)
    project.dvc("push", "-r", REMOTE)
    return project


def _clone(project: DvcProject, stack, name: str) -> Path:
    clone = project.root / name
    project.run("git", "clone", "-q", str(project.repo), str(clone))
    stack.script.dvc_remote(stack.state, clone, REMOTE)
    return clone


def test_pull_then_repro_in_a_fresh_clone_is_up_to_date_and_byte_identical(stack, pushed):
    clone = _clone(pushed, stack, "clone")
    pushed.dvc("pull", "-r", REMOTE, cwd=clone)
    ran = pushed.dvc("repro", cwd=clone)
    assert "Running stage" not in ran
    assert "up to date" in pushed.dvc("status", cwd=clone)
    expected, restored = _out_files(pushed.repo), _out_files(clone)
    assert set(restored) == set(expected) and "data/06_models/best.pt" in restored
    assert [n for n in expected if not filecmp.cmp(expected[n], restored[n], shallow=False)] == []


def test_a_wrong_secret_names_the_remote_and_deletes_nothing(stack, pushed):
    clone = _clone(pushed, stack, "wrong_secret")
    (clone / "kept.txt").write_text("local work")
    before = sorted(p.relative_to(clone) for p in clone.rglob("*") if ".git" not in p.parts)
    pushed.dvc("remote", "modify", "--local", REMOTE, "secret_access_key", "wrong", cwd=clone)
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "pull", "-r", REMOTE], cwd=clone, env=pushed.env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode != 0
    # DVC names the remote by its URL (s3://dvc/store) and says what S3 answered
    assert "failed to connect to s3 (dvc/store" in output and "Forbidden" in output, output
    after = sorted(p.relative_to(clone) for p in clone.rglob("*") if ".git" not in p.parts)
    assert set(before) <= set(after) and (clone / "kept.txt").read_text() == "local work"
