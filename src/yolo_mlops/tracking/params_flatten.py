"""Flatten nested Kedro parameters into MLflow-sized dotted keys.

MLflow stores parameters as flat ``key -> string`` pairs with length limits (keys 250 chars,
values 6000 chars on MLflow 3, 500 on old servers). Nested dicts become dotted keys
(``training.optimizer.lr0``); lists stay one value (their JSON-ish ``str``); over-long values are
cut and marked, the full values go to the ``params.yaml`` artifact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MAX_KEY_LENGTH = 250
MLFLOW_MAX_VALUE_LENGTH = 6000
TRUNCATION_MARK = "...[truncated]"
_INVALID_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /:]")


def sanitize_key(key: str) -> str:
    """A valid MLflow param/metric key: disallowed characters become ``_``; cut to 250 chars."""
    return _INVALID_KEY_CHARS.sub("_", str(key))[:MAX_KEY_LENGTH]


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1, "c": [1, 2]}`` (values untouched)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted))
        else:
            flat[dotted] = value
    return flat


def truncate(value: str, max_length: int) -> str:
    """Cut ``value`` to ``max_length`` characters, ending with a visible truncation mark."""
    if len(value) <= max_length:
        return value
    return value[: max(max_length - len(TRUNCATION_MARK), 0)] + TRUNCATION_MARK


def flatten_for_mlflow(
    params: Mapping[str, Any], max_length: int | None = None
) -> tuple[dict[str, str], list[str]]:
    """Flatten and stringify ``params`` for ``log_params``.

    Args:
        params: the resolved Kedro parameters (nested mappings).
        max_length: value length limit; ``None`` means MLflow's limit (6000).

    Returns:
        ``(flat, truncated_keys)``: the dotted string params and the keys whose values were cut.
    """
    limit = max_length or MLFLOW_MAX_VALUE_LENGTH
    flat: dict[str, str] = {}
    truncated: list[str] = []
    for key, value in flatten(params).items():
        text = "None" if value is None else str(value)
        cut = truncate(text, limit)
        if cut != text:
            truncated.append(key)
        flat[sanitize_key(key)] = cut
    return flat, truncated
