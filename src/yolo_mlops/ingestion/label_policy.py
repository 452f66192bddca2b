"""The problem policy: what happens to an image and its label rows given what the checks found.

- ``drop_row`` (default): drop the bad label row, keep the image.
- ``drop_image``: drop the whole image (and its boxes) when any of its rows is bad.
- ``clip``: rows whose only fault is a box leaving [0, 1] are clipped to it; other bad rows
  are dropped.
- ``fail``: like ``drop_row`` here; :mod:`.validation` then raises on the first problem.

Corrupt images and unreadable label files always drop the image. Under every policy an exact
duplicate row is removed with a warning (it is not a problem: the image stays valid), and a
polygon row is kept as its bounding box. Every problem and warning is recorded with the action
taken (a row of ``validation.PROBLEM_COLUMNS``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from yolo_mlops.ingestion import label_checks as lc
from yolo_mlops.yolo.boxes import xywhn_to_xyxy

Policy = Literal["drop_row", "drop_image", "clip", "fail"]
Box = tuple[int, float, float, float, float]  # class id, normalised x1, y1, x2, y2


@dataclass
class Outcome:
    """What the policy made of one image: its status, kept boxes (class, normalised xyxy)."""

    status: str  # labelled | background | corrupt | dropped
    boxes: list[Box]
    invalid: bool
    width: int = 0
    height: int = 0

    @property
    def kept(self) -> bool:
        return self.status in {"labelled", "background"}


@dataclass
class Findings:
    """What the policy met, as PROBLEM_COLUMNS rows, and the label rows it dropped by code."""

    problems: list[dict] = field(default_factory=list)  # a row per problem and its action
    warnings: list[dict] = field(default_factory=list)  # kept images' findings, duplicate rows
    orphans: list[str] = field(default_factory=list)  # label files of no image (portable paths)
    dropped: Counter = field(default_factory=Counter)
    polygons: Counter = field(default_factory=Counter)  # label file -> polygon rows kept as boxes

    def add(self, file: str, problem: lc.Problem, action: str) -> None:
        self.problems.append(_row(file, problem, action))


def _row(file: str, problem: lc.Problem, action: str) -> dict:
    return {"file": file, "line": problem.line, "code": problem.code,
            "message": problem.message, "action": action}  # fmt: skip


def _xyxy(values: tuple[float, ...]) -> tuple[float, float, float, float]:
    """A label row ``(class, cx, cy, w, h)`` → normalised xyxy clipped to [0, 1]."""
    box = np.clip(xywhn_to_xyxy(np.asarray(values[1:5], dtype=np.float64), 1.0, 1.0), 0.0, 1.0)
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def apply_policy(sample: lc.SampleCheck, policy: Policy, findings: Findings) -> Outcome:
    """Decide what happens to ``sample``'s image and rows; record each problem and action."""
    findings.warnings.extend(_row(sample.image_path, w, "kept") for w in sample.image_warnings)
    if sample.image_problems or sample.label_problems:
        for problem in sample.image_problems:
            findings.add(sample.image_path, problem, "image_dropped")
        for problem in sample.label_problems:
            findings.add(sample.label_path, problem, "image_dropped")
        findings.dropped.update(p.code for p in sample.label_problems if not sample.image_problems)
        return Outcome("corrupt", [], True)
    rows = _without_duplicates(sample, findings)
    bad_rows = [row for row in rows if row.problems]
    if bad_rows and policy == "drop_image":
        for row in bad_rows:
            for problem in row.problems:
                findings.add(sample.label_path, problem, "image_dropped")
        findings.dropped.update(row.problems[0].code for row in bad_rows)
        findings.dropped["image_dropped"] += len(rows) - len(bad_rows)
        return Outcome("dropped", [], True)
    boxes = _kept_boxes(sample.label_path, rows, policy, findings)
    status = "labelled" if boxes else "background"
    return Outcome(status, boxes, bool(bad_rows), sample.width, sample.height)


def _without_duplicates(sample: lc.SampleCheck, findings: Findings) -> list[lc.LabelRow]:
    """``sample``'s rows less exact duplicates, each recorded as a warning and a dropped row."""
    rows = []
    for row in sample.rows:
        if row.problems and all(p.code == lc.DUPLICATE_ROW for p in row.problems):
            findings.warnings.append(_row(sample.label_path, row.problems[0], "row_dropped"))
            findings.dropped[lc.DUPLICATE_ROW] += 1
        else:
            rows.append(row)
    return rows


def _kept_boxes(
    label_file: str, rows: list[lc.LabelRow], policy: Policy, findings: Findings
) -> list[Box]:
    """The rows that stay, as (class, normalised xyxy): bad rows dropped, or clipped (``clip``);
    polygon rows that stay are counted per label file."""
    boxes = []
    for row in rows:
        clippable = bool(row.problems) and all(
            p.code == lc.COORDS_OUT_OF_RANGE for p in row.problems
        )
        if row.problems and not (policy == "clip" and clippable):
            for problem in row.problems:
                findings.add(label_file, problem, "row_dropped")
            findings.dropped[row.problems[0].code] += 1
            continue
        x1, y1, x2, y2 = _xyxy(row.values)  # type: ignore[arg-type]
        if row.problems:  # clip policy on a coordinate problem
            action = "clipped" if x2 > x1 and y2 > y1 else "row_dropped"
            for problem in row.problems:
                findings.add(label_file, problem, action)
            if action == "row_dropped":
                findings.dropped[lc.COORDS_OUT_OF_RANGE] += 1
                continue
        boxes.append((int(row.values[0]), x1, y1, x2, y2))  # type: ignore[index]
        if row.polygon:
            findings.polygons[label_file] += 1
    return boxes
