"""Initial weights: value resolution, the scale check and checked transfer (yolo/weights.py)."""

from __future__ import annotations

import logging

import pytest
import torch

from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.yolo.io.checkpoint import make_config, save_checkpoint
from yolo_mlops.yolo.io.weights import (
    CLASS_BRANCH,
    OFFICIAL_BASE_URL,
    WeightsError,
    check_sha256,
    load_pretrained,
    resolve_weights,
    transfer_weights,
)
from yolo_mlops.yolo.model.network import build_model
from yolo_mlops.yolo.train.trainer import TrainConfig


def _saved(tmp_path, scale: str, nc: int, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(scale, num_classes=nc)
    path = save_checkpoint(
        tmp_path / f"yolo11{scale}-{nc}.pt",
        state_dict=model.state_dict(),
        config=make_config(scale=scale, nc=nc),
    )
    return path, model.state_dict()


@pytest.mark.parametrize("scale", ["n", "s", "m", "l", "x"])
def test_official_names_resolve_to_the_v8_3_0_release_asset(scale):
    source = resolve_weights(f"yolo11{scale}.pt")
    assert source.kind == "official" and source.scale == scale
    assert source.url == (
        f"https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11{scale}.pt"
    )
    assert source.url == f"{OFFICIAL_BASE_URL}/yolo11{scale}.pt"


def test_base_url_is_overridable_and_urls_and_files_are_recognised(tmp_path):
    mirror = resolve_weights("yolo11n.pt", "http://127.0.0.1:9/mirror/")
    assert mirror.url == "http://127.0.0.1:9/mirror/yolo11n.pt"
    url = resolve_weights("https://example.org/models/best.pt?x=1")
    assert (url.kind, url.name, url.scale) == ("url", "best.pt", None)
    assert resolve_weights("https://example.org/yolo11s.pt").scale == "s"
    local = tmp_path / "yolo11n.pt"
    local.write_bytes(b"x")
    assert resolve_weights(str(local)).kind == "file"  # an existing file wins over the name
    assert resolve_weights(local.as_uri()).path == local
    assert resolve_weights("").kind == "none"


def test_unknown_value_names_the_parameter_and_the_accepted_forms():
    with pytest.raises(WeightsError, match=r"evaluation\.checkpoint='yolo11q\.pt'.*yolo11n\.pt"):
        resolve_weights("yolo11q.pt", parameter="evaluation.checkpoint")
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):  # also a FileNotFoundError
        resolve_weights("models/missing.pt")


def test_sha256_parameter_must_be_64_hex_digits():
    assert check_sha256("AB" * 32, "p") == "ab" * 32
    assert check_sha256(None, "p") is None
    with pytest.raises(WeightsError, match=r"training\.pretrained_sha256='abc'"):
        check_sha256("abc", "training.pretrained_sha256")


def test_full_transfer_reports_499_of_499_tensors(tmp_path, caplog):
    path, source = _saved(tmp_path, "n", 80)
    model = build_model("n", num_classes=80)
    with caplog.at_level(logging.INFO, logger="yolo_mlops.yolo.io.weights"):
        report = load_pretrained(model, path, "n")
    assert (report.transferred, report.total, report.reinitialised) == (499, 499, [])
    assert "transferred 499/499 tensors" in caplog.text
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, source[key], rtol=0, atol=0)


def test_class_count_change_reinitialises_only_the_class_outputs(tmp_path, caplog):
    path, source = _saved(tmp_path, "n", 80)
    torch.manual_seed(1)
    model = build_model("n", num_classes=3)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="yolo_mlops.yolo.io.weights"):
        report = load_pretrained(model, path, "n")
    after = model.state_dict()
    reinitialised = {k for k in after if k not in source or source[k].shape != after[k].shape}
    assert set(report.reinitialised) == reinitialised and report.skipped == []
    assert all(k.startswith(CLASS_BRANCH) for k in reinitialised)
    assert {f"{CLASS_BRANCH}{level}.2.weight" for level in range(3)} <= reinitialised
    for key, value in after.items():  # every other tensor is the file's, the rest untouched
        expected = fresh[key] if key in reinitialised else source[key]
        torch.testing.assert_close(value, expected, rtol=0, atol=0)
    assert report.transferred == 499 - len(reinitialised)
    assert "class count 80 -> 3: re-initialised only the" in caplog.text


def test_weights_of_another_scale_are_an_error_naming_both(tmp_path):
    path, _ = _saved(tmp_path, "n", 80)
    model = build_model("s", num_classes=80)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError, match=r"YOLO11n weights but training\.scale is 's'"):
        load_pretrained(model, path, "s")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_low_transfer_is_an_error_and_copies_nothing():
    other = build_model("s", num_classes=80).state_dict()  # the old silent case: s into n
    model = build_model("n", num_classes=80)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError, match=r"only \d+/378 backbone\+neck tensors match"):
        transfer_weights(model, other, "yolo11s.pt")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_library_refuses_names_and_urls_it_would_have_to_download():
    with pytest.raises(WeightsError, match=r"not a local file.*fetch_weights"):
        load_pretrained(build_model("n"), "yolo11n.pt", "n")


def test_empty_command_line_value_means_from_scratch():
    # `kedro run --params training.pretrained=""`: the shell drops the quotes, Kedro gives None
    assert parse_params(TrainConfig, {"pretrained": None}, "training").pretrained == ""
