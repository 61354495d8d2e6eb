"""Submissions as Collect sends them, through ODK Central's OpenRosa test list: the HEAD check,
the version header, bad keys, bodies that cannot be read, unknown forms, attachments in any
order, identical re-POSTs, additional POSTs of a split submission, changed XML, and edits by
``meta/deprecatedID``. Budget: about 10 s for the file.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests import images
from tests.openrosa.collect import Collect, fill_form, headers, instance_id, message, multipart_body, with_meta
from tests.openrosa.conftest import Phone


async def hazard_xml(phone: Phone, photos: list[str], **values: str) -> bytes:
    forms = {form["formID"]: form for form in await phone.collect.form_list()}
    filled = fill_form(await phone.collect.download(forms["fieldsync_hazard"]["downloadUrl"]), photos)
    return with_meta(filled.xml, instance=instance_id(filled.xml), **values) if values else filled.xml


def photo(seed: int) -> bytes:
    return images.jpeg(width=160, height=120, seed=seed)


async def report(client: httpx.AsyncClient, phone: Phone, report_id: uuid.UUID) -> httpx.Response:
    return await client.get(f"/v1/reports/{report_id}", headers=phone.bearer)


def assert_openrosa(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["x-openrosa-version"] == "1.0"
    assert int(response.headers["x-openrosa-accept-content-length"]) == 10_000_000
    return message(response) if response.content else ""


async def test_head_and_get_submission_answer_204_with_the_openrosa_headers(phone: Phone) -> None:
    assert_openrosa(await phone.collect.head_submission(), 204)
    response = await phone.collect.client.get(phone.collect.url("/submission"), headers=headers())
    assert_openrosa(response, 204)


@pytest.mark.parametrize("path", ["/submission", "/formList", "/forms/fieldsync_hazard.xml"])
async def test_a_request_without_the_version_header_is_400(phone: Phone, path: str) -> None:
    response = await phone.collect.client.get(phone.collect.url(path))
    assert "X-OpenRosa-Version" in assert_openrosa(response, 400)


async def test_bad_and_revoked_keys_are_403_not_a_login_prompt(client: httpx.AsyncClient, phone: Phone) -> None:
    base = phone.collect.server_url.rsplit("/", 1)[0]
    for token in ("fsd_" + "a" * 43, "not-a-token", phone.inspector.token):  # the last: a user session
        response = await Collect(client, f"{base}/{token}").head_submission()
        assert_openrosa(response, 403)
        assert "www-authenticate" not in response.headers
    revoked = await client.delete(f"/v1/devices/{phone.device['device_id']}", headers=phone.supervisor.headers)
    assert revoked.status_code == 200
    assert_openrosa(await phone.collect.head_submission(), 403)
    listing = await client.get(phone.collect.url("/formList"), headers=headers())
    assert "revoked" in assert_openrosa(listing, 403)


async def test_bodies_that_cannot_be_read_are_400(phone: Phone) -> None:
    xml = await hazard_xml(phone, [])
    no_xml_part = await phone.collect.post(xml, "text/xml")
    assert "xml_submission_file" in assert_openrosa(no_xml_part, 400)
    not_xml, content_type = multipart_body("data.xml", b"<test", [], incomplete=False)
    assert "well-formed" in assert_openrosa(await phone.collect.post(not_xml, content_type), 400)
    assert_openrosa(await phone.collect.post(b"", "multipart/form-data"), 400)
    truncated = await phone.collect.post(b"", "multipart/form-data; boundary=----geckoformboundary57597312afb5")
    assert "end of form" in assert_openrosa(truncated, 400)
    with_dtd, content_type = multipart_body(
        "data.xml", b'<!DOCTYPE d [<!ENTITY x "y">]><data id="fieldsync_hazard">&x;</data>', [], incomplete=False
    )
    assert_openrosa(await phone.collect.post(with_dtd, content_type), 400)


async def test_xml_that_no_form_explains_is_400_and_changes_nothing(client: httpx.AsyncClient, phone: Phone) -> None:
    unknown = b"<data id='nonexistent'><meta><instanceID>uuid:%s</instanceID></meta></data>" % str(uuid.uuid4()).encode()
    body, content_type = multipart_body("data.xml", unknown, [], incomplete=False)
    assert "fieldsync_hazard" in assert_openrosa(await phone.collect.post(body, content_type), 400)
    xml = await hazard_xml(phone, [], **{"enterprise__credit_code": "91350100M000100Y44"})  # check char wrong
    answers = await phone.collect.submit(xml, [])
    assert "credit_code" in assert_openrosa(answers[0], 400)
    assert (await report(client, phone, instance_id(xml))).status_code == 404


async def test_attachments_in_any_order_are_kept_and_unknown_ones_ignored(client: httpx.AsyncClient, phone: Phone) -> None:
    xml = await hazard_xml(phone, ["a.jpg", "b.jpg"])
    first, second, stranger = photo(1), photo(2), photo(3)
    # Central's order: a file, then the XML, then an unknown file and the other file
    files = [("a.jpg", first), ("other.jpg", stranger), ("b.jpg", second)]
    body, content_type = multipart_body("data.xml", xml, files, incomplete=False, xml_after=1)
    assert_openrosa(await phone.collect.post(body, content_type), 201)
    media = (await report(client, phone, instance_id(xml))).json()["media"]
    assert [m["sha256"] for m in media] == [images.sha256(first), images.sha256(second)]
    assert all(m["role"] == "before" and m["present"] for m in media)
    stranger_head = await client.head(f"/v1/media/{images.sha256(stranger)}", headers=phone.bearer)
    assert stranger_head.status_code == 404


async def test_identical_repost_is_201_without_a_second_report(client: httpx.AsyncClient, phone: Phone) -> None:
    xml = await hazard_xml(phone, ["a.jpg"])
    for attempt in range(3):
        answers = await phone.collect.submit(xml, [("a.jpg", photo(1))])
        text = assert_openrosa(answers[0], 201)
        assert ("already" in text) == (attempt > 0)
    body = (await report(client, phone, instance_id(xml))).json()
    assert body["version"] == 1 and len(body["media"]) == 1
    events = await client.get(f"/v1/reports/{instance_id(xml)}/events", headers=phone.supervisor.headers)
    assert [e["action"] for e in events.json()] == ["created"]


async def test_split_submission_becomes_one_report_when_its_last_post_arrives(
    client: httpx.AsyncClient, phone: Phone
) -> None:
    photos = [(f"p{n}.jpg", images.jpeg(width=400, height=300, seed=n)) for n in range(3)]
    xml = await hazard_xml(phone, [name for name, _ in photos])
    limit = len(xml) + max(len(data) for _, data in photos) + 10  # one photo per POST, as Collect splits
    answers = await phone.collect.submit(xml, photos, limit=limit)
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert "waiting" in message(answers[0]) and "version 1" in message(answers[2])
    body = (await report(client, phone, instance_id(xml))).json()
    assert [m["sha256"] for m in body["media"]] == [images.sha256(data) for _, data in photos]
    assert body["version"] == 1 and body["missing_media"] == []


async def test_an_incomplete_post_alone_makes_no_report_yet(client: httpx.AsyncClient, phone: Phone) -> None:
    xml = await hazard_xml(phone, ["a.jpg", "b.jpg"])
    body, content_type = multipart_body("data.xml", xml, [("a.jpg", photo(1))], incomplete=True)
    assert "waiting" in assert_openrosa(await phone.collect.post(body, content_type), 201)
    assert (await report(client, phone, instance_id(xml))).status_code == 404
    body, content_type = multipart_body("data.xml", xml, [("b.jpg", photo(2))], incomplete=False)
    assert_openrosa(await phone.collect.post(body, content_type), 201)
    assert len((await report(client, phone, instance_id(xml))).json()["media"]) == 2


async def test_a_file_that_comes_later_revises_the_report(client: httpx.AsyncClient, phone: Phone) -> None:
    xml = await hazard_xml(phone, ["a.jpg", "b.jpg"])
    answers = await phone.collect.submit(xml, [("a.jpg", photo(1))])
    assert "b.jpg" in assert_openrosa(answers[0], 201)
    assert len((await report(client, phone, instance_id(xml))).json()["media"]) == 1
    answers = await phone.collect.submit(xml, [("a.jpg", photo(1)), ("b.jpg", photo(2))])
    assert "version 2" in assert_openrosa(answers[0], 201)
    body = (await report(client, phone, instance_id(xml))).json()
    assert body["version"] == 2 and len(body["media"]) == 2


async def test_same_instance_with_changed_xml_is_409(client: httpx.AsyncClient, phone: Phone) -> None:
    xml = await hazard_xml(phone, [])
    assert_openrosa((await phone.collect.submit(xml, []))[0], 201)
    changed = with_meta(xml, instance=instance_id(xml), title="改过的标题")
    assert "different" in assert_openrosa((await phone.collect.submit(changed, []))[0], 409)
    assert (await report(client, phone, instance_id(xml))).json()["title"] != "改过的标题"


async def test_deprecated_id_makes_a_new_version_under_the_revision_rules(client: httpx.AsyncClient, phone: Phone) -> None:
    original = await hazard_xml(phone, ["a.jpg"])
    report_id = instance_id(original)
    assert_openrosa((await phone.collect.submit(original, [("a.jpg", photo(1))]))[0], 201)
    edit_id = uuid.uuid4()
    edit = with_meta(original, instance=edit_id, deprecated=report_id, title="第二稿")
    answers = await phone.collect.submit(edit, [])  # the photo is carried forward, not re-sent
    assert "version 2" in assert_openrosa(answers[0], 201)
    body = (await report(client, phone, report_id)).json()
    assert (body["title"], body["version"], len(body["media"])) == ("第二稿", 2, 1)
    assert (await report(client, phone, edit_id)).status_code == 404  # the edit is a version, not a report

    stale = with_meta(original, instance=uuid.uuid4(), deprecated=report_id, title="第三稿")
    assert_openrosa((await phone.collect.submit(stale, []))[0], 409)  # edits a copy no longer current
    unknown = with_meta(original, instance=uuid.uuid4(), deprecated=uuid.uuid4())
    assert_openrosa((await phone.collect.submit(unknown, []))[0], 404)
    resend = await phone.collect.submit(original, [("a.jpg", photo(1))])  # the old instance again: a replay
    assert "already" in assert_openrosa(resend[0], 201)
    assert (await report(client, phone, report_id)).json()["version"] == 2


async def test_an_attachment_that_fails_the_media_checks_is_refused_whole(client: httpx.AsyncClient, phone: Phone) -> None:
    xml = await hazard_xml(phone, ["a.jpg"])
    answers = await phone.collect.submit(xml, [("a.jpg", b"not a jpeg at all" * 10)])
    assert answers[0].status_code in (415, 422), answers[0].text
    assert_openrosa(answers[0], answers[0].status_code)
    assert (await report(client, phone, instance_id(xml))).status_code == 404


async def test_an_announced_body_over_the_limit_is_413_before_reading(phone: Phone) -> None:
    response = await phone.collect.post(b"", "multipart/form-data; boundary=x", **{"Content-Length": str(10**10)})
    assert_openrosa(response, 413)


async def test_odd_instances_get_a_4xx_never_a_500(client: httpx.AsyncClient, phone: Phone) -> None:
    good = await hazard_xml(phone, [])
    odd = [
        with_meta(good, instance=uuid.uuid4(), location="abc def"),
        with_meta(good, instance=uuid.uuid4(), observed_at="yesterday"),
        with_meta(good, instance=uuid.uuid4(), title="x" * 5000),
        with_meta(good, instance=uuid.uuid4(), jurisdiction="110000"),  # outside the phone's scope: 403
        with_meta(good, instance=uuid.uuid4(), category="volcano"),
        with_meta(good, instance=uuid.uuid4(), severity="9" * 5000),
        with_meta(good, instance=uuid.uuid4(), enterprise__credit_code="91350100M000100Y4\x01"),
        b"<data id='fieldsync_disaster'><losses><deaths>" + b"9" * 5000 + b"</deaths></losses>"
        b"<meta><instanceID>uuid:" + str(uuid.uuid4()).encode() + b"</instanceID></meta></data>",
        b"<data id='fieldsync_hazard'>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</data>",
        b"<data id='fieldsync_hazard'><meta><instanceID>uuid:" + b"-" * 36 + b"</instanceID></meta></data>",
        b"\xff\xfe<\x00d\x00",
    ]
    for xml in odd:
        body, content_type = multipart_body("data.xml", xml, [], incomplete=False)
        response = await phone.collect.post(body, content_type)
        assert 400 <= response.status_code < 500, (xml[:120], response.status_code, response.text)
        assert message(response)
