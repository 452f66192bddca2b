"""Validate every image and label of a dataset, apply the problem policy, build the tables.

The checks themselves (:mod:`yolo_mlops.ingestion.label_checks`) run in a pool of ``workers``
processes or threads on chunks of images; each image is checked once even when several splits
share it (COCO128: train = val). The policy (:mod:`yolo_mlops.ingestion.label_policy`) then
decides what happens to each problem: ``drop_row`` (default), ``drop_image``, ``clip``, or
``fail``, which raises on the first problem of any kind. When the fraction of images with any
problem exceeds ``max_invalid_fraction`` the run fails. Findings that keep their image (a
misnamed suffix, a JPEG without its end marker, an exact duplicate row, which is removed) and
polygon rows (kept as boxes) are not problems: each kind is one WARNING per run and a count in
the summary. Nothing on disk is modified.
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
import pandas as pd
from tqdm.auto import tqdm

from yolo_mlops.ingestion import label_checks as lc
from yolo_mlops.ingestion.dataset_yaml import DatasetSpec, label_path
from yolo_mlops.ingestion.label_policy import Findings, Outcome, Policy, apply_policy
from yolo_mlops.ingestion.report import summary_line

logger = logging.getLogger(__name__)

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


def _portable(path: Path, base: Path | None) -> str:
    if base is not None and path.is_relative_to(base):
        return path.relative_to(base).as_posix()
    return path.as_posix()


def _problem_rows(findings: Findings, path_base: Path | None) -> list[dict]:
    """Problems, orphan labels, then warnings (PROBLEM_COLUMNS), with portable file paths."""
    orphans = [
        {
            "file": orphan,
            "line": 0,
            "code": lc.ORPHAN_LABEL,
            "message": "label file has no image",
            "action": "ignored",
        }
        for orphan in findings.orphans
    ]
    for entry in (*findings.problems, *findings.warnings):
        entry["file"] = _portable(Path(entry["file"]), path_base)
    return [*findings.problems, *orphans, *findings.warnings]


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
    checks = run_checks([str(p) for p in unique], spec.nc, config)
    findings = Findings()
    outcomes = {
        path: apply_policy(check, config.policy, findings)
        for path, check in zip(unique, checks, strict=True)
    }
    findings.orphans = [_portable(p, path_base) for p in find_orphans(set(unique))]
    records = _problem_rows(findings, path_base)
    problems = pd.DataFrame(records, columns=PROBLEM_COLUMNS)
    _log_warnings(findings, path_base)
    reason = _failure_reason(config, outcomes, len(findings.problems), records)
    if reason is not None:
        summary = _failure_summary(reason, config, outcomes, findings)
        raise LabelValidationError(reason, problems, summary)
    clean, index = _clean_tables(spec, outcomes, path_base)
    summary = _summary(spec, config, outcomes, findings)
    logger.info(summary_line(summary))
    return ValidationResult(clean, index, problems, summary)


_WARNING_HEADLINES = {
    lc.EXTENSION_MISMATCH: "%d image(s) have a suffix that names another format; they are used",
    lc.IMAGE_TRUNCATED: "%d JPEG(s) have no end-of-image marker but decode; they are used",
    lc.DUPLICATE_ROW: "%d exact duplicate label row(s) removed",
}


def _log_warnings(findings: Findings, path_base: Path | None) -> None:
    """One WARNING per kind of finding that keeps its image, and one for polygon rows."""
    by_code: dict[str, list[dict]] = {}
    for entry in findings.warnings:
        by_code.setdefault(entry["code"], []).append(entry)
    for code, entries in by_code.items():
        first, files = entries[0], len({entry["file"] for entry in entries})
        headline = _WARNING_HEADLINES.get(code, f"%d {code} finding(s)") % len(entries)
        logger.warning(
            "%s, in %d file(s) (e.g. %s:%d: %s)",
            headline, files, first["file"], first["line"], first["message"],
        )  # fmt: skip
    if findings.polygons:
        example = _portable(Path(next(iter(findings.polygons))), path_base)
        logger.warning(
            "%d label file(s) hold polygon (segment) rows: %d polygons became their bounding "
            "boxes, clipped to the image (e.g. %s)",
            len(findings.polygons), sum(findings.polygons.values()), example,
        )  # fmt: skip


def _invalid(outcomes: dict[Path, Outcome]) -> tuple[int, float]:
    """How many images have any problem, and their fraction of all images."""
    invalid = sum(o.invalid for o in outcomes.values())
    return invalid, invalid / len(outcomes) if outcomes else 0.0


def _failure_reason(
    config: ValidationConfig,
    outcomes: dict[Path, Outcome],
    problem_count: int,
    records: list[dict],
) -> str | None:
    """Why the dataset fails the policy (``fail`` met a problem, too many invalid images)."""
    invalid, fraction = _invalid(outcomes)
    if config.policy == "fail" and problem_count:
        return (
            f"{problem_count} label/image problem(s) with data_validation.policy=fail; first: "
            + "; ".join(f"{r['file']}:{r['line']} {r['code']}: {r['message']}" for r in records[:5])
        )
    if fraction > config.max_invalid_fraction:
        return (
            f"{invalid} of {len(outcomes)} images ({fraction:.1%}) have problems, above "
            f"data_validation.max_invalid_fraction={config.max_invalid_fraction}"
        )
    return None


def _failure_summary(
    reason: str, config: ValidationConfig, outcomes: dict[Path, Outcome], findings: Findings
) -> dict[str, Any]:
    invalid, fraction = _invalid(outcomes)
    return {"status": "failed", "reason": reason, "images": len(outcomes),
            "invalid_images": invalid, "invalid_fraction": round(fraction, 6),
            "problems": len(findings.problems), "policy": config.policy,
            "rows_dropped_by_code": dict(sorted(findings.dropped.items()))}  # fmt: skip


def _clean_tables(
    spec: DatasetSpec, outcomes: dict[Path, Outcome], path_base: Path | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The clean labels (LABEL_COLUMNS, a row per box) and the image index (INDEX_COLUMNS)."""
    label_rows, index_rows = [], []
    for split, paths in spec.splits.items():
        for path in paths:
            outcome = outcomes[path]
            if not outcome.kept:
                continue
            image, size = _portable(path, path_base), (outcome.width, outcome.height)
            index_rows.append((split, image, *size, len(outcome.boxes), outcome.status))
            label_rows.extend(
                (split, image, *size, c, spec.names[c], x1, y1, x2, y2)
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
    return clean, index


def _split_counts(spec: DatasetSpec, outcomes: dict[Path, Outcome]) -> dict[str, dict[str, int]]:
    """Kept images and their boxes per split (an image in two splits counts in both)."""
    counts = {}
    for split, paths in spec.splits.items():
        kept = [outcomes[path] for path in paths if outcomes[path].kept]
        counts[split] = {"images": len(kept), "instances": sum(len(o.boxes) for o in kept)}
    return counts


def _summary(
    spec: DatasetSpec,
    config: ValidationConfig,
    outcomes: dict[Path, Outcome],
    findings: Findings,
) -> dict[str, Any]:
    """The validation summary (``validation_summary.json``): counts, drops, classes, splits."""
    per_class = Counter(c for o in outcomes.values() for c, *_ in o.boxes)
    statuses = Counter(o.status for o in outcomes.values())
    splits = _split_counts(spec, outcomes)
    codes = Counter(entry["code"] for entry in findings.warnings)
    return {
        "images": len(outcomes),
        "labelled": statuses["labelled"],
        "backgrounds": statuses["background"],
        "corrupt": statuses["corrupt"],
        "dropped_images": statuses["dropped"],
        "instances": sum(per_class.values()),
        "orphan_labels": len(findings.orphans),
        "orphan_label_files": findings.orphans,
        "rows_dropped_by_code": dict(sorted(findings.dropped.items())),
        "instances_per_class": {name: per_class.get(i, 0) for i, name in enumerate(spec.names)},
        "classes_present": len(per_class),
        "invalid_fraction": round(_invalid(outcomes)[1], 6),
        "policy": config.policy,
        "splits": splits,
        "warnings": _empty_split_warnings(splits),
        "extension_mismatches": codes[lc.EXTENSION_MISMATCH],
        "truncated_jpegs": codes[lc.IMAGE_TRUNCATED],
        "duplicate_rows": codes[lc.DUPLICATE_ROW],
        "converted_polygons": sum(findings.polygons.values()),
        "polygon_label_files": len(findings.polygons),
    }
