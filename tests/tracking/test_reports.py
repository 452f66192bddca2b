"""Metric names and the MLflow UI's chart order: per-epoch curves before one-off values."""

from __future__ import annotations

import time

from yolo_mlops.tracking import reports
from yolo_mlops.yolo.train.engine import EpochStats
from yolo_mlops.yolo.train.state import history_row


def _ui_sections(keys: list[str]) -> list[str]:
    """The MLflow 3.x UI's section order for a run's charts (RunsChartsSectionsConfig): a key's
    section is its prefix before the last "/"; prefixed sections sorted by name, then the
    unprefixed ones ("Model metrics")."""
    named = sorted({key.rsplit("/", 1)[0] for key in keys if "/" in key})
    return named + (["Model metrics"] if any("/" not in key for key in keys) else [])


def _epoch_keys() -> list[str]:
    stats = EpochStats(
        losses=[1.0, 2.0, 3.0], time_data=0.1, time_compute=0.2, instances=4, images=8,
        lrs=[0.01, 0.01, 0.01],
    )  # fmt: skip
    metrics = {"precision": 0.1, "recall": 0.2, "mAP50": 0.3, "mAP50-95": 0.2, "fitness": 0.2}
    row = history_row(0, stats, metrics, 64, time.perf_counter())
    return [key for key in row if key != "epoch"]  # what the train node logs per epoch


def test_one_off_metrics_sort_after_the_per_epoch_curves_in_the_ui() -> None:
    metrics_json = {"precision": 0.5, "mAP50-95": 0.2, "coco/mAP50": 0.3, "speed_ms/nms": 1.0}
    summary = {"images": 128, "instances": 929, "instances_per_class": {"person": 254}}
    one_off = [
        *reports.numeric_items(metrics_json, reports.EVAL_PREFIX),
        *reports.numeric_items(summary, reports.DATA_PREFIX),
        f"{reports.GATE_PREFIX}/challenger_mAP50-95",
    ]
    epoch_keys = _epoch_keys()
    epoch_sections = {key.rsplit("/", 1)[0] for key in epoch_keys if "/" in key}
    order = _ui_sections(epoch_keys + one_off)
    first_one_off = min(order.index(key.rsplit("/", 1)[0]) for key in one_off)
    assert epoch_sections == {"train", "metrics", "lr", "time"}
    assert all(order.index(section) < first_one_off for section in epoch_sections), order
    assert "validate/instances" in one_off and "val/speed_ms/nms" in one_off
    # the locale order the UI uses after the first render agrees with the code-unit order
    assert sorted(order[:-1], key=str.casefold) == order[:-1]


def test_numeric_items_keeps_top_level_numbers_only() -> None:
    data = {"images": 3, "ok": True, "name": "x", "nested": {"a": 1}, "ratio": 0.5}
    assert reports.numeric_items(data, "p") == {"p/images": 3.0, "p/ratio": 0.5}
    assert reports.numeric_items(["not", "a", "dict"], "p") == {}
