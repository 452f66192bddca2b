"""Where an ONNX model's time goes: ONNX Runtime's profiler, summed by operator type.

``inference.py`` calls :func:`operator_profile` for a backend that misses its latency goal; the
same function answers the question for any ``.onnx`` file::

    python benchmarks/ort_profile.py data/06_models/export/model.onnx --imgsz 640
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

TOP = 12


def operator_profile(
    path: str | Path, batches: Sequence[np.ndarray], threads: int = 0, top: int = TOP
) -> list[dict]:
    """The ``top`` operator types by kernel time over ``batches`` (float32 ``[B, 3, H, W]``).

    Returns rows ``{"op", "ms_per_run", "share", "nodes"}``: kernel milliseconds per
    ``session.run`` summed over the nodes of that type, their share of all kernel time, and how
    many nodes of the optimised graph ran it. Graph optimisations are those a session uses.
    """
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        session.run(None, {name: batches[0]})  # warm-up run, profiled too: removed below
        for batch in batches:
            session.run(None, {name: batch})
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_run = len(kernels) // (len(batches) + 1)
    kernels = kernels[per_run:]  # drop the warm-up run
    micros: Counter[str] = Counter()
    nodes: dict[str, set[str]] = {}
    for event in kernels:
        op = event["args"]["op_name"]
        micros[op] += event["dur"]
        nodes.setdefault(op, set()).add(event["name"])
    total = sum(micros.values()) or 1
    return [{"op": op, "ms_per_run": us / 1000 / len(batches), "share": us / total,
             "nodes": len(nodes[op])} for op, us in micros.most_common(top)]  # fmt: skip


def format_profile(rows: Sequence[dict]) -> str:
    """Fixed-width table of :func:`operator_profile` rows."""
    lines = [f"{'operator':<24} {'ms/run':>8} {'share':>6} {'nodes':>5}"]
    lines += [f"{r['op']:<24} {r['ms_per_run']:>8.2f} {r['share']:>6.1%} {r['nodes']:>5}"
              for r in rows]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batch = rng.random((1, 3, args.imgsz, args.imgsz), dtype=np.float32)
    print(format_profile(operator_profile(args.model, [batch] * args.runs)))


if __name__ == "__main__":
    main()
