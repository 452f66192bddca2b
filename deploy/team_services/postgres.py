"""PostgreSQL: a throwaway cluster in the state folder, run as the ``postgres`` user when we are
root, with the ``mlflow`` and ``mlflow_auth`` databases."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from team_services import files, processes

PG_BIN = Path(os.environ.get("TEAM_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
MARKER = "postgres"  # a word of the postmaster's command line (a pid is not reused)


def _as_postgres(command: list[str]) -> list[str]:
    """Run ``command`` as the ``postgres`` user when we are root (PostgreSQL refuses root)."""
    return ["runuser", "-u", PG_USER, "--", *command] if os.geteuid() == 0 else command


def _check_reachable(folder: Path) -> None:
    """The ``postgres`` user must be able to enter ``folder`` (every parent needs ``x``)."""
    if os.geteuid() != 0:
        return
    done = subprocess.run(_as_postgres(["test", "-x", str(folder)]), check=False)
    if done.returncode != 0:
        raise PermissionError(
            f"the {PG_USER} user cannot enter {folder}: give its parent folders search "
            f"permission (chmod o+x) or choose a --state-dir it can reach"
        )


def _postgres_owned(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(PG_USER)
        os.chown(path, user.pw_uid, user.pw_gid)


def _initdb(state: Path, data: Path, password: str) -> None:
    data.mkdir(mode=0o700)
    _postgres_owned(data)
    _check_reachable(data)
    pwfile = state / ".pg-initdb-password"
    files.write_private(pwfile, password + "\n")
    _postgres_owned(pwfile)
    try:
        auth = ["--auth-host=scram-sha-256", "--auth-local=reject"]
        command = [str(PG_BIN / "initdb"), "-D", str(data), "-U", PG_USER, "-E", "UTF8",
                   "--pwfile", str(pwfile), *auth]  # fmt: skip
        subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=300)
    finally:
        pwfile.unlink(missing_ok=True)


def start(state: Path, values: dict[str, str], previous: dict | None) -> dict[str, Any]:
    """A throwaway cluster in ``state/postgres`` on a free port (its previous one on a restart);
    databases ``mlflow`` and ``mlflow_auth`` owned by the role ``mlflow``."""
    data, logs = state / "postgres", state / "logs"
    fresh = not (data / "PG_VERSION").exists()
    if fresh:
        _initdb(state, data, values["postgres"])
    port = processes.same_or_free_port(previous)
    log = logs / "postgres.log"
    log.touch()
    _postgres_owned(log)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
    command = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "120",
               "-o", options, "start"]  # fmt: skip
    subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=180)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    if fresh:
        _create_databases(port, values)
    return {"pid": pid, "port": port, "data": str(data)}


def _create_databases(port: int, values: dict[str, str]) -> None:
    dsn = f"host=127.0.0.1 port={port} user={PG_USER} dbname=postgres"
    with psycopg.connect(dsn, password=values["postgres"], autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE mlflow LOGIN PASSWORD {}").format(sql.Literal(values["mlflow_db"]))
        )
        for database in ("mlflow", "mlflow_auth"):
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER mlflow").format(sql.Identifier(database))
            )


def stop(entry: dict[str, Any], timeout_s: float = 60) -> None:
    """Fast shutdown (SIGINT to the postmaster: roll back sessions, checkpoint, exit)."""
    pid = entry.get("pid")
    if not processes.alive(pid, MARKER):
        return
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and processes.alive(pid, MARKER):
        time.sleep(0.2)
    if processes.alive(pid, MARKER):
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown; recovery runs at the next start


def database_uri(stack: dict[str, Any], values: dict[str, str], database: str) -> str:
    port = stack["postgres"]["port"]
    return f"postgresql+psycopg://mlflow:{values['mlflow_db']}@127.0.0.1:{port}/{database}"
