"""The ``training.precision`` run tag: which autocast the trainer resolves on this machine.

Kept apart from :mod:`yolo_mlops.tracking.lineage` because it asks the training library (device
choice, precision rules): only the hook that starts a training run needs it, so the register
stage, which imports the lineage tags, does not depend on the trainer's code.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

import torch

from yolo_mlops.tracking import lineage
from yolo_mlops.yolo.device import select_device
from yolo_mlops.yolo.train import precision
from yolo_mlops.yolo.train.config import TrainConfig

logger = logging.getLogger(__name__)
#: The run tag; set when the run starts, replaced by what the checkpoint trained in at its end.
TAG = "training.precision"


def precision_tags(params: Mapping[str, Any], node_names: Collection[str]) -> dict[str, str]:
    """``training.precision``: the autocast the trainer resolves on this machine, when it trains.

    ``training.bf16: auto`` and ``training.device: auto`` leave the precision to the machine, so
    the parameters alone do not say it. Values: ``float32``, ``float16 autocast`` (CUDA AMP),
    ``bfloat16 autocast``, ``bfloat16 autocast after N float32 optimizer steps`` (a run from
    scratch, design §13), with `` (emulated: no native bf16)`` when forced on a CPU without it.
    Empty when ``train_model`` is not among the nodes; ``unknown`` for a device that does not
    resolve here (the trainer then stops with its own error).
    """
    if "train_model" not in node_names:
        return {}
    training = params.get("training") or {}
    bf16 = training.get("bf16", "auto")
    try:
        device = select_device(str(training.get("device") or "auto"))
        dtype = precision.autocast_dtype(
            device, amp=bool(training.get("amp", True)), bf16=bf16, warn=False
        )
    except (ValueError, RuntimeError) as error:
        logger.debug("precision not resolved: %s", error)
        return {TAG: lineage.UNKNOWN}
    if dtype is None:
        return {TAG: "float32"}
    value = precision.autocast_label(dtype)
    steps = precision.float32_steps(
        dtype,
        fp32_steps=int(training.get("bf16_after_steps", TrainConfig.bf16_after_steps) or 0),
        from_scratch=not training.get("pretrained"),
    )
    if steps:
        value += f" after {steps} float32 optimizer steps"
    if dtype is torch.bfloat16 and not precision.native_bf16():
        value += " (emulated: no native bf16)"
    return {TAG: value}
