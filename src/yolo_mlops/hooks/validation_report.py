"""Save the validation report when validation stops the run.

Kedro saves a node's outputs only when the node returns; ``validate_labels`` raises when the
policy stops the run, and its error points the user at ``label_problems.csv`` and
``validation_summary.json``. This hook saves both (through the catalog, like any output) from the
tables the error carries, so the files the message names exist whenever it names them.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl

from yolo_mlops.ingestion.validation import LabelValidationError

logger = logging.getLogger(__name__)

#: Catalog entries written from a :class:`LabelValidationError`: name -> attribute.
REPORT_OUTPUTS = {"label_problems": "problems", "validation_summary": "summary"}


class ValidationReportHook:
    """Writes ``label_problems`` and ``validation_summary`` when validation raises."""

    @hook_impl
    def on_node_error(self, error: Exception, node: Any, catalog: Any) -> None:
        if not isinstance(error, LabelValidationError):
            return
        for name, attribute in REPORT_OUTPUTS.items():
            data = getattr(error, attribute)
            if data is None or name not in node.outputs:
                continue
            try:
                catalog.save(name, data)
            except Exception as save_error:  # the validation error must win
                logger.error("could not save the validation report %s: %s", name, save_error)
            else:
                logger.info("validation stopped the run; saved its report as %s", name)
