"""Safe extraction of dataset archives (zip and tar).

An archive from the internet is untrusted input. Before anything is written, every entry is
checked: absolute paths, ``..`` components and links (symbolic or hard) are refused, and the
entry count and the total uncompressed size are capped so that a zip bomb cannot fill the disk.
The caps are enforced again on the bytes actually written, because archive headers can lie.
Extraction goes into a temporary sibling folder that is moved into place only when complete, so
an interrupted run never leaves a half dataset that looks finished.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from yolo_mlops.yolo.file_modes import honour_umask

logger = logging.getLogger(__name__)

_COPY_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """The archive is unsafe, too large, or not a readable zip/tar file."""


@dataclass(frozen=True)
class ExtractLimits:
    """Caps for one extraction.

    Attributes:
        max_bytes: total uncompressed bytes allowed (bytes).
        max_entries: number of archive entries allowed (files and folders).
        max_ratio: uncompressed bytes per archive byte allowed (whole archive, and each zip
            entry over 1 MiB); dataset archives of images stay near 1, zip bombs reach 1000.
    """

    max_bytes: int = 10 * 1024**3
    max_entries: int = 500_000
    max_ratio: float = 100.0


@dataclass(frozen=True)
class _Entry:
    name: str
    size: int
    is_dir: bool
    is_file: bool
    is_link: bool
    compressed: int | None = None  # zip entries only


_RATIO_MIN_ENTRY = 1 << 20  # small entries (labels) may compress far better than images


def check_complete(archive: Path, source: str | None = None) -> None:
    """Raise :class:`ArchiveError` unless ``archive`` opens as a complete zip or tar.

    A zip must have its central directory (it sits at the end, so a truncated zip has none) and a
    tar must be readable to its last member (a truncated ``.tar.gz`` ends in ``EOFError``). The
    message names ``source`` (what the user passed) when given.
    """
    archive = Path(archive)
    label = f"{source} (downloaded to {archive})" if source else str(archive)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.infolist()
            return
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                if members:  # read the last member's data: truncation shows up only there
                    last = tf.extractfile(members[-1])
                    if last is not None:
                        with last:
                            while last.read(_COPY_CHUNK):
                                pass
            return
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as error:
        raise ArchiveError(f"{label}: incomplete or damaged archive: {error}") from error
    head = archive.read_bytes()[:64] if archive.is_file() else b""
    looks_html = any(tag in head.lower() for tag in (b"<html", b"<!doctype"))
    hint = " (it looks like an HTML page)" if looks_html else ""
    raise ArchiveError(
        f"{label}: not a complete zip or tar archive{hint}; check data_ingestion.source"
    )


def _check_name(name: str, archive: Path) -> PurePosixPath:
    """Return the entry's relative path, or raise if it could escape the destination."""
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise ArchiveError(f"{archive}: refusing entry {name!r}: absolute path")
    if ".." in path.parts:
        raise ArchiveError(f"{archive}: refusing entry {name!r}: '..' path component")
    return path


def _zip_entries(zf: zipfile.ZipFile) -> Iterator[_Entry]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        is_link = stat.S_ISLNK(mode)
        yield _Entry(
            info.filename,
            info.file_size,
            info.is_dir(),
            not info.is_dir(),
            is_link,
            info.compress_size,
        )


def _tar_entries(tf: tarfile.TarFile) -> Iterator[_Entry]:
    for member in tf.getmembers():
        is_link = member.issym() or member.islnk()
        special = not (member.isfile() or member.isdir() or is_link)
        if special:
            raise ArchiveError(
                f"refusing entry {member.name!r}: device, fifo or other special file"
            )
        yield _Entry(member.name, member.size, member.isdir(), member.isfile(), is_link)


@contextmanager
def _open(archive: Path) -> Iterator[zipfile.ZipFile | tarfile.TarFile]:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            yield zf
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            yield tf
    else:
        raise ArchiveError(f"{archive}: not a zip or tar archive")


def inspect_archive(archive: Path, limits: ExtractLimits = ExtractLimits()) -> list[str]:
    """Check every entry of ``archive`` against the safety rules and the caps.

    Returns:
        The entry names, in archive order.

    Raises:
        ArchiveError: naming the first offending entry, or the cap that is exceeded.
    """
    archive = Path(archive)
    with _open(archive) as handle:
        entries = list(
            _zip_entries(handle) if isinstance(handle, zipfile.ZipFile) else _tar_entries(handle)
        )
    if len(entries) > limits.max_entries:
        raise ArchiveError(
            f"{archive}: {len(entries)} entries exceed the cap of {limits.max_entries} "
            "(raise data_ingestion.max_entries if the archive is trusted)"
        )
    total = 0
    for entry in entries:
        _check_name(entry.name, archive)
        if entry.is_link:
            raise ArchiveError(f"{archive}: refusing entry {entry.name!r}: links are not allowed")
        if (
            entry.compressed is not None
            and entry.size > _RATIO_MIN_ENTRY
            and entry.size > limits.max_ratio * max(entry.compressed, 1)
        ):
            raise ArchiveError(
                f"{archive}: entry {entry.name!r} inflates "
                f"{entry.size / max(entry.compressed, 1):.0f}x, above the compression-ratio "
                f"cap of {limits.max_ratio:g} "
                "(raise data_ingestion.max_compression_ratio if the archive is trusted)"
            )
        total += entry.size
    packed = max(archive.stat().st_size, 1)
    if total > _RATIO_MIN_ENTRY and total > limits.max_ratio * packed:
        raise ArchiveError(
            f"{archive}: {total} uncompressed bytes from {packed} archive bytes "
            f"({total / packed:.0f}x) exceed the compression-ratio cap of {limits.max_ratio:g} "
            "(raise data_ingestion.max_compression_ratio if the archive is trusted)"
        )
    if total > limits.max_bytes:
        raise ArchiveError(
            f"{archive}: {total} uncompressed bytes exceed the cap of {limits.max_bytes} "
            "(raise data_ingestion.max_extracted_bytes if the archive is trusted)"
        )
    return [entry.name for entry in entries]


def _copy_capped(
    source: IO[bytes], target: Path, budget: list[int], archive: Path, name: str
) -> None:
    with open(target, "wb") as out:
        while chunk := source.read(_COPY_CHUNK):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise ArchiveError(
                    f"{archive}: entry {name!r} inflates past the size cap (false header)"
                )
            out.write(chunk)


def _extract_all(archive: Path, destination: Path, limits: ExtractLimits) -> None:
    budget = [limits.max_bytes]
    with _open(archive) as handle:
        if isinstance(handle, zipfile.ZipFile):
            members = [(info.filename, info.is_dir(), info) for info in handle.infolist()]
        else:
            members = [(m.name, m.isdir(), m) for m in handle.getmembers()]
        for name, is_dir, member in members:
            relative = _check_name(name, archive)
            if not relative.parts:
                continue
            target = destination.joinpath(*relative.parts)
            if is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(handle, zipfile.ZipFile):
                with handle.open(member) as source:
                    _copy_capped(source, target, budget, archive, name)
            else:
                source = handle.extractfile(member)
                if source is None:
                    raise ArchiveError(f"{archive}: entry {name!r} has no file data")
                with source:
                    _copy_capped(source, target, budget, archive, name)


def safe_extract(archive: Path, destination: Path, limits: ExtractLimits = ExtractLimits()) -> Path:
    """Extract ``archive`` into ``destination`` atomically.

    The archive is checked first (:func:`inspect_archive`), then extracted into a temporary folder
    beside ``destination``. When the archive holds a single top-level folder (``coco128/...``),
    that folder's contents become ``destination``; otherwise the archive's top level does. The
    result is moved into place with one rename; ``destination`` must not exist yet.

    Returns:
        ``destination``.

    Raises:
        ArchiveError: unsafe entry, cap exceeded, unreadable archive (nothing is left behind).
        FileExistsError: ``destination`` already exists.
    """
    archive, destination = Path(archive), Path(destination)
    if destination.exists():
        raise FileExistsError(f"{destination} already exists")
    inspect_archive(archive, limits)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.extract-", dir=destination.parent))
    try:
        _extract_all(archive, staging, limits)
        top_level = [p for p in staging.iterdir() if p.name != "__MACOSX"]
        wrapper = (
            len(top_level) == 1
            and top_level[0].is_dir()
            and top_level[0].name not in {"images", "labels"}  # a bare dataset is not a wrapper
        )
        content = top_level[0] if wrapper else staging
        honour_umask(content)  # mkdtemp made the staging folder 0700
        os.replace(content, destination)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
        raise ArchiveError(f"{archive}: extraction failed: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Extracted %s into %s", archive, destination)
    return destination
