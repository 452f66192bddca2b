"""The weights cache against a loopback release server (no other network)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.weights_helpers import malicious_pt, release_server, yolo11n_file
from yolo_mlops.ingestion import weights_cache
from yolo_mlops.ingestion.download import RetryPolicy
from yolo_mlops.ingestion.weights_cache import (
    WeightsFetchError,
    base_weights_meta,
    cached_file,
    fetch_pretrained,
    fetch_weights,
    weights_cache_dir,
)
from yolo_mlops.yolo.io.checkpoint import CheckpointError
from yolo_mlops.yolo.io.ultralytics_import import UnsafeCheckpointError
from yolo_mlops.yolo.io.weights import WeightsError
from yolo_mlops.yolo.train.config import TrainConfig


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    """The weights cache in tmp_path; HTTP retries without sleeping."""
    folder = tmp_path / "weights-cache"
    monkeypatch.setenv("YOLO_MLOPS_WEIGHTS_DIR", str(folder))
    monkeypatch.setattr(weights_cache, "RETRY_POLICY", RetryPolicy(retries=2, backoff_s=0.0))
    return folder


@pytest.fixture(scope="module")
def body(tmp_path_factory) -> bytes:
    return yolo11n_file(tmp_path_factory.mktemp("weights")).read_bytes()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_cache_dir_follows_the_environment(cache_dir, monkeypatch, tmp_path):
    assert weights_cache_dir() == cache_dir
    monkeypatch.delenv("YOLO_MLOPS_WEIGHTS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights_cache_dir() == tmp_path / "xdg" / "yolo-mlops" / "weights"


def test_first_fetch_downloads_and_records_the_second_makes_no_request(body, cache_dir):
    with release_server({"yolo11n.pt": body}) as (base_url, state):
        first = fetch_weights("yolo11n.pt", base_url=base_url)
        assert len(state.requests) == 1
        second = fetch_weights("yolo11n.pt", base_url=base_url)
        assert len(state.requests) == 1  # reused from the cache without any request
    digest = hashlib.sha256(body).hexdigest()
    assert first == second
    assert (first.name, first.url, first.size, first.sha256) == (
        "yolo11n.pt", f"{base_url}/yolo11n.pt", len(body), digest,
    )  # fmt: skip
    assert (first.scale, first.nc) == ("n", 80)
    assert Path(first.path) == cached_file(first.url, "yolo11n.pt") and first.path.startswith(
        str(cache_dir)
    )
    assert "path" not in first.record()


def test_dropped_connection_resumes_with_a_range_request(body):
    with release_server({"yolo11n.pt": body}, drop_first=True) as (base_url, state):
        weights = fetch_weights("yolo11n.pt", base_url=base_url)
    assert len(state.requests) == 2 and state.requests[1][1] == f"bytes={len(body) // 2}-"
    assert Path(weights.path).read_bytes() == body


def test_checksum_mismatch_keeps_nothing(body, cache_dir):
    with (
        release_server({"yolo11n.pt": body}) as (base_url, _),
        pytest.raises(WeightsFetchError, match=r"checksum mismatch.*nothing was kept") as info,
    ):
        fetch_weights("yolo11n.pt", base_url=base_url, sha256="0" * 64)
    assert "training.pretrained_sha256" in str(info.value)
    assert _files(cache_dir) == []
    digest = hashlib.sha256(body).hexdigest()
    with release_server({"yolo11n.pt": body}) as (base_url, _):
        weights = fetch_weights("yolo11n.pt", base_url=base_url, sha256=digest.upper())
    assert weights.sha256 == digest


def test_truncated_file_is_a_clear_error_and_is_not_kept(body, cache_dir):
    with (
        release_server({"yolo11n.pt": body[: len(body) // 3]}) as (base_url, _),
        pytest.raises(CheckpointError, match="truncated") as info,
    ):
        fetch_weights("yolo11n.pt", base_url=base_url)
    message = str(info.value)
    assert f"{base_url}/yolo11n.pt" in message and "deleted from the cache" in message
    assert _files(cache_dir) == []


def test_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, cache_dir):
    marker = tmp_path / "pwned"
    evil = malicious_pt(tmp_path / "evil.pt", marker).read_bytes()
    with (
        release_server({"yolo11n.pt": evil}) as (base_url, _),
        pytest.raises(UnsafeCheckpointError, match="system"),
    ):
        fetch_weights("yolo11n.pt", base_url=base_url)
    assert not marker.exists()
    assert _files(cache_dir) == []


def test_offline_error_names_the_url_and_the_parameter_for_a_local_file(cache_dir):
    with release_server({}) as (base_url, _):
        pass  # the port is closed now: nothing answers there
    with pytest.raises(WeightsFetchError) as info:
        fetch_weights("yolo11s.pt", parameter="evaluation.checkpoint", base_url=base_url)
    message = str(info.value)
    assert f"{base_url}/yolo11s.pt" in message
    assert "--params evaluation.checkpoint=/path/to/yolo11s.pt" in message
    assert not any(p.suffix == ".pt" for p in _files(cache_dir))


def test_local_file_is_read_in_place_and_checked(body, tmp_path, cache_dir):
    path = tmp_path / "mine.pt"
    path.write_bytes(body)
    weights = fetch_weights(str(path))
    assert (weights.url, weights.path, weights.sha256) == (
        "", str(path), hashlib.sha256(body).hexdigest(),
    )  # fmt: skip
    with pytest.raises(WeightsFetchError, match=r"checksum mismatch.*not used"):
        fetch_weights(str(path), sha256="f" * 64)
    assert path.read_bytes() == body  # the user's file is never touched
    assert _files(cache_dir) == []
    assert fetch_weights("") is None


def test_weights_of_another_scale_than_the_model_are_refused_after_reading(body, tmp_path):
    path = tmp_path / "mine.pt"
    path.write_bytes(body)
    with pytest.raises(WeightsError, match=r"YOLO11n weights but training\.scale is 's'"):
        fetch_weights(str(path), scale="s")


def test_fetch_pretrained_reads_the_training_block(body, tmp_path):
    path = tmp_path / "mine.pt"
    path.write_bytes(body)
    weights = fetch_pretrained(TrainConfig(pretrained=str(path), scale="n"))
    assert (weights.parameter, weights.value, weights.path) == (
        "training.pretrained", str(path), str(path),
    )  # fmt: skip
    assert base_weights_meta(weights) == {"base_weights": weights.record()}
    assert fetch_pretrained(TrainConfig(pretrained="")) is None
    assert base_weights_meta(None) == {"base_weights": None}  # from scratch
    with pytest.raises(WeightsError, match=r"training\.scale is 'm'"):
        fetch_pretrained(TrainConfig(pretrained=str(path), scale="m"))
