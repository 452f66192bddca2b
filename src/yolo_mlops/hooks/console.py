"""Console logging: plain lines off a terminal, Rich on one.

``conf/logging.yml`` gives the root logger a plain ``logging.StreamHandler`` (one line per
record, never wrapped: Rich wraps at 80 columns when its stream is not a terminal, which made
CI logs unreadable). On an interactive terminal :class:`ConsoleHook` swaps that handler for
Kedro's ``RichHandler`` (colours, rich tracebacks). Kedro refuses handler classes outside
``logging`` and ``kedro.logging`` in the logging config, hence a hook instead of a custom class.
"""

from __future__ import annotations

import logging
from typing import Any, TextIO

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a file
        return False


def use_rich_on_terminal(root: logging.Logger | None = None) -> int:
    """Replace plain stream handlers of ``root`` whose stream is a terminal by RichHandlers.

    Handlers writing to files, or to streams that are not terminals, stay as they are.

    Returns:
        How many handlers were replaced.
    """
    from kedro.logging import RichHandler

    root = root or logging.getLogger()
    replaced = 0
    for handler in list(root.handlers):
        stream: TextIO | None = getattr(handler, "stream", None)
        if type(handler) is not logging.StreamHandler or not _is_terminal(stream):
            continue
        rich = RichHandler(rich_tracebacks=True)
        rich.setLevel(handler.level)
        root.removeHandler(handler)
        root.addHandler(rich)
        replaced += 1
    return replaced


class ConsoleHook:
    """Switches the console to Rich when the run is attached to a terminal."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        use_rich_on_terminal()
