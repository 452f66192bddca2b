"""Stop a training run cleanly on SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends a pod).

The first signal asks the trainer to stop at the next step boundary: it finishes the step, writes
a resumable ``last.pt`` and raises :class:`TrainingInterrupted` naming it. A second signal stops
at once (``KeyboardInterrupt``), keeping whatever ``last.pt`` the run had written.

Handlers are installed only in the main thread (Python's rule) and restored when training ends.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

LOGGER = logging.getLogger(__name__)

#: The signals that stop a run cleanly.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    """``SIGINT``, ``SIGTERM``... for a signal number."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class TrainingInterrupted(Exception):
    """Training stopped on a signal; ``checkpoint`` continues it with ``training.resume``.

    Attributes:
        signum: the signal that stopped it.
        checkpoint: the resumable ``last.pt`` (None when none was written).
        epoch: the 0-based epoch in progress when it stopped.
        step: batches of that epoch already trained.
        exit_code: ``128 + signum``, the shell's code for a process ended by that signal.
    """

    def __init__(self, signum: int, checkpoint: Path | None, epoch: int, step: int) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        self.epoch = epoch
        self.step = step
        self.exit_code = 128 + int(signum)
        where = f"epoch {epoch + 1}, after step {step}"
        saved = (
            f"resumable checkpoint: {checkpoint}"
            if checkpoint is not None
            else "no checkpoint was written"
        )
        super().__init__(f"training stopped by {signal_name(signum)} at {where}; {saved}")


class StopRequest:
    """A flag the training loop polls at every step boundary (``request()`` is truthy once set).

    ``with request.installed():`` routes SIGINT/SIGTERM to it for the block; outside the main
    thread the block runs without handlers (only the main thread may install them).
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    def set(self, signum: int) -> None:
        """Ask the loop to stop at the next step boundary (what the first signal does)."""
        self.signum = int(signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal_name(signum)}: training stopped at once")
        self.set(signum)
        LOGGER.warning(
            "%s received: training stops after this step and writes a resumable last.pt "
            "(send it again to stop at once)",
            signal_name(signum),
        )

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Route :data:`SIGNALS` to this request inside the block; restore the old handlers."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
        for signum in SIGNALS:
            signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
