"""Every connection has deadlines and the server a connection limit (SPEC §5): a real
``fieldsync serve`` with 2-second limits, driven over raw sockets like a slow or hostile client.

A silent client, a slowloris on headers or body, and a client that stops reading all lose their
connection within the limit, and what their request held comes back: an upload's lock (the
resume is not 409 ``upload.locked`` forever), an export's pooled connection and transaction."""

from __future__ import annotations

import asyncio
import base64
import contextlib
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

from tests import images
from tests.e2e.server import ServerProcess, cli, cloned_database

pytestmark = pytest.mark.e2e
LIMIT_S = 2
EXCHANGE_S = 6  # the whole request: body in, answer out
PATIENT_EXCHANGE_S = 4
MAX_CONNECTIONS = 12


@pytest.fixture(scope="module")
def database(pg_server_url: str, template_database: str) -> Iterator[str]:
    with cloned_database(pg_server_url, template_database, prefix="fs_deadlines") as url:
        yield url


@contextlib.contextmanager
def serving(database: str, **env: str) -> Iterator[ServerProcess]:
    """``fieldsync serve`` on ``database`` with these settings, in a data dir removed afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="fieldsync-deadlines-", dir="/tmp"))
    process = ServerProcess(data_dir, FIELDSYNC_DATABASE_URL=database, **env)
    try:
        process.wait_ready()
        yield process
    finally:
        process.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server(database: str) -> Iterator[ServerProcess]:
    with serving(database, FIELDSYNC_HEADER_TIMEOUT_S=str(LIMIT_S), FIELDSYNC_IDLE_TIMEOUT_S=str(LIMIT_S),
                 FIELDSYNC_MAX_CONNECTIONS=str(MAX_CONNECTIONS), FIELDSYNC_REQUEST_TIMEOUT_S=str(EXCHANGE_S)) as process:
        yield process


@pytest.fixture(scope="module")
def patient_server(database: str) -> Iterator[ServerProcess]:
    """Idle limits far beyond the test, a short request deadline: only the deadline can cut."""
    with serving(database, FIELDSYNC_IDLE_TIMEOUT_S="60", FIELDSYNC_REQUEST_TIMEOUT_S=str(PATIENT_EXCHANGE_S)) as process:
        yield process


def token(server: ServerProcess, database: str, role: str) -> str:
    name = f"{role[:3]}-{uuid.uuid4().hex[:8]}"
    output = cli(server.data_dir, "user", "add", name, "--role", role, "--jurisdiction", "140431", "--token",
                 FIELDSYNC_DATABASE_URL=database)
    return output.stdout.strip().splitlines()[-1]


def open_socket(server: ServerProcess, *, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", server.port))
    return sock


def seconds_until_closed(sock: socket.socket, *, trickle: bytes = b"", every_s: float = 0.3,
                         give_up_s: float = 15) -> float:
    """Send ``trickle`` a byte at a time (or nothing) until the server closes; seconds it took."""
    started = time.monotonic()
    sock.settimeout(every_s)
    position = 0
    while time.monotonic() - started < give_up_s:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
        if position < len(trickle):
            try:
                sock.send(trickle[position:position + 1])
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - started
            position += 1
    raise AssertionError(f"the server kept the connection for {give_up_s} s")


def half_sent_patch(server: ServerProcess, database: str, seed: int) -> tuple[dict[str, str], bytes, str, bytes]:
    """A new tus upload of a small photo: (headers, photo, its path, a PATCH of the whole photo
    whose body holds only the first half)."""
    headers = {"Authorization": f"Bearer {token(server, database, 'inspector')}", "Tus-Resumable": "1.0.0"}
    photo = images.jpeg(320, 240, seed=seed)
    metadata = (f"sha256 {base64.b64encode(images.sha256(photo).encode()).decode()},"
                f"content_type {base64.b64encode(b'image/jpeg').decode()}")
    created = httpx.post(f"{server.base_url}/v1/uploads", timeout=10,
                         headers={**headers, "Upload-Length": str(len(photo)), "Upload-Metadata": metadata})
    assert created.status_code == 201, created.text
    path = httpx.URL(created.headers["Location"]).path
    request = (f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {headers['Authorization']}\r\n"
               f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
               f"Content-Length: {len(photo)}\r\n\r\n").encode()
    return headers, photo, path, request + photo[:len(photo) // 2]


def test_a_connection_that_sends_nothing_is_closed_at_the_header_deadline(server) -> None:
    with open_socket(server) as sock:
        assert seconds_until_closed(sock) < LIMIT_S + 1.5


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_deadline(server) -> None:
    slow = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    with open_socket(server) as sock:
        took = seconds_until_closed(sock, trickle=slow)
    assert took < LIMIT_S + 1.5


def test_oversized_headers_are_431(server) -> None:
    with open_socket(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 70_000 + b"\r\n\r\n")
        sock.settimeout(5)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert b"request.headers_too_large" in answer


def test_connections_beyond_the_limit_are_answered_503_and_the_server_recovers(server) -> None:
    held = [open_socket(server) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        with open_socket(server) as extra:
            extra.settimeout(5)
            answer = extra.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:100]
        assert b"retry-after: 5" in answer.lower() and b"server.busy" in answer
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200


def test_a_patch_that_goes_silent_gives_its_upload_back_for_the_resume(server, database) -> None:
    headers, photo, path, half_sent = half_sent_patch(server, database, seed=41)
    half = len(photo) // 2
    with open_socket(server) as sock:
        sock.sendall(half_sent)
        assert seconds_until_closed(sock) < LIMIT_S + 1.5

    offset = int(httpx.head(f"{server.base_url}{path}", headers=headers, timeout=10).headers["Upload-Offset"])
    assert offset == half, "the bytes that arrived are kept"
    resumed = httpx.patch(f"{server.base_url}{path}", content=photo[offset:], timeout=30, headers={
        **headers, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
    assert resumed.status_code == 204, resumed.text
    stored = httpx.get(f"{server.base_url}/v1/media/{images.sha256(photo)}",
                       headers={"Authorization": headers["Authorization"]}, timeout=10)
    assert stored.content == photo



def test_a_body_that_waits_for_a_busy_server_is_not_the_clients_silence(server, database) -> None:
    """The handler cannot read yet (another transaction holds the upload's row, as a slow lease or
    a busy pool would): the half body already sent waits in the server, and the idle limit does
    not throw it away. Once the handler reads it, the client's own silence is cut as usual."""
    headers, photo, path, half_sent = half_sent_patch(server, database, seed=43)
    upload_id = uuid.UUID(path.rsplit("/", 1)[1])
    half = len(photo) // 2

    async def hold_then_send() -> float:
        holder = await asyncpg.connect(database)
        try:
            async with holder.transaction():
                await holder.execute("SELECT 1 FROM uploads WHERE id = $1 FOR UPDATE", upload_id)
                sock = open_socket(server)
                sock.sendall(half_sent)
                await asyncio.sleep(LIMIT_S + 1.5)  # past the idle limit, the handler still blocked
            return await asyncio.to_thread(seconds_until_closed, sock)
        finally:
            await holder.close()

    closed_after = asyncio.run(hold_then_send())
    assert closed_after < LIMIT_S + 1.5, "the client's own silence must still be cut"
    offset = int(httpx.head(f"{server.base_url}{path}", headers=headers, timeout=10).headers["Upload-Offset"])
    assert offset == half, "the bytes that waited for the server were thrown away"


FILL = """
INSERT INTO reports (id, kind, category, title, description, jurisdiction, lat, lon, accuracy_m, observed_at,
                     grade, credit_code, body, content_hash, author_id, received_at, updated_at)
SELECT gen_random_uuid(), 'hazard', 'coal_mine', '隐患 ' || i, repeat('主斜井皮带机跑偏保护失效 ', 40), '140431',
       36.5, 112.3, 5, now(), 'general', '91350100M000100Y43', '{}', '\\x00', u.id, now(), now()
FROM generate_series(1, 6000) AS i, (SELECT id FROM users WHERE role = 'inspector' LIMIT 1) AS u
"""


async def fill_once(database: str, rows: int = 6000) -> None:
    """At least ``rows`` reports of about 1.6 KB each."""
    conn = await asyncpg.connect(database)
    try:
        have = await conn.fetchval("SELECT count(*) FROM reports")
        if have < rows:
            await conn.execute(FILL.replace("generate_series(1, 6000)", f"generate_series(1, {rows - have})"))
    finally:
        await conn.close()


async def export_backends(database: str) -> list[str]:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = await conn.fetch(
            "SELECT state FROM pg_stat_activity WHERE application_name = 'fieldsync' AND datname = current_database()"
            " AND (state LIKE 'idle in transaction%' OR query ILIKE '%FROM reports r%')"
        )
        return [row["state"] for row in rows]
    finally:
        await conn.close()


def test_an_export_whose_client_stops_reading_is_cut_off_and_holds_no_connection(server, database) -> None:
    supervisor = token(server, database, "supervisor")
    token(server, database, "inspector")
    asyncio.run(fill_once(database))
    with open_socket(server, receive_buffer=4096) as sock:
        sock.sendall(f"GET /v1/export?format=csv HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {supervisor}"
                     "\r\nAccept-Encoding: identity\r\n\r\n".encode())
        time.sleep(0.5)
        assert asyncio.run(export_backends(database)), "the export must be in progress for the test to mean anything"
        time.sleep(LIMIT_S + 1.5)
        assert asyncio.run(export_backends(database)) == [], "the stalled export still holds its connection"
    assert httpx.get(f"{server.base_url}/readyz", timeout=5).status_code == 200


def test_a_large_body_arriving_with_its_headers_is_not_taken_for_large_headers(server, database) -> None:
    """The first read of a request often holds its headers and a big piece of its body: only the
    headers count towards the header limit."""
    body = b'{"username": "' + b"x" * 200_000 + b'", "password": "not really"}'
    with open_socket(server) as sock:
        sock.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        sock.settimeout(10)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]


def test_a_body_trickled_just_fast_enough_never_to_go_idle_is_cut_off_at_the_request_deadline(server) -> None:
    """A byte every 0.3 s never trips the 2 s idle limit; the request deadline still ends it."""
    with open_socket(server) as sock:
        sock.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n")
        took = seconds_until_closed(sock, trickle=b"{" + b" " * 999, every_s=0.3)
    assert LIMIT_S + 1 < took < EXCHANGE_S + 3, took


def test_an_export_read_steadily_but_slowly_is_cut_off_at_the_request_deadline(patient_server, database) -> None:
    """A client that reads an export slowly but steadily (never idle for the idle limit) loses it
    at the request deadline, with its transaction and connection. The server cuts it; what the
    kernel already buffered may still reach the client afterwards, so the database tells."""
    import threading

    supervisor = token(patient_server, database, "supervisor")
    token(patient_server, database, "inspector")
    asyncio.run(fill_once(database, 30_000))  # ~50 MB of CSV: far longer than the deadline at this pace
    stop = threading.Event()
    received = [0]

    def read(sock: socket.socket) -> None:
        sock.settimeout(1)
        while not stop.is_set():
            time.sleep(0.1)  # about 640 KB/s
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                continue
            if not chunk:
                return
            received[0] += len(chunk)

    with open_socket(patient_server) as sock:
        sock.sendall(f"GET /v1/export?format=csv HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {supervisor}"
                     "\r\nAccept-Encoding: identity\r\n\r\n".encode())
        started = time.monotonic()
        reader = threading.Thread(target=read, args=(sock,), daemon=True)
        reader.start()
        try:
            time.sleep(PATIENT_EXCHANGE_S - 1.5 - (time.monotonic() - started))
            midway = asyncio.run(export_backends(database))
            time.sleep(PATIENT_EXCHANGE_S + 2 - (time.monotonic() - started))
            after = asyncio.run(export_backends(database))
        finally:
            stop.set()
            reader.join(timeout=5)
    assert midway, f"the export ended before the deadline ({received[0]} bytes read): the test means nothing"
    assert after == [], "the export outlived the request deadline"
