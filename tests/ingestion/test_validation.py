"""validation.validate_dataset: policies, counts, orphans, pools, and a read-only raw folder."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_mlops.ingestion.dataset_yaml import DatasetSpec, parse_dataset_yaml
from yolo_mlops.ingestion.report import class_distribution_figure, summary_line
from yolo_mlops.ingestion.validation import LabelValidationError, ValidationConfig, validate_dataset

INLINE = ValidationConfig(workers=1, progress=False)


def _image(root: Path, stem: str, size: tuple[int, int] = (64, 48)) -> None:
    path = root / "images" / "train" / f"{stem}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size[1], size[0], 3), 90, np.uint8))


def _label(root: Path, stem: str, text: str) -> None:
    path = root / "labels" / "train" / f"{stem}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def dataset(tmp_path: Path) -> DatasetSpec:
    """5 images: 2 clean, 1 background, 1 with a bad row and a box leaving the image, 1 corrupt;
    plus 1 orphan label file."""
    root = tmp_path / "ds"
    for stem in ("good1", "good2", "background", "mixed", "corrupt"):
        _image(root, stem)
    _label(root, "good1", "0 0.5 0.5 0.2 0.2\n1 0.2 0.2 0.1 0.1\n")
    _label(root, "good2", "1 0.5 0.5 0.4 0.4\n")
    _label(root, "mixed", "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n1 0.9 0.5 0.4 0.2\n")
    (root / "images" / "train" / "corrupt.jpg").write_bytes(b"\xff\xd8 broken")
    _label(root, "corrupt", "0 0.5 0.5 0.2 0.2\n")
    _label(root, "orphan", "0 0.5 0.5 0.2 0.2\n")
    (root / "d.yaml").write_text("train: images/train\nval: images/train\nnames: [a, b]\n")
    return parse_dataset_yaml(root / "d.yaml")


def test_drop_row_counts_and_tables(dataset: DatasetSpec) -> None:
    result = validate_dataset(
        dataset, ValidationConfig(workers=1, progress=False, max_invalid_fraction=1)
    )
    s = result.summary
    assert (s["images"], s["labelled"], s["backgrounds"], s["corrupt"]) == (5, 3, 1, 1)
    assert (s["instances"], s["orphan_labels"]) == (4, 1)
    assert s["rows_dropped_by_code"] == {"class_out_of_range": 1, "coords_out_of_range": 1}
    assert s["instances_per_class"] == {"a": 2, "b": 2}
    assert len(result.image_index) == 8  # 4 usable images x (train, val)
    assert set(result.image_index["status"]) == {"labelled", "background"}
    assert len(result.clean_labels) == 8
    assert result.clean_labels[["x1", "y1", "x2", "y2"]].to_numpy().min() >= 0
    problems = result.problems.set_index("code")
    assert problems.loc["class_out_of_range", "line"] == 2
    assert problems.loc["class_out_of_range", "action"] == "row_dropped"
    assert problems.loc["image_corrupt", "action"] == "image_dropped"
    assert problems.loc["orphan_label", "file"].endswith("orphan.txt")


def test_clip_policy_clips_coordinates_only(dataset: DatasetSpec) -> None:
    config = ValidationConfig(policy="clip", workers=1, progress=False, max_invalid_fraction=1)
    result = validate_dataset(dataset, config)
    assert result.summary["instances"] == 5
    assert result.summary["rows_dropped_by_code"] == {"class_out_of_range": 1}
    clipped = result.clean_labels[(result.clean_labels["split"] == "train")]
    assert clipped["x2"].max() == pytest.approx(1.0)
    assert "clipped" in set(result.problems["action"])


def test_drop_image_policy_drops_the_whole_image(dataset: DatasetSpec) -> None:
    config = ValidationConfig(
        policy="drop_image", workers=1, progress=False, max_invalid_fraction=1
    )
    result = validate_dataset(dataset, config)
    s = result.summary
    assert (s["labelled"], s["dropped_images"], s["instances"]) == (2, 1, 3)
    assert not result.image_index["image_path"].str.contains("mixed").any()


def test_fail_policy_raises_naming_file_and_line(dataset: DatasetSpec) -> None:
    with pytest.raises(LabelValidationError, match=r"mixed\.txt:2 class_out_of_range"):
        validate_dataset(dataset, ValidationConfig(policy="fail", workers=1, progress=False))


def test_too_many_invalid_images_fails(dataset: DatasetSpec) -> None:
    config = ValidationConfig(workers=1, progress=False, max_invalid_fraction=0.3)
    with pytest.raises(LabelValidationError, match=r"2 of 5 images \(40.0%\)"):
        validate_dataset(dataset, config)


def test_clean_dataset_passes_the_fail_policy(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _image(root, "a")
    _label(root, "a", "0 0.5 0.5 0.2 0.2\n")
    (root / "d.yaml").write_text("train: images/train\nval: images/train\nnames: [a]\n")
    result = validate_dataset(
        parse_dataset_yaml(root / "d.yaml"), ValidationConfig(policy="fail", workers=1)
    )
    assert result.summary["labelled"] == 1 and result.problems.empty


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_pool_gives_the_same_result_as_inline(dataset: DatasetSpec, executor: str) -> None:
    base = {"progress": False, "max_invalid_fraction": 1.0}
    inline = validate_dataset(dataset, ValidationConfig(workers=1, **base))
    pooled = validate_dataset(dataset, ValidationConfig(workers=2, executor=executor, **base))
    assert pooled.summary == inline.summary
    assert pooled.clean_labels.equals(inline.clean_labels)


def test_raw_files_are_never_modified(dataset: DatasetSpec) -> None:
    def tree() -> dict[str, str]:
        files = sorted(p for p in dataset.root.rglob("*") if p.is_file())
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    before = tree()
    for policy in ("drop_row", "clip", "drop_image"):
        validate_dataset(
            dataset, ValidationConfig(policy=policy, workers=1, max_invalid_fraction=1)
        )
    assert tree() == before


def test_summary_line_is_logged(dataset: DatasetSpec, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        result = validate_dataset(dataset, ValidationConfig(workers=1, max_invalid_fraction=1))
    expected = "5 images, 3 labelled, 1 backgrounds, 1 corrupt, 4 instances, 1 orphan label files"
    assert summary_line(result.summary) == expected
    assert expected in caplog.text


def test_image_paths_are_relative_to_the_base_when_inside_it(dataset: DatasetSpec) -> None:
    config = ValidationConfig(workers=1, max_invalid_fraction=1)
    result = validate_dataset(dataset, config, path_base=dataset.root.parent)
    assert result.image_index["image_path"].iloc[0].startswith("ds/images/train/")


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_invalid_fraction"):
        ValidationConfig(max_invalid_fraction=1.5)


def test_class_distribution_figure_has_one_bar_per_class() -> None:
    figure = class_distribution_figure({"a": 3, "b": 0, "c": 1})
    assert len(figure.axes[0].patches) == 3


def test_stopping_error_carries_the_report_tables(dataset: DatasetSpec) -> None:
    config = ValidationConfig(workers=1, progress=False, max_invalid_fraction=0.0)
    with pytest.raises(LabelValidationError) as error:
        validate_dataset(dataset, config)
    assert "image_corrupt" in set(error.value.problems["code"])
    assert error.value.summary["status"] == "failed"
    assert error.value.summary["invalid_images"] == 2


def test_split_without_any_label_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "ds"
    for stem in ("a", "b"):
        _image(root, stem)
    (root / "d.yaml").write_text("train: images/train\nval: images/train\nnames: [a]\n")
    with caplog.at_level(logging.WARNING):
        result = validate_dataset(parse_dataset_yaml(root / "d.yaml"), INLINE)
    assert "split 'train' has 2 images and 0 labelled instances" in caplog.text
    assert len(result.summary["warnings"]) == 2


def test_misnamed_png_is_listed_as_a_warning_and_kept(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _image(root, "good")
    _label(root, "good", "0 0.5 0.5 0.2 0.2\n")
    _ok, encoded = cv2.imencode(".png", np.full((48, 64, 3), 90, np.uint8))
    (root / "images" / "train" / "png.jpg").write_bytes(encoded.tobytes())
    _label(root, "png", "0 0.5 0.5 0.2 0.2\n")
    (root / "d.yaml").write_text("train: images/train\nval: images/train\nnames: [a]\n")
    config = ValidationConfig(workers=1, progress=False, policy="fail")
    result = validate_dataset(parse_dataset_yaml(root / "d.yaml"), config)
    assert result.summary["labelled"] == 2 and result.summary["extension_mismatches"] == 1
    assert list(result.problems[["code", "action"]].itertuples(index=False, name=None)) == [
        ("extension_mismatch", "kept")
    ]


def _polygon(cx: float, cy: float, w: float, h: float) -> str:
    """A diamond polygon whose bounding box is the box (cx, cy, w, h)."""
    points = [(cx, cy - h / 2), (cx + w / 2, cy), (cx, cy + h / 2), (cx - w / 2, cy)]
    return " ".join(f"{v:.6f}" for point in points for v in point)


def _three_ways(tmp_path: Path) -> dict[str, DatasetSpec]:
    """The same 3 objects in 2 images as boxes, as polygons only, and mixed."""
    boxes = {
        "a": [(0, 0.5, 0.5, 0.2, 0.4), (1, 0.25, 0.25, 0.3, 0.2)],
        "b": [(1, 0.6, 0.4, 0.5, 0.5)],
    }
    specs = {}
    for kind in ("boxes", "polygons", "mixed"):
        root = tmp_path / kind
        for stem, rows in boxes.items():
            _image(root, stem)
            lines = [
                f"{c} {_polygon(*box)}" if kind == "polygons" or (kind == "mixed" and i == 0)
                else f"{c} {' '.join(map(str, box))}"
                for i, (c, *box) in enumerate(rows)
            ]  # fmt: skip
            _label(root, stem, "\n".join(lines) + "\n")
        (root / "d.yaml").write_text("train: images/train\nval: images/train\nnames: [a, b]\n")
        specs[kind] = parse_dataset_yaml(root / "d.yaml")
    return specs


def test_polygon_rows_keep_every_object_as_a_box(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    results = {}
    for kind, spec in _three_ways(tmp_path).items():
        with caplog.at_level(logging.WARNING):
            results[kind] = validate_dataset(spec, ValidationConfig(workers=1, policy="fail"))
    reference = results["boxes"]
    for kind in ("polygons", "mixed"):
        summary = results[kind].summary
        assert summary["instances"] == reference.summary["instances"] == 3
        assert summary["instances_per_class"] == reference.summary["instances_per_class"]
        assert summary["labelled"] == 2 and results[kind].problems.empty
        np.testing.assert_allclose(
            results[kind].clean_labels[["x1", "y1", "x2", "y2"]].to_numpy(),
            reference.clean_labels[["x1", "y1", "x2", "y2"]].to_numpy(),
            atol=1e-5,
        )
    assert results["polygons"].summary["converted_polygons"] == 3
    assert results["polygons"].summary["polygon_label_files"] == 2
    assert results["mixed"].summary["converted_polygons"] == 2
    assert reference.summary["converted_polygons"] == 0
    polygon_warnings = [r for r in caplog.records if "polygon (segment) rows" in r.getMessage()]
    assert len(polygon_warnings) == 2  # one per run that met polygons
    assert "2 label file(s)" in polygon_warnings[0].getMessage()


def test_duplicate_rows_are_removed_with_a_warning_and_do_not_stop_the_stage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "ds"
    for index in range(12):
        _image(root, f"i{index}")
        rows = "0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n"
        _label(root, f"i{index}", rows + ("0 0.5 0.5 0.2 0.2\n" if index < 2 else ""))
    (root / "d.yaml").write_text("train: images/train\nval: images/train\nnames: [a, b]\n")
    config = ValidationConfig(workers=1, progress=False, max_invalid_fraction=0.1)
    with caplog.at_level(logging.WARNING):
        result = validate_dataset(parse_dataset_yaml(root / "d.yaml"), config)
    summary = result.summary
    assert (summary["labelled"], summary["instances"], summary["invalid_fraction"]) == (12, 24, 0)
    assert summary["duplicate_rows"] == 2
    assert summary["rows_dropped_by_code"] == {"duplicate_row": 2}
    assert set(result.problems["action"]) == {"row_dropped"}
    assert "2 exact duplicate label row(s) removed, in 2 file(s)" in caplog.text
    fail = ValidationConfig(workers=1, progress=False, policy="fail")
    assert validate_dataset(parse_dataset_yaml(root / "d.yaml"), fail).summary["instances"] == 24
