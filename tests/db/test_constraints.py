"""Every constraint of the migrated schema is translated into a catalogue error (never a 500)."""

from __future__ import annotations

import asyncpg
import pytest

from fieldsync import errors
from fieldsync.db import constraints
from fieldsync.db.constraints import BY_INPUT, BY_RACE, BY_STATE
from fieldsync.db.transactions import transaction


async def schema_constraints(conn: asyncpg.Connection) -> set[str]:
    """Names of every check, foreign key, primary key, unique and exclusion constraint, and of every
    unique index that no constraint owns (a violation reports the index's name)."""
    rows = await conn.fetch(
        """
        SELECT conname AS name FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = 'public' AND c.contype IN ('c', 'f', 'p', 'u', 'x')
        UNION
        SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_namespace n ON n.oid = i.relnamespace
        WHERE n.nspname = 'public' AND x.indisunique
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        """
    )
    return {row["name"] for row in rows}


async def test_every_constraint_of_the_schema_has_exactly_one_translation(conn: asyncpg.Connection) -> None:
    names = await schema_constraints(conn)
    sets = {"BY_INPUT": set(BY_INPUT), "BY_RACE": set(BY_RACE), "BY_STATE": set(BY_STATE)}
    unmapped = names - set().union(*sets.values())
    assert not unmapped, f"add these constraints to fieldsync.db.constraints: {sorted(unmapped)}"
    stale = set().union(*sets.values()) - names
    assert not stale, f"fieldsync.db.constraints names constraints the schema does not have: {sorted(stale)}"
    for first, second in (("BY_INPUT", "BY_RACE"), ("BY_INPUT", "BY_STATE"), ("BY_RACE", "BY_STATE")):
        assert not sets[first] & sets[second], f"{first} and {second} share {sets[first] & sets[second]}"


@pytest.mark.parametrize("name", sorted(BY_INPUT))
def test_an_input_constraint_is_a_client_error(name: str) -> None:
    error = BY_INPUT[name]()
    assert isinstance(error, errors.FieldsyncError)
    assert not isinstance(error, errors.Unavailable)


async def test_a_check_violation_inside_a_transaction_becomes_its_catalogue_error(conn: asyncpg.Connection) -> None:
    with pytest.raises(errors.InvalidInput) as raised:
        async with transaction(conn):
            await conn.execute("INSERT INTO jurisdictions (code, name_zh, name_en, level, path) "
                               "VALUES ('14043', 'x', 'x', 'county', '/14043/')")
    assert raised.value.extra["field"] == "code"


async def test_a_key_taken_by_a_concurrent_writer_asks_for_a_retry(conn: asyncpg.Connection) -> None:
    with pytest.raises(errors.ConcurrentChange):
        async with transaction(conn):
            await conn.execute("INSERT INTO jobs (kind, key, run_after, created_at) VALUES ('k', 'a', now(), now())")
            await conn.execute("INSERT INTO jobs (kind, key, run_after, created_at) VALUES ('k', 'a', now(), now())")


def test_a_broken_server_side_rule_is_refused_as_unprocessable() -> None:
    exc = asyncpg.CheckViolationError("new row violates check constraint")
    exc.constraint_name = "reports_version_check"  # type: ignore[attr-defined]
    assert isinstance(constraints.translate(exc), errors.RuleViolated)
