"""Accounts and permissions of a team tracking server (MLflow's basic-auth app).

Three accounts, each with what it needs and no more (``default_permission = NO_PERMISSIONS``
on the server, so an account sees only what it was granted):

==========  ==============================================================================
account     permissions
==========  ==============================================================================
admin       server admin: creates accounts, grants permissions; not used by pipelines
pipeline    EDIT on the experiment and the registered model: create runs, log, register
            versions, set tags and aliases; cannot delete them, grant rights or add users
reader      READ on the experiment and the registered model: load ``@champion``, read runs
            and cards; moving an alias or logging is refused (HTTP 403)
==========  ==============================================================================

The admin creates the experiment and the registered model before the first run, so the
pipeline account never owns them (an owner gets MANAGE). The promotion lock
(:mod:`.promotion_lock`) is a registered model the pipeline account creates and deletes itself.
Passwords are passed in, never stored here; the admin's come from the caller's environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server.auth.client import AuthServiceClient

USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
ROLE_PERMISSIONS = {"pipeline": "EDIT", "reader": "READ"}


@dataclass(frozen=True)
class Account:
    """A basic-auth account (the password stays in the caller's secret store)."""

    username: str
    password: str


@contextmanager
def signed_in(account: Account) -> Iterator[None]:
    """Let MLflow clients in this process use ``account`` while the block runs."""
    previous = {name: os.environ.get(name) for name in (USERNAME_ENV, PASSWORD_ENV)}
    os.environ[USERNAME_ENV], os.environ[PASSWORD_ENV] = account.username, account.password
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _ensure_user(auth: AuthServiceClient, account: Account) -> None:
    try:
        auth.create_user(account.username, account.password)
    except MlflowException as error:
        if "already exists" not in str(error) and error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _ensure_experiment(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def _ensure_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def provision(
    uri: str,
    admin: Account,
    accounts: Mapping[str, Account],
    *,
    experiment: str,
    models: tuple[str, ...],
) -> None:
    """As ``admin``: create ``accounts`` (``{"pipeline": ..., "reader": ...}``), the experiment
    and the registered ``models``, and grant each account its role (:data:`ROLE_PERMISSIONS`).

    Idempotent: existing users, experiments, models and grants are kept or updated.
    """
    with signed_in(admin):
        auth = AuthServiceClient(uri)
        client = MlflowClient(uri)
        experiment_id = _ensure_experiment(client, experiment)
        for model in models:
            _ensure_model(client, model)
        for role, account in accounts.items():
            _ensure_user(auth, account)
            permission = ROLE_PERMISSIONS[role]
            _grant(auth, account.username, ("experiment", experiment_id), permission)
            for model in models:
                _grant(auth, account.username, ("registered_model", model), permission)


def _grant(auth: AuthServiceClient, username: str, resource: tuple[str, str], permission: str):
    """Grant ``permission`` on ``resource`` (type, id); an existing grant is kept when it is
    the same, else replaced."""
    kind, resource_id = resource
    try:
        auth.grant_user_permission(username, kind, resource_id, permission)
        return
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    if auth.get_user_permission(username, kind, resource_id).permission != permission:
        auth.revoke_user_permission(username, kind, resource_id)
        auth.grant_user_permission(username, kind, resource_id, permission)
