"""Project-root-relative paths, the convention of every path string the data pipelines write."""

from __future__ import annotations

import os
from pathlib import Path


def project_root(start: Path | None = None) -> Path:
    """The Kedro project folder: the nearest ``start``/parent with a ``pyproject.toml`` that has a
    ``[tool.kedro]`` table; ``start`` (default: the working directory) when there is none."""
    start = Path(os.path.abspath(start or Path.cwd()))
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.kedro]" in pyproject.read_text(encoding="utf-8"):
            return folder
    return start


def resolve(path: str | Path, root: Path) -> Path:
    """``path`` made absolute: relative paths are relative to ``root``; ``~`` is expanded."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else Path(os.path.abspath(root / path))


def portable(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX form) when inside it, else absolute."""
    path = Path(os.path.abspath(path))
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
