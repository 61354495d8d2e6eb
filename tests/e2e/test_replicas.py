"""Two ``fieldsync serve`` replicas that share nothing but one PostgreSQL and one S3 server
(SPEC §10): each has a data directory of its own, so no byte of an unfinished upload can pass
between them except through the bucket and the database.

One upload of a file larger than two S3 parts is created on the first replica and PATCHed
alternately on both; the first is killed (SIGKILL) while a PATCH body is streaming into it, and
the second takes the upload over once the dead replica's lease runs out and finishes it. At every
step both replicas report the same, right offset; the media object is byte-identical and nothing
of the upload is left in the bucket. Budget: about 25 s.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from minio import Minio

from tests import images
from tests.e2e.server import ServerProcess, cli, cloned_database

pytestmark = pytest.mark.e2e

CHUNK = 512 * 1024
LEASE_S = 6
TUS = {"Tus-Resumable": "1.0.0"}
KEYS = {"FIELDSYNC_S3_ACCESS_KEY": "fieldsync-test", "FIELDSYNC_S3_SECRET_KEY": "fieldsync-test-secret"}


@pytest.fixture(scope="module")
def database(pg_server_url: str, template_database: str) -> Iterator[str]:
    with cloned_database(pg_server_url, template_database, prefix="fs_replicas") as url:
        yield url


class Replicas:
    def __init__(self, database: str, endpoint: str) -> None:
        self.bucket = f"fs-replicas-{uuid.uuid4().hex[:12]}"
        self.endpoint = endpoint
        self.env = {
            "FIELDSYNC_DATABASE_URL": database, "FIELDSYNC_MEDIA_URL": f"s3://{self.bucket}",
            "FIELDSYNC_S3_ENDPOINT": endpoint, "FIELDSYNC_S3_SECURE": "false", **KEYS,
            "FIELDSYNC_UPLOAD_LEASE_S": str(LEASE_S),
        }
        self.dirs = [Path(tempfile.mkdtemp(prefix=f"fieldsync-replica-{n}-", dir="/tmp")) for n in (1, 2)]
        self.servers = [ServerProcess(directory, **self.env) for directory in self.dirs]

    def close(self) -> None:
        for server in self.servers:
            if server.process.poll() is None:
                server.kill()
        for directory in self.dirs:
            shutil.rmtree(directory, ignore_errors=True)

    def bucket_listing(self) -> list[str]:
        client = Minio(self.endpoint, access_key=KEYS["FIELDSYNC_S3_ACCESS_KEY"],
                       secret_key=KEYS["FIELDSYNC_S3_SECRET_KEY"], secure=False, region="us-east-1")
        names = [str(item.object_name) for item in client.list_objects(self.bucket, recursive=True)]
        pending = client._list_multipart_uploads(self.bucket).uploads
        return names + [f"multipart {upload.object_name}" for upload in pending]


@pytest.fixture
def replicas(database: str, moto_s3_endpoint: str) -> Iterator[Replicas]:
    pair = Replicas(database, moto_s3_endpoint)
    try:
        for server in pair.servers:
            server.wait_ready()
        yield pair
    finally:
        pair.close()


def offset_on(server: ServerProcess, path: str, auth: dict[str, str]) -> int:
    response = httpx.head(f"{server.base_url}{path}", headers={**auth, **TUS}, timeout=10)
    assert response.status_code == 200, response.status_code
    return int(response.headers["upload-offset"])


def patch(server: ServerProcess, path: str, auth: dict[str, str], data: bytes, offset: int) -> httpx.Response:
    return httpx.patch(f"{server.base_url}{path}", content=data, timeout=60, headers={
        **auth, **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)})


def lease_held(database: str, path: str) -> bool:
    async def query() -> bool:
        conn = await asyncpg.connect(database)
        try:
            return bool(await conn.fetchval("SELECT lease_token IS NOT NULL FROM uploads WHERE id = $1",
                                            uuid.UUID(path.rsplit("/", 1)[1])))
        finally:
            await conn.close()

    return asyncio.run(query())


def kill_mid_body(server: ServerProcess, database: str, path: str, auth: dict[str, str], chunk: bytes,
                  offset: int) -> None:
    """Start a PATCH of ``chunk``, send half its body, and SIGKILL the server once it holds the
    upload's lease (it is then waiting for the rest of the body)."""
    head = (f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth['Authorization']}\r\n"
            f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {len(chunk)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + chunk[: len(chunk) // 2])
        deadline = time.monotonic() + 10
        while not lease_held(database, path):
            assert time.monotonic() < deadline, "the PATCH never took the upload's lease"
            time.sleep(0.05)
        server.kill()


def test_two_replicas_on_one_database_and_one_bucket_share_an_upload_and_survive_a_kill(
    replicas: Replicas, database: str
) -> None:
    first, second = replicas.servers
    token = cli(first.data_dir, "user", "add", f"ins-{uuid.uuid4().hex[:8]}", "--role", "inspector",
                "--jurisdiction", "140431", "--token", **replicas.env).stdout.strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {token}"}
    photo = images.noise_png(1900, 1900, seed=12)  # two 5 MiB parts and a tail
    sha = hashlib.sha256(photo).hexdigest()
    metadata = (f"sha256 {base64.b64encode(sha.encode()).decode()},"
                f"content_type {base64.b64encode(b'image/png').decode()}")
    created = httpx.post(f"{first.base_url}/v1/uploads", timeout=10, headers={
        **auth, **TUS, "Upload-Length": str(len(photo)), "Upload-Metadata": metadata})
    assert created.status_code == 201, created.text
    path = httpx.URL(created.headers["location"]).path

    offset, kill_at = 0, 14 * CHUNK  # past the first part, with tail pieces recorded
    for turn in range(kill_at // CHUNK):
        server = (first, second)[turn % 2]
        response = patch(server, path, auth, photo[offset:offset + CHUNK], offset)
        assert response.status_code == 204, response.text
        offset += CHUNK
        assert int(response.headers["upload-offset"]) == offset
        assert offset_on(first, path, auth) == offset_on(second, path, auth) == offset

    kill_mid_body(first, database, path, auth, photo[offset:offset + CHUNK], offset)
    assert offset_on(second, path, auth) == offset, "the killed PATCH recorded nothing"
    locked = patch(second, path, auth, photo[offset:offset + CHUNK], offset)
    assert locked.status_code == 409 and locked.json()["code"] == "upload.locked", "the dead replica's lease holds"

    deadline = time.monotonic() + LEASE_S + 5
    while (response := patch(second, path, auth, photo[offset:offset + CHUNK], offset)).status_code == 409:
        assert time.monotonic() < deadline, "the dead replica's lease never ran out"
        time.sleep(0.3)
    while True:
        assert response.status_code == 204, response.text
        offset = min(offset + CHUNK, len(photo))
        assert int(response.headers["upload-offset"]) == offset
        assert offset_on(second, path, auth) == offset
        if offset == len(photo):
            break
        response = patch(second, path, auth, photo[offset:offset + CHUNK], offset)

    assert response.headers["fieldsync-media-sha256"] == sha
    original = httpx.get(f"{second.base_url}/v1/media/{sha}", headers=auth, timeout=30, follow_redirects=True)
    assert original.status_code == 200 and original.content == photo
    assert not [name for name in replicas.bucket_listing() if name.split(" ")[-1].startswith("uploads/")], \
        "nothing of the upload is left in the bucket"
    collected = cli(second.data_dir, "gc", **replicas.env)  # the replicas' gc runs on the shared bucket
    assert "0 expired uploads" in collected.stdout, collected.stdout
