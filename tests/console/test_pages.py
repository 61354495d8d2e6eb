"""The console's pages over HTTP: what each shows, to whom, in which language, and that text from
reports is escaped."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
import uuid

import pytest

from tests.console.conftest import FIVE, api_step, create, report
from tests.support import disaster_report, hazard_report

pytestmark = pytest.mark.timeout(60)


def ids_in(html: str) -> list[str]:
    return re.findall(r'<td class="title"><a href="/console/reports/([0-9a-f-]{36})">', html)


async def test_the_queue_lists_what_the_api_lists_for_each_caller(client, browsers, people, hazard):
    for name, sees in [("city", True), ("county", True), ("admin", True), ("inspector", True), ("other_county", False)]:
        page = await browsers[name].get("/console/reports")
        assert page.status_code == 200
        assert (hazard in ids_in(page.text)) is sees, name


async def test_queue_filters_take_the_api_names_and_export_links_carry_them(client, browsers, people, hazard):
    other = await create(client, people["inspector"], hazard_report(title="另一处隐患", grade="major"))
    page = await browsers["city"].get("/console/reports?kind=hazard&grade=major&jurisdiction=140431")
    assert ids_in(page.text) == [other]
    link = re.search(r'<a href="/console/export\?([^"]+)" class="export">', page.text).group(1).replace("&amp;", "&")
    assert set(urllib.parse.parse_qsl(link)) == {("kind", "hazard"), ("grade", "major"), ("jurisdiction", "140431"),
                                                 ("format", "csv")}
    export = await browsers["city"].get("/console/export?kind=hazard&grade=major&jurisdiction=140431&format=csv")
    assert export.status_code == 200 and export.content.startswith(b"\xef\xbb\xbf")
    assert other in export.text and hazard not in export.text


async def test_empty_filter_fields_are_dropped_by_one_redirect(browsers):
    response = await browsers["city"].get("/console/reports?kind=&status=submitted&q=")
    assert response.status_code == 303 and response.headers["location"] == "/console/reports?status=submitted"


@pytest.mark.parametrize("query", ["kind=bogus", "cursor=not-ours", "bbox=1,2,3", "limit=0", "overdue=maybe"])
async def test_a_malformed_filter_is_a_400_page_not_json(browsers, query):
    page = await browsers["city"].get(f"/console/reports?{query}")
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html") and "请求参数无效" in page.text


async def test_a_filter_outside_the_callers_view_is_refused_403(browsers):
    page = await browsers["county"].get("/console/reports?jurisdiction=140403")
    assert page.status_code == 403
    assert "不在您的管辖范围内" in page.text


async def test_overdue_and_listed_markers_and_filters(client, browsers, people, clock, hazard):
    await api_step(client, people["city"], hazard, "verify")
    await api_step(client, people["city"], hazard, "assign_rectification", **FIVE | {"deadline": "2026-06-01T18:00:00+08:00"})
    clock.advance(hours=4)  # past the deadline, within the session's day
    page = await browsers["city"].get("/console/reports?overdue=true")
    assert ids_in(page.text) == [hazard]
    assert 'class="marker overdue"' in page.text
    assert ids_in((await browsers["city"].get("/console/reports?overdue=false")).text) == []


async def test_keyset_pages_follow_the_next_link_without_repeats(client, browsers, people, hazard):
    for i in range(4):
        await create(client, people["inspector"], hazard_report(title=f"隐患 {i}"))
    seen: list[str] = []
    url = "/console/reports?kind=hazard&limit=2"
    while url:
        page = await browsers["city"].get(url)
        seen += ids_in(page.text)
        found = re.search(r'<a href="([^"]+)" class="next"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else ""
        assert not url or "kind=hazard" in url
    assert len(seen) == 5 and len(set(seen)) == 5


async def test_a_report_title_with_markup_shows_as_text(client, browsers, people):
    evil = await create(client, people["inspector"], hazard_report(title="<script>alert(1)</script>"))
    for path in ("/console/reports", f"/console/reports/{evil}"):
        page = await browsers["city"].get(path)
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_report_page_shows_fields_photos_timeline_and_the_allowed_actions(client, browsers, people, hazard):
    page = await browsers["city"].get(f"/console/reports/{hazard}")
    assert page.status_code == 200
    body = await report(client, people["city"], hazard)
    assert body["title"] in page.text and body["enterprise"]["credit_code"] in page.text
    sha = body["media"][0]["sha256"]
    assert f'src="/console/media/{sha}/thumbnail"' in page.text and f'href="/console/media/{sha}"' in page.text
    assert "审计记录" in page.text
    actions = set(re.findall(r'name="action" value="([a-z_]+)"', page.text))
    assert actions == {"verify", "reject", "request_info", "merge"}
    inspector = await browsers["inspector"].get(f"/console/reports/{hazard}")
    assert not re.findall(r'name="action" value="([a-z_]+)"', inspector.text)


async def test_evidence_flags_are_shown_beside_the_photo(client, browsers, people):
    from tests import images

    far = images.jpeg(width=64, height=48, seed=21, gps=(39.9, 116.4))  # Beijing, not 沁源
    response = await client.put(f"/v1/media/{images.sha256(far)}", content=far,
                                headers={**people["inspector"].headers, "Content-Type": "image/jpeg"})
    assert response.status_code == 201
    flagged = await create(client, people["inspector"],
                           hazard_report(media=[{"sha256": images.sha256(far), "role": "photo"}]))
    page = await browsers["city"].get(f"/console/reports/{flagged}")
    assert re.search(r'<span class="flag warn">拍摄地点距报告位置 [0-9.]+ 公里</span>', page.text)


@pytest.mark.parametrize("caller,status", [("city", 200), ("admin", 200), ("inspector", 200), ("other_county", 404)])
async def test_report_page_and_photos_follow_the_api_scope(client, browsers, people, hazard, caller, status):
    page = await browsers[caller].get(f"/console/reports/{hazard}")
    assert page.status_code == status
    sha = (await report(client, people["city"], hazard))["media"][0]["sha256"]
    photo = await browsers[caller].get(f"/console/media/{sha}/thumbnail")
    assert photo.status_code == status
    if status == 200:
        assert photo.headers["content-type"] == "image/jpeg"
        original = await browsers[caller].get(f"/console/media/{sha}")
        assert original.status_code == 200 and original.headers["content-disposition"].startswith("attachment")
        assert original.headers["x-content-type-options"] == "nosniff"
    else:
        assert "不存在" in page.text


async def test_an_unknown_report_is_404(browsers):
    assert (await browsers["city"].get(f"/console/reports/{uuid.uuid4()}")).status_code == 404


async def test_incident_page_shows_the_chain_and_a_missed_deadline_in_red(client, browsers, people, clock):
    incident = str(uuid.uuid4())
    observed = (clock.now() - dt.timedelta(hours=5)).isoformat()
    await create(client, people["inspector"], disaster_report(incident_id=incident, observed_at=observed, as_of=observed))
    page = await browsers["city"].get(f"/console/incidents/{incident}")
    assert page.status_code == 200
    assert '<tr class="missed">' in page.text and "已超时" in page.text
    assert (await browsers["other_county"].get(f"/console/incidents/{incident}")).status_code == 404


async def test_the_map_draws_each_report_as_a_point_linking_to_it(client, browsers, people, hazard):
    page = await browsers["city"].get("/console/map")
    assert page.status_code == 200
    assert re.search(rf'<a href="/console/reports/{hazard}"><circle cx="[0-9.]+" cy="[0-9.]+" r="5.0" fill="#1f6fd1"', page.text)
    assert "沁源县" in page.text  # the county's label
    empty = await browsers["other_county"].get("/console/map")
    assert hazard not in empty.text


async def test_the_map_draws_operator_boundaries(client, browsers, settings, app, hazard, tmp_path):
    import json

    from fieldsync.api.deps import runtime_of

    path = tmp_path / "boundaries.geojson"
    square = [[112.0, 36.2], [112.6, 36.2], [112.6, 36.8], [112.0, 36.8], [112.0, 36.2]]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"adcode": 140431, "name": "沁源县"},
         "geometry": {"type": "Polygon", "coordinates": [square]}}]}))
    runtime = runtime_of(app.state)
    runtime.settings = type(runtime.settings)(**{**{f: getattr(runtime.settings, f) for f in runtime.settings.__slots__},
                                                 "console_boundaries": path})
    page = await browsers["city"].get("/console/map")
    assert re.search(r'<path class="border" d="M[0-9.,L]+Z"/>', page.text)


async def test_stats_show_both_years_per_county_with_charts(client, browsers, people, hazard):
    page = await browsers["city"].get("/console/stats")
    assert page.status_code == 200
    assert "去年同期" in page.text and "沁源县" in page.text and "潞州区" in page.text
    assert page.text.count('<rect class="cur"') >= 12 and page.text.count('<rect class="prev"') >= 12
    refused = await browsers["county"].get("/console/stats?jurisdiction=140403")
    assert refused.status_code == 403


async def test_devices_page_issues_a_working_enrollment_code_once(client, browsers, people):
    page = await browsers["county"].get("/console/devices")
    assert page.status_code == 200 and people["inspector"].username in page.text
    issued = await browsers["county"].post("/console/devices/enrollments", {"username": people["inspector"].username})
    assert issued.status_code == 200 and issued.headers["cache-control"] == "no-store"
    code = re.search(r'<p class="code" data-code>([0-9A-Z-]+)</p>', issued.text).group(1)
    enrolled = await client.post("/v1/devices/enroll", json={"code": code, "label": "console phone"})
    assert enrolled.status_code == 201
    listed = await browsers["county"].get("/console/devices")
    device_id = enrolled.json()["device_id"]
    assert f"/console/devices/{device_id}/revoke" in listed.text
    assert (await browsers["county"].post(f"/console/devices/{device_id}/revoke", csrf=False)).status_code == 403
    assert (await browsers["other_county"].post(f"/console/devices/{device_id}/revoke")).status_code == 404
    revoked = await browsers["county"].post(f"/console/devices/{device_id}/revoke")
    assert revoked.status_code == 303
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {enrolled.json()['token']}"})
    assert me.json()["code"] == "auth.revoked"


async def test_a_collect_qr_code_enrolls_a_phone_and_is_shown_once(client, browsers, people):
    county = browsers["county"]
    refused = await county.post("/console/devices/collect", {"username": people["inspector"].username}, csrf=False)
    assert refused.status_code == 403
    shown = await county.post("/console/devices/collect", {"username": people["inspector"].username, "label": "巡查手机"})
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    assert re.search(r'<div class="qr" data-qr><svg [^>]*class="segno"><path', shown.text)
    devices = (await client.get("/v1/devices", headers=people["county"].headers)).json()["items"]
    assert [(d["label"], d["platform"]) for d in devices] == [("巡查手机", "odk-collect")]
    assert "data-qr" not in (await county.get("/console/devices")).text  # not shown again
    outside = await browsers["other_county"].post("/console/devices/collect", {"username": people["inspector"].username})
    assert outside.status_code == 303 and "error=" in outside.headers["location"]


async def test_inspectors_have_no_devices_page(browsers):
    assert (await browsers["inspector"].get("/console/devices")).status_code == 403


async def test_chinese_by_default_english_on_request_and_remembered(client, browsers):
    city = browsers["city"]
    assert "审核队列" in (await city.get("/console/reports")).text
    english = await city.get("/console/reports", headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})
    assert "Review queue" in english.text and '<html lang="en">' in english.text
    chosen = await city.get("/console/reports?lang=en")
    assert "Review queue" in chosen.text
    assert "fieldsync_lang=en" in chosen.headers["set-cookie"]
    remembered = await city.get("/console/map", headers={"Cookie": f"fieldsync_session={city.actor.token}; fieldsync_lang=en"})
    assert "Legend" in remembered.text
