"""The team stack's credentials as environment of compiled Kubeflow tasks, from Kubernetes Secrets.

A compiled pipeline (``pipeline.yaml``) must never hold a password: it is a file people share
and upload. Each task instead names a Secret of the pipeline's namespace and the keys to expose,
with ``kfp.kubernetes.use_secret_as_env``; the cluster fills the variables when the pod starts.

Defaults (created by the cluster admin, see docs/team.md):

- ``mlflow-pipeline``: ``username``, ``password`` -> ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``
  (the pipeline account of the tracking server);
- ``dvc-s3``: ``access_key_id``, ``secret_access_key`` -> ``AWS_ACCESS_KEY_ID``/``SECRET``
  (only for tasks that run ``dvc``).

``MLFLOW_TRACKING_URI`` is not a secret: it is the ``mlflow_tracking_uri`` pipeline parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SecretEnv:
    """One Kubernetes Secret exposed to a task as environment variables.

    Attributes:
        secret_name: the Secret's name in the namespace the pipeline runs in.
        keys: ``{environment variable: key in the Secret}``.
    """

    secret_name: str
    keys: Mapping[str, str] = field(default_factory=dict)


TRACKING_SECRET = SecretEnv(
    "mlflow-pipeline",
    {"MLFLOW_TRACKING_USERNAME": "username", "MLFLOW_TRACKING_PASSWORD": "password"},
)
DVC_SECRET = SecretEnv(
    "dvc-s3",
    {"AWS_ACCESS_KEY_ID": "access_key_id", "AWS_SECRET_ACCESS_KEY": "secret_access_key"},
)


def use_secrets(task: Any, secrets: Sequence[SecretEnv]) -> None:
    """Make ``task`` (a ``kfp.dsl.PipelineTask``) read ``secrets`` into its environment.

    Raises:
        ValueError: a Secret without keys, or one variable taken from two Secrets.
    """
    if not secrets:
        return
    from kfp import kubernetes  # kfp-kubernetes: only needed when a task uses a Secret

    seen: dict[str, str] = {}
    for secret in secrets:
        if not secret.keys:
            raise ValueError(f"Kubernetes Secret {secret.secret_name!r}: no keys to expose")
        for variable in secret.keys:
            if variable in seen:
                raise ValueError(
                    f"{variable} comes from both Secret {seen[variable]!r} and "
                    f"{secret.secret_name!r}; keep one"
                )
            seen[variable] = secret.secret_name
        kubernetes.use_secret_as_env(
            task,
            secret_name=secret.secret_name,
            secret_key_to_env={key: variable for variable, key in secret.keys.items()},
        )
