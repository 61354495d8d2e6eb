"""The embedded cluster's settings (``db.embedded.SETTINGS``, docs/decisions/0054) only tune it:
a cluster that refuses them still serves, with a warning that names them."""

from __future__ import annotations

import uuid

import structlog

from fieldsync.db.embedded import SETTINGS, apply_settings


async def test_settings_the_cluster_refuses_are_a_warning_not_a_failed_start(conn) -> None:
    role = f"fs_probe_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE ROLE {role} NOLOGIN")  # no right to ALTER SYSTEM
    before = {name: await conn.fetchval("SELECT current_setting($1)", name) for name in SETTINGS}
    await conn.execute(f"SET ROLE {role}")
    try:
        with structlog.testing.capture_logs() as logs:  # a value the cluster does not have yet
            await apply_settings(conn, {"wal_writer_delay": "11ms"})
    finally:
        await conn.execute("RESET ROLE")
        await conn.execute(f"DROP ROLE {role}")

    [warning] = [entry for entry in logs if entry["event"] == "embedded_settings_not_applied"]
    assert warning["settings"] == {"wal_writer_delay": "11ms"}
    assert "permission denied" in warning["reason"]
    assert {name: await conn.fetchval("SELECT current_setting($1)", name) for name in SETTINGS} == before
