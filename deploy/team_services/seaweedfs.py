"""SeaweedFS: ``weed server -s3`` on 127.0.0.1 with one S3 identity per client, each scoped to
its bucket."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from team_services import files, processes

ARTIFACT_BUCKET = "mlflow"  # the tracking server's artifact store (s3://mlflow/artifacts)
DVC_BUCKET = "dvc"  # the DVC remote (s3://dvc/store)
MARKER = "weed"  # a word of the server's command line (a pid is not reused)
WEED_PORTS = 8  # master, volume, filer, s3: an http and a grpc port each


def identities(values: dict[str, str]) -> dict[str, Any]:
    """S3 identities: the tracking server (its bucket), DVC (its bucket), admin (buckets)."""

    def identity(name: str, secret: str, actions: list[str]) -> dict[str, Any]:
        credentials = [{"accessKey": f"team-{name}", "secretKey": values[secret]}]
        return {"name": name, "credentials": credentials, "actions": actions}

    def scoped(bucket: str) -> list[str]:
        return [f"{action}:{bucket}" for action in ("Read", "Write", "List", "Tagging")]

    return {
        "identities": [
            identity("mlflow-server", "s3_server_secret", scoped(ARTIFACT_BUCKET)),
            identity("dvc", "s3_dvc_secret", scoped(DVC_BUCKET)),
            identity("admin", "s3_admin_secret", ["Admin", "Read", "Write", "List", "Tagging"]),
        ]
    }  # fmt: skip


def weed_binary() -> str:
    candidate = Path(sys.executable).with_name("weed")
    return str(candidate) if candidate.is_file() else "weed"


def start(state: Path, values: dict[str, str], previous: dict | None) -> dict[str, Any]:
    """``weed server -s3`` with every port on 127.0.0.1 (its previous ones on a restart) and its
    volumes in ``state/seaweedfs``."""
    data, logs = state / "seaweedfs", state / "logs"
    data.mkdir(exist_ok=True)
    config = state / "s3-identities.json"
    files.write_private(config, json.dumps(identities(values), indent=2))
    ports = (previous or {}).get("ports") or {}
    free = all(processes.port_free(p) and processes.port_free(p + 1) for p in ports.values())
    if not ports or not free:
        base = processes.free_ports(WEED_PORTS)
        ports = {name: base + 2 * i for i, name in enumerate(("master", "volume", "filer", "s3"))}
    command = [weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
               "-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
               "-master.volumeSizeLimitMB=256", "-volume.max=0"]  # fmt: skip
    for name, port in ports.items():
        command += [f"-{name}.port={port}", f"-{name}.port.grpc={port + 1}"]
    sockets = state / "sockets"  # weed's local sockets default to /tmp: keep them in the state
    sockets.mkdir(exist_ok=True)
    command += [f"-filer.localSocket={sockets / 'filer.sock'}",
                f"-s3.localSocket={sockets / 's3.sock'}"]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(sockets)}
    process = processes.spawn(command, logs / "seaweedfs.log", env)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    processes.wait(lambda: processes.http_ok(endpoint), "SeaweedFS S3 gateway", 120, process)
    _create_buckets(endpoint, values)
    return {"pid": process.pid, "port": ports["s3"], "ports": ports, "endpoint": endpoint}


def _create_buckets(endpoint: str, values: dict[str, str]) -> None:
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="team-admin", aws_secret_access_key=values["s3_admin_secret"],
    )  # fmt: skip
    deadline = time.monotonic() + 60
    for bucket in (ARTIFACT_BUCKET, DVC_BUCKET):
        while True:
            try:
                s3.head_bucket(Bucket=bucket)
                break
            except Exception:
                try:
                    s3.create_bucket(Bucket=bucket)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)  # the filer may still be joining the master
