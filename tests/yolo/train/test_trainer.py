"""The trainer end to end at a tiny size (imgsz 64, 8 images, batch 4) on CPU."""

from __future__ import annotations

import math

import pytest
import torch

from tests.yolo.tiny_cache import make_tiny_cache
from yolo_mlops.yolo.io.checkpoint import make_config, save_checkpoint
from yolo_mlops.yolo.io.weights import transfer_weights
from yolo_mlops.yolo.model.network import build_model
from yolo_mlops.yolo.train import loss as loss_module
from yolo_mlops.yolo.train.engine import NonFiniteLossError
from yolo_mlops.yolo.train.trainer import TrainConfig, Trainer, select_device

TIMING = ("time/epoch", "time/data", "time/compute")
CLS_OUTPUTS = 6  # model.23.cv3.{0,1,2}.2.{weight,bias}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_tiny_cache(tmp_path_factory.mktemp("tiny"), n_images=8, imgsz=64)


def config(save_dir, **overrides) -> dict:
    base = {"epochs": 3, "batch": 4, "optimizer": "SGD", "save_dir": str(save_dir),
            "progress": False, "workers": 0, "device": "cpu", "close_mosaic": 1}  # fmt: skip
    return base | overrides


def comparable(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


@pytest.fixture(scope="module")
def reference_run(cache, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("reference")
    rows = []
    result = Trainer(config(save_dir), cache, callbacks=[lambda e, r: rows.append((e, r))]).fit()
    return result, rows


def test_fit_writes_history_rows_with_every_column(reference_run):
    result, _ = reference_run
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    expected = {"epoch", "train/box_loss", "train/cls_loss", "train/dfl_loss",
                "metrics/precision", "metrics/recall", "metrics/mAP50", "metrics/mAP50-95",
                "fitness", "lr/pg0", "lr/pg1", "lr/pg2", *TIMING, "instances", "imgsz"}  # fmt: skip
    assert set(result.history[0]) == expected
    assert all(math.isfinite(v) for row in result.history for v in row.values())
    assert result.history[0]["imgsz"] == 64


def test_epoch_callbacks_receive_each_row(reference_run):
    result, rows = reference_run
    assert [epoch for epoch, _ in rows] == [1, 2, 3]
    assert rows[-1][1] == result.history[-1]


def test_last_and_best_are_weights_only_checkpoints_with_resume_state(reference_run):
    result, _ = reference_run
    last = torch.load(result.last, weights_only=True)
    best = torch.load(result.best, weights_only=True)
    assert last["format"] == "yolo-mlops-checkpoint" and last["config"]["imgsz"] == 64
    assert last["config"]["names"] == ["circle", "square", "bar"]
    training = last["training"]
    assert training["epoch"] == 2 and len(training["history"]) == 3
    for key in ("model", "ema", "optimizer", "scheduler", "rng", "best_fitness"):
        assert key in training
    assert isinstance(training["rng"]["numpy"]["key"], list)
    assert best["training"]["epoch"] == training["best_epoch"]
    # the top-level weights are the EMA model, not the trained one (BatchNorm statistics move
    # every batch; with warmup accumulation a weight may not have been stepped yet)
    key = "model.0.bn.running_mean"
    assert not torch.equal(last["state_dict"][key], training["model"][key])


def test_same_seed_gives_identical_losses_and_metrics(reference_run, cache, tmp_path):
    result, _ = reference_run
    again = Trainer(config(tmp_path), cache).fit()
    assert comparable(again.history) == comparable(result.history)


def test_resume_after_a_crash_mid_epoch_matches_the_uninterrupted_run(
    reference_run, cache, tmp_path
):
    result, _ = reference_run

    def crash(epoch: int, step: int) -> None:
        if epoch == 1 and step == 0:
            raise KeyboardInterrupt("simulated kill after 1 batch of epoch 2")

    with pytest.raises(KeyboardInterrupt):
        Trainer(config(tmp_path), cache, batch_callbacks=[crash]).fit()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["training"]["epoch"] == 0
    resumed = Trainer(config(tmp_path, resume=True), cache).fit()
    assert comparable(resumed.history) == comparable(result.history)
    final = torch.load(resumed.last, weights_only=True)["state_dict"]
    expected = torch.load(result.last, weights_only=True)["state_dict"]
    for key, value in expected.items():
        torch.testing.assert_close(final[key], value, rtol=0, atol=0)


def test_resume_restores_gradients_accumulated_across_the_epoch_boundary(cache, tmp_path):
    # no warmup, nbs 16 / batch 4 -> one optimizer step every 4 batches = every 2 epochs, so
    # epoch 1 ends with summed gradients that the resumed run must get back
    settings = {"epochs": 2, "warmup_epochs": 0.0, "nbs": 16}
    reference = Trainer(config(tmp_path / "ref", **settings), cache).fit()
    pending = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)["training"]
    assert pending["pending_grads"] is None  # the last batch of epoch 2 stepped

    def crash(epoch: int, step: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(config(tmp_path / "run", **settings), cache, batch_callbacks=[crash]).fit()
    first = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["training"]
    assert first["pending_grads"] is not None
    resumed = Trainer(config(tmp_path / "run", resume=True, **settings), cache).fit()
    assert comparable(resumed.history) == comparable(reference.history)


def test_resume_of_a_finished_run_or_missing_file_fails(reference_run, cache, tmp_path):
    result, _ = reference_run
    with pytest.raises(ValueError, match="already finished"):
        Trainer(config(tmp_path, resume=str(result.last)), cache).fit()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(config(tmp_path, resume=True), cache).fit()


def test_non_finite_loss_stops_with_epoch_and_step_and_keeps_last_checkpoint(
    cache, tmp_path, monkeypatch
):
    calls = {"n": 0}
    forward = loss_module.DetectionLoss.forward

    def nan_in_second_epoch(self, raw_maps, targets, batch_size):
        calls["n"] += 1
        total, parts = forward(self, raw_maps, targets, batch_size)
        if calls["n"] == 4:  # epoch 2 (0-based 1), step 1
            return total * float("nan"), parts * float("nan")
        return total, parts

    monkeypatch.setattr(loss_module.DetectionLoss, "forward", nan_in_second_epoch)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2 \(0-based 1\), step 1"):
        Trainer(config(tmp_path), cache).fit()
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["training"]["epoch"] == 0
    assert all(
        torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point()
    )


def test_early_stopping_after_patience_epochs_without_improvement(cache, tmp_path, monkeypatch):
    fitness = iter([0.5, 0.4, 0.3, 0.2, 0.1])
    metrics = {"precision": 0.0, "recall": 0.0, "mAP50": 0.0, "mAP50-95": 0.0}
    monkeypatch.setattr(Trainer, "_validate", lambda *a: metrics | {"fitness": next(fitness)})
    result = Trainer(config(tmp_path, epochs=5, patience=2), cache).fit()
    assert result.stopped_early and len(result.history) == 3
    assert result.best_fitness == 0.5
    assert torch.load(result.best, weights_only=True)["training"]["epoch"] == 0


def test_bf16_autocast_on_cpu_trains(cache, tmp_path):
    settings = {"epochs": 1, "bf16": True, "bf16_after_steps": 0, "val": False}  # bf16 from step 1
    result = Trainer(config(tmp_path, **settings), cache).fit()
    assert math.isfinite(result.history[0]["train/box_loss"])
    assert result.history[0]["fitness"] == 0.0  # no validation, no fitness


@pytest.mark.parametrize("native", [True, False])
def test_bf16_auto_trains_like_bf16_on_a_native_cpu_and_like_fp32_elsewhere(
    cache, tmp_path, monkeypatch, native
):
    monkeypatch.setattr("yolo_mlops.yolo.train.precision.native_bf16", lambda: native)

    def run(name, **settings):
        overrides = {"epochs": 1, "val": False, "bf16_after_steps": 0} | settings
        return comparable(Trainer(config(tmp_path / name, **overrides), cache).fit().history)

    auto = run("auto", bf16="auto")
    assert auto == run("forced", bf16=native)
    assert auto != run("other", bf16=not native)  # the setting took effect


def test_bf16_from_scratch_trains_the_first_steps_in_fp32(cache, tmp_path, caplog):
    caplog.set_level("INFO")
    settings = {"epochs": 2, "val": False, "nbs": 4}  # 2 optimizer steps per epoch
    runs = {
        name: comparable(Trainer(config(tmp_path / name, **settings | more), cache).fit().history)
        for name, more in (
            ("fp32", {"bf16": False}),
            ("after2", {"bf16": True, "bf16_after_steps": 2}),
            ("after9", {"bf16": True, "bf16_after_steps": 9}),  # 9 > the run's 4 steps
        )
    }
    assert runs["after2"][0] == runs["fp32"][0]  # epoch 1: float32
    assert runs["after2"][1] != runs["fp32"][1]  # epoch 2: bf16 autocast
    assert runs["after9"] == runs["fp32"]
    assert "bfloat16 autocast from epoch 2" in caplog.text
    trained = {
        name: torch.load(tmp_path / name / "best.pt", weights_only=True)["config"]["precision"]
        for name in runs
    }
    assert trained["fp32"] == "float32"
    assert trained["after2"].startswith("bfloat16 autocast from epoch 2 (float32 before)")
    assert trained["after9"] == "float32 (bfloat16 autocast would start at epoch 6)"


def test_without_validation_best_is_the_final_ema_and_patience_is_ignored(cache, tmp_path, caplog):
    caplog.set_level("INFO")
    result = Trainer(config(tmp_path, epochs=3, patience=1, val=False), cache).fit()
    assert not result.stopped_early and len(result.history) == 3
    best = torch.load(result.best, weights_only=True)
    last = torch.load(result.last, weights_only=True)
    assert best["training"]["epoch"] == last["training"]["epoch"] == 2
    for key, tensor in last["state_dict"].items():
        assert torch.equal(best["state_dict"][key], tensor), key
    assert "best.pt will be the final EMA weights" in caplog.text
    epoch_lines = [r.message for r in caplog.records if r.message.startswith("epoch ")]
    assert len(epoch_lines) == 3 and not any("mAP50" in line for line in epoch_lines)


def test_pretrained_checkpoint_with_other_class_count_transfers_matching_tensors(tmp_path):
    source = build_model("n", num_classes=5)
    path = save_checkpoint(
        tmp_path / "five.pt", state_dict=source.state_dict(), config=make_config(scale="n", nc=5)
    )
    torch.manual_seed(1)
    target = build_model("n", num_classes=3)
    fresh_cls = target.state_dict()["model.23.cv3.0.2.weight"].clone()
    report = transfer_weights(target, torch.load(path, weights_only=True)["state_dict"])
    assert report.transferred == len(target.state_dict()) - CLS_OUTPUTS
    torch.testing.assert_close(target.state_dict()["model.23.cv3.0.2.weight"], fresh_cls)
    torch.testing.assert_close(
        target.state_dict()["model.0.conv.weight"], source.state_dict()["model.0.conv.weight"]
    )


def test_pretrained_ultralytics_pt_loads_into_a_three_class_model(reference_dir, cache, tmp_path):
    trainer = Trainer(
        config(tmp_path, pretrained=str(reference_dir / "yolo11n_ultralytics_format.pt")), cache
    )
    model = trainer._build_model()
    reference = torch.load(reference_dir / "yolo11n_reference.pt", weights_only=True)["state_dict"]
    torch.testing.assert_close(
        model.state_dict()["model.0.conv.weight"], reference["model.0.conv.weight"],
        rtol=1e-3, atol=1e-3,
    )  # fmt: skip
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".dfl" in n)


def test_pretrained_file_is_loaded_while_the_config_keeps_the_configured_name(
    reference_dir, cache, tmp_path
):
    path = reference_dir / "yolo11n_ultralytics_format.pt"
    trainer = Trainer(config(tmp_path, pretrained="yolo11n.pt"), cache, pretrained_file=path)
    model = trainer._build_model()  # an official name alone is refused: the library reads files
    reference = torch.load(reference_dir / "yolo11n_reference.pt", weights_only=True)["state_dict"]
    torch.testing.assert_close(
        model.state_dict()["model.0.conv.weight"], reference["model.0.conv.weight"],
        rtol=1e-3, atol=1e-3,
    )  # fmt: skip
    assert trainer.config.pretrained == "yolo11n.pt"  # what the checkpoints record


def test_device_auto_falls_back_to_cpu_and_unknown_keys_are_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        select_device("cuda:0")
    with pytest.raises(ValueError, match=r"training\.lr"):
        Trainer({"lr": 0.1}, cache=None)
    with pytest.raises(ValueError, match=r"training\.optimizer"):
        Trainer({"optimizer": "Adam"}, cache=None)


def test_train_config_defaults_follow_the_reference_recipe():
    cfg = TrainConfig()
    assert (cfg.epochs, cfg.batch, cfg.optimizer, cfg.lr0, cfg.lrf) == (100, 16, "auto", 0.01, 0.01)
    assert (cfg.momentum, cfg.weight_decay, cfg.warmup_epochs, cfg.nbs) == (0.937, 5e-4, 3.0, 64)
    assert (cfg.close_mosaic, cfg.patience, cfg.clip_grad, cfg.bf16) == (10, 100, 10.0, "auto")
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)


def test_plain_rerun_keeps_an_interrupted_run_aside_and_says_how_to_resume(cache, tmp_path, caplog):
    import logging

    def crash(epoch: int, step: int) -> None:
        if epoch == 1 and step == 0:
            raise KeyboardInterrupt("simulated kill in epoch 2")

    with pytest.raises(KeyboardInterrupt):
        Trainer(config(tmp_path, epochs=2), cache, batch_callbacks=[crash]).fit()
    with caplog.at_level(logging.WARNING):
        Trainer(config(tmp_path, epochs=1), cache).fit()
    (aside,) = tmp_path.glob("interrupted-*")
    kept = torch.load(aside / "last.pt", weights_only=True)
    assert kept["training"]["epoch"] == 0 and kept["config"]["train_args"]["epochs"] == 2
    assert f"training.resume={aside / 'last.pt'}" in caplog.text
    finished = torch.load(tmp_path / "last.pt", weights_only=True)
    assert finished["config"]["train_args"]["epochs"] == 1


def test_finished_run_is_overwritten_without_setting_it_aside(reference_run, cache, tmp_path):
    import shutil

    result, _ = reference_run
    shutil.copy(result.last, tmp_path / "last.pt")
    Trainer(config(tmp_path, epochs=1), cache).fit()
    assert not list(tmp_path.glob("interrupted-*"))


def test_checkpoint_meta_is_recorded_in_last_and_best(cache, tmp_path):
    result = Trainer(
        config(tmp_path, epochs=1), cache, checkpoint_meta={"tracking": {"run_id": "abc"}}
    ).fit()
    for path in (result.last, result.best):
        assert torch.load(path, weights_only=True)["config"]["tracking"] == {"run_id": "abc"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"device": "foo"}, r"training\.device='foo' is not a device"),
        ({"val_split": "valid"}, r"training\.val_split='valid' is not one of"),
        ({"resume": True}, r"training\.resume: no checkpoint at .*last\.pt"),
    ],
)
def test_run_start_checks_name_the_key(tmp_path, overrides, message):
    from yolo_mlops.yolo.train.run_guard import RunSettingsError, check_train_settings

    settings = TrainConfig(**config(tmp_path, **overrides))
    with pytest.raises(RunSettingsError, match=message):
        check_train_settings(settings)


def test_resume_from_a_text_file_names_the_key_and_file(tmp_path):
    from yolo_mlops.yolo.train.run_guard import RunSettingsError, check_train_settings

    (tmp_path / "notes.pt").write_text("not a checkpoint")
    settings = TrainConfig(**config(tmp_path, resume=str(tmp_path / "notes.pt")))
    with pytest.raises(RunSettingsError, match=r"training\.resume: .*notes\.pt: "):
        check_train_settings(settings)


@pytest.mark.parametrize(("key", "value"), [("warmup_min_iters", -1), ("tal_min_side", -2.0)])
def test_negative_recipe_knobs_are_errors_naming_the_parameter(key, value):
    with pytest.raises(ValueError, match=rf"training\.{key}"):
        TrainConfig(**{key: value})


def test_warmup_floor_is_a_setting(cache, tmp_path):
    # 8 images at batch 4: 2 iterations per epoch; warmup 3 epochs = 6 iterations without the
    # floor, 100 with 8.3.0's. After iteration 1 the weights' lr is 1/6 or 1/100 of lr0.
    lrs = {}
    for floor in (100, 0):
        cfg = config(tmp_path / f"floor{floor}", epochs=1, val=False, warmup_min_iters=floor)
        lrs[floor] = Trainer(cfg, cache).fit().history[0]["lr/pg1"]
    assert lrs[100] == pytest.approx(0.01 / 100)
    assert lrs[0] == pytest.approx(0.01 / 6)


def test_a_full_disk_stops_training_with_the_errno_the_folder_and_no_checkpoint(cache, small_tmpfs):
    from yolo_mlops.yolo.io.checkpoint import CheckpointWriteError
    from yolo_mlops.yolo.train.run_guard import unfinished_run

    save_dir = small_tmpfs
    with pytest.raises(CheckpointWriteError, match=rf"\[Errno 28\] .* in {save_dir}: ENOSPC"):
        Trainer(config(save_dir, epochs=1), cache).fit()  # YOLO11n: ~10 MB > 2 MB
    assert unfinished_run(save_dir / "last.pt") is None  # nothing to resume
    assert not list(save_dir.glob("*.pt")) and not list(save_dir.glob(".*.tmp"))
