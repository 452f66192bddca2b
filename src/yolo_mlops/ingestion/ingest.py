"""Bring a dataset into the raw layer: fetch the archive, extract it safely, describe the result.

``data/01_raw/<name>.zip`` (+ ``<name>.zip.json``: source and SHA-256) is the downloaded archive,
``data/01_raw/<name>/`` the extracted dataset, and ``data/01_raw/<name>.extracted.json`` records
which archive digest the folder was extracted from and the digest of what it holds, so a rerun
with the same archive and an untouched folder neither downloads nor extracts again, and a folder
whose files were added, removed or edited is extracted again. A source that is a folder is used in
place, read-only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from yolo_mlops.ingestion.archive import (
    ArchiveError,
    ExtractLimits,
    check_complete,
    inspect_archive,
    safe_extract,
)
from yolo_mlops.ingestion.download import RetryPolicy, fetch_archive, is_url, local_path

logger = logging.getLogger(__name__)

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


class IngestError(RuntimeError):
    """The raw layer is in a state the ingestion must not overwrite."""


@dataclass(frozen=True)
class RawDataset:
    """Where the raw dataset is.

    Attributes:
        root: the dataset folder (holds ``images/`` and ``labels/``).
        archive: the archive it was extracted from (``None`` for a folder source).
        sha256: the archive's digest (``None`` for a folder source).
        source: what the user asked for (URL, path or folder).
    """

    root: Path
    archive: Path | None
    sha256: str | None
    source: str


def _archive_name(source: str, name: str) -> str:
    lowered = source.lower().split("?")[0]
    suffix = next((s for s in _ARCHIVE_SUFFIXES if lowered.endswith(s)), ".zip")
    return f"{name}{suffix}"


def remove_stale_extractions(root: Path) -> list[Path]:
    """Delete what an extraction killed midway left beside ``root``; return what was deleted.

    ``.<name>.new`` (a finished extraction not yet swapped in), ``..<name>.new.extract-*`` (the
    staging folders of :func:`safe_extract`) and ``.<name>.old`` (a swap interrupted midway) are
    never a dataset anyone uses: the marker file only ever names ``root`` itself.
    """
    stale = [
        path
        for pattern in (f".{root.name}.new", f"..{root.name}.new.extract-*", f".{root.name}.old")
        for path in sorted(root.parent.glob(pattern))
        if path.is_dir()
    ]
    for path in stale:
        logger.warning("Removing %s, left by an interrupted extraction", path)
        shutil.rmtree(path, ignore_errors=True)
    return stale


def tree_sha256(root: Path) -> str:
    """SHA-256 over every file under ``root``: its relative path and its bytes, in sorted order.

    Content only (no mtimes), so a ``dvc checkout`` of the same files gives the same digest.
    """
    digest = hashlib.sha256()
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            path = Path(folder, name)
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
            digest.update(b"\0")
    return digest.hexdigest()


def _reusable_extraction(archive: Path, digest: str, root: Path, marker: Path) -> bool:
    """Whether ``root`` holds exactly what ``archive`` (sha256 ``digest``) extracts to."""
    record = json.loads(marker.read_text()) if marker.is_file() else {}
    if record.get("sha256") is None:
        raise IngestError(
            f"{root} exists but was not extracted by download_dataset; move it away, or use it "
            f"as is with --params data_ingestion.source={root}"
        )
    if record["sha256"] != digest:
        logger.warning(
            "%s was extracted from an archive with sha256 %s; %s now has %s: extracting it again",
            root, record["sha256"], archive.name, digest,
        )  # fmt: skip
        return False
    if record.get("tree_sha256") is None:
        logger.info("%s has no record of its content; extracting it again to make one", root)
        return False
    found = tree_sha256(root)
    if found != record["tree_sha256"]:
        logger.warning(
            "files in %s were added, removed or edited since they were extracted from %s (content "
            "sha256 %s, now %s); extracting it again (edit the archive, or use a folder as "
            "data_ingestion.source)",
            root, archive.name, record["tree_sha256"], found,
        )  # fmt: skip
        return False
    return True


def _extract(archive: Path, digest: str, root: Path, limits: ExtractLimits) -> None:
    marker = root.with_name(f"{root.name}.extracted.json")
    if root.exists() and _reusable_extraction(archive, digest, root, marker):
        logger.info("Using %s (already extracted from %s)", root, archive.name)
        return
    fresh = root.with_name(f".{root.name}.new")
    remove_stale_extractions(root)
    safe_extract(archive, fresh, limits)
    if root.exists():  # an extraction of an older archive: swap, then delete the old one
        old = root.with_name(f".{root.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(root, old)
        os.replace(fresh, root)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(fresh, root)
    record = {"archive": archive.name, "sha256": digest, "tree_sha256": tree_sha256(root)}
    marker.write_text(json.dumps(record, indent=2))


def ingest(
    source: str,
    raw_dir: Path,
    name: str,
    *,
    sha256: str | None = None,
    retry: RetryPolicy | None = None,
    limits: ExtractLimits | None = None,
) -> RawDataset:
    """Fetch and extract ``source`` into ``raw_dir/name`` (or use a folder source in place).

    Raises:
        DownloadError, ArchiveError, IngestError: with messages naming the source or entry.
    """
    if not is_url(source) and local_path(source).is_dir():
        root = Path(os.path.abspath(local_path(source)))
        if not (root / "images").is_dir():
            raise IngestError(f"source folder {root} has no images/ folder; is it a YOLO dataset?")
        logger.info("Using the extracted dataset in %s as is (read-only)", root)
        return RawDataset(root, None, None, source)
    raw_dir = Path(raw_dir)
    archive = raw_dir / _archive_name(source, name)
    limits = limits or ExtractLimits()

    def verify(path: Path, label: str | None) -> None:
        # Complete AND safe before it may replace the cached archive: a rejected source
        # leaves the previous good archive (and its extraction) as they were.
        check_complete(path, label)
        inspect_archive(path, limits)

    try:
        digest = fetch_archive(source, archive, sha256, retry or RetryPolicy(), verify)
    except ArchiveError as error:
        raise ArchiveError(f"data_ingestion.source {source}: {error}") from error
    root = raw_dir / name
    try:
        _extract(archive, digest, root, limits)
    except ArchiveError as error:
        raise ArchiveError(f"data_ingestion.source {source}: {error}") from error
    return RawDataset(root, archive, digest, source)
