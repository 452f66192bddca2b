"""dataset_yaml.parse_dataset_yaml: every Ultralytics form, and a clear error for each mistake."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from yolo_mlops.ingestion.dataset_yaml import (
    DatasetSpec,
    DatasetYamlError,
    label_path,
    parse_dataset_yaml,
    shipped_yaml,
)


def _dataset(root: Path, splits: dict[str, int]) -> None:
    for split, count in splits.items():
        (root / "images" / split).mkdir(parents=True)
        for i in range(count):
            (root / "images" / split / f"{split}{i}.jpg").write_bytes(b"x")


def _write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _dataset(tmp_path / "ds", {"train": 3, "val": 2, "test": 1})
    return tmp_path / "ds"


def test_names_list_and_relative_path(root: Path) -> None:
    config = {"path": "ds", "train": "images/train", "val": "images/val", "names": ["a", "b"]}
    cfg = _write(root.parent / "d.yaml", config)
    spec = parse_dataset_yaml(cfg)
    assert spec.names == ("a", "b") and spec.nc == 2
    assert spec.root == root
    assert [p.name for p in spec.splits["train"]] == ["train0.jpg", "train1.jpg", "train2.jpg"]
    assert "test" not in spec.splits


def test_names_map_absolute_path_nc_and_test_split(root: Path) -> None:
    config = {"path": str(root), "train": "images/train", "val": "images/val",
              "test": "images/test", "nc": 2, "names": {0: "a", 1: "b"}}  # fmt: skip
    cfg = _write(root.parent / "d.yaml", config)
    spec = parse_dataset_yaml(cfg)
    assert spec.names == ("a", "b") and len(spec.splits["test"]) == 1


def test_txt_list_and_list_of_folders(root: Path) -> None:
    (root / "train.txt").write_text("./images/train/train0.jpg\nimages/val/val1.jpg\n\n")
    cfg = _write(
        root / "d.yaml",
        {"train": "train.txt", "val": ["images/val", "images/test"], "names": ["a"]},
    )
    spec = parse_dataset_yaml(cfg)
    assert [p.name for p in spec.splits["train"]] == ["train0.jpg", "val1.jpg"]
    assert [p.name for p in spec.splits["val"]] == ["test0.jpg", "val0.jpg", "val1.jpg"]


def test_root_argument_overrides_the_yaml_path(root: Path) -> None:
    config = {"path": "../nowhere", "train": "images/train", "val": "images/val", "names": ["a"]}
    cfg = _write(root.parent / "d.yaml", config)
    assert parse_dataset_yaml(cfg, root=root).root == root


def test_download_script_is_ignored_and_logged(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = root.parent / "executed"
    script = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('x')"
    cfg = _write(root / "d.yaml", {"train": "images/train", "val": "images/val", "names": ["a"],
                                   "download": script})  # fmt: skip
    with caplog.at_level(logging.INFO):
        parse_dataset_yaml(cfg)
    assert not marker.exists()
    assert "ignoring its 'download' entry" in caplog.text


def test_python_tags_are_not_constructed(root: Path) -> None:
    cfg = root / "d.yaml"
    cfg.write_text(
        "names: !!python/object/apply:os.system ['echo hi']\ntrain: images/train\nval: images/val\n"
    )
    with pytest.raises(DatasetYamlError, match="cannot read"):
        parse_dataset_yaml(cfg)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"names": None}, "missing 'names'"),
        ({"nc": 3}, "nc=3 disagrees with the 2 entries"),
        ({"names": ["a", "a"]}, "duplicate class name 'a'"),
        ({"names": ["a", 5]}, r"names\[1\] is 5"),
        ({"names": {0: "a", 2: "b"}}, "without gaps"),
        ({"names": "a b"}, "must be a list or a map"),
        ({"train": "images/nope"}, "split 'train': path .*images/nope does not exist"),
        ({"val": None}, "missing 'val'"),
    ],
)
def test_bad_yaml_raises_a_clear_error(root: Path, change: dict, message: str) -> None:
    config = {"train": "images/train", "val": "images/val", "names": ["a", "b"], **change}
    with pytest.raises(DatasetYamlError, match=message):
        parse_dataset_yaml(_write(root / "d.yaml", config))


def test_split_without_images_is_an_error(root: Path) -> None:
    (root / "images" / "empty").mkdir()
    cfg = _write(root / "d.yaml", {"train": "images/train", "val": "images/empty", "names": ["a"]})
    with pytest.raises(DatasetYamlError, match=r"split 'val'.*contains no images"):
        parse_dataset_yaml(cfg)


def test_images_in_no_split_are_reported(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _write(root / "d.yaml", {"train": "images/train", "val": "images/val", "names": ["a"]})
    with caplog.at_level(logging.WARNING):
        parse_dataset_yaml(cfg)
    assert "1 image(s) under" in caplog.text and "test0.jpg" in caplog.text


def test_txt_list_with_missing_image_is_an_error(root: Path) -> None:
    (root / "train.txt").write_text("images/train/nope.jpg\n")
    cfg = _write(root / "d.yaml", {"train": "train.txt", "val": "images/val", "names": ["a"]})
    with pytest.raises(DatasetYamlError, match=r"1 image.*do not exist"):
        parse_dataset_yaml(cfg)


def test_shipped_coco128_yaml_has_80_names_and_shared_train_val() -> None:
    config = yaml.safe_load(shipped_yaml("coco128").read_text())
    assert len(config["names"]) == 80 and config["names"][0] == "person"
    assert config["train"] == config["val"] == "images/train2017"
    assert "download" not in config


def test_spec_round_trips_through_json_form(root: Path) -> None:
    cfg = _write(root / "d.yaml", {"train": "images/train", "val": "images/val", "names": ["a"]})
    spec = parse_dataset_yaml(cfg)
    data = spec.to_dict(relative_to=root.parent)
    assert data["splits"]["val"] == ["ds/images/val/val0.jpg", "ds/images/val/val1.jpg"]
    assert DatasetSpec.from_dict(data, base=root.parent) == spec


def test_label_path_replaces_the_last_images_folder() -> None:
    assert label_path(Path("/a/images/b/images/train/x.jpg")) == Path(
        "/a/images/b/labels/train/x.txt"
    )


def test_oversized_yaml_is_refused_before_parsing(root: Path, monkeypatch) -> None:
    import yolo_mlops.ingestion.dataset_yaml as module

    def never(*args, **kwargs):
        raise AssertionError("the YAML was parsed")

    monkeypatch.setattr(module.yaml, "load", never)
    monkeypatch.setattr(module.yaml, "safe_load", never)
    big = root.parent / "big.yaml"
    big.write_text("names: [a]\ntrain: images/train\nval: images/val\n# " + "x" * (2 << 20))
    with pytest.raises(DatasetYamlError, match=r"big\.yaml: \d+ bytes is over the 1048576-byte"):
        parse_dataset_yaml(big, root=root)


def test_yaml_is_parsed_with_the_c_safe_loader_when_available(root: Path, monkeypatch) -> None:
    import yolo_mlops.ingestion.dataset_yaml as module

    used = []
    real_load = yaml.load
    monkeypatch.setattr(
        module.yaml, "load", lambda text, Loader: used.append(Loader) or real_load(text, Loader)
    )
    config = {"train": "images/train", "val": "images/val", "names": ["a"]}
    parse_dataset_yaml(_write(root.parent / "d.yaml", config), root=root)
    assert used == [getattr(yaml, "CSafeLoader", yaml.SafeLoader)]
