"""Validate every image and label of a dataset, apply the problem policy, build the tables.

The checks themselves (:mod:`yolo_mlops.ingestion.label_checks`) run in a pool of ``workers``
processes or threads on chunks of images; each image is checked once even when several splits
share it (COCO128: train = val). The policy then decides what happens to each problem:

- ``drop_row`` (default): drop the bad label row, keep the image.
- ``drop_image``: drop the whole image (and its boxes) when any of its rows is bad.
- ``clip``: rows whose only fault is a box leaving [0, 1] are clipped to it; other bad rows
  are dropped.
- ``fail``: raise on the first problem of any kind.

Corrupt images and unreadable label files always drop the image. When the fraction of images
with any problem exceeds ``max_invalid_fraction`` the run fails. Nothing on disk is modified.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from yolo_mlops.ingestion import label_checks as lc
from yolo_mlops.ingestion.dataset_yaml import DatasetSpec, label_path
from yolo_mlops.ingestion.report import summary_line
from yolo_mlops.yolo.boxes import xywhn_to_xyxy

logger = logging.getLogger(__name__)

Policy = Literal["drop_row", "drop_image", "clip", "fail"]
PROBLEM_COLUMNS = ["file", "line", "code", "message", "action"]
LABEL_COLUMNS = [
    "split",
    "image_path",
    "width",
    "height",
    "class_id",
    "class_name",
    "x1",
    "y1",
    "x2",
    "y2",
]
INDEX_COLUMNS = ["split", "image_path", "width", "height", "instances", "status"]


class LabelValidationError(ValueError):
    """The dataset breaks the validation policy (``fail``) or has too many invalid images.

    Attributes:
        problems: the problem table found so far (PROBLEM_COLUMNS), for the report.
        summary: a short summary (counts, the reason), for the report.
    """

    def __init__(
        self,
        message: str,
        problems: pd.DataFrame | None = None,
        summary: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.problems = problems
        self.summary = summary


@dataclass(frozen=True)
class ValidationConfig:
    """How to validate.

    Attributes:
        policy: what to do with problems (see the module docstring).
        tolerance: normalised coordinates may leave [0, 1] by this much (then they are clipped).
        max_invalid_fraction: fail when more than this fraction of images has any problem.
        workers: pool size; 0 = all CPU cores, 1 = no pool (inline).
        executor: ``thread`` (default; decoding releases the GIL) or ``process`` pool.
        progress: show a tqdm progress bar.
    """

    policy: Policy = "drop_row"
    tolerance: float = 0.01
    max_invalid_fraction: float = 0.1
    workers: int = 0
    executor: Literal["process", "thread"] = "thread"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.tolerance < 0 or not 0 <= self.max_invalid_fraction <= 1 or self.workers < 0:
            raise ValueError(
                "tolerance >= 0, 0 <= max_invalid_fraction <= 1 and workers >= 0 required"
            )


@dataclass
class ValidationResult:
    """The tables of one validation (columns: LABEL_COLUMNS, INDEX_COLUMNS, PROBLEM_COLUMNS)."""

    clean_labels: pd.DataFrame
    image_index: pd.DataFrame
    problems: pd.DataFrame
    summary: dict[str, Any]


def _init_process_worker() -> None:
    cv2.setNumThreads(1)  # one image per process; OpenCV's own threads would oversubscribe


def _make_pool(config: ValidationConfig, workers: int) -> Executor:
    if config.executor == "thread":
        return ThreadPoolExecutor(max_workers=workers)
    # spawn: forking a process that holds threads (Kedro, tqdm, torch) can deadlock.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_process_worker,
    )


def run_checks(paths: list[str], nc: int, config: ValidationConfig) -> list[lc.SampleCheck]:
    """Check ``paths`` (in order) with a pool of ``config.workers``; returns one result per path."""
    workers = config.workers or os.cpu_count() or 1
    workers = max(1, min(workers, len(paths)))
    chunk = max(1, min(64, math.ceil(len(paths) / (workers * 4))))
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    results: list[lc.SampleCheck] = []
    with tqdm(
        total=len(paths), desc="Validating images", unit="img", disable=not config.progress
    ) as bar:
        if workers == 1:
            for part in chunks:
                results.extend(lc.check_samples(part, nc, config.tolerance))
                bar.update(len(part))
            return results
        with _make_pool(config, workers) as pool:
            for done in pool.map(lc.check_samples, chunks, repeat(nc), repeat(config.tolerance)):
                results.extend(done)
                bar.update(len(done))
    return results


def find_orphans(images: set[Path]) -> list[Path]:
    """Label files in the label folders of ``images`` that belong to no image (sorted)."""
    expected = {label_path(p) for p in images}
    folders = {p.parent for p in expected}
    found = {p for folder in folders if folder.is_dir() for p in folder.glob("*.txt")}
    return sorted(found - expected)


@dataclass
class _Outcome:
    status: str  # labelled | background | corrupt | dropped
    boxes: list[tuple[int, float, float, float, float]]
    invalid: bool


def _xyxy(values: tuple[float, ...]) -> tuple[float, float, float, float]:
    """A label row ``(class, cx, cy, w, h)`` → normalised xyxy clipped to [0, 1]."""
    box = np.clip(xywhn_to_xyxy(np.asarray(values[1:5], dtype=np.float64), 1.0, 1.0), 0.0, 1.0)
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def _apply_policy(
    sample: lc.SampleCheck,
    policy: Policy,
    records: list[dict],
    dropped: Counter,
    warnings: list[dict],
) -> _Outcome:
    def record(file: str, problem: lc.Problem, action: str) -> None:
        records.append({"file": file, "line": problem.line, "code": problem.code,
                        "message": problem.message, "action": action})  # fmt: skip

    for warning in sample.image_warnings:
        warnings.append({"file": sample.image_path, "line": warning.line, "code": warning.code,
                         "message": warning.message, "action": "kept"})  # fmt: skip

    if sample.image_problems or sample.label_problems:
        for problem in sample.image_problems:
            record(sample.image_path, problem, "image_dropped")
        for problem in sample.label_problems:
            record(sample.label_path, problem, "image_dropped")
        dropped.update(p.code for p in sample.label_problems if not sample.image_problems)
        return _Outcome("corrupt", [], True)
    bad_rows = [row for row in sample.rows if row.problems]
    if bad_rows and policy == "drop_image":
        for row in bad_rows:
            for problem in row.problems:
                record(sample.label_path, problem, "image_dropped")
        dropped.update(row.problems[0].code for row in bad_rows)
        dropped["image_dropped"] += len(sample.rows) - len(bad_rows)
        return _Outcome("dropped", [], True)
    boxes = []
    for row in sample.rows:
        clippable = bool(row.problems) and all(
            p.code == lc.COORDS_OUT_OF_RANGE for p in row.problems
        )
        if row.problems and not (policy == "clip" and clippable):
            for problem in row.problems:
                record(sample.label_path, problem, "row_dropped")
            dropped[row.problems[0].code] += 1
            continue
        x1, y1, x2, y2 = _xyxy(row.values)  # type: ignore[arg-type]
        if row.problems:  # clip policy on a coordinate problem
            action = "clipped" if x2 > x1 and y2 > y1 else "row_dropped"
            for problem in row.problems:
                record(sample.label_path, problem, action)
            if action == "row_dropped":
                dropped[lc.COORDS_OUT_OF_RANGE] += 1
                continue
        boxes.append((int(row.values[0]), x1, y1, x2, y2))  # type: ignore[index]
    return _Outcome("labelled" if boxes else "background", boxes, bool(bad_rows))


def _portable(path: Path, base: Path | None) -> str:
    if base is not None and path.is_relative_to(base):
        return path.relative_to(base).as_posix()
    return path.as_posix()


def _empty_split_warnings(splits: dict[str, dict[str, int]]) -> list[str]:
    """A warning per split that has images but not one labelled instance (logged and returned)."""
    found = []
    for split, counts in splits.items():
        if counts["images"] and not counts["instances"]:
            message = (
                f"split {split!r} has {counts['images']} images and 0 labelled instances: are its "
                "label files where YOLO looks for them (images/ -> labels/)?"
            )
            logger.warning(message)
            found.append(message)
    return found


def validate_dataset(
    spec: DatasetSpec, config: ValidationConfig, path_base: Path | None = None
) -> ValidationResult:
    """Check every image of every split of ``spec`` and build the clean tables.

    Args:
        spec: the parsed dataset.
        config: policy, tolerance, pool.
        path_base: image paths inside this folder are written relative to it (the project root).

    Raises:
        LabelValidationError: policy ``fail`` met a problem, or too many images are invalid.
    """
    unique = sorted({p for paths in spec.splits.values() for p in paths})
    checks = dict(zip(unique, run_checks([str(p) for p in unique], spec.nc, config), strict=True))
    records: list[dict] = []
    warnings: list[dict] = []
    dropped: Counter = Counter()
    outcomes = {
        path: _apply_policy(checks[path], config.policy, records, dropped, warnings)
        for path in unique
    }
    orphans = find_orphans(set(unique))
    problem_count = len(records)
    for orphan in orphans:
        records.append({"file": str(orphan), "line": 0, "code": lc.ORPHAN_LABEL,
                        "message": "label file has no image", "action": "ignored"})  # fmt: skip
    records.extend(warnings)
    for entry in records:
        entry["file"] = _portable(Path(entry["file"]), path_base)
    problems = pd.DataFrame(records, columns=PROBLEM_COLUMNS)
    if warnings:
        logger.warning(
            "%d image(s) have a suffix that names another format (e.g. %s: %s); they are used",
            len(warnings), warnings[0]["file"], warnings[0]["message"],
        )  # fmt: skip
    invalid = sum(o.invalid for o in outcomes.values())
    fraction = invalid / len(unique) if unique else 0.0
    reason = None
    if config.policy == "fail" and problem_count:
        reason = (
            f"{problem_count} label/image problem(s) with data_validation.policy=fail; first: "
            + "; ".join(f"{r['file']}:{r['line']} {r['code']}: {r['message']}" for r in records[:5])
        )
    elif fraction > config.max_invalid_fraction:
        reason = (
            f"{invalid} of {len(unique)} images ({fraction:.1%}) have problems, above "
            f"data_validation.max_invalid_fraction={config.max_invalid_fraction}"
        )
    if reason is not None:
        summary = {"status": "failed", "reason": reason, "images": len(unique),
                   "invalid_images": invalid, "invalid_fraction": round(fraction, 6),
                   "problems": problem_count, "policy": config.policy,
                   "rows_dropped_by_code": dict(sorted(dropped.items()))}  # fmt: skip
        raise LabelValidationError(reason, problems, summary)
    label_rows, index_rows = [], []
    for split, paths in spec.splits.items():
        for path in paths:
            outcome, check = outcomes[path], checks[path]
            if outcome.status not in {"labelled", "background"}:
                continue
            image = _portable(path, path_base)
            index_rows.append(
                (split, image, check.width, check.height, len(outcome.boxes), outcome.status)
            )
            label_rows.extend(
                (split, image, check.width, check.height, c, spec.names[c], x1, y1, x2, y2)
                for c, x1, y1, x2, y2 in outcome.boxes
            )
    clean = pd.DataFrame(label_rows, columns=LABEL_COLUMNS).astype(
        {
            "width": "int32",
            "height": "int32",
            "class_id": "int32",
            "x1": "float32",
            "y1": "float32",
            "x2": "float32",
            "y2": "float32",
        }
    )
    index = pd.DataFrame(index_rows, columns=INDEX_COLUMNS).astype(
        {"width": "int32", "height": "int32", "instances": "int32"}
    )
    per_class = Counter(c for o in outcomes.values() for c, *_ in o.boxes)
    statuses = Counter(o.status for o in outcomes.values())
    summary = {
        "images": len(unique),
        "labelled": statuses["labelled"],
        "backgrounds": statuses["background"],
        "corrupt": statuses["corrupt"],
        "dropped_images": statuses["dropped"],
        "instances": sum(per_class.values()),
        "orphan_labels": len(orphans),
        "orphan_label_files": [_portable(p, path_base) for p in orphans],
        "rows_dropped_by_code": dict(sorted(dropped.items())),
        "instances_per_class": {name: per_class.get(i, 0) for i, name in enumerate(spec.names)},
        "classes_present": len(per_class),
        "invalid_fraction": round(fraction, 6),
        "policy": config.policy,
        "splits": {
            s: {
                "images": int((index["split"] == s).sum()),
                "instances": int((clean["split"] == s).sum()),
            }
            for s in spec.splits
        },
    }
    summary["warnings"] = _empty_split_warnings(summary["splits"])
    summary["extension_mismatches"] = len(warnings)
    logger.info(summary_line(summary))
    return ValidationResult(clean, index, problems, summary)
