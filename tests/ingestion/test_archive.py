"""archive.safe_extract: refuses unsafe or oversized archives, never leaves a half dataset."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from yolo_mlops.ingestion.archive import ArchiveError, ExtractLimits, inspect_archive, safe_extract


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in {"a.zip", "a.tar"})


def test_single_top_level_folder_becomes_the_destination(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "a.zip", {"coco/images/x.jpg": b"1", "coco/labels/x.txt": b"0 .5 .5 .1 .1"}
    )
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "images" / "x.jpg").read_bytes() == b"1"
    assert _leftovers(tmp_path) == ["out"]


def test_archive_without_top_level_folder_extracts_as_is(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"images/x.jpg": b"1", "README": b"r"})
    safe_extract(archive, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["README", "images"]


def test_archive_holding_only_an_images_folder_is_not_unwrapped(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"images/train/x.jpg": b"1"})
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "images" / "train" / "x.jpg").is_file()


def test_parent_directory_entry_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"coco/ok.txt": b"1", "coco/../../evil.txt": b"x"})
    with pytest.raises(ArchiveError, match=r"coco/\.\./\.\./evil\.txt.*'\.\.'"):
        safe_extract(archive, tmp_path / "out")
    assert _leftovers(tmp_path) == []


def test_absolute_path_entry_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"/etc/evil.txt": b"x"})
    with pytest.raises(ArchiveError, match="absolute path"):
        safe_extract(archive, tmp_path / "out")
    assert _leftovers(tmp_path) == []


def test_zip_symlink_entry_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("coco/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match=r"coco/link.*links are not allowed"):
        safe_extract(archive, tmp_path / "out")
    assert _leftovers(tmp_path) == []


def test_tar_symlink_entry_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("coco/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        tf.addfile(info)
    with pytest.raises(ArchiveError, match="links are not allowed"):
        safe_extract(archive, tmp_path / "out")


def test_tar_archive_extracts(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("coco/images/x.jpg")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "images" / "x.jpg").read_bytes() == b"abc"


def test_archive_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("coco/bomb.bin", b"\0" * 1_000_000)  # compresses to ~1 kB
    assert archive.stat().st_size < 10_000
    with pytest.raises(ArchiveError, match="exceed the cap of 100000"):
        safe_extract(archive, tmp_path / "out", ExtractLimits(max_bytes=100_000))
    assert _leftovers(tmp_path) == []


def test_archive_over_the_entry_cap_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {f"coco/{i}.txt": b"" for i in range(11)})
    with pytest.raises(ArchiveError, match="11 entries exceed the cap of 10"):
        inspect_archive(archive, ExtractLimits(max_entries=10))


def test_not_an_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.zip").write_bytes(b"this is not a zip")
    with pytest.raises(ArchiveError, match="not a zip or tar"):
        safe_extract(tmp_path / "a.zip", tmp_path / "out")


def test_existing_destination_is_not_overwritten(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"coco/x.txt": b"1"})
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError):
        safe_extract(archive, tmp_path / "out")


def test_archive_over_the_compression_ratio_cap_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("d/images/zeros.bin", b"\0" * (8 << 20))  # ~1000x
    with pytest.raises(ArchiveError, match=r"zeros\.bin.*compression-ratio cap of 100"):
        inspect_archive(bomb, ExtractLimits())
    assert inspect_archive(bomb, ExtractLimits(max_ratio=10_000)) == ["d/images/zeros.bin"]


def test_truncated_archives_are_not_complete(tmp_path: Path) -> None:
    from yolo_mlops.ingestion.archive import check_complete

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        data = os.urandom(200_000)
        info = tarfile.TarInfo("d/images/a.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    whole = tmp_path / "d.tar.gz"
    whole.write_bytes(buffer.getvalue())
    check_complete(whole)
    half = tmp_path / "half.tar.gz"
    half.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ArchiveError, match=r"the-url \(downloaded to .*half\.tar\.gz\)"):
        check_complete(half, "the-url")
