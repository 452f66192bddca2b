"""A throwaway Kedro project for tests that run the real `kedro` command in a subprocess."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT
from tests.tracking.helpers import embedded_store

#: The venv's `kedro` script (the project's commands: ``yolo_mlops.cli``).
KEDRO = str(Path(sys.executable).with_name("kedro"))


def make_project(root: Path) -> Path:
    """``root`` as a project: ``pyproject.toml``, conf base + ci, an empty MLflow store.

    The export and predict blocks are left out: these tests run the data and train stages.
    """
    (root / "src").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root)
    for env in ("base", "ci"):
        shutil.copytree(PROJECT_ROOT / "conf" / env, root / "conf" / env,
                        ignore=shutil.ignore_patterns("*export*", "*predict*"))  # fmt: skip
    shutil.copy(PROJECT_ROOT / "conf" / "logging.yml", root / "conf" / "logging.yml")
    (root / "conf/local").mkdir()
    embedded_store(root)
    return root
