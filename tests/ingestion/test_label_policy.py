"""The problem policy on one checked sample: which rows stay, what is recorded, what is counted."""

from __future__ import annotations

import pytest

from yolo_mlops.ingestion import label_checks as lc
from yolo_mlops.ingestion.label_policy import Findings, apply_policy

OUT_OF_RANGE = lc.Problem(lc.COORDS_OUT_OF_RANGE, "x2 1.05 > 1", line=2)
BAD_CLASS = lc.Problem(lc.CLASS_OUT_OF_RANGE, "class id 9 not in [0, 3)", line=3)


def _sample(*rows: lc.LabelRow, **fields) -> lc.SampleCheck:
    return lc.SampleCheck("/d/images/a.jpg", "/d/labels/a.txt", 100, 80, rows=list(rows), **fields)


GOOD = lc.LabelRow(1, (0.0, 0.5, 0.5, 0.2, 0.2))
CLIPPABLE = lc.LabelRow(2, (1.0, 0.95, 0.5, 0.2, 0.2), (OUT_OF_RANGE,))
WRONG_CLASS = lc.LabelRow(3, (9.0, 0.5, 0.5, 0.2, 0.2), (BAD_CLASS,))


def test_drop_row_keeps_the_good_rows_and_records_each_dropped_one():
    findings = Findings()
    outcome = apply_policy(_sample(GOOD, CLIPPABLE, WRONG_CLASS), "drop_row", findings)
    assert outcome.status == "labelled" and outcome.invalid
    assert [box[0] for box in outcome.boxes] == [0]
    assert (outcome.width, outcome.height) == (100, 80)
    assert [p["action"] for p in findings.problems] == ["row_dropped", "row_dropped"]
    assert findings.dropped == {lc.COORDS_OUT_OF_RANGE: 1, lc.CLASS_OUT_OF_RANGE: 1}


def test_clip_keeps_a_row_whose_only_fault_is_its_coordinates_clipped_to_the_image():
    findings = Findings()
    outcome = apply_policy(_sample(GOOD, CLIPPABLE, WRONG_CLASS), "clip", findings)
    (_, clipped) = outcome.boxes
    assert clipped[0] == 1 and clipped[3] == pytest.approx(1.0)  # x2 clipped to the edge
    assert [p["action"] for p in findings.problems] == ["clipped", "row_dropped"]
    assert findings.dropped == {lc.CLASS_OUT_OF_RANGE: 1}


def test_drop_image_drops_every_box_of_an_image_with_a_bad_row():
    findings = Findings()
    outcome = apply_policy(_sample(GOOD, WRONG_CLASS), "drop_image", findings)
    assert outcome.status == "dropped" and not outcome.boxes and not outcome.kept
    assert findings.dropped == {lc.CLASS_OUT_OF_RANGE: 1, "image_dropped": 1}


def test_corrupt_image_is_dropped_whatever_the_policy():
    corrupt = lc.Problem(lc.IMAGE_CORRUPT, "OpenCV cannot decode the image data")
    findings = Findings()
    outcome = apply_policy(_sample(GOOD, image_problems=[corrupt]), "clip", findings)
    assert outcome.status == "corrupt" and outcome.invalid and not outcome.kept
    assert findings.problems[0]["file"] == "/d/images/a.jpg"
    assert findings.problems[0]["action"] == "image_dropped"


def test_a_format_warning_keeps_the_image_and_is_recorded_apart():
    warning = lc.Problem(lc.EXTENSION_MISMATCH, "content is PNG but the suffix is '.jpg'")
    findings = Findings()
    outcome = apply_policy(_sample(GOOD, image_warnings=[warning]), "drop_row", findings)
    assert outcome.status == "labelled" and not outcome.invalid
    assert not findings.problems
    assert [w["action"] for w in findings.warnings] == ["kept"]


def test_an_image_without_rows_is_a_background():
    outcome = apply_policy(_sample(), "drop_row", Findings())
    assert outcome.status == "background" and outcome.kept and not outcome.invalid


DUPLICATE = lc.LabelRow(
    4, GOOD.values, (lc.Problem(lc.DUPLICATE_ROW, "exact duplicate of an earlier row", 4),)
)


@pytest.mark.parametrize("policy", ["drop_row", "drop_image", "clip", "fail"])
def test_a_duplicate_row_is_removed_with_a_warning_and_the_image_stays_valid(policy):
    findings = Findings()
    outcome = apply_policy(_sample(GOOD, DUPLICATE), policy, findings)
    assert outcome.status == "labelled" and not outcome.invalid and len(outcome.boxes) == 1
    assert not findings.problems
    assert [(w["code"], w["line"], w["action"]) for w in findings.warnings] == [
        (lc.DUPLICATE_ROW, 4, "row_dropped")
    ]
    assert findings.dropped == {lc.DUPLICATE_ROW: 1}


def test_polygon_rows_kept_as_boxes_are_counted_per_label_file():
    polygon = lc.LabelRow(5, (1.0, 0.3, 0.4, 0.4, 0.4), polygon=True)
    findings = Findings()
    outcome = apply_policy(_sample(GOOD, polygon), "drop_row", findings)
    assert [box[0] for box in outcome.boxes] == [0, 1]
    assert findings.polygons == {"/d/labels/a.txt": 1} and not findings.problems
