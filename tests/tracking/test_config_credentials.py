"""Tracking credentials come from the environment only: a URI with a password is refused."""

from __future__ import annotations

import pytest

from yolo_mlops.tracking.config import TrackingParams, resolve_tracking_uri


def test_the_environment_uri_wins_over_the_parameter(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    params = TrackingParams(uri="http://127.0.0.1:6000")
    assert resolve_tracking_uri(params, tmp_path) == "http://127.0.0.1:5000"


def test_a_password_in_the_parameter_uri_is_refused_naming_the_key(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = TrackingParams(uri="http://pipeline:s3cret@127.0.0.1:5000")
    with pytest.raises(ValueError, match=r"tracking\.uri parameter contains a password") as error:
        resolve_tracking_uri(params, tmp_path)
    assert "s3cret" not in str(error.value)
    assert "MLFLOW_TRACKING_PASSWORD" in str(error.value)


def test_a_password_in_the_environment_uri_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://u:p@mlflow.example")
    with pytest.raises(ValueError, match=r"\$MLFLOW_TRACKING_URI contains a password"):
        resolve_tracking_uri(TrackingParams(), tmp_path)


def test_a_user_name_alone_is_no_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://reader@127.0.0.1:5000")
    assert resolve_tracking_uri(TrackingParams(), tmp_path) == "http://reader@127.0.0.1:5000"


def test_a_database_uri_keeps_its_own_credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg://u:p@127.0.0.1/mlflow")
    assert resolve_tracking_uri(TrackingParams(), tmp_path).startswith("postgresql+psycopg://")
