#!/usr/bin/env python3
"""Rewrite src/fieldsync/db/schema.sql from the migrations: migrate an empty database on a
scratch embedded cluster (or FIELDSYNC_TEST_DATABASE_URL's server) and dump its schema."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from fieldsync.db.migrate import migrate
from fieldsync.db.pool import connect
from fieldsync.db.snapshot import SNAPSHOT, dump_schema


async def snapshot(server: str) -> str:
    name = f"fs_snapshot_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    try:
        conn = await connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        return dump_schema(dsn)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    server = os.environ.get("FIELDSYNC_TEST_DATABASE_URL")
    root = None
    cluster = None
    if not server:
        from fieldsync.db.embedded import EmbeddedPostgres

        root = Path(tempfile.mkdtemp(prefix="fieldsync-snapshot-", dir="/tmp"))
        cluster = EmbeddedPostgres(root / "pg")
        server = cluster.dsn
    try:
        SNAPSHOT.write_text(asyncio.run(snapshot(server)))
        print(f"wrote {SNAPSHOT}")
    finally:
        if cluster is not None:
            cluster.stop()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
