"""The project's ``kedro run``: Kedro's own command, with short errors for what a user can fix.

Kedro loads this module for ``kedro`` commands run in the project (and ``python -m yolo_mlops``
finds its ``run``). The command is Kedro's ``run`` unchanged, wrapped by :func:`guarded`:

- an error the user can fix (:func:`user_fixable`: a bad parameter, unreachable weights, bad
  data, a full disk...) or a stop on request (Ctrl-C, SIGTERM) ends with the summary block,
  whose ``error`` line is the message (it names the parameter or file to change), and one line
  naming the file that holds the full traceback (``errors.log`` in the project folder); exit
  code 1, or 128 + the signal;
- SIGTERM (what Kubernetes sends a pod before it kills it) is handled like Ctrl-C: training
  stops at the next step boundary with a resumable ``last.pt`` (``yolo.train.interrupt``);
- any other error keeps its full traceback on the console, as before.
"""

from __future__ import annotations

import functools
import logging
import signal
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

logger = logging.getLogger(__name__)

#: Where the full traceback of a short error goes (relative to the project folder).
ERROR_LOG = "errors.log"


def user_fixable(error: BaseException) -> bool:
    """True for errors whose message names the fix: the user needs no traceback."""
    from yolo_mlops.hooks.errors import USER_ERRORS

    return isinstance(error, USER_ERRORS)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _write_log(error: BaseException) -> Path:
    path = Path.cwd() / ERROR_LOG
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    path.write_text(text, encoding="utf-8")
    return path


def _exit_code(error: BaseException) -> int:
    if isinstance(error, KeyboardInterrupt):  # its message names SIGTERM when that sent it
        return 128 + (signal.SIGTERM if "SIGTERM" in str(error) else signal.SIGINT)
    return int(getattr(error, "exit_code", 1))


def _report(error: BaseException, options: dict[str, Any]) -> None:
    """The short ending: the summary block (its ``error`` line is the message), the log file."""
    from yolo_mlops.hooks.errors import finish_stopped_run

    finish_stopped_run(error, options)
    click.echo(f"The full traceback is in {_write_log(error)}", err=True)


def guarded(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` (Kedro's ``run``) with SIGTERM handled like Ctrl-C and short user errors."""

    @functools.wraps(callback)
    def run(**options: Any) -> Any:
        previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            return callback(**options)
        except (Exception, KeyboardInterrupt) as error:
            if not user_fixable(error):
                raise
            _report(error, options)
            raise SystemExit(_exit_code(error)) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    return run


@click.group(name="yolo_mlops")
def cli() -> None:
    """The project's commands (Kedro's, with the ``run`` below)."""


#: Kedro's ``run`` with :func:`guarded` (``python -m yolo_mlops`` runs it too).
run = click.Command(
    name="run",
    callback=guarded(kedro_run.callback),
    params=list(kedro_run.params),
    help=kedro_run.help,
    short_help=kedro_run.short_help,
    context_settings=kedro_run.context_settings,
)
cli.add_command(run)
