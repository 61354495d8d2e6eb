"""``fieldsync serve`` on embedded defaults: it starts its own PostgreSQL under the data directory,
shares it with CLI commands run meanwhile, stops it on SIGINT and SIGTERM without leaving a
postgres process behind, and finds its data again on the next start."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.e2e.server import (
    ServerProcess,
    assert_no_postgres_left,
    cli,
    killed_on_failure,
    pid_alive,
    postgres_pids,
    postmaster_pid,
    stop_gracefully,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _me(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.get(f"{server.base_url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)


async def _service_role_cannot_rewrite_history(data_dir: Path) -> None:
    """The server's pool connects as fieldsync_app, which may append audit events but not alter them."""
    from fieldsync.db.embedded import EmbeddedPostgres
    from fieldsync.db.roles import APP_ROLE, as_role

    handle = EmbeddedPostgres(data_dir / "pg")
    try:
        owner = await asyncpg.connect(handle.dsn)
        try:
            users = {row["usename"] for row in await owner.fetch(
                "SELECT usename FROM pg_stat_activity WHERE application_name = 'fieldsync'")}
            assert users == {APP_ROLE}, users
            await owner.execute("INSERT INTO events (chain, position, action, detail, created_at, prev_hash, row_hash)"
                                " VALUES ('test:x', 1, 'probe', '{}', now(), '\\x00', '\\x00')")
        finally:
            await owner.close()
        service = await asyncpg.connect(as_role(handle.dsn, APP_ROLE))
        owner = await asyncpg.connect(handle.dsn)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):  # only the owner may switch the trigger off
                await service.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            # the grants hold on their own, with the append-only trigger out of the way
            await owner.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            for statement in ("UPDATE events SET action = 'rewritten'", "DELETE FROM events", "TRUNCATE events",
                              "DELETE FROM schema_migrations"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await service.execute(statement)
            assert await service.fetchval("SELECT count(*) FROM events WHERE action = 'probe'") == 1
            await service.execute("UPDATE reports SET title = title")
        finally:
            await owner.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
            await owner.close()
            await service.close()
    finally:
        handle.stop()


async def _cluster_settings(data_dir: Path) -> dict[str, str]:
    """The embedded cluster's values of the settings fieldsync sets on it (db.embedded.SETTINGS)."""
    from fieldsync.db.embedded import SETTINGS, EmbeddedPostgres

    handle = EmbeddedPostgres(data_dir / "pg")
    try:
        conn = await asyncpg.connect(handle.dsn)
        try:
            return {name: await conn.fetchval("SELECT current_setting($1)", name) for name in SETTINGS}
        finally:
            await conn.close()
    finally:
        handle.stop()


def test_serve_on_embedded_postgres_stops_cleanly_and_reuses_its_data(data_dir: Path) -> None:
    first = ServerProcess(data_dir)
    with killed_on_failure(first):
        first.wait_ready(timeout_s=90)
        ready = httpx.get(f"{first.base_url}/readyz", timeout=10)
        assert ready.json()["checks"]["database"] == "ok"
        postmaster = postmaster_pid(data_dir)
        assert postmaster in postgres_pids(data_dir), "the embedded cluster does not run under the data directory"

        added = cli(data_dir, "user", "add", "e2e-admin", "--role", "admin", "--jurisdiction", "140400", "--token")
        token = added.stdout.strip().splitlines()[-1]
        assert token.startswith("fsu_")

        me = _me(first, token)
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "e2e-admin"
        assert pid_alive(postmaster), "the CLI stopped the cluster the server still uses"
        assert httpx.get(f"{first.base_url}/readyz", timeout=10).status_code == 200
        asyncio.run(_service_role_cannot_rewrite_history(data_dir))
        # the WAL writer flushes a push's WAL along the way (docs/decisions/0054)
        assert asyncio.run(_cluster_settings(data_dir)) == {"wal_writer_delay": "10ms"}

    stop_gracefully(first, signal.SIGINT)
    assert_no_postgres_left(data_dir, postmaster)

    second = ServerProcess(data_dir)
    with killed_on_failure(second):
        second.wait_ready(timeout_s=90)
        me = _me(second, token)
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "e2e-admin"
        users = httpx.get(
            f"{second.base_url}/v1/users", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()["items"]
        assert [u["username"] for u in users] == ["e2e-admin"]
        postmaster = postmaster_pid(data_dir)

    stop_gracefully(second, signal.SIGTERM)
    assert_no_postgres_left(data_dir, postmaster)


def test_cli_alone_starts_and_stops_the_embedded_cluster(data_dir: Path) -> None:
    """Without a server, a CLI command starts the cluster for itself and stops it when done."""
    cli(data_dir, "migrate")
    added = cli(data_dir, "user", "add", "e2e-insp", "--role", "inspector", "--jurisdiction", "140431", "--token")
    assert added.stdout.strip().splitlines()[-1].startswith("fsu_")
    assert postgres_pids(data_dir) == []
    assert not (data_dir / "pg" / "postmaster.pid").exists()
