"""download.fetch_archive against a loopback HTTP server and local files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import zipfile
from pathlib import Path

import pytest

from tests.ingestion.http_server import ServerState, serve
from yolo_mlops.ingestion.archive import ArchiveError
from yolo_mlops.ingestion.download import DownloadError, RetryPolicy, fetch_archive

FAST = RetryPolicy(retries=2, backoff_s=0.0, timeout_s=5.0)


def _zip_bytes(payload: bytes) -> bytes:
    """A complete zip holding ``payload`` (stored, so the archive is as large as the payload)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("data/blob.bin", payload)
    return buffer.getvalue()


BODY = _zip_bytes(os.urandom(300_000))
DIGEST = hashlib.sha256(BODY).hexdigest()


def test_download_writes_archive_and_records_source(tmp_path: Path) -> None:
    state = ServerState(files={"/d.zip": BODY})
    with serve(state) as base:
        digest = fetch_archive(f"{base}/d.zip", tmp_path / "d.zip", DIGEST, FAST)
    assert digest == DIGEST
    assert (tmp_path / "d.zip").read_bytes() == BODY
    assert json.loads((tmp_path / "d.zip.json").read_text())["sha256"] == DIGEST
    assert not (tmp_path / "d.zip.part").exists()


def test_checksum_mismatch_raises_and_keeps_nothing(tmp_path: Path) -> None:
    state = ServerState(files={"/d.zip": BODY})
    with serve(state) as base, pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_archive(f"{base}/d.zip", tmp_path / "d.zip", "0" * 64, FAST)
    assert list(tmp_path.iterdir()) == []


def test_dropped_connection_resumes_with_range_request(tmp_path: Path) -> None:
    state = ServerState(files={"/d.zip": BODY}, drop_first=True)
    with serve(state) as base:
        fetch_archive(f"{base}/d.zip", tmp_path / "d.zip", DIGEST, FAST)
    assert (tmp_path / "d.zip").read_bytes() == BODY
    assert len(state.requests) == 2
    assert state.requests[0][1] is None
    assert state.requests[1][1] == f"bytes={len(BODY) // 2}-"


def test_dropped_connection_restarts_when_server_ignores_range(tmp_path: Path) -> None:
    state = ServerState(files={"/d.zip": BODY}, drop_first=True, support_range=False)
    with serve(state) as base:
        fetch_archive(f"{base}/d.zip", tmp_path / "d.zip", DIGEST, FAST)
    assert (tmp_path / "d.zip").read_bytes() == BODY
    assert len(state.requests) == 2


def test_transient_server_error_is_retried(tmp_path: Path) -> None:
    state = ServerState(files={"/d.zip": BODY}, fail_first_status=503)
    with serve(state) as base:
        fetch_archive(f"{base}/d.zip", tmp_path / "d.zip", DIGEST, FAST)
    assert len(state.requests) == 2


def test_404_raises_clear_error_without_retry(tmp_path: Path) -> None:
    state = ServerState(files={})
    with (
        serve(state) as base,
        pytest.raises(DownloadError, match=r"HTTP 404.*data_ingestion\.source"),
    ):
        fetch_archive(f"{base}/missing.zip", tmp_path / "d.zip", None, FAST)
    assert len(state.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_offline_error_names_url_and_how_to_use_a_local_copy(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/coco128.zip"
    with pytest.raises(DownloadError) as error:
        fetch_archive(url, tmp_path / "d.zip", None, RetryPolicy(1, 0.0, 2.0))
    message = str(error.value)
    assert url in message
    assert "--params data_ingestion.source=/path/to/coco128.zip" in message


def test_second_run_with_valid_archive_makes_no_request(tmp_path: Path) -> None:
    state = ServerState(files={"/d.zip": BODY})
    with serve(state) as base:
        fetch_archive(f"{base}/d.zip", tmp_path / "d.zip", None, FAST)
        fetch_archive(f"{base}/d.zip", tmp_path / "d.zip", None, FAST)
        fetch_archive(f"{base}/d.zip", tmp_path / "d.zip", DIGEST, FAST)
    assert len(state.requests) == 1


def test_changed_archive_on_disk_is_fetched_again(tmp_path: Path) -> None:
    state = ServerState(files={"/d.zip": BODY})
    with serve(state) as base:
        fetch_archive(f"{base}/d.zip", tmp_path / "d.zip", None, FAST)
        (tmp_path / "d.zip").write_bytes(_zip_bytes(b"tampered"))
        fetch_archive(f"{base}/d.zip", tmp_path / "d.zip", None, FAST)
    assert len(state.requests) == 2
    assert (tmp_path / "d.zip").read_bytes() == BODY


def test_local_file_and_file_url_are_copied_and_left_untouched(tmp_path: Path) -> None:
    source = tmp_path / "user" / "coco.zip"
    source.parent.mkdir()
    source.write_bytes(BODY)
    before = source.stat().st_mtime_ns
    assert fetch_archive(str(source), tmp_path / "a.zip", DIGEST) == DIGEST
    assert fetch_archive(source.as_uri(), tmp_path / "b.zip", DIGEST) == DIGEST
    assert (tmp_path / "a.zip").read_bytes() == BODY == (tmp_path / "b.zip").read_bytes()
    assert source.read_bytes() == BODY and source.stat().st_mtime_ns == before


def test_missing_local_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="does not exist"):
        fetch_archive(str(tmp_path / "nope.zip"), tmp_path / "a.zip")


def test_archive_with_the_expected_digest_is_reused_whatever_its_source(tmp_path: Path) -> None:
    local = tmp_path / "copy.zip"
    local.write_bytes(BODY)
    fetch_archive(str(local), tmp_path / "d.zip", DIGEST)
    state = ServerState(files={"/d.zip": BODY})
    with serve(state) as base:
        fetch_archive(f"{base}/d.zip", tmp_path / "d.zip", DIGEST, FAST)
    assert state.requests == []


def test_without_a_digest_an_archive_from_another_source_is_fetched_again(tmp_path: Path) -> None:
    local = tmp_path / "copy.zip"
    local.write_bytes(_zip_bytes(b"older archive"))
    fetch_archive(str(local), tmp_path / "d.zip")
    state = ServerState(files={"/d.zip": BODY})
    with serve(state) as base:
        fetch_archive(f"{base}/d.zip", tmp_path / "d.zip", None, FAST)
    assert len(state.requests) == 1 and (tmp_path / "d.zip").read_bytes() == BODY


def test_half_archive_without_content_length_is_never_recorded_or_reused(tmp_path: Path) -> None:
    state = ServerState(files={"/d.zip": BODY}, truncate_without_length=True)
    with serve(state) as base:
        url = f"{base}/d.zip"
        with pytest.raises(ArchiveError, match=rf"{url} .*not a complete zip or tar"):
            fetch_archive(url, tmp_path / "d.zip", None, FAST)
        assert list(tmp_path.iterdir()) == []
        state.truncate_without_length = False
        assert fetch_archive(url, tmp_path / "d.zip", None, FAST) == DIGEST
    assert (tmp_path / "d.zip").read_bytes() == BODY


def test_cached_incomplete_archive_with_a_matching_record_is_fetched_again(tmp_path: Path) -> None:
    half = BODY[: len(BODY) // 2]
    state = ServerState(files={"/d.zip": BODY})
    with serve(state) as base:
        url = f"{base}/d.zip"
        (tmp_path / "d.zip").write_bytes(half)  # what an older run recorded as "valid"
        record = {"source": url, "sha256": hashlib.sha256(half).hexdigest()}
        (tmp_path / "d.zip.json").write_text(json.dumps(record))
        assert fetch_archive(url, tmp_path / "d.zip", None, FAST) == DIGEST
    assert len(state.requests) == 1


@pytest.mark.parametrize(
    "bad",
    [BODY[: len(BODY) // 2], b"<!DOCTYPE html><html><body>Sign in</body></html>"],
    ids=["truncated_zip", "html_named_zip"],
)
def test_rejected_source_leaves_the_good_archive_and_names_the_users_file(
    tmp_path: Path, bad: bytes
) -> None:
    good = tmp_path / "good.zip"
    good.write_bytes(BODY)
    fetch_archive(str(good), tmp_path / "d.zip")
    record = (tmp_path / "d.zip.json").read_text()
    user_file = tmp_path / "user" / "coco.zip"
    user_file.parent.mkdir()
    user_file.write_bytes(bad)
    with pytest.raises(ArchiveError, match=rf"^{user_file} .*not a complete zip or tar") as error:
        fetch_archive(str(user_file), tmp_path / "d.zip")
    assert "left as it was" in str(error.value)
    assert (tmp_path / "d.zip").read_bytes() == BODY
    assert (tmp_path / "d.zip.json").read_text() == record
    assert not (tmp_path / "d.zip.part").exists()


def _rebuild(path: Path, body: bytes) -> None:
    """Write ``body`` at ``path`` and give it back the old mtime (as ``cp -p`` or rsync would)."""
    stat = path.stat()
    path.write_bytes(body)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_local_file_rebuilt_at_the_same_path_is_copied_again_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "user" / "coco.zip"
    source.parent.mkdir()
    source.write_bytes(_zip_bytes(b"first build"))
    old = fetch_archive(str(source), tmp_path / "d.zip")
    _rebuild(source, BODY)
    with caplog.at_level("WARNING", logger="yolo_mlops.ingestion.download"):
        assert fetch_archive(str(source), tmp_path / "d.zip") == DIGEST
    assert (tmp_path / "d.zip").read_bytes() == BODY
    assert json.loads((tmp_path / "d.zip.json").read_text())["sha256"] == DIGEST
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert str(source) in warning and old in warning and DIGEST in warning


def test_local_file_rebuilt_against_a_pinned_digest_is_refused_not_reused(tmp_path: Path) -> None:
    source = tmp_path / "coco.zip"
    source.write_bytes(BODY)
    fetch_archive(str(source), tmp_path / "d.zip", DIGEST)
    _rebuild(source, _zip_bytes(b"another dataset"))
    with pytest.raises(DownloadError, match=f"checksum mismatch for {source}"):
        fetch_archive(str(source), tmp_path / "d.zip", DIGEST)
    assert (tmp_path / "d.zip").read_bytes() == BODY


def test_unchanged_local_file_is_reused_without_copying(tmp_path: Path) -> None:
    source = tmp_path / "coco.zip"
    source.write_bytes(BODY)
    fetch_archive(str(source), tmp_path / "d.zip")
    before = (tmp_path / "d.zip").stat().st_mtime_ns
    os.utime(source)  # touched, same bytes: the digest decides
    assert fetch_archive(str(source), tmp_path / "d.zip") == DIGEST
    assert (tmp_path / "d.zip").stat().st_mtime_ns == before
