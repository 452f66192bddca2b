"""The reference's predict latency (Ultralytics' PyTorch and its own ONNX export), one program.

``inference.py --reference-python PATH`` runs this file with the Python of a separate virtual
environment that holds Ultralytics, so the reference is timed on the same machine, images and
settings as our backends, alternating with them. It uses only the public ``ultralytics`` API
(``YOLO(weights).export`` and ``YOLO(model).predict``): the tool is used, none of its code is
copied, and the project never installs or imports it. Run it offline (``YOLO_OFFLINE=1``, the
settings in a temporary ``YOLO_CONFIG_DIR``: ``inference.py`` does both).

Two commands, each printing one JSON document on stdout:

* ``export``: the reference's ONNX exports of ``--weights`` at ``--imgsz`` into ``--out``: the
  default one (``yolo export format=onnx``: batch 1, static 640×640, onnxslim) for batch 1, and
  ``dynamic=True`` for batches of more than one image; prints their paths;
* ``time``: one timed pass (after ``--warmup`` untimed calls) over the images of ``--list``
  (one path per line, decoded once before timing) with the PyTorch weights and each ONNX file;
  prints the wall seconds of every ``predict`` call per model and batch size.

A ``predict`` call takes a batch of decoded images (HWC BGR ``uint8`` arrays, as ours do) and
returns ``Results`` with boxes in original pixels: letterbox, forward, NMS and rescaling are all
inside the timed call.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import cv2
import onnxruntime
import torch
import ultralytics
from ultralytics import YOLO


def export(weights: Path, imgsz: int, out: Path) -> dict[str, str]:
    """The default ONNX export (batch 1) and a dynamic one (any batch), copied into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, options in (("static", {}), ("dynamic", {"dynamic": True})):
        work = out / name
        work.mkdir(exist_ok=True)
        copy = shutil.copy(weights, work / weights.name)  # the export lands beside the weights
        exported = YOLO(copy).export(format="onnx", imgsz=imgsz, device="cpu", **options)
        files[name] = str(exported)
    return files


def time_predict(model, images: list, batch: int, args: argparse.Namespace) -> list[float]:
    """Wall seconds of each ``predict`` call over ``images`` in batches of ``batch``."""
    settings = {"imgsz": args.imgsz, "conf": args.conf, "device": "cpu", "verbose": False}
    for _ in range(args.warmup):
        model.predict(images[:batch], **settings)
    walls = []
    for start in range(0, len(images) - batch + 1, batch):
        begin = time.perf_counter()
        model.predict(images[start : start + batch], **settings)
        walls.append(time.perf_counter() - begin)
    return walls


def timings(args: argparse.Namespace) -> dict:
    """``{"pytorch": {batch: [s, ...]}, "onnx": {...}}`` for one pass over the images."""
    paths = [line.strip() for line in args.list.read_text().splitlines() if line.strip()]
    images = [cv2.imread(path, cv2.IMREAD_COLOR) for path in paths]
    onnx_files = json.loads(args.onnx) if args.onnx else {}
    found: dict[str, dict[str, list[float]]] = {"pytorch": {}, "onnx": {}}
    pytorch = YOLO(args.weights)
    for batch in args.batch_sizes:
        found["pytorch"][str(batch)] = time_predict(pytorch, images, batch, args)
        if onnx_files:
            onnx_model = YOLO(onnx_files["static" if batch == 1 else "dynamic"], task="detect")
            found["onnx"][str(batch)] = time_predict(onnx_model, images, batch, args)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["export", "time"])
    parser.add_argument("--weights", type=Path, required=True, help="Ultralytics .pt weights")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--out", type=Path, help="export: folder of the ONNX files")
    parser.add_argument("--list", type=Path, help="time: text file, one image path per line")
    parser.add_argument("--onnx", default="", help="time: the JSON the export command printed")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    if args.command == "export":
        document: dict = {"files": export(args.weights, args.imgsz, args.out)}
    else:
        document = {"timings": timings(args)}
    document["versions"] = {"ultralytics": ultralytics.__version__, "torch": torch.__version__,
                            "onnxruntime": onnxruntime.__version__,
                            "python": sys.version.split()[0]}  # fmt: skip
    print(json.dumps(document))


if __name__ == "__main__":
    main()
