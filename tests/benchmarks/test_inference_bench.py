"""The pure helpers of ``benchmarks/inference.py``: medians per image, ratios, the goals."""

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from inference import check_goals, format_table, summarise  # noqa: E402

SAMPLES = {
    "reference_pytorch": {1: [0.060, 0.070, 0.080], 16: [1.60]},
    "reference_onnx": {1: [0.050, 0.050, 0.060], 16: [0.80]},
    "onnxruntime": {1: [0.030, 0.040, 0.050], 16: [0.64]},
    "int8": {1: [0.040, 0.040]},
}


def test_rows_are_median_ms_per_image_with_ratios_to_the_reference_at_the_same_batch():
    rows = {(r["backend"], r["batch"]): r for r in summarise(SAMPLES)}
    ours = rows[("onnxruntime", 1)]
    assert ours["ms_per_image"] == pytest.approx(40.0) and ours["calls"] == 3
    assert ours["vs_reference_onnx"] == pytest.approx(0.8)
    assert ours["vs_reference_pytorch"] == pytest.approx(40 / 70)
    batch = rows[("onnxruntime", 16)]
    assert batch["ms_per_image"] == pytest.approx(40.0) and batch["vs_reference_onnx"] == 0.8
    assert "vs_reference_onnx" not in rows[("reference_pytorch", 1)]


def test_goals_at_batch_one_say_which_are_met():
    goals = {(g["backend"], g["reference"]): g for g in check_goals(summarise(SAMPLES))}
    assert goals[("onnxruntime", "reference_onnx")]["met"]  # 0.8 <= 1.0
    assert goals[("onnxruntime", "reference_pytorch")]["met"]  # 0.57 <= 0.7
    assert not goals[("int8", "reference_pytorch")]["met"]  # 0.57 > 0.5
    assert "onnxruntime" in format_table(summarise(SAMPLES))
