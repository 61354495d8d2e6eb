"""Reference-data use cases: importing jurisdictions from CSV.

An import runs inside the caller's transaction and is all-or-nothing: a bad line refuses the
whole file and names the line. It is idempotent: codes already present are left untouched and
counted, so the same file can be imported again. Level and parent come from the code itself
(``fieldsync.domain.jurisdictions``); a row's parent must exist already or appear earlier in the
same file, and an explicit ``parent_code`` must be one of the code's possible parents.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Iterable

import asyncpg

from fieldsync import errors
from fieldsync.db import reference as q
from fieldsync.domain import jurisdictions as rules
from fieldsync.domain.principals import Principal
from fieldsync.domain.views import CategoryView, JurisdictionView

COLUMNS = ("code", "name_zh", "name_en", "parent_code")


@dataclasses.dataclass(frozen=True, slots=True)
class JurisdictionLine:
    line: int
    code: str
    name_zh: str
    name_en: str | None
    parent_code: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class ImportCounts:
    added: int
    present: int

    @property
    def total(self) -> int:
        return self.added + self.present


def parse_jurisdiction_csv(lines: Iterable[str]) -> list[JurisdictionLine]:
    """Rows of ``code,name_zh,name_en[,parent_code]``; a header row with those names is optional."""
    parsed: list[JurisdictionLine] = []
    for number, cells in enumerate(csv.reader(lines), start=1):
        cells = [cell.strip() for cell in cells]
        if not any(cells):
            continue
        if number == 1 and cells[0].lower().lstrip("\ufeff") == "code":
            if [c.lower() for c in cells] != list(COLUMNS[: len(cells)]) or len(cells) < 3:
                raise errors.InvalidInput(f"line 1: the header must be {','.join(COLUMNS)} (parent_code optional)")
            continue
        if len(cells) not in (3, 4):
            raise errors.InvalidInput(f"line {number}: expected 3 or 4 columns ({','.join(COLUMNS)}), got {len(cells)}")
        code, name_zh, name_en = cells[0].lstrip("\ufeff"), cells[1], cells[2]
        parent_code = cells[3] if len(cells) == 4 and cells[3] else None
        if not rules.is_valid_code(code):
            raise errors.InvalidInput(f"line {number}: {code!r} is not a 6 or 12 digit GB/T 2260 code", field="code")
        if not name_zh or len(name_zh) > 200 or len(name_en) > 200 or "\x00" in name_zh + name_en:
            raise errors.InvalidInput(f"line {number}: name_zh is required and names have at most 200 characters")
        if parent_code is not None and parent_code not in rules.parent_candidates(code):
            raise errors.InvalidInput(
                f"line {number}: {parent_code} cannot be the parent of {code} "
                f"(possible: {', '.join(rules.parent_candidates(code)) or 'none, it is a province'})",
                field="parent_code",
            )
        parsed.append(JurisdictionLine(number, code, name_zh, name_en or None, parent_code))
    return parsed


async def import_jurisdictions(
    conn: asyncpg.Connection,
    rows: list[JurisdictionLine],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ImportCounts:
    """Add the rows in file order; existing codes are counted, not changed."""
    added = present = 0
    for done, row in enumerate(rows, start=1):
        if await q.get_jurisdiction(conn, row.code) is not None:
            present += 1
        else:
            parent = await _parent(conn, row)
            await q.insert_jurisdiction(
                conn,
                code=row.code,
                parent_code=parent["code"] if parent else None,
                name_zh=row.name_zh,
                name_en=row.name_en,
                level=rules.level_of(row.code),
                path=rules.child_path(parent["path"] if parent else None, row.code),
            )
            added += 1
        if progress is not None:
            progress(done, len(rows))
    return ImportCounts(added=added, present=present)


async def _parent(conn: asyncpg.Connection, row: JurisdictionLine) -> asyncpg.Record | None:
    """The nearest existing parent (None for a province); a missing one refuses the import."""
    candidates = [row.parent_code] if row.parent_code else rules.parent_candidates(row.code)
    for candidate in candidates:
        parent = await q.get_jurisdiction(conn, candidate)
        if parent is not None:
            return parent
    if not candidates:
        return None
    raise errors.JurisdictionUnknown(
        f"line {row.line}: the parent of {row.code} ({' or '.join(candidates)}) neither exists nor comes "
        "earlier in the file",
        field="parent_code",
    )


async def jurisdiction_name(conn: asyncpg.Connection, code: str) -> str | None:
    """A jurisdiction's Chinese name, or None when there is no such code."""
    place = await q.get_jurisdiction(conn, code)
    return place["name_zh"] if place else None


def _place(row: asyncpg.Record) -> JurisdictionView:
    return JurisdictionView(code=row["code"], parent_code=row["parent_code"], name_zh=row["name_zh"],
                            name_en=row["name_en"], level=row["level"], path=row["path"])


async def list_jurisdictions(conn: asyncpg.Connection, actor: Principal, *, mine: bool) -> list[JurisdictionView]:
    """Every jurisdiction as a flat list with parent codes, or only the caller's subtree."""
    return [_place(row) for row in await q.list_jurisdictions(conn, under_path=actor.scope_prefix if mine else "/")]


async def get_jurisdiction(conn: asyncpg.Connection, code: str) -> JurisdictionView | None:
    row = await q.get_jurisdiction(conn, code)
    return _place(row) if row is not None else None


async def list_categories(conn: asyncpg.Connection, *, kind: str | None) -> list[CategoryView]:
    return [
        CategoryView(kind=r["kind"], code=r["code"], name_zh=r["name_zh"], name_en=r["name_en"])
        for r in await q.list_categories(conn, kind=kind)
    ]
