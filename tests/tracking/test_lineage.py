import json
import subprocess

import yaml

from yolo_mlops.tracking import lineage


def test_git_tags_report_commit_and_dirty_flag(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "init")
    clean = lineage.git_tags(tmp_path)
    assert len(clean["git.commit"]) == 40
    assert clean["git.dirty"] == "false"
    assert clean["mlflow.source.git.commit"] == clean["git.commit"]
    (tmp_path / "a.txt").write_text("2")
    assert lineage.git_tags(tmp_path)["git.dirty"] == "true"


def test_git_tags_tolerate_a_folder_without_git(tmp_path):
    assert lineage.git_tags(tmp_path) == {"git.commit": "unknown", "git.dirty": "unknown"}


def test_data_tags_read_manifest_sha_and_dvc_hashes(tmp_path):
    raw = tmp_path / "data/01_raw"
    raw.mkdir(parents=True)
    assert lineage.data_tags(tmp_path) == {}
    (raw / "dataset_manifest.json").write_text(json.dumps({"sha256": "abc123"}))
    lock = {"stages": {"ingest": {"outs": [{"path": "data/01_raw/coco128.zip", "md5": "f00d"}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert lineage.data_tags(tmp_path) == {"data.archive_sha256": "abc123", "data.dvc_md5": "f00d"}
    (raw / "extra.zip.dvc").write_text(
        yaml.safe_dump({"outs": [{"path": "extra.zip", "md5": "b"}]})
    )
    assert lineage.dvc_data_hash(tmp_path) == (
        "data/01_raw/coco128.zip:f00d,data/01_raw/extra.zip:b"
    )


def test_runtime_tags_prefer_training_seed_and_resolve_auto_device():
    tags = lineage.runtime_tags({"other.seed": 1, "training.seed": 7, "training.device": "auto"})
    assert tags["seed"] == "7"
    assert tags["device"] in {"cpu", "cuda"}
    assert tags["torch.version"]
    assert lineage.runtime_tags({})["seed"] == "unknown"


def test_weights_tags_name_the_base_weights_or_none_from_scratch():
    record = {"name": "yolo11n.pt", "url": "https://x/yolo11n.pt", "sha256": "ab" * 32, "size": 5}
    tags = {
        "base_weights.name": "yolo11n.pt",
        "base_weights.url": "https://x/yolo11n.pt",
        "base_weights.sha256": "ab" * 32,
    }
    assert lineage.weights_tags(record) == tags
    assert lineage.weights_tags(None) == {"base_weights.name": "none"}
    assert lineage.weights_tags({"name": "mine.pt", "url": ""})["base_weights.url"] == "unknown"


def test_checkpoint_weights_tags_read_the_checkpoint_record():
    record = {"name": "yolo11n.pt", "url": "https://x/yolo11n.pt", "sha256": "ab" * 32}
    checkpoint = {"config": {"base_weights": record}}
    assert lineage.checkpoint_weights_tags(checkpoint) == lineage.weights_tags(record)
    scratch = {"config": {"base_weights": None}}
    assert lineage.checkpoint_weights_tags(scratch) == {"base_weights.name": "none"}
    unknown = {f"base_weights.{key}": "unknown" for key in ("name", "url", "sha256")}
    assert lineage.checkpoint_weights_tags({"config": {}}) == unknown  # recorded before
