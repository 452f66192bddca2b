"""What one training epoch measured: the running loss means, counters and timers.

:class:`EpochMeter` accumulates them batch by batch; :class:`EpochStats` is what an epoch
returns. An epoch stopped midway keeps its meter in the checkpoint (:meth:`EpochMeter.partial`),
so the resumed epoch reports the same means as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class EpochStats:
    """What one epoch measured.

    Attributes:
        losses: mean (box, cls, dfl) loss per image over the epoch.
        time_data: seconds spent waiting for batches.
        time_compute: seconds spent in forward/backward/step.
        instances: boxes in the last batch (what the progress bar shows).
        images: images seen by this process.
        lrs: learning rate of each parameter group at the end of the epoch.
        steps: batches of the epoch trained so far (resumed ones included).
        stopped: the epoch ended early on ``LoopOptions.should_stop`` (``steps`` < its batches).
        partial: the meter to carry into a mid-epoch checkpoint when ``stopped``.
    """

    losses: list[float]
    time_data: float
    time_compute: float
    instances: int
    images: int
    lrs: list[float] = field(default_factory=list)
    steps: int = 0
    stopped: bool = False
    partial: dict[str, Any] | None = None


@dataclass
class EpochMeter:
    """Running means and counters of one epoch (what :class:`EpochStats` reports)."""

    running: torch.Tensor = field(default_factory=lambda: torch.zeros(3))
    steps: int = 0
    images: int = 0
    instances: int = 0
    time_data: float = 0.0
    time_compute: float = 0.0

    @classmethod
    def resumed(cls, partial: dict[str, Any] | None) -> EpochMeter:
        """A fresh meter, or the one an interrupted epoch saved (:meth:`partial`)."""
        if not partial:
            return cls()
        return cls(
            running=torch.as_tensor(partial["running"], dtype=torch.float32).clone(),
            steps=int(partial["steps"]),
            images=int(partial["images"]),
            instances=int(partial["instances"]),
            time_data=float(partial["time_data"]),
            time_compute=float(partial["time_compute"]),
        )

    def partial(self) -> dict[str, Any]:
        """The meter as plain checkpoint values (what :meth:`resumed` reads back)."""
        return {
            "running": self.running.clone(),
            "steps": self.steps,
            "images": self.images,
            "instances": self.instances,
            "time_data": self.time_data,
            "time_compute": self.time_compute,
        }

    def add(self, step: int, parts: torch.Tensor, images: int, instances: int) -> None:
        """Fold in batch ``step``'s mean (box, cls, dfl) loss per image ``parts`` [3]."""
        self.running = (self.running * step + parts) / (step + 1)
        self.steps = step + 1
        self.images += images
        self.instances = instances

    def postfix(self) -> dict[str, Any]:
        box, cls, dfl = self.running.tolist()
        return {
            "box": f"{box:.4g}",
            "cls": f"{cls:.4g}",
            "dfl": f"{dfl:.4g}",
            "inst": self.instances,
        }

    def stats(self, lrs: list[float]) -> EpochStats:
        return EpochStats(
            losses=self.running.tolist(),
            time_data=self.time_data,
            time_compute=self.time_compute,
            instances=self.instances,
            images=self.images,
            lrs=lrs,
            steps=self.steps,
        )
