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
