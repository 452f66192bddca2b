"""Kedro hooks. The MLflow tracking hook is filled in by the tracking layer."""

from __future__ import annotations


class MlflowTrackingHook:
    """Placeholder until the tracking layer lands: registers no hook implementations."""
