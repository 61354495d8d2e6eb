"""The 长治市 demo: the plan holds what SPEC §4 promises, loading it twice changes nothing, its
reports are canonical as the API would store them, and the CLI prints how to log in."""

from __future__ import annotations

import collections
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from fieldsync.__main__ import main
from fieldsync.api.reports import to_submission
from fieldsync.api.schemas.reports import ReportWrite
from fieldsync.domain.reports import ReportSubmission, is_valid_credit_code
from fieldsync.services import demo
from fieldsync.storage import FilesystemMediaStore, Spool, keys
from tests.support import MutableClock

SMALL = demo.Size(hazards_per_county=3, incidents_per_county=1, accidents_per_county=1)
CATEGORIES = {"hazard": 12}


def decode(report_id: uuid.UUID, body: dict[str, Any]) -> ReportSubmission:
    return to_submission(report_id, msgspec.convert(body, ReportWrite))


def final_status(item: demo.Item) -> str:
    status = "submitted"
    targets = {"verify": "verified", "reject": "rejected", "request_info": "needs_info", "merge": "merged",
               "assign_rectification": "rectifying", "submit_rectification": "rectified",
               "accept_rectification": "closed"}
    for step in item.steps:
        status = targets.get(step.action, status)
    return status


def test_the_full_plan_has_what_the_spec_promises() -> None:
    now = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
    items = demo.plan(now)
    assert 300 <= len(items) <= 400
    assert len({item.id for item in items}) == len(items)
    assert [item.id for item in demo.plan(now + dt.timedelta(days=30))] == [item.id for item in items]

    kinds = collections.Counter(item.body["kind"] for item in items)
    assert kinds["hazard"] >= 240 and kinds["disaster"] >= 24 and kinds["accident"] == 12
    hazards = [item for item in items if item.body["kind"] == "hazard"]
    assert len({item.body["category"] for item in hazards}) == 12  # every industry
    assert {item.body["grade"] for item in hazards} == {"general", "major"}
    assert all(is_valid_credit_code(item.body["enterprise"]["credit_code"])
               for item in items if "enterprise" in item.body)
    assert {item.county.code for item in items} == {county.code for county in demo.COUNTIES}

    statuses = collections.Counter(final_status(item) for item in items)
    assert {"submitted", "verified", "rectifying", "rectified", "closed", "rejected", "merged"} <= set(statuses)
    overdue = [item for item in hazards if final_status(item) == "rectifying"
               and next(s for s in item.steps if s.action == "assign_rectification").fields["deadline"] < now]
    assert len(overdue) >= 10
    listed = [item for item in hazards if any(s.action == "list_supervision" for s in item.steps)]
    assert len(listed) >= 2 and all(s.fields["level"] == "140400"
                                    for item in listed for s in item.steps if s.action == "list_supervision")
    for item in items:  # history happens in order, in the past, after the report was sent
        times = [item.sent_at] + [step.at for step in item.steps]
        assert times == sorted(times) and times[-1] < now

    chains = collections.defaultdict(list)
    for item in items:
        if item.body["kind"] == "disaster":
            chains[item.body["incident_id"]].append(item.body["stage"])
    assert len(chains) == 24 and all(stages[0] == "initial" and stages.count("initial") == 1 for stages in chains.values())
    assert any("final" in stages for stages in chains.values()) and any("update" in s for s in chains.values())


async def _counts(conn: asyncpg.Connection, media_root: Path) -> dict[str, Any]:
    return {
        "users": await conn.fetchval("SELECT count(*) FROM users"),
        "devices": await conn.fetchval("SELECT count(*) FROM devices"),
        "reports": dict(await conn.fetch("SELECT kind || '/' || status, count(*) FROM reports GROUP BY 1")),
        "versions": await conn.fetchval("SELECT sum(version) FROM reports"),
        "events": await conn.fetchval("SELECT count(*) FROM events"),
        "media": await conn.fetchval("SELECT count(*) FROM media"),
        "report_media": await conn.fetchval("SELECT count(*) FROM report_media"),
        "objects": sorted(p.name for p in media_root.rglob("*") if p.is_file()),
        "updated": await conn.fetchval("SELECT max(updated_at) FROM reports"),
    }


async def test_loading_twice_creates_everything_once(conn: asyncpg.Connection, tmp_path: Path,
                                                     clock: MutableClock) -> None:
    store = FilesystemMediaStore(tmp_path / "media")
    await store.ensure_root()
    spool = Spool(tmp_path / "spool")
    await spool.ensure()
    seen: list[tuple[str, int, int]] = []

    async def load(now: dt.datetime) -> demo.Summary:
        return await demo.load_demo(
            conn, store=store, spool=spool, decode=decode, now=now, max_pixels=64_000_000, size=SMALL,
            progress=lambda stage, done, total: seen.append((stage, done, total)),
        )

    first = await load(clock.now())
    items = demo.plan(clock.now(), SMALL)
    assert (first.users_created, first.devices_enrolled) == (37, 24)
    assert (first.reports_created, first.reports_present) == (len(items), 0)
    assert first.transitions == sum(len(item.steps) for item in items)
    photos = sum(len(item.photos) + sum(step.photo is not None for step in item.steps) for item in items)
    assert first.photos_stored == photos
    assert seen[-1] == ("reports", len(items), len(items)) and ("users", 37, 37) in seen

    after_first = await _counts(conn, tmp_path / "media")
    assert after_first["users"] == 37 and after_first["devices"] == 24
    assert after_first["media"] == photos and after_first["report_media"] == photos
    assert sum(after_first["reports"].values()) == len(items)
    assert after_first["versions"] == len(items) + first.transitions
    assert after_first["events"] == len(items) + first.transitions
    expected = collections.Counter(f"{item.body['kind']}/{final_status(item)}" for item in items)
    assert after_first["reports"] == dict(expected)
    assert len([o for o in after_first["objects"] if o == "original" or len(o) == 64]) >= photos

    second = await load(clock.now() + dt.timedelta(days=3))
    assert (second.users_created, second.devices_enrolled, second.reports_created, second.photos_stored) == (0, 0, 0, 0)
    assert second.reports_present == len(items)
    assert await _counts(conn, tmp_path / "media") == after_first

    # Each report is stored exactly as the API would store the same JSON from a device.
    rows = await conn.fetch("SELECT id, body, content_hash, author_id, device_id FROM reports")
    for row in rows:
        again = decode(row["id"], row["body"])
        assert again.content_hash == row["content_hash"]
        assert row["device_id"] is not None
    listed = await conn.fetchval("SELECT count(*) FROM reports WHERE listed_level = '140400'")
    overdue = await conn.fetchval(
        "SELECT count(*) FROM reports WHERE status = 'rectifying' AND rectification_deadline < $1", clock.now()
    )
    assert (listed, overdue) == (
        sum(any(s.action == "list_supervision" for s in item.steps) for item in items),
        sum(final_status(item) == "rectifying" and next(s for s in item.steps if s.action == "assign_rectification")
            .fields["deadline"] < clock.now() for item in items),
    )
    sha = await conn.fetchval("SELECT sha256 FROM media LIMIT 1")
    assert await store.exists(keys.original_key(sha))


def test_cli_loads_the_demo_and_prints_how_to_log_in(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FIELDSYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("FIELDSYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FIELDSYNC_MEDIA_URL", f"file://{tmp_path / 'media'}")
    argv = ["demo", "--hazards-per-county", "1", "--incidents-per-county", "0"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "24 reports loaded, 0 already present" in out
    assert "http://127.0.0.1:8000/v1/auth/login" in out
    assert f"Every demo user's password: {demo.DEMO_PASSWORD}" in out
    for username in ("changzhi.city", "qinyuan.sup", "qinyuan.insp1", "luzhou.insp2"):
        assert f"  {username} " in out
    assert "reports  [##############################] 24/24" in err

    assert main(argv) == 0
    out, _ = capsys.readouterr()
    assert "0 reports loaded, 24 already present; 0 users and 0 devices created" in out
