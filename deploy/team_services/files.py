"""The state folder's files: owner-only writes, JSON records, the stack's generated secrets."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state"
    return Path(base) / "yolo-mlops" / "team"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600 from the first byte)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def load_secrets(state: Path) -> dict[str, str]:
    """The stack's passwords and keys, generated once and kept in ``secrets.json`` (0600)."""
    path = state / "secrets.json"
    values = read_json(path)
    names = ("postgres", "mlflow_db", "s3_server_secret", "s3_dvc_secret", "s3_admin_secret",
             "pipeline", "reader", "flask_secret")  # fmt: skip
    for name in names:
        values.setdefault(name, secrets.token_urlsafe(24))
    values["admin"] = (
        os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD")
        or values.get("admin")
        or (secrets.token_urlsafe(24))
    )
    write_private(path, json.dumps(values, indent=2))
    return values
