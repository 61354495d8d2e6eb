"""The committed schema snapshot (src/fieldsync/db/schema.sql) is what the migrations build: a
migration that changes the schema changes the snapshot in the same commit, where a reviewer sees
the resulting tables, constraints and indexes rather than only the steps."""

from __future__ import annotations

from fieldsync.db.snapshot import SNAPSHOT, dump_schema, normalise
from tests.conftest import with_database


def test_the_migrations_build_the_committed_snapshot(pg_server_url: str, template_database: str) -> None:
    built = dump_schema(with_database(pg_server_url, template_database))
    assert built == SNAPSHOT.read_text(), (
        "the migrated schema differs from src/fieldsync/db/schema.sql: run scripts/snapshot_schema.py and commit it"
    )


def test_normalising_drops_what_does_not_come_from_the_migrations() -> None:
    dump = "-- Dumped by pg_dump 18\nSET statement_timeout = 0;\n\\restrict abc\n\nCREATE TABLE t (a int);\n"
    assert normalise(dump).splitlines()[1:] == ["CREATE TABLE t (a int);"]
