"""Each published form, filled generically (its primary instance, binds and choices) and sent the
way Collect sends it with two photos, becomes a report that reads exactly like a JSON-API one:
in ``GET /v1/reports/{id}``, the device's pull feed and the supervisor's review list, with the
photos byte-identical. Budget: about 6 s for the file.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests import images
from tests.openrosa.collect import fill_form, instance_id, message
from tests.openrosa.conftest import Phone

PHOTO_ROLE = {"fieldsync_hazard": "before", "fieldsync_disaster": "photo", "fieldsync_accident": "photo"}


def expected_json(form_id: str, values: dict[str, str], photos: list[tuple[str, bytes]]) -> dict[str, Any]:
    """The JSON report a JSON-API client would PUT for the same answers (written out by hand)."""
    lat, lon, alt, acc = (float(x) for x in values["/data/location"].split())
    body: dict[str, Any] = {
        "kind": form_id.removeprefix("fieldsync_"),
        "category": values["/data/category"],
        "title": values["/data/title"],
        "description": values["/data/description"],
        "jurisdiction": values["/data/jurisdiction"],
        "location": {"lat": lat, "lon": lon, "accuracy_m": acc, "altitude_m": alt, "address": values["/data/address"]},
        "observed_at": values["/data/observed_at"],
        "severity": values["/data/severity"],
        "media": [{"sha256": images.sha256(data), "role": PHOTO_ROLE[form_id], "caption": f"说明 {name}"}
                  for name, data in photos],
    }
    common = set(body) | {"address"}
    for path, value in values.items():
        parts = path.removeprefix("/data/").split("/")
        if parts[0] in common:
            continue
        node = body
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = float(value) if parts[-1] in {"crop_area_ha", "direct_loss_cny"} else (
            int(value) if parts[-1] in {"deaths", "missing", "injured", "affected_people", "evacuated_people",
                                        "houses_collapsed", "houses_damaged"} else value)
    return body


@pytest.mark.parametrize("form_id", ["fieldsync_hazard", "fieldsync_disaster", "fieldsync_accident"])
async def test_filled_form_becomes_a_report_like_a_json_api_one(
    client: httpx.AsyncClient, phone: Phone, form_id: str
) -> None:
    forms = {form["formID"]: form for form in await phone.collect.form_list()}
    assert set(forms) == set(PHOTO_ROLE)
    xform = await phone.collect.download(forms[form_id]["downloadUrl"])
    photos = [(f"1780{n}.jpg", images.jpeg(width=320, height=240, seed=n + len(form_id))) for n in (1, 2)]
    filled = fill_form(xform, [name for name, _ in photos])

    answers = await phone.collect.submit(filled.xml, photos)
    assert [a.status_code for a in answers] == [201], [a.text for a in answers]
    assert "version 1" in message(answers[0])
    report_id = instance_id(filled.xml)

    detail = await client.get(f"/v1/reports/{report_id}", headers=phone.bearer)
    assert detail.status_code == 200, detail.text
    report = detail.json()
    assert report["device_id"] == phone.device["device_id"] and report["missing_media"] == []
    assert [m["present"] for m in report["media"]] == [True, True]
    for (_, data), item in zip(photos, report["media"], strict=True):
        original = await client.get(item["url"], headers=phone.bearer)
        assert original.content == data

    # exactly what PUT /v1/reports/{id} would have made: the same content is a replay of it
    replay = await client.put(f"/v1/reports/{report_id}", json=expected_json(form_id, filled.values, photos),
                              headers=phone.bearer)
    assert replay.status_code == 200, replay.text
    assert replay.json()["duplicate"] is True and replay.json()["version"] == 1

    pulled = await client.get("/v1/sync/pull", headers=phone.bearer)
    assert str(report_id) in {change["id"] for change in pulled.json()["changes"]}
    listed = await client.get("/v1/reports", params={"kind": report["kind"]}, headers=phone.supervisor.headers)
    assert [item["id"] for item in listed.json()["items"]] == [str(report_id)]


async def test_the_replay_check_notices_a_different_report(client: httpx.AsyncClient, phone: Phone) -> None:
    """The comparison above can fail: other content under the same id is a conflict, not a replay."""
    forms = {form["formID"]: form for form in await phone.collect.form_list()}
    filled = fill_form(await phone.collect.download(forms["fieldsync_hazard"]["downloadUrl"]), [])
    assert [a.status_code for a in await phone.collect.submit(filled.xml, [])] == [201]
    body = expected_json("fieldsync_hazard", filled.values, [])
    body["title"] = "另一个标题"
    response = await client.put(f"/v1/reports/{instance_id(filled.xml)}", json=body, headers=phone.bearer)
    assert response.status_code == 409
    assert uuid.UUID(response.json()["instance"].rsplit("/", 1)[-1]) == instance_id(filled.xml)
