"""Console logging: the project's conf/logging.yml is in effect and never wraps lines."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

from kedro.logging import RichHandler

from tests.conftest import PROJECT_ROOT
from yolo_mlops.hooks.console import use_rich_on_terminal

LOG_A_LONG_LINE = """
import logging
import kedro.framework.project  # applies conf/logging.yml of the working directory
logging.getLogger("yolo_mlops.check").info("x" * 300)
"""


def test_kedro_uses_conf_logging_yml_with_one_plain_line_per_record_off_a_terminal():
    result = subprocess.run(
        [sys.executable, "-c", LOG_A_LONG_LINE],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    (line,) = [line for line in lines if "yolo_mlops.check" in line]
    assert line.endswith("INFO    yolo_mlops.check: " + "x" * 300)  # not wrapped at 80 columns
    assert any("conf/logging.yml" in line for line in lines)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_handler_becomes_rich_only_on_a_terminal():
    root = logging.Logger("test-root")
    piped, terminal = logging.StreamHandler(io.StringIO()), logging.StreamHandler(_Terminal())
    log_file = logging.FileHandler("/dev/null")
    for handler in (piped, terminal, log_file):
        root.addHandler(handler)
    assert use_rich_on_terminal(root) == 1
    kinds = [type(handler) for handler in root.handlers]
    assert kinds == [logging.StreamHandler, logging.FileHandler, RichHandler]
    assert root.handlers[0] is piped
    log_file.close()
