"""Fetching a dataset archive from a URL or a local path.

HTTP(S) downloads stream into ``<archive>.part`` with a progress bar, retry transient failures
with exponential backoff, resume a partial file with a ``Range`` request when the server allows
it, and become ``<archive>`` (one atomic rename) only after the optional SHA-256 check passes.
A sidecar ``<archive>.json`` records the source and the digest, so a second run with the same
URL and an intact archive does no network I/O at all. Local files are copied (the user's file
is never modified), through the same ``.part`` + checksum + rename path, and hashed on every run:
a file rebuilt at the same path is copied again (content, not the path, identifies the data).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from yolo_mlops.ingestion.archive import ArchiveError, check_complete

logger = logging.getLogger(__name__)

COCO128_URL = "https://github.com/ultralytics/assets/releases/download/v0.0.0/coco128.zip"
_CHUNK = 1 << 20
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_OFFLINE_HINT = (
    "If this machine is offline, point the source at a local copy, e.g. "
    "`kedro run --pipelines data --params data_ingestion.source=/path/to/coco128.zip` "
    "(a .zip/.tar file, a file:// URL or a folder holding the extracted dataset)."
)


#: Raises :class:`ArchiveError` when a fetched file (path, the user's source) must not be kept.
Verify = Callable[[Path, str | None], None]


class DownloadError(RuntimeError):
    """The archive could not be fetched, or its checksum is wrong."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.

    Attributes:
        retries: extra attempts after the first one.
        backoff_s: sleep before retry ``k`` (0-based) is ``backoff_s * 2**k`` seconds.
        timeout_s: socket timeout per connection attempt and read (seconds).
    """

    retries: int = 4
    backoff_s: float = 2.0
    timeout_s: float = 60.0


def is_url(source: str) -> bool:
    """True for ``http://`` and ``https://`` sources (``file://`` counts as a local path)."""
    return urllib.parse.urlparse(source).scheme in {"http", "https"}


def local_path(source: str) -> Path:
    """The filesystem path of a local source (plain path or ``file://`` URL), ``~`` expanded."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path)).expanduser()
    return Path(source).expanduser()


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(archive: Path) -> Path:
    return archive.with_name(archive.name + ".json")


def _is_complete(archive: Path, verify: Verify) -> bool:
    try:
        verify(archive, None)
    except ArchiveError as error:
        logger.warning("%s; fetching it again", error)
        return False
    return True


def _record(archive: Path) -> dict:
    """The sidecar record of ``archive`` (``{}`` when absent or unreadable)."""
    try:
        record = json.loads(_sidecar(archive).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _local_source_digest(source: str) -> str | None:
    """The SHA-256 of a local source file, ``None`` for a URL or a file that is not there."""
    if is_url(source):
        return None
    path = local_path(source)
    return sha256_of(path) if path.is_file() else None


def reusable_digest(
    archive: Path, source: str, sha256: str | None, verify: Verify = check_complete
) -> str | None:
    """The digest of ``archive`` when it can be used without fetching ``source``, else ``None``.

    Content, not the path, decides: an archive that does not open as a complete zip/tar, or no
    longer has the digest its record holds, is never reused. A local source is hashed on every
    call (6.7 MB, ~5-9 ms) and the archive is reused only when it holds those very bytes; a
    change is logged as a WARNING with both digests. A URL cannot be hashed without fetching it:
    with an expected ``sha256`` any archive with that digest will do (a copy fetched from a local
    path serves later runs that name the URL); without one, the archive must have come from the
    same URL. A local source that is gone falls back on the URL rules (a ``dvc pull``-ed archive).
    """
    if not (archive.is_file() and _is_complete(archive, verify)):
        return None
    digest, record = sha256_of(archive), _record(archive)
    if record.get("sha256") not in (None, digest):
        logger.warning(
            "%s changed since it was fetched (sha256 %s, now %s); fetching it again",
            archive, record.get("sha256"), digest,
        )  # fmt: skip
        return None
    source_digest = _local_source_digest(source)
    if source_digest is not None:
        if source_digest != digest and record.get("source") == source:
            logger.warning(
                "%s changed: its sha256 is now %s, the copy in %s has %s; copying it again",
                source, source_digest, archive, digest,
            )  # fmt: skip
        return digest if source_digest == digest else None
    if sha256 is not None:
        return digest if digest == sha256.lower() else None
    return digest if record.get("source") == source else None


def _finish(part: Path, archive: Path, source: str, sha256: str | None, verify: Verify) -> str:
    """Verify ``part`` and rename it to ``archive``; on a mismatch delete it and raise.

    ``archive`` (and its record) is replaced only by a file that passes ``verify`` (by default:
    a complete zip/tar) and has the right digest: a rejected source leaves the previous good
    archive untouched.
    """
    try:
        verify(part, source)
    except ArchiveError as error:
        part.unlink(missing_ok=True)
        kept = f"; {archive} was left as it was" if archive.is_file() else ""
        raise ArchiveError(f"{error}; nothing was kept{kept}") from error
    digest = sha256_of(part)
    if sha256 is not None and digest != sha256.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"checksum mismatch for {source}: expected sha256 {sha256.lower()}, got {digest}; "
            "nothing was kept. Fix data_ingestion.source, or data_ingestion.sha256 "
            "(`--params data_ingestion.sha256=null` skips the check for another dataset)"
        )
    os.replace(part, archive)
    _sidecar(archive).write_text(json.dumps({"source": source, "sha256": digest}, indent=2))
    return digest


def _copy_local(path: Path, part: Path) -> None:
    if not path.is_file():
        raise DownloadError(f"source {path} does not exist or is not a file. {_OFFLINE_HINT}")
    logger.info("Copying %s", path)
    with (
        open(path, "rb") as source,
        open(part, "wb") as target,
        tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name, leave=False,
             mininterval=0.5) as bar,
    ):  # fmt: skip
        while chunk := source.read(_CHUNK):
            target.write(chunk)
            bar.update(len(chunk))


def _stream(url: str, part: Path, timeout_s: float) -> None:
    """One attempt: continue ``part`` from its current size (Range) or restart it."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "yolo-mlops/0.1", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        resumed = have > 0 and response.status == 206
        if have and not resumed:
            logger.info("Server ignored the Range request; restarting %s from byte 0", url)
            have = 0
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        total = have + expected if expected is not None else None
        received = 0
        with (
            open(part, "ab" if resumed else "wb") as out,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=part.stem,
                leave=False,
                mininterval=0.5,
            ) as bar,
        ):
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if expected is not None and received < expected:
            raise http.client.IncompleteRead(b"", expected - received)


def _download(url: str, part: Path, policy: RetryPolicy) -> None:
    last_error: Exception | None = None
    for attempt in range(policy.retries + 1):
        if attempt:
            delay = policy.backoff_s * 2 ** (attempt - 1)
            logger.warning(
                "Download attempt %d failed (%s); retrying in %.1fs", attempt, last_error, delay
            )
            time.sleep(delay)
        try:
            _stream(url, part, policy.timeout_s)
            return
        except urllib.error.HTTPError as error:
            if error.code == 416 and part.exists():
                part.unlink()  # our partial file is not a prefix the server can continue
                last_error = error
                continue
            if error.code not in _RETRY_STATUS:
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"download of {url} failed: HTTP {error.code} {error.reason}. "
                    "Check data_ingestion.source. " + _OFFLINE_HINT
                ) from error
            last_error = error
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            last_error = error
    raise DownloadError(
        f"download of {url} failed after {policy.retries + 1} attempts: {last_error}. "
        + _OFFLINE_HINT
    ) from last_error


def fetch_archive(
    source: str,
    archive: Path,
    sha256: str | None = None,
    policy: RetryPolicy = RetryPolicy(),
    verify: Verify = check_complete,
) -> str:
    """Make ``archive`` hold the file from ``source``; return its SHA-256 (hex).

    Args:
        source: ``http(s)://`` URL, ``file://`` URL or local file path.
        archive: where the archive lives afterwards (e.g. ``data/01_raw/coco128.zip``).
        sha256: expected digest; a mismatch deletes the download and raises.
        policy: retries, backoff and timeout for HTTP.
        verify: raises ``ArchiveError`` for a file that must not be kept or reused (default: not
            a complete zip/tar, whatever ``Content-Length`` said or did not say).

    Raises:
        DownloadError: HTTP error, network failure after all retries, missing local file,
            or checksum mismatch. The message names the source and how to use a local copy.
        ArchiveError: the fetched file fails ``verify``; nothing is kept, the previous archive
            stays as it was.
    """
    archive = Path(archive)
    cached = reusable_digest(archive, source, sha256, verify)
    if cached is not None:
        logger.info(
            "Using %s (sha256 %s: same content as %s; no download)", archive, cached, source
        )
        return cached
    archive.parent.mkdir(parents=True, exist_ok=True)
    if is_url(source):
        return _fetch_url(source, archive, sha256, policy, verify)
    path = local_path(source)
    if path.resolve() == archive.resolve():
        return _record_in_place(archive, source, sha256, verify)
    part = archive.with_name(archive.name + ".part")
    part.unlink(missing_ok=True)
    _copy_local(path, part)
    return _finish(part, archive, source, sha256, verify)


def _record_in_place(archive: Path, source: str, sha256: str | None, verify: Verify) -> str:
    """The user placed the archive where we keep it: check and record it, never rewrite it."""
    verify(archive, source)
    digest = sha256_of(archive)
    if sha256 is not None and digest != sha256.lower():
        raise DownloadError(f"checksum mismatch for {archive}: got {digest}")
    _sidecar(archive).write_text(json.dumps({"source": source, "sha256": digest}))
    return digest


def _fetch_url(
    url: str, archive: Path, sha256: str | None, policy: RetryPolicy, verify: Verify
) -> str:
    """Download ``url`` into ``<archive>.part`` (resuming one from the same URL), then finish."""
    part = archive.with_name(archive.name + ".part")
    part_source = archive.with_name(archive.name + ".part.source")
    if part.exists() and (not part_source.is_file() or part_source.read_text() != url):
        part.unlink()  # a partial file from another source cannot be resumed
    part_source.write_text(url)
    logger.info("Downloading %s", url)
    try:
        _download(url, part, policy)
    except DownloadError:
        if not part.exists():  # keep the source record only beside a resumable partial file
            part_source.unlink(missing_ok=True)
        raise
    try:
        return _finish(part, archive, url, sha256, verify)
    finally:
        part_source.unlink(missing_ok=True)
