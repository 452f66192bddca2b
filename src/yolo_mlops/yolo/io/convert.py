"""Convert an Ultralytics YOLO11 checkpoint into a yolo-mlops checkpoint.

``python -m yolo_mlops.yolo.io.convert yolo11n.pt data/06_models/yolo11n.pt``

The source is read with the restricted unpickler (no foreign code runs); scale, class count and
class names are kept; the result is loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from yolo_mlops.yolo.io.checkpoint import read_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)


def convert_checkpoint(source: str | Path, destination: str | Path) -> Path:
    """Read ``source`` (Ultralytics or ours) and write it to ``destination`` in our format."""
    ckpt = read_checkpoint(source)
    path = save_checkpoint(destination, state_dict=ckpt["state_dict"], config=ckpt["config"])
    config = ckpt["config"]
    logger.info("converted %s -> %s (YOLO11%s, nc=%d)", source, path, config["scale"], config["nc"])
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m yolo_mlops.yolo.io.convert",
        description="Convert an Ultralytics YOLO11 .pt checkpoint into a yolo-mlops checkpoint.",
    )
    parser.add_argument(
        "source", type=Path, help="Ultralytics checkpoint (best.pt, yolo11n.pt ...)"
    )
    parser.add_argument("destination", type=Path, help="where to write the yolo-mlops checkpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    convert_checkpoint(args.source, args.destination)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
