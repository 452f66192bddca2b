"""Multi-process (DDP) training entry point for ``torchrun``.

    torchrun --standalone --nproc_per_node 2 -m yolo_mlops.pipelines.train.ddp_worker \\
        --cache data/05_model_input/image_cache --params conf/base/parameters_training.yml \\
        [--augment conf/base/parameters_preprocessing.yml] [--set epochs=3 --set device=cpu]

Each process joins the group (gloo on CPU, nccl on CUDA), loads its shard of every global
batch and trains; rank 0 evaluates and writes ``save_dir/last.pt`` and ``best.pt``.
``training.batch`` is the global batch. Without torchrun it trains in one process.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import yaml

from yolo_mlops.params import parse_params
from yolo_mlops.yolo.train.distributed import cleanup, init_distributed
from yolo_mlops.yolo.data.image_cache import ImageCache
from yolo_mlops.yolo.train.trainer import TrainConfig, Trainer, select_device

LOGGER = logging.getLogger(__name__)


def _block(path: str | None, key: str) -> dict[str, Any]:
    """The ``key`` block of a parameters YAML (or the whole mapping when it has no such key)."""
    if not path:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    return dict(data.get(key, data))


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, train, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", required=True, help="image cache folder")
    parser.add_argument("--params", help="YAML with a `training` block")
    parser.add_argument("--augment", help="YAML with a `preprocessing.augment` block")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    params = _block(args.params, "training")
    for item in args.set:
        key, _, value = item.partition("=")
        params[key] = yaml.safe_load(value)
    config = parse_params(TrainConfig, params, "training")
    augment = None
    if args.augment:
        from yolo_mlops.pipelines.preprocess.nodes import PreprocessingParams

        preprocessing = _block(args.augment, "preprocessing")
        augment = parse_params(PreprocessingParams, preprocessing, "preprocessing").augment
    info = init_distributed(select_device(config.device))
    try:
        result = Trainer(config, ImageCache.open(args.cache), dist_info=info, augment=augment).fit()
        if info.is_main:
            LOGGER.info(
                "best fitness %.5f; checkpoints %s", result.best_fitness, result.last.parent
            )
    finally:
        cleanup(info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
