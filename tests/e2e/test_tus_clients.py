"""Stock tus clients, unchanged, against a real ``fieldsync serve`` over loopback: tuspy (Python)
and tus-js-client (Node). Each uploads a ~3 MB photo in 512 KiB chunks, is interrupted part-way,
resumes from the offset the server reports and completes; the result is the media object with
the photo's sha256, byte-identical. Both run against a server keeping upload parts in part files
and one keeping them in S3 (moto) multipart uploads."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tusclient import client as tus_client

from tests import images
from tests.e2e.server import ServerProcess, cli, cloned_database

pytestmark = pytest.mark.e2e

CHUNK = 512 * 1024
JS_DIR = Path(__file__).resolve().parent.parent / "js"
TUS = {"Tus-Resumable": "1.0.0"}


class Served:
    def __init__(self, server: ServerProcess, token: str) -> None:
        self.server = server
        self.token = token
        self.auth = {"Authorization": f"Bearer {token}"}

    @property
    def endpoint(self) -> str:
        return f"{self.server.base_url}/v1/uploads"

    def media_sha256(self, sha256: str) -> str:
        """The SHA-256 of what ``GET /v1/media/{sha256}`` serves (the original, as uploaded)."""
        response = httpx.get(f"{self.server.base_url}/v1/media/{sha256}", headers=self.auth, timeout=30,
                             follow_redirects=True)  # an S3 store answers with its presigned URL
        assert response.status_code == 200, response.text
        return hashlib.sha256(response.content).hexdigest()


@pytest.fixture(scope="module", params=["filesystem", "s3"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """A server with its upload parts in part files (the default), or in S3 multipart uploads."""
    data_dir = Path(tempfile.mkdtemp(prefix="fieldsync-e2e-tus-", dir="/tmp"))
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        if request.param == "s3":  # on the session's cluster: a second embedded one would cost seconds
            database = stack.enter_context(cloned_database(
                request.getfixturevalue("pg_server_url"), request.getfixturevalue("template_database"),
                prefix="fs_tus"))
            env = {"FIELDSYNC_DATABASE_URL": database, "FIELDSYNC_MEDIA_URL": f"s3://fs-tus-{uuid.uuid4().hex[:12]}",
                   "FIELDSYNC_S3_ENDPOINT": request.getfixturevalue("moto_s3_endpoint"), "FIELDSYNC_S3_SECURE": "false",
                   "FIELDSYNC_S3_ACCESS_KEY": "fieldsync-test", "FIELDSYNC_S3_SECRET_KEY": "fieldsync-test-secret"}
        added = cli(data_dir, "user", "add", "tus-inspector", "--role", "inspector", "--jurisdiction", "140431",
                    "--token", **env)
        server = ServerProcess(data_dir, **env)
        try:
            server.wait_ready()
            yield Served(server, added.stdout.strip().splitlines()[-1])
        finally:
            server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)


def photo_file(directory: Path, seed: int) -> tuple[Path, str]:
    data = images.jpeg(width=3200, height=2400, quality=95, seed=seed)
    assert 2_500_000 < len(data) < 4_500_000, len(data)
    path = directory / f"photo-{seed}.jpg"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def drop_mid_chunk(served: Served, url: str, data: bytes, *, offset: int, sent: int) -> int:
    """A PATCH whose client vanishes after ``sent`` of its bytes; returns the offset it leaves.

    The server keeps what reached the handler before it saw the connection go (tus semantics),
    which may be fewer bytes than were sent. The offset is read once that PATCH has let go of the
    upload: an empty PATCH at the reported offset succeeds only then.
    """
    target = urlsplit(url)
    chunk = data[offset:offset + CHUNK]
    head = (
        f"PATCH {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\nAuthorization: Bearer {served.token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: {offset}\r\nContent-Length: {len(chunk)}\r\n\r\n"
    ).encode()
    with socket.create_connection((target.hostname, target.port), timeout=10) as sock:
        sock.sendall(head + chunk[:sent])
        time.sleep(0.2)
        sock.shutdown(socket.SHUT_WR)
    headers = {**served.auth, **TUS}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now_at = int(httpx.head(url, headers=headers, timeout=10).headers["upload-offset"])
        settle = httpx.patch(
            url, content=b"", timeout=10,
            headers={**headers, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(now_at)},
        )
        if settle.status_code == 204:
            return now_at
        time.sleep(0.1)
    raise AssertionError("the interrupted PATCH never let go of the upload")


def test_tuspy_upload_interrupted_mid_chunk_resumes_from_the_server_offset(served: Served, tmp_path: Path) -> None:
    path, sha256 = photo_file(tmp_path, seed=101)
    data = path.read_bytes()
    tus = tus_client.TusClient(served.endpoint, headers=served.auth)
    metadata = {"sha256": sha256, "content_type": "image/jpeg"}

    first = tus.uploader(file_path=str(path), chunk_size=CHUNK, metadata=metadata, upload_checksum=True)
    first.upload_chunk()
    first.upload_chunk()
    assert first.offset == 2 * CHUNK
    assert first.url is not None and first.url.startswith(served.endpoint)

    # The phone loses its signal 200 KB into the third chunk; the app restarts and resumes.
    left_at = drop_mid_chunk(served, first.url, data, offset=first.offset, sent=200_000)
    assert 2 * CHUNK <= left_at <= 2 * CHUNK + 200_000

    second = tus.uploader(file_path=str(path), url=first.url, chunk_size=CHUNK, upload_checksum=True)
    assert second.offset == left_at, "a resumed uploader starts from the offset the server reports"
    second.upload()
    assert second.offset == len(data)
    assert second.request is not None
    assert second.request.response_headers["fieldsync-media-sha256"] == sha256

    assert served.media_sha256(sha256) == sha256
    done = httpx.head(first.url, headers={**served.auth, **TUS}, timeout=10)
    assert done.headers["upload-offset"] == str(len(data))


@pytest.mark.skipif(
    shutil.which("node") is None,
    reason="Node.js is not installed: the tus-js-client test runs `node tests/js/tus_upload.mjs` "
    "(install Node 18+ and npm; scripts/test then runs `npm ci --prefix tests/js`)",
)
def test_tus_js_client_upload_aborted_after_the_first_chunk_resumes_and_completes(
    served: Served, tmp_path: Path
) -> None:
    if not (JS_DIR / "node_modules" / "tus-js-client").is_dir():
        subprocess.run(
            ["npm", "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
            check=True, timeout=300,
        )
    path, sha256 = photo_file(tmp_path, seed=202)
    size = path.stat().st_size
    run = subprocess.run(
        ["node", str(JS_DIR / "tus_upload.mjs"), served.endpoint, str(path), sha256, "image/jpeg",
         f"Authorization=Bearer {served.token}"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    phases = {line["phase"]: line for line in map(json.loads, run.stdout.splitlines())}

    interrupted, completed = phases["interrupted"], phases["completed"]
    assert interrupted["offset"] == CHUNK, "the first chunk went with the creation request, then the upload stopped"
    assert completed["url"] == interrupted["url"]
    assert completed["resumed_from"] == CHUNK, "the second Upload asked the server and went on from its offset"
    assert completed["media_sha256"] == sha256
    assert served.media_sha256(sha256) == sha256
    head = httpx.head(completed["url"], headers={**served.auth, **TUS}, timeout=10)
    assert head.headers["upload-offset"] == str(size)
    assert head.headers["fieldsync-media-sha256"] == sha256
