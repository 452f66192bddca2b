"""What a run says when it lost its tracking server midway, and the command that recovers."""

from __future__ import annotations


def register_command(env: str) -> str:
    """The exact command that registers the kept model once the store is back."""
    env_flag = f" --env {env}" if env and env != "local" else ""
    return f"kedro run --pipelines register{env_flag}"


class TrackingLostError(RuntimeError):
    """Tracking was on and the server was lost mid-run: outputs are kept, the run is incomplete.

    Raised after the pipeline finished (every output saved), so ``kedro run`` exits non-zero
    instead of hiding a missing model version from CI.
    """

    def __init__(self, reason: str, pipeline: str, env: str) -> None:
        self.command = register_command(env)
        super().__init__(
            f"MLflow tracking was lost during `kedro run --pipelines {pipeline}` ({reason}). "
            "Every output is kept under data/ (the model in data/06_models), but the MLflow run "
            "is incomplete and the model may not be registered. Once the tracking server is "
            f"reachable again, run: {self.command}"
        )
