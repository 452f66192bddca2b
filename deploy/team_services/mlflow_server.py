"""``mlflow server`` on PostgreSQL with basic auth, artifacts proxied to the S3 bucket."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from team_services import files, processes
from team_services.postgres import database_uri
from team_services.seaweedfs import ARTIFACT_BUCKET

MARKER = "mlflow"  # a word of the server's command line (a pid is not reused)


def _auth_config(state: Path, stack: dict[str, Any], values: dict[str, str]) -> Path:
    path = state / "basic_auth.ini"
    text = f"""[mlflow]
default_permission = NO_PERMISSIONS
database_uri = {database_uri(stack, values, "mlflow_auth")}
admin_username = admin
admin_password = {values["admin"]}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
# Cache a verified password for 30 s: PBKDF2 on every request costs more than the request.
auth_cache_ttl_seconds = 30
"""
    files.write_private(path, text)
    return path


def start(state: Path, stack: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """``mlflow server`` on PostgreSQL, artifacts proxied to ``s3://mlflow/artifacts``, basic
    auth on. Secrets reach it through its environment, never its command line. A restart keeps
    the port."""
    port = processes.same_or_free_port(stack.get("mlflow"))
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": database_uri(stack, values, "mlflow"),
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{ARTIFACT_BUCKET}/artifacts",
        "MLFLOW_S3_ENDPOINT_URL": stack["seaweedfs"]["endpoint"],
        "AWS_ACCESS_KEY_ID": "team-mlflow-server",
        "AWS_SECRET_ACCESS_KEY": values["s3_server_secret"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_AUTH_CONFIG_PATH": str(_auth_config(state, stack, values)),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": values["flask_secret"],
    }
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "MLFLOW_RUN_ID", "MLFLOW_AUTH_ADMIN_PASSWORD"):  # fmt: skip
        env.pop(name, None)
    command = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]  # fmt: skip
    process = processes.spawn(command, state / "logs" / "mlflow.log", env)
    uri = f"http://127.0.0.1:{port}"
    processes.wait(lambda: processes.http_ok(f"{uri}/health"), "mlflow server", 180, process)
    return {"pid": process.pid, "port": port, "uri": uri}
