"""ValidationReportHook: a validation that stops the run still leaves the report it points at."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pandas as pd

from yolo_mlops.hooks.validation_report import ValidationReportHook
from yolo_mlops.ingestion.validation import LabelValidationError

NODE = SimpleNamespace(outputs=["clean_labels", "label_problems", "validation_summary"])


class RecordingCatalog:
    def __init__(self, fail: bool = False) -> None:
        self.saved: dict = {}
        self.fail = fail

    def save(self, name: str, data) -> None:
        if self.fail:
            raise OSError("disk full")
        self.saved[name] = data


def _error() -> LabelValidationError:
    problems = pd.DataFrame({"file": ["a.txt"], "line": [1], "code": ["bad_class"]})
    return LabelValidationError("too many invalid images", problems, {"images": 3})


def test_a_stopping_validation_saves_its_problems_and_summary():
    catalog, error = RecordingCatalog(), _error()
    ValidationReportHook().on_node_error(error, NODE, catalog)
    assert catalog.saved["label_problems"] is error.problems
    assert catalog.saved["validation_summary"] == {"images": 3}


def test_other_errors_and_outputs_the_node_does_not_have_are_left_alone():
    catalog = RecordingCatalog()
    ValidationReportHook().on_node_error(ValueError("other"), NODE, catalog)
    other_node = SimpleNamespace(outputs=["clean_labels"])
    ValidationReportHook().on_node_error(_error(), other_node, catalog)
    assert catalog.saved == {}


def test_a_report_that_cannot_be_saved_is_logged_and_the_validation_error_wins(caplog):
    with caplog.at_level(logging.ERROR, logger="yolo_mlops.hooks.validation_report"):
        ValidationReportHook().on_node_error(_error(), NODE, RecordingCatalog(fail=True))
    assert "could not save the validation report label_problems: disk full" in caplog.text
