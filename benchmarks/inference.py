"""Predict latency on real COCO128 images, our backends side by side with the reference's.

    python benchmarks/inference.py --reference-python /work/reference-venv/bin/python
    python benchmarks/inference.py --reference-python ... --images 16 --repeats 1   # smoke run
    python benchmarks/inference.py --backends torch onnxruntime        # ours only, no reference

What is timed: the wall time of one predict call on a batch of decoded images (HWC BGR uint8,
read before timing), letterbox, forward, NMS and boxes back in original pixels included, divided
by the batch size; each figure is the median over every call of every repetition (``--images``
images per repetition, after ``--warmup`` untimed calls). Settings as in the issue: yolo11n, 640,
conf 0.25, batch 1 and 16 (a batch of mixed shapes is letterboxed to the 640 square by both).

Ours (:func:`yolo_mlops.yolo.inference.detect_images`, the one inference path): ``torch`` (the
checkpoint, BatchNorm fused), ``onnxruntime`` (our fp32 export), ``int8`` (its static QDQ
quantisation, calibrated on ``--calibration-images`` of the images, seed 0) and ``openvino``
(the fp32 export as IR, when the optional package is installed).

The reference (Ultralytics 8.4.190) runs from its own virtual environment: ``--reference-python``
is that environment's Python; :mod:`reference_inference` (run there) exports the same weights
with its own ONNX exporter and times ``YOLO(...).predict`` on the PyTorch weights and on its ONNX
file (run by ONNX Runtime). Each repetition runs the reference and ours one after the other,
alternating which goes first. The reference runs offline with its settings in a temporary
folder (as :mod:`reference_timer`).

The table gives each of our backends' ratio to the reference's ONNX and PyTorch figures at the
same batch size; the issue's goals at batch 1 (:data:`GOALS`) are checked, and for a goal that is
missed the ONNX model's time is broken down by operator (:mod:`ort_profile`) with our split of
letterbox / inference / NMS. JSON: ``benchmarks/results/inference_<kind>.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime
import torch
from coco128 import DEFAULT_ZIP, extract_coco128
from machine import ROOT, results_path
from ort_profile import format_profile, operator_profile
from reference_timer import offline_env

from yolo_mlops.yolo.data.letterbox import letterbox_batch
from yolo_mlops.yolo.export.onnx_export import export_checkpoint
from yolo_mlops.yolo.export.quantize import choose_calibration, quantize_onnx
from yolo_mlops.yolo.inference import detect, detect_images, load_detector

logger = logging.getLogger("benchmarks.inference")

DEFAULT_WEIGHTS = ROOT.parent / "shared" / "reference" / "yolo11n_coco16_ultralytics.pt"
REFERENCE_SCRIPT = Path(__file__).with_name("reference_inference.py")
OURS = ("torch", "onnxruntime", "int8", "openvino")
#: The inference backend each of ours runs on.
RUNTIMES = {"torch": "torch", "onnxruntime": "onnxruntime", "int8": "onnxruntime",
            "openvino": "openvino"}  # fmt: skip
REFERENCE = ("reference_pytorch", "reference_onnx")
#: (our backend, reference, largest ratio) at batch 1, from the issue.
GOALS = (("onnxruntime", "reference_onnx", 1.0), ("onnxruntime", "reference_pytorch", 0.7),
         ("int8", "reference_pytorch", 0.5))  # fmt: skip


def prepare_ours(args: argparse.Namespace, work: Path, images: list[np.ndarray]) -> dict:
    """``{backend: (model, file)}`` of the asked backends; exports made once, in ``work``."""
    files: dict[str, Path] = {"torch": args.weights}
    if set(args.backends) - {"torch"}:
        files["onnxruntime"] = export_checkpoint(args.weights, work / "model.onnx", args.imgsz)
    if "int8" in args.backends:
        chosen = choose_calibration(images, args.calibration_images, seed=0)
        files["int8"] = quantize_onnx(files["onnxruntime"], work / "model_int8.onnx", chosen,
                                      args.imgsz)  # fmt: skip
    if "openvino" in args.backends:
        try:
            from yolo_mlops.yolo.export.openvino_ir import export_openvino
        except ImportError as error:
            raise SystemExit(f"openvino backend asked for but not importable: {error}") from None
        files["openvino"] = export_openvino(files["onnxruntime"], work / "model_openvino.xml")
    return {name: (load_detector(files[name], RUNTIMES[name]), files[name])
            for name in args.backends}  # fmt: skip


def time_ours(model: Any, images: list[np.ndarray], batch: int, args: argparse.Namespace) -> list:
    """Wall seconds of each :func:`detect_images` call over ``images`` in batches of ``batch``."""
    for _ in range(args.warmup):
        detect_images(model, images[:batch], args.imgsz, conf=args.conf)
    walls = []
    for start in range(0, len(images) - batch + 1, batch):
        begin = time.perf_counter()
        detect_images(model, images[start : start + batch], args.imgsz, conf=args.conf)
        walls.append(time.perf_counter() - begin)
    return walls


def run_reference(args: argparse.Namespace, env: dict, cwd: Path, *command: str) -> dict:
    """The JSON document the reference script prints last (it may log before it)."""
    call = [str(args.reference_python), str(REFERENCE_SCRIPT), *command,
            "--weights", str(args.weights), "--imgsz", str(args.imgsz)]  # fmt: skip
    done = subprocess.run(call, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"the reference run failed (exit {done.returncode}):\n{tail}")
    return json.loads(lines[-1])


def where_time_goes(args, ours: dict, images: list[np.ndarray], missed: set[str]) -> dict:
    """Per missed backend: our letterbox / preprocess / inference / NMS split at batch 1 (ms per
    image) and ONNX Runtime's operator profile of its file."""
    sample = images[: args.profile_images]
    found = {}
    for name in sorted(missed):
        model, path = ours[name]
        split = {"letterbox": 0.0}
        batches = []
        for image in sample:
            begin = time.perf_counter()
            batch, _ = letterbox_batch([image], args.imgsz)
            split["letterbox"] += time.perf_counter() - begin
            detect(model, torch.from_numpy(batch), conf=args.conf, times=split)
            batches.append(batch.astype(np.float32) / 255)
        ms = {key: 1000 * value / len(sample) for key, value in split.items()}
        profile = operator_profile(path, batches)
        logger.info("%s at batch 1, ms per image: %s\n%s", name,
                    {k: round(v, 2) for k, v in ms.items()}, format_profile(profile))  # fmt: skip
        found[name] = {"split_ms_per_image": ms, "operators": profile}
    return found


def summarise(samples: dict[str, dict[int, list[float]]]) -> list[dict[str, Any]]:
    """Rows of median ms per image, with each of ours' ratios to the reference's."""
    medians = {
        (name, batch): 1000 * statistics.median(walls) / batch
        for name, by_batch in samples.items()
        for batch, walls in by_batch.items()
    }
    rows = []
    for (name, batch), ms in medians.items():
        row = {"backend": name, "batch": batch, "ms_per_image": ms,
               "calls": len(samples[name][batch])}  # fmt: skip
        for reference in REFERENCE:
            if (reference, batch) in medians and name not in REFERENCE:
                row[f"vs_{reference}"] = ms / medians[(reference, batch)]
        rows.append(row)
    return rows


def check_goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals at batch 1 that the rows can judge: ratio, bound, met."""
    ratios = {(r["backend"], ref): r.get(f"vs_{ref}") for r in rows if r["batch"] == 1
              for ref in REFERENCE}  # fmt: skip
    return [{"backend": ours, "reference": ref, "ratio": ratios[(ours, ref)], "goal": bound,
             "met": ratios[(ours, ref)] <= bound}
            for ours, ref, bound in GOALS if ratios.get((ours, ref)) is not None]  # fmt: skip


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Fixed-width table: backend, batch, ms per image, ratios to the reference's."""
    lines = [f"{'backend':<18} {'batch':>5} {'ms/img':>8} {'vs ref ONNX':>12} {'vs ref PT':>10}"]
    for r in sorted(rows, key=lambda r: (r["batch"], r["backend"] not in REFERENCE)):
        onnx_ratio = f"{r['vs_reference_onnx']:.2f}x" if "vs_reference_onnx" in r else "-"
        pt_ratio = f"{r['vs_reference_pytorch']:.2f}x" if "vs_reference_pytorch" in r else "-"
        lines.append(f"{r['backend']:<18} {r['batch']:>5} {r['ms_per_image']:>8.2f} "
                     f"{onnx_ratio:>12} {pt_ratio:>10}")  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-python", type=Path, help="Python of the reference's venv")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="Ultralytics .pt")
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument("--images", type=int, default=128, help="first N images of COCO128")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--backends", nargs="+", default=list(OURS), choices=OURS)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the images")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per setting")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--calibration-images", type=int, default=32, help="INT8 calibration")
    parser.add_argument("--profile-images", type=int, default=16, help="images profiled")
    parser.add_argument("--profile", action="store_true", help="profile ONNX backends always")
    parser.add_argument("--json", type=Path, default=results_path("inference"), help="output")
    return parser.parse_args(argv)


def measure(args, work: Path, images: list[np.ndarray], ours: dict) -> tuple[dict, dict]:
    """``{backend: {batch: [wall s, ...]}}`` over ``args.repeats`` alternating repetitions,
    and the reference's versions."""
    samples: dict[str, dict[int, list[float]]] = {}
    versions: dict[str, str] = {}
    env = exported = None
    if args.reference_python:
        env = offline_env(args.reference_python.parent / "yolo", work / "reference-config")
        exported = run_reference(args, env, work, "export", "--out", str(work / "reference"))
    for repeat in range(args.repeats):
        order = ("reference", "ours") if repeat % 2 == 0 else ("ours", "reference")
        for who in order:
            if who == "reference" and exported is not None:
                found = run_reference(args, env, work, "time", "--list", str(work / "images.txt"),
                                      "--onnx", json.dumps(exported["files"]),
                                      "--warmup", str(args.warmup), "--conf", str(args.conf),
                                      "--batch-sizes", *map(str, args.batch_sizes))  # fmt: skip
                versions = found["versions"]
                for kind, by_batch in found["timings"].items():
                    for batch, walls in by_batch.items():
                        samples.setdefault(f"reference_{kind}", {}).setdefault(int(batch), [])
                        samples[f"reference_{kind}"][int(batch)] += walls
            elif who == "ours":
                for name, (model, _) in ours.items():
                    for batch in args.batch_sizes:
                        walls = time_ours(model, images, batch, args)
                        samples.setdefault(name, {}).setdefault(batch, []).extend(walls)
        logger.info("repetition %d of %d done", repeat + 1, args.repeats)
    return samples, versions


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, log the table, write the JSON; returns the JSON document."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for chatty in ("onnxscript", "onnx_ir", "torch.onnx"):  # one line per folded constant
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if args.images < max(args.batch_sizes):
        raise SystemExit(f"--images {args.images} is fewer than a batch of {max(args.batch_sizes)}")
    with tempfile.TemporaryDirectory(prefix="inference-bench-") as tmp:
        work = Path(tmp)
        dataset = extract_coco128(args.zip, work, args.images)
        paths = sorted((dataset.parent / "subset" / "images" / "train2017").glob("*.jpg"))
        if not paths:  # all images: extract_coco128 makes no subset folder
            paths = sorted((work / "raw").rglob("images/train2017/*.jpg"))[: args.images]
        (work / "images.txt").write_text("\n".join(str(p) for p in paths))
        images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]
        logger.info("%d COCO128 images, %s", len(images), args.weights)
        ours = prepare_ours(args, work, images)
        samples, versions = measure(args, work, images, ours)
        rows = summarise(samples)
        goals = check_goals(rows)
        missed = {g["backend"] for g in goals if not g["met"]}
        profiled = (set(OURS) if args.profile else missed) & {"onnxruntime", "int8"} & set(ours)
        profiles = where_time_goes(args, ours, images, profiled)
    document = {
        "model": "yolo11n", "weights": str(args.weights), "images": len(images),
        "imgsz": args.imgsz, "conf": args.conf, "repeats": args.repeats, "warmup": args.warmup,
        "calibration_images": args.calibration_images,
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "reference_versions": versions, "results": rows, "goals_batch_1": goals,
        "where_time_goes": profiles,
    }  # fmt: skip
    logger.info("yolo11n @ %d, median ms per image (letterbox + forward + NMS)\n%s", args.imgsz,
                format_table(rows))  # fmt: skip
    for goal in goals:
        verdict = "met" if goal["met"] else "MISSED"
        logger.info("goal %s <= %.1fx %s: %.2fx %s", goal["backend"], goal["goal"],
                    goal["reference"], goal["ratio"], verdict)  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2))
    logger.info("wrote %s", args.json)
    return document


if __name__ == "__main__":
    main()
