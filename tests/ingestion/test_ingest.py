"""ingest: archive -> raw folder, reused on a rerun, never overwriting a folder it did not make."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingestion.http_server import ServerState, serve
from yolo_mlops.ingestion.archive import ArchiveError
from yolo_mlops.ingestion.download import RetryPolicy
from yolo_mlops.ingestion.ingest import IngestError, ingest
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset, zip_dataset

FAST = RetryPolicy(retries=1, backoff_s=0.0, timeout_s=5.0)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    write_synthetic_dataset(tmp_path / "synth", SyntheticSpec(n_images=3), seed=0)
    return zip_dataset(tmp_path / "synth", tmp_path / "synth.zip")


def test_ingest_extracts_archive_into_named_folder(tmp_path: Path, archive: Path) -> None:
    raw = ingest(str(archive), tmp_path / "raw", "demo")
    assert raw.root == tmp_path / "raw" / "demo"
    assert len(list((raw.root / "images" / "train2017").glob("*.jpg"))) == 3
    assert raw.archive == tmp_path / "raw" / "demo.zip" and len(raw.sha256 or "") == 64
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [
        "demo", "demo.extracted.json", "demo.zip", "demo.zip.json",
    ]  # fmt: skip


def test_second_ingest_over_http_makes_no_request_and_keeps_the_folder(
    tmp_path: Path, archive: Path
) -> None:
    state = ServerState(files={"/demo.zip": archive.read_bytes()})
    with serve(state) as base:
        first = ingest(f"{base}/demo.zip", tmp_path / "raw", "demo", retry=FAST)
        extracted = {p: p.stat().st_ino for p in first.root.rglob("*")}
        second = ingest(f"{base}/demo.zip", tmp_path / "raw", "demo", retry=FAST)
    assert len(state.requests) == 1
    assert second == first and {p: p.stat().st_ino for p in first.root.rglob("*")} == extracted


def test_new_archive_replaces_an_older_extraction(tmp_path: Path, archive: Path) -> None:
    ingest(str(archive), tmp_path / "raw", "demo")
    write_synthetic_dataset(tmp_path / "other", SyntheticSpec(n_images=5), seed=1)
    other = zip_dataset(tmp_path / "other", tmp_path / "other.zip")
    raw = ingest(str(other), tmp_path / "raw", "demo")
    assert len(list((raw.root / "images" / "train2017").glob("*.jpg"))) == 5
    assert not [p for p in (tmp_path / "raw").iterdir() if p.name.startswith(".")]


def test_folder_not_made_by_ingest_is_never_overwritten(tmp_path: Path, archive: Path) -> None:
    (tmp_path / "raw" / "demo").mkdir(parents=True)
    (tmp_path / "raw" / "demo" / "mine.txt").write_text("user data")
    with pytest.raises(IngestError, match="was not extracted by download_dataset"):
        ingest(str(archive), tmp_path / "raw", "demo")
    assert (tmp_path / "raw" / "demo" / "mine.txt").read_text() == "user data"


def test_folder_source_is_used_in_place(tmp_path: Path) -> None:
    write_synthetic_dataset(tmp_path / "synth", SyntheticSpec(n_images=2), seed=0)
    raw = ingest(str(tmp_path / "synth"), tmp_path / "raw", "demo")
    assert raw.root == tmp_path / "synth" and raw.archive is None
    assert not (tmp_path / "raw").exists()


def test_unsafe_archive_leaves_no_dataset_folder(tmp_path: Path) -> None:
    import zipfile

    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("demo/images/a.jpg", b"x")
        zf.writestr("demo/../../escape.txt", b"x")
    with pytest.raises(ArchiveError, match=r"escape\.txt"):
        ingest(str(bad), tmp_path / "raw", "demo")
    assert not (tmp_path / "raw" / "demo").exists()
    assert not (tmp_path / "escape.txt").exists()


def test_unsafe_archive_leaves_the_previous_good_archive_and_dataset(
    tmp_path: Path, archive: Path
) -> None:
    import zipfile

    good = ingest(str(archive), tmp_path / "raw", "demo")
    before = good.archive.read_bytes()
    bad = tmp_path / "user" / "bad.zip"
    bad.parent.mkdir()
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("demo/images/a.jpg", b"x")
        zf.writestr("demo/../../escape.txt", b"x")
    with pytest.raises(ArchiveError, match=rf"^data_ingestion.source {bad}: .*escape\.txt"):
        ingest(str(bad), tmp_path / "raw", "demo")
    assert good.archive.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(
        ["demo", "demo.zip", "demo.zip.json", "demo.extracted.json"]
    )


def test_folders_left_by_a_killed_extraction_are_removed_on_the_next_run(
    tmp_path: Path, archive: Path
) -> None:
    raw = tmp_path / "raw"
    for stale in ("..demo.new.extract-abc123", ".demo.new", ".demo.old"):
        (raw / stale / "images").mkdir(parents=True)
        (raw / stale / "images" / "x.jpg").write_bytes(b"x")
    ingest(str(archive), raw, "demo")
    assert sorted(p.name for p in raw.iterdir() if p.name.startswith(".")) == []
    assert (raw / "demo" / "images").is_dir()


@pytest.mark.parametrize("change", ["edited", "added", "removed"])
def test_extraction_whose_files_changed_is_extracted_again_with_a_warning(
    tmp_path: Path, archive: Path, change: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw = ingest(str(archive), tmp_path / "raw", "demo")
    label = next((raw.root / "labels").rglob("*.txt"))
    original = label.read_bytes()
    if change == "edited":
        label.write_text("0 0.5 0.5 0.1 0.1\n")
    elif change == "added":
        (label.parent / "extra.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    else:
        label.unlink()
    with caplog.at_level("WARNING", logger="yolo_mlops.ingestion.ingest"):
        again = ingest(str(archive), tmp_path / "raw", "demo")
    assert again == raw and label.read_bytes() == original
    assert not (label.parent / "extra.txt").exists()
    assert f"files in {raw.root} were added, removed or edited" in caplog.text


def test_extraction_from_an_older_marker_without_a_content_record_is_redone(
    tmp_path: Path, archive: Path
) -> None:
    import json

    raw = ingest(str(archive), tmp_path / "raw", "demo")
    marker = tmp_path / "raw" / "demo.extracted.json"
    record = json.loads(marker.read_text())
    marker.write_text(json.dumps({"archive": record["archive"], "sha256": record["sha256"]}))
    ingest(str(archive), tmp_path / "raw", "demo")
    assert json.loads(marker.read_text()) == record and raw.root.is_dir()
