"""Actions from the console: POST /console/reports/{id}/transitions and comments, through the
workflow service — 303 back to the report, CSRF required, a stale version changes nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.console.conftest import FIVE, api_step, create, form_csrf, report, upload_photo
from tests.support import hazard_report, settled

pytestmark = pytest.mark.timeout(60)


async def transition(browser, report_id: str, action: str, version: int, **fields: Any):
    return await browser.post(f"/console/reports/{report_id}/transitions", {"action": action, "version": version, **fields})


async def test_verify_from_the_page_form_applies_and_redirects_back(client, browsers, people, hazard):
    city = browsers["city"]
    page = await city.get(f"/console/reports/{hazard}")
    assert 'value="verify"' in page.text
    form = {"csrf_token": form_csrf(page.text), "action": "verify", "version": "1", "note": "现场核实"}
    response = await client.post(f"/console/reports/{hazard}/transitions", data=form, headers=city._headers())
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/reports/{hazard}?done=verify"
    after = await report(client, people["city"], hazard)
    assert (after["status"], after["version"]) == ("verified", 2)
    shown = await city.get(response.headers["location"])
    assert "已执行：核实" in shown.text


@pytest.mark.parametrize("token", [None, "wrong"])
async def test_a_transition_without_a_valid_csrf_token_is_403_and_changes_nothing(client, browsers, people, hazard, token):
    city = browsers["city"]
    form = {"action": "verify", "version": "1"} | ({"csrf_token": token} if token else {})
    response = await client.post(f"/console/reports/{hazard}/transitions", data=form, headers=city._headers())
    assert response.status_code == 403
    assert (await report(client, people["city"], hazard))["status"] == "submitted"


async def test_a_stale_version_changes_nothing_and_says_so(client, browsers, people, hazard):
    await api_step(client, people["county"], hazard, "verify")
    response = await transition(browsers["city"], hazard, "reject", 1)
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/reports/{hazard}?stale=2"
    assert (await report(client, people["city"], hazard))["status"] == "verified"
    page = await browsers["city"].get(response.headers["location"])
    assert "当前版本 2" in page.text and "操作未执行" in page.text


async def test_outside_the_callers_view_a_transition_is_404_and_changes_nothing(client, browsers, people, hazard):
    response = await transition(browsers["other_county"], hazard, "verify", 1)
    assert response.status_code == 404
    assert (await report(client, people["city"], hazard))["status"] == "submitted"


async def test_an_inspector_may_not_verify_and_the_page_says_why(client, browsers, people, hazard):
    response = await transition(browsers["inspector"], hazard, "verify", 1)
    assert response.headers["location"] == f"/console/reports/{hazard}?error=auth.forbidden"
    assert (await report(client, people["city"], hazard))["status"] == "submitted"
    page = await browsers["inspector"].get(response.headers["location"])
    assert "您的角色无权执行此操作" in page.text


async def test_assign_rectification_takes_the_five_implementations(client, browsers, people, hazard):
    await api_step(client, people["city"], hazard, "verify")
    page = await browsers["county"].get(f"/console/reports/{hazard}")
    for name in ("responsible_person", "measures", "funds_cny", "deadline", "contingency_plan"):
        assert f'name="{name}"' in page.text
    response = await transition(browsers["county"], hazard, "assign_rectification", 2, **FIVE)
    assert response.headers["location"].endswith("?done=assign_rectification")
    body = await report(client, people["city"], hazard)
    plan = body["workflow"]["rectification"]
    assert body["status"] == "rectifying"
    assert plan["responsible_person"] == "张三" and plan["funds_cny"] == 50000
    assert plan["deadline"] == "2026-07-01T12:00:00+08:00"  # the form's local time is China Standard Time


async def test_a_missing_implementation_is_refused_with_the_field_named(client, browsers, people, hazard):
    await api_step(client, people["city"], hazard, "verify")
    fields = {k: v for k, v in FIVE.items() if k != "measures"}
    response = await transition(browsers["county"], hazard, "assign_rectification", 2, **fields)
    assert "error=request.invalid" in response.headers["location"] and "field=measures" in response.headers["location"]
    assert (await report(client, people["city"], hazard))["status"] == "verified"
    page = await browsers["county"].get(response.headers["location"])
    assert "整改措施" in page.text


async def test_accepting_a_rectification_closes_the_hazard(client, browsers, people, hazard):
    await api_step(client, people["city"], hazard, "verify")
    await api_step(client, people["city"], hazard, "assign_rectification", **FIVE | {"deadline": "2026-07-01T12:00:00+08:00", "funds_cny": 1})
    after = await upload_photo(client, people["inspector"], seed=11)
    await api_step(client, people["inspector"], hazard, "submit_rectification", media=[{"sha256": after, "role": "after"}])
    page = await browsers["county"].get(f"/console/reports/{hazard}")
    assert 'value="accept_rectification"' in page.text and "整改前后对比" in page.text
    response = await transition(browsers["county"], hazard, "accept_rectification", 4)
    assert response.headers["location"].endswith("?done=accept_rectification")
    assert (await report(client, people["city"], hazard))["status"] == "closed"


async def test_submit_rectification_from_the_console_stores_the_after_photo(client, browsers, people, hazard):
    from tests import images

    await api_step(client, people["city"], hazard, "verify")
    await api_step(client, people["city"], hazard, "assign_rectification", **FIVE | {"deadline": "2026-07-01T12:00:00+08:00"})
    photo = images.jpeg(width=80, height=60, seed=77)
    city = browsers["city"]
    response = await client.post(
        f"/console/reports/{hazard}/transitions",
        data={"csrf_token": city.csrf, "action": "submit_rectification", "version": "3", "note": "已整改"},
        files={"after_photo": ("after.jpg", photo, "image/jpeg")}, headers=city._headers(),
    )
    assert response.headers["location"].endswith("?done=submit_rectification")
    body = await report(client, people["city"], hazard)
    assert body["status"] == "rectified"
    assert any(m["role"] == "after" and m["sha256"] == images.sha256(photo) for m in body["media"])


async def test_listing_a_major_hazard_takes_level_and_deadline(client, browsers, people):
    major = await create(client, people["inspector"], hazard_report(grade="major"))
    await api_step(client, people["city"], major, "verify")
    page = await browsers["city"].get(f"/console/reports/{major}")
    assert 'value="list_supervision"' in page.text and '<option value="140400">' in page.text
    response = await transition(browsers["city"], major, "list_supervision", 2, level="140400", deadline="2026-08-01T18:00")
    assert response.headers["location"].endswith("?done=list_supervision")
    listing = (await report(client, people["city"], major))["workflow"]["listing"]
    assert listing["level"] == "140400"


async def test_general_hazards_offer_no_listing_form(client, browsers, people, hazard):
    await api_step(client, people["city"], hazard, "verify")
    page = await browsers["city"].get(f"/console/reports/{hazard}")
    assert 'value="assign_rectification"' in page.text and 'value="list_supervision"' not in page.text


async def test_the_merge_button_merges_into_the_candidate_shown_beside_it(client, browsers, people, hazard, conn):
    twin = await create(client, people["inspector"], hazard_report())
    await settled(conn)
    page = await browsers["city"].get(f"/console/reports/{twin}")
    assert "疑似重复报告" in page.text
    assert re.search(rf'name="into" value="{hazard}"', page.text), "the candidate has no merge button"
    response = await transition(browsers["city"], twin, "merge", 1, into=hazard)
    assert response.headers["location"].endswith("?done=merge")
    merged = await report(client, people["city"], twin)
    assert (merged["status"], merged["duplicate_of"]) == ("merged", hazard)


async def test_comments_are_posted_with_csrf_and_shown(client, browsers, people, hazard):
    refused = await browsers["county"].post(f"/console/reports/{hazard}/comments", {"body": "x"}, csrf=False)
    assert refused.status_code == 403
    response = await browsers["county"].post(f"/console/reports/{hazard}/comments", {"body": "请补充<b>照片</b>"})
    assert response.headers["location"].endswith("?done=comment")
    page = await browsers["city"].get(f"/console/reports/{hazard}")
    assert "请补充&lt;b&gt;照片&lt;/b&gt;" in page.text
    outside = await browsers["other_county"].post(f"/console/reports/{hazard}/comments", {"body": "x"})
    assert outside.status_code == 404
