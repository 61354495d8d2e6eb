"""Near-duplicate detection through the API: it runs in the background a moment after each PUT
(candidates with reasons reach detail, list and pull within seconds), the receipt names at once
what is certain (the very same photo), a photo arriving later recomputes them, GET /duplicates
ranks them, and a supervisor's merge shows in the detail, the list, the stats and the pull.
Nothing is merged automatically."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from fieldsync.services.worker import IDLE_POLL_S
from tests import images
from tests.api.test_sync import pull_all
from tests.support import Actor, hazard_report, make_device, make_user, principal_of, settled

QINYUAN = "140431"
CREDIT = "91350100M000100Y43"


@pytest.fixture
async def people(conn, clock) -> dict[str, Actor]:
    now = clock.now()
    admin = await make_user(conn, role="admin", jurisdiction="140000", now=now)
    issuer = principal_of(admin, "/14/1404/")
    first = await make_user(conn, role="inspector", jurisdiction=QINYUAN, now=now)
    second = await make_user(conn, role="inspector", jurisdiction=QINYUAN, now=now)
    return {
        "phone_a": await make_device(conn, first, issuer, now=now),
        "phone_b": await make_device(conn, second, issuer, now=now),
        "county": await make_user(conn, role="supervisor", jurisdiction=QINYUAN, now=now),
    }


async def upload(client, actor: Actor, data: bytes) -> str:
    sha = images.sha256(data)
    response = await client.put(f"/v1/media/{sha}", content=data, headers={**actor.headers, "Content-Type": "image/jpeg"})
    assert response.status_code in (200, 201), response.text
    return sha


async def put(client, actor: Actor, body: dict[str, Any], report_id: str | None = None) -> tuple[str, dict[str, Any]]:
    report_id = report_id or str(uuid.uuid4())
    response = await client.put(f"/v1/reports/{report_id}", json=body, headers=actor.headers)
    assert response.status_code == 201, response.text
    return report_id, response.json()


def belt_report(sha: str, **overrides: Any) -> dict[str, Any]:
    return hazard_report(media=[{"sha256": sha, "role": "photo"}], **overrides)


SECOND_LOOK = {
    "title": "皮带机跑偏保护装置失灵",
    "description": "主斜井皮带机跑偏保护不起作用, 现场没有停机",
    "location": {"lat": 36.50008, "lon": 112.30006, "accuracy_m": 15.0},
    "observed_at": "2026-06-01T15:55:00+08:00",
}


def rephotographed(scene_seed: int) -> bytes:
    """The same belt photographed again: another framing, smaller, recompressed."""
    return images.encode(images.rephotographed(images.scene(scene_seed), seed=3).resize((480, 352)), quality=65)


async def candidates_within(client, actor: Actor, report_id: str, *, seconds: float) -> list[str]:
    """The report's ``possible_duplicates`` once it names any, polled without waking anything:
    the PUT itself must have set detection going."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = (await client.get(f"/v1/reports/{report_id}", headers=actor.headers)).json()["possible_duplicates"]
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_the_same_scene_sent_again_by_its_author_is_found_within_seconds_with_reasons(
    client, people, conn, clock
):
    first_photo = await upload(client, people["phone_a"], images.encode(images.scene(7), quality=90))
    first, receipt = await put(client, people["phone_a"], belt_report(first_photo))
    assert receipt["possible_duplicates"] == []
    inspector = people["phone_a"]
    admin = await make_user(conn, role="admin", jurisdiction="140000", now=clock.now())
    tablet = await make_device(conn, inspector, principal_of(admin, "/14/1404/"), now=clock.now())

    second_photo = await upload(client, tablet, rephotographed(7))
    second, receipt = await put(client, tablet, belt_report(second_photo, **SECOND_LOOK))
    # another framing of the scene is no exact signal: the receipt does not wait for the search
    assert receipt["possible_duplicates"] == []

    assert await candidates_within(client, tablet, second, seconds=IDLE_POLL_S - 1) == [first]
    [candidate] = (await client.get(f"/v1/reports/{second}/duplicates", headers=tablet.headers)).json()
    assert candidate["id"] == first and 0.5 <= candidate["score"] <= 1
    signals = {reason["signal"] for reason in candidate["reasons"]}
    assert {"similar_photo", "nearby", "same_enterprise", "similar_text"} <= signals
    assert all(reason["detail"] for reason in candidate["reasons"])
    replay = await client.put(f"/v1/reports/{second}", json=belt_report(second_photo, **SECOND_LOOK),
                              headers=tablet.headers)
    assert replay.status_code == 200 and replay.json()["possible_duplicates"] == [first]


async def test_the_very_same_photo_in_another_report_is_named_in_the_receipt_at_once(client, people, conn):
    """The exact signal needs no search: another report the sender may see holds these bytes."""
    photo = images.encode(images.scene(8), quality=90)
    first, _ = await put(client, people["phone_a"], belt_report(await upload(client, people["phone_a"], photo)))
    second, receipt = await put(client, people["phone_a"], belt_report(images.sha256(photo), **SECOND_LOOK))

    assert receipt["possible_duplicates"] == [first]
    [candidate] = receipt["duplicate_candidates"]
    assert candidate["id"] == first and "same_photo" in {reason["signal"] for reason in candidate["reasons"]}
    # the other inspector of the county holds the same bytes but may not see either report
    other, receipt = await put(client, people["phone_b"], belt_report(await upload(client, people["phone_b"], photo)))
    assert receipt["possible_duplicates"] == [] and receipt["duplicate_candidates"] == []
    await settled(conn)
    county = people["county"]
    detail = (await client.get(f"/v1/reports/{second}", headers=county.headers)).json()
    assert set(detail["possible_duplicates"]) == {first, other}


async def test_same_scene_from_two_inspectors_is_a_candidate_only_for_the_county_that_sees_both(client, people, conn):
    scene = images.scene(7)
    first_photo = await upload(client, people["phone_a"], images.encode(scene, quality=90))
    first, receipt = await put(client, people["phone_a"], belt_report(first_photo))
    assert receipt["possible_duplicates"] == []

    # the second inspector photographs the same belt; it may not see the first one's report, so
    # its receipt names nothing (SPEC §3: candidates name only reports the caller may see)
    second_photo = await upload(client, people["phone_b"], rephotographed(7))
    second, receipt = await put(client, people["phone_b"], belt_report(second_photo, **SECOND_LOOK))
    assert receipt["possible_duplicates"] == [] and receipt["duplicate_candidates"] == []
    await settled(conn)
    assert (await client.get(f"/v1/reports/{second}", headers=people["phone_b"].headers)).json()[
        "possible_duplicates"] == []

    # a different hazard at the same enterprise, same place and day: not a candidate
    other_photo = await upload(client, people["phone_a"], images.encode(images.scene(99), quality=80))
    other, receipt = await put(client, people["phone_a"], belt_report(
        other_photo, title="瓦斯监测探头未校准", description="回风巷甲烷传感器超期未标校, 数据漂移",
        location={"lat": 36.50002, "lon": 112.29998, "accuracy_m": 8.0},
    ))
    assert receipt["possible_duplicates"] == []
    await settled(conn)

    county = people["county"]
    ranked = (await client.get(f"/v1/reports/{first}/duplicates", headers=county.headers)).json()
    assert [c["id"] for c in ranked] == [second]
    assert ranked[0]["reasons"] and ranked[0]["title"] == "皮带机跑偏保护装置失灵"
    detail = (await client.get(f"/v1/reports/{first}", headers=county.headers)).json()
    assert (detail["possible_duplicates"], detail["status"]) == ([second], "submitted")  # never merged by itself
    assert (await client.get(f"/v1/reports/{other}/duplicates", headers=county.headers)).json() == []


async def test_a_photo_arriving_after_its_report_recomputes_and_is_pulled(client, people, conn):
    scene = images.scene(11)
    first_photo = await upload(client, people["phone_a"], images.encode(scene, quality=85))
    first, _ = await put(client, people["phone_a"], belt_report(
        first_photo, title="储罐区围堰破损", description="围堰东侧开裂",
    ))
    _, cursor = await pull_all(client, people["county"])

    late = images.encode(images.rephotographed(scene, seed=5), quality=70)
    # the report comes first, in words of its own and under another company name; the photo is
    # still on the phone, so nothing yet says it is the same thing
    second, receipt = await put(client, people["phone_b"], belt_report(
        images.sha256(late), title="罐区防火堤有裂缝", description="",
        enterprise={"name": "某煤业公司", "credit_code": "91140400MA0L8XKX75"},
        location={"lat": 36.5004, "lon": 112.3004, "accuracy_m": 30.0},
    ))
    assert receipt["missing_media"] == [images.sha256(late)] and receipt["possible_duplicates"] == []
    await settled(conn)
    _, cursor = await pull_all(client, people["county"], cursor)

    await upload(client, people["phone_b"], late)
    await settled(conn)
    detail = (await client.get(f"/v1/reports/{second}", headers=people["county"].headers)).json()
    assert detail["possible_duplicates"] == [first]
    changes, _ = await pull_all(client, people["county"], cursor)
    pulled = {change["id"]: change for change in changes}
    assert pulled[second]["possible_duplicates"] == [first]
    assert pulled[first]["possible_duplicates"] == [second]


async def test_merge_shows_in_detail_list_stats_and_pull(client, people, conn):
    scene = images.scene(21)
    survivor, _ = await put(client, people["phone_a"], belt_report(
        await upload(client, people["phone_a"], images.encode(scene))))
    twin_photo = await upload(client, people["phone_b"], images.encode(images.rephotographed(scene, seed=1), quality=70))
    twin, _ = await put(client, people["phone_b"], belt_report(twin_photo, title="皮带机保护装置失效"))
    await settled(conn)
    county, phone_b = people["county"], people["phone_b"]
    candidates = (await client.get(f"/v1/reports/{twin}", headers=county.headers)).json()["possible_duplicates"]
    assert candidates == [survivor]
    comment = await client.post(f"/v1/reports/{twin}/comments", json={"body": "现场已拍照"}, headers=phone_b.headers)
    assert comment.status_code == 201, comment.text
    _, device_cursor = await pull_all(client, phone_b)
    _, county_cursor = await pull_all(client, county)
    before = (await client.get("/v1/stats", headers=county.headers)).json()

    merged = await client.post(f"/v1/reports/{twin}/transitions",
                               json={"action": "merge", "version": 1, "into": survivor}, headers=county.headers)
    assert merged.status_code == 200, merged.text
    assert (merged.json()["status"], merged.json()["duplicate_of"]) == ("merged", survivor)

    detail = (await client.get(f"/v1/reports/{survivor}", headers=county.headers)).json()
    assert detail["merged_from"] == [twin]
    assert [m["sha256"] for m in detail["merged_media"]] == [twin_photo]
    assert detail["possible_duplicates"] == []  # the candidate is settled
    comments = (await client.get(f"/v1/reports/{survivor}/comments", headers=county.headers)).json()
    assert [(c["report_id"], c["body"]) for c in comments] == [(twin, "现场已拍照")]

    listed = (await client.get("/v1/reports", params={"jurisdiction": QINYUAN}, headers=county.headers)).json()
    statuses = {item["id"]: item["status"] for item in listed["items"]}
    assert statuses == {survivor: "submitted", twin: "merged"}
    after = (await client.get("/v1/stats", headers=county.headers)).json()
    assert after["current"]["reports"] == before["current"]["reports"] - 1 == 1

    device_changes, _ = await pull_all(client, phone_b, device_cursor)
    assert [(c["id"], c["status"], c["duplicate_of"]) for c in device_changes] == [(twin, "merged", survivor)]
    county_changes, _ = await pull_all(client, county, county_cursor)
    by_id = {c["id"]: c for c in county_changes}
    assert by_id[survivor]["merged_from"] == [twin] and by_id[twin]["status"] == "merged"


async def test_many_devices_reporting_one_hazard_at_once_do_not_deadlock(client, conn, clock):
    """Eight inspectors send the same hazard three times each, all at once: every PUT succeeds."""
    import asyncio
    import uuid as uuid_module

    from tests.support import hazard_report, make_user

    inspectors = [await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now()) for _ in range(8)]
    calls = [
        client.put(f"/v1/reports/{uuid_module.uuid4()}", json=hazard_report(), headers=inspector.headers)
        for inspector in inspectors
        for _ in range(3)
    ]
    responses = await asyncio.gather(*calls)
    assert sorted(r.status_code for r in responses) == [201] * 24, [r.text for r in responses if r.status_code != 201]


async def test_photos_stored_before_fingerprints_existed_are_fingerprinted_in_the_background(
    client, people, app, conn, clock
):
    """Migration 0009 queues a fingerprint job for each photo stored before it; the worker probes
    the stored original and finds the duplicates those photos reveal. Reports whose candidates do
    not change are not sent to devices again; an original that cannot be decoded is given up on."""
    import asyncio

    from fieldsync.services.media import FINGERPRINT_JOB
    from fieldsync.storage import keys

    scene = images.scene(31)
    first_photo = await upload(client, people["phone_a"], images.encode(scene, quality=88))
    first, _ = await put(client, people["phone_a"], belt_report(first_photo, title="储罐区围堰破损", description=""))
    second_photo = await upload(client, people["phone_b"], images.encode(images.rephotographed(scene, seed=2), quality=66))
    second, _ = await put(client, people["phone_b"], belt_report(second_photo, title="罐区防火堤有裂缝", description=""))
    other_photo = await upload(client, people["phone_a"], images.encode(images.scene(77)))
    other, _ = await put(client, people["phone_a"], belt_report(
        other_photo, location={"lat": 36.9, "lon": 112.9, "accuracy_m": 10.0}))
    await settled(conn)
    county = people["county"]
    assert (await client.get(f"/v1/reports/{second}", headers=county.headers)).json()["possible_duplicates"] == [first]

    # the state of a database upgraded from before 0009: no fingerprints, no pairs found by them
    await conn.execute("UPDATE media SET dhash = NULL, thumbprint = NULL")
    await conn.execute("DELETE FROM report_duplicates")
    assert (await client.get(f"/v1/reports/{second}", headers=county.headers)).json()["possible_duplicates"] == []
    _, cursor = await pull_all(client, county)
    runtime = app.state.runtime
    broken = "0f" * 32
    await runtime.media.put_bytes(keys.original_key(broken), b"\xff\xd8\xff not really a jpeg", content_type="image/jpeg")
    await conn.execute("""INSERT INTO media (sha256, bytes, content_type, width, height, created_at)
                          VALUES ($1, 20, 'image/jpeg', 10, 10, now())""", broken)
    await conn.execute(
        """INSERT INTO jobs (kind, key, run_after, created_at)
           SELECT $1, sha256, $2, $2 FROM media WHERE thumbprint IS NULL""",
        FINGERPRINT_JOB, clock.now(),
    )
    runtime.wake_workers()
    for _ in range(200):
        if not await conn.fetchval("SELECT count(*) FROM jobs WHERE kind = $1", FINGERPRINT_JOB):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the fingerprint jobs were not run")

    assert await conn.fetchval("SELECT count(*) FROM media WHERE thumbprint IS NOT NULL AND dhash IS NOT NULL") == 3
    assert await conn.fetchval("SELECT thumbprint FROM media WHERE sha256 = $1", broken) is None
    detail = (await client.get(f"/v1/reports/{second}", headers=county.headers)).json()
    assert detail["possible_duplicates"] == [first]
    changes, _ = await pull_all(client, county, cursor)
    assert {c["id"] for c in changes} == {first, second}  # `other` gained nothing and is not sent again
    assert other not in {c["id"] for c in changes}


async def test_a_fingerprint_job_whose_original_cannot_be_read_is_retried_later(client, app, conn, clock):
    """The store may be down or the object gone: the job stays, with the error, due again after a
    backoff, instead of being lost or spinning."""
    import asyncio
    import datetime as dt

    from fieldsync.services.media import FINGERPRINT_JOB

    sha = "1e" * 32  # a row without its object in the store
    await conn.execute("""INSERT INTO media (sha256, bytes, content_type, width, height, created_at)
                          VALUES ($1, 20, 'image/jpeg', 10, 10, now())""", sha)
    await conn.execute("INSERT INTO jobs (kind, key, run_after, created_at) VALUES ($1, $2, $3, $3)",
                       FINGERPRINT_JOB, sha, clock.now())
    app.state.runtime.wake_workers()
    for _ in range(200):
        job = await conn.fetchrow("SELECT attempts, run_after, last_error FROM jobs WHERE key = $1", sha)
        if job["attempts"]:
            break
        await asyncio.sleep(0.05)
    assert job["attempts"] == 1 and job["last_error"]
    assert job["run_after"] == clock.now() + dt.timedelta(seconds=30)


async def test_a_dense_cell_keeps_the_best_ten_candidates_of_a_report_each_with_its_reasons(client, people, conn, clock):
    """Fourteen reports of one enterprise within an hour, placed in another order than their times:
    for one in the middle, the search finds more candidates than are kept (the nearest in time on
    each side and the nearest in space: twelve here) and detection keeps the ten that score best,
    each explained as a scoring with reasons would."""
    from fieldsync.domain import duplicates as rules
    from fieldsync.services import duplicates as service

    ids = []
    for minute in range(14):
        report_id, _ = await put(client, people["phone_a"], hazard_report(
            observed_at=f"2026-06-01T15:{10 + minute * 3:02d}:00+08:00",
            location={"lat": 36.5 + (minute * 5 % 14) * 0.00002, "lon": 112.3, "accuracy_m": 8.0},
        ))
        ids.append(uuid.UUID(report_id))
    await settled(conn)
    middle = ids[7]

    everything = (await service.score_candidates(conn, [middle], explain=True))[middle]
    kept = (await service.detect(conn, [middle], now=clock.now()))[middle]

    assert len([c for c in everything if c.score >= rules.THRESHOLD]) > rules.CANDIDATES_KEPT
    assert len(kept) == rules.CANDIDATES_KEPT == 10
    assert [(c.id, c.score, c.reasons) for c in kept] == [(c.id, c.score, c.reasons) for c in everything[:10]]
    assert all({"nearby", "same_enterprise"} <= {r["signal"] for r in c.reasons} for c in kept)


async def test_in_a_busy_enterprise_the_report_nearest_in_time_is_searched_first(client, people, conn, clock):
    """Fifty other hazards of one mine, at the same spot, over the days before; then a report and,
    ten minutes later, the same hazard from another phone. Every signal's search is capped, and a
    cap that took an arbitrary slice of the mine's reports would often miss the one that matters."""
    from fieldsync.domain import duplicates as rules
    from fieldsync.services import duplicates as service

    assert 50 > 2 * rules.CANDIDATES_NEAREST + rules.CANDIDATES_PER_SIGNAL
    for hour in range(50, 0, -1):
        await put(client, people["phone_a"], hazard_report(
            title=f"第{hour}号隐患 通风设施损坏", description=f"{hour}号巷道风门关闭不严",
            observed_at=f"2026-05-{30 - hour // 24:02d}T{23 - hour % 24:02d}:00:00+08:00"))
    original, _ = await put(client, people["phone_a"], hazard_report(observed_at="2026-06-01T15:30:00+08:00"))
    again, _ = await put(client, people["phone_b"], hazard_report(observed_at="2026-06-01T15:40:00+08:00"))
    await settled(conn)

    found = (await service.score_candidates(conn, [uuid.UUID(again)]))[uuid.UUID(again)]
    assert found[0].id == uuid.UUID(original) and found[0].score >= rules.THRESHOLD
    assert len(found) <= 2 * rules.CANDIDATES_NEAREST + rules.CANDIDATES_PER_SIGNAL
    listed = (await client.get(f"/v1/reports/{again}/duplicates", headers=people["county"].headers)).json()
    assert listed[0]["id"] == original


async def test_a_pair_another_report_keeps_survives_a_search_that_ranks_it_below_ten(client, people, conn, clock):
    """X keeps N as a candidate. Then eleven reports closer still to N arrive, before and after it
    in time, and N is searched again (its photo came, or it was revised): N's own ten are among
    those eleven, yet X's pair with N stays, rescored, on both sides."""
    from fieldsync.domain import duplicates as rules
    from fieldsync.services import duplicates as service

    x, _ = await put(client, people["phone_a"], hazard_report(
        description="主斜井皮带机跑偏开关损坏, 已安排检修", observed_at="2026-06-01T15:00:00+08:00"))
    n, _ = await put(client, people["phone_b"], hazard_report(observed_at="2026-06-01T15:30:00+08:00"))
    await settled(conn)
    await conn.execute("DELETE FROM report_duplicates")
    await service.detect(conn, [uuid.UUID(x)], now=clock.now())
    [owned] = await conn.fetch("SELECT report_id, candidate_id, score FROM report_duplicates")
    assert (str(owned["report_id"]), str(owned["candidate_id"])) == (x, n)
    await service.detect(conn, [uuid.UUID(n)], now=clock.now())  # N keeps X too: the pair stays X's
    [owned] = await conn.fetch("SELECT report_id, candidate_id, score FROM report_duplicates")
    assert (str(owned["report_id"]), str(owned["candidate_id"])) == (x, n)
    for minute in [*range(25, 30), *range(31, 37)]:
        await put(client, people["phone_b"], hazard_report(observed_at=f"2026-06-01T15:{minute}:00+08:00"))
    await settled(conn)

    kept = (await service.detect(conn, [uuid.UUID(n)], now=clock.now()))[uuid.UUID(n)]

    assert len(kept) == rules.CANDIDATES_KEPT and uuid.UUID(x) not in {c.id for c in kept}
    row = await conn.fetchrow("SELECT score FROM report_duplicates WHERE report_id = $1 AND candidate_id = $2",
                              uuid.UUID(x), uuid.UUID(n))
    assert row is not None and row["score"] >= rules.THRESHOLD, "the pair X keeps was dropped by N's search"
    both = [(await client.get(f"/v1/reports/{r}", headers=people["county"].headers)).json()["possible_duplicates"]
            for r in (x, n)]
    assert n in both[0] and x in both[1]

