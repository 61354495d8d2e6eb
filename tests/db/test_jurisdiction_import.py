"""Importing jurisdictions from CSV: the service on a real database, and the CLI end to end."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from fieldsync import errors
from fieldsync.db.transactions import transaction
from fieldsync.services import reference

QINYUAN_TOWNS = """code,name_zh,name_en,parent_code
140431100000,沁河镇,Qinhe,140431
140431101000,郭道镇,Guodao,
140431102000,灵空山镇,Lingkongshan,140431
"""


def _rows(text: str) -> list[reference.JurisdictionLine]:
    return reference.parse_jurisdiction_csv(io.StringIO(text))


async def _import(conn: asyncpg.Connection, text: str) -> reference.ImportCounts:
    async with transaction(conn):
        return await reference.import_jurisdictions(conn, _rows(text))


async def _place(conn: asyncpg.Connection, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT code, parent_code, name_zh, name_en, level, path FROM jurisdictions WHERE code = $1", code)


async def test_townships_are_added_with_derived_level_parent_and_path(conn: asyncpg.Connection) -> None:
    counts = await _import(conn, QINYUAN_TOWNS)

    assert (counts.added, counts.present) == (3, 0)
    town = await _place(conn, "140431101000")
    assert dict(town) == {
        "code": "140431101000",
        "parent_code": "140431",
        "name_zh": "郭道镇",
        "name_en": "Guodao",
        "level": "township",
        "path": "/140000/140400/140431/140431101000/",
    }


async def test_importing_the_same_file_again_adds_nothing(conn: asyncpg.Connection) -> None:
    await _import(conn, QINYUAN_TOWNS)
    before = await conn.fetch("SELECT * FROM jurisdictions ORDER BY code")

    counts = await _import(conn, QINYUAN_TOWNS)

    assert (counts.added, counts.present) == (0, 3)
    assert await conn.fetch("SELECT * FROM jurisdictions ORDER BY code") == before


async def test_existing_codes_are_left_untouched(conn: asyncpg.Connection) -> None:
    counts = await _import(conn, "140431,别的名字,Other\n")
    assert (counts.added, counts.present) == (0, 1)
    assert (await _place(conn, "140431"))["name_zh"] == "沁源县"


async def test_parent_may_come_earlier_in_the_same_file(conn: asyncpg.Connection) -> None:
    text = "130100,石家庄市,Shijiazhuang\n130102,长安区,Chang'an\n130102001000,建北街道,Jianbei,130102\n"
    counts = await _import(conn, text)

    assert counts.added == 3
    assert (await _place(conn, "130102"))["path"] == "/130000/130100/130102/"
    assert (await _place(conn, "130102001000"))["level"] == "township"


async def test_municipal_district_without_a_city_level_hangs_under_the_province(conn: asyncpg.Connection) -> None:
    await _import(conn, "110101,东城区,Dongcheng\n")
    district = await _place(conn, "110101")
    assert (district["parent_code"], district["level"], district["path"]) == ("110000", "county", "/110000/110101/")


async def test_missing_parent_refuses_the_whole_file_naming_the_line(conn: asyncpg.Connection) -> None:
    before = await conn.fetchval("SELECT count(*) FROM jurisdictions")
    text = "140431103000,韩洪乡,Hanhong\n999901,无名县,Nowhere\n"

    with pytest.raises(errors.JurisdictionUnknown, match="line 2"):
        await _import(conn, text)

    assert await conn.fetchval("SELECT count(*) FROM jurisdictions") == before


async def test_county_never_skips_a_missing_city_of_an_ordinary_province(conn: asyncpg.Connection) -> None:
    """唐山市 comes later in the file: 路南区 must not silently hang under 河北省 instead."""
    with pytest.raises(errors.JurisdictionUnknown, match="line 1"):
        await _import(conn, "130202,路南区,Lunan\n130200,唐山市,Tangshan\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("14043,短码,Short\n", "line 1"),
        ("140431100000,沁河镇\n", "line 1: expected 3 or 4 columns"),
        ("140431100000,,Qinhe\n", "name_zh is required"),
        ("140431100000,沁河镇,Qinhe,140400\n", "cannot be the parent"),
        ("140000,山西省,Shanxi,110000\n", "cannot be the parent"),
        ("code,name,english\n", "header"),
        ("140431100000,沁河镇,Qinhe\n14043110100X,郭道镇,Guodao\n", "line 2"),
    ],
)
def test_malformed_lines_are_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(errors.InvalidInput, match=message):
        _rows(text)


def test_header_and_blank_lines_are_optional() -> None:
    bare = _rows("140431100000,沁河镇,Qinhe\n\n")
    with_header = _rows("code,name_zh,name_en\n140431100000,沁河镇,Qinhe\n")
    assert [(r.code, r.name_zh, r.name_en, r.parent_code) for r in bare] == [
        (r.code, r.name_zh, r.name_en, r.parent_code) for r in with_header
    ]
    assert _rows(QINYUAN_TOWNS)[1].line == 3


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
    env["FIELDSYNC_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "fieldsync", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_imports_a_utf8_bom_file_and_is_rerunnable(database_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "towns.csv"
    csv_file.write_bytes("\ufeff".encode() + QINYUAN_TOWNS.encode())

    first = _cli("jurisdictions", "import", str(csv_file), database_url=database_url)
    assert first.returncode == 0, first.stderr
    assert "added 3 jurisdictions, 0 already present" in first.stdout
    assert "3/3" in first.stderr

    second = _cli("jurisdictions", "import", str(csv_file), database_url=database_url)
    assert second.returncode == 0, second.stderr
    assert "added 0 jurisdictions, 3 already present" in second.stdout


def test_cli_refuses_a_bad_file_with_the_line_and_a_nonzero_status(database_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("140431100000,沁河镇,Qinhe\n999901,无名县,Nowhere\n", encoding="utf-8")

    result = _cli("jurisdictions", "import", str(csv_file), database_url=database_url)

    assert result.returncode == 1
    assert "line 2" in result.stderr and "jurisdiction.unknown" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_reports_an_unreadable_file(database_url: str, tmp_path: Path) -> None:
    result = _cli("jurisdictions", "import", str(tmp_path / "missing.csv"), database_url=database_url)
    assert result.returncode == 2
    assert "cannot read" in result.stderr
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("140431100000,Qinh\xe9,Qinhe\n".encode("latin-1"))
    result = _cli("jurisdictions", "import", str(latin1), database_url=database_url)
    assert result.returncode == 2
    assert "not UTF-8" in result.stderr
