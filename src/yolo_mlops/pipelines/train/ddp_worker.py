"""Multi-process (DDP) training entry point for ``torchrun``.

    torchrun --standalone --nproc_per_node 2 -m yolo_mlops.pipelines.train.ddp_worker \\
        --cache data/05_model_input/image_cache --params conf/base/parameters_training.yml \\
        [--augment conf/base/parameters_preprocessing.yml] [--set epochs=3 --set device=cpu]

Each process joins the group (gloo on CPU, nccl on CUDA), fetches ``training.pretrained``
(:func:`~yolo_mlops.ingestion.weights_cache.fetch_pretrained`: found in the cache the
``train_model`` node filled; a resume fetches nothing and continues with its checkpoint's recipe,
see :func:`~yolo_mlops.pipelines.train.training_run.initial_state`), loads its shard of every
global batch and trains; rank 0 evaluates and writes ``save_dir/last.pt`` and ``best.pt``.
``training.batch`` is the global batch. Without torchrun it trains in one process.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.pipelines.train.training_run import initial_state
from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.data.image_cache import ImageCache
from yolo_mlops.yolo.train.distributed import cleanup, init_distributed
from yolo_mlops.yolo.train.trainer import EpochCallback, TrainConfig, Trainer, select_device

LOGGER = logging.getLogger(__name__)


def _block(path: str | None, key: str) -> dict[str, Any]:
    """The ``key`` block of a parameters YAML (or the whole mapping when it has no such key)."""
    if not path:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    return dict(data.get(key, data))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", required=True, help="image cache folder")
    parser.add_argument("--params", help="YAML with a `training` block")
    parser.add_argument("--augment", help="YAML with a `preprocessing.augment` block")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def _configs(args: argparse.Namespace) -> tuple[TrainConfig, AugmentConfig | None]:
    """The ``training`` block (with ``--set`` overrides) and the augmentation, parsed."""
    params = _block(args.params, "training")
    for item in args.set:
        key, _, value = item.partition("=")
        params[key] = yaml.safe_load(value)
    config = parse_params(TrainConfig, params, "training")
    if not args.augment:
        return config, None
    augment = _block(args.augment, "preprocessing").get("augment")
    return config, parse_params(AugmentConfig, augment, "preprocessing.augment")


def main(argv: list[str] | None = None, callbacks: Sequence[EpochCallback] = ()) -> int:
    """Parse the command line, train, return the exit status.

    ``callbacks`` run after every epoch on rank 0 (e.g. the pipeline's MLflow logging).
    """
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config, augment = _configs(args)
    config, weights, weights_meta = initial_state(config)  # a resume fetches nothing
    info = init_distributed(select_device(config.device), timeout_s=config.dist_timeout_s)
    try:
        cache = ImageCache.open(args.cache)
        trainer = Trainer(
            config, cache, callbacks=callbacks, dist_info=info, augment=augment,
            checkpoint_meta=weights_meta,
            pretrained_file=weights.path if weights is not None else None,
        )  # fmt: skip
        result = trainer.fit()
        if info.is_main:
            LOGGER.info(
                "best fitness %.5f; checkpoints %s", result.best_fitness, result.last.parent
            )
    finally:
        cleanup(info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
