"""Enrolling a phone for Collect (``POST /v1/devices/collect`` and ``fieldsync collect enroll``),
the QR code it scans, and the device token kept out of logs, metrics and error documents.
Budget: about 5 s."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import httpx
import pytest
import structlog
import zxingcpp
from PIL import Image

from fieldsync.domain.collect import settings_of_qr_text
from fieldsync.settings import Settings
from tests.openrosa.collect import Collect, headers
from tests.openrosa.conftest import Phone, enroll
from tests.support import MutableClock, make_user

# Values Collect's settings schema (settings/src/main/resources/client-settings.schema.json) allows
ALLOWED = {
    "protocol": {"odk_default"},
    "form_update_mode": {"manual", "previously_downloaded", "match_exactly"},
    "periodic_form_updates_check": {"every_fifteen_minutes", "every_one_hour", "every_six_hours", "every_24_hours"},
    "autosend": {"off", "wifi_only", "cellular_only", "wifi_and_cellular"},
    "constraint_behavior": {"on_swipe", "on_finalize"},
    "image_size": {"original_image_size", "small", "very_small", "medium", "large"},
}


def scanned(png: bytes) -> str:
    """What a phone's scanner reads off the picture (zxing, the library Collect scans with)."""
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode
    return found[0].text


async def test_the_qr_code_configures_collect_for_this_device(client: httpx.AsyncClient, phone: Phone) -> None:
    device = phone.device
    settings = settings_of_qr_text(scanned(base64.b64decode(device["qr_png"])))
    assert settings == device["settings"]
    assert set(settings) == {"general", "admin", "project"}
    general = settings["general"]
    assert general["server_url"] == device["server_url"] == f"http://testserver.local/openrosa/key/{device['token']}"
    for key, allowed in ALLOWED.items():
        assert general[key] in allowed, key
    assert isinstance(settings["project"]["name"], str) and settings["admin"]["change_server"] is False
    listed = await client.get("/v1/devices", headers=phone.supervisor.headers)
    assert {"id": device["device_id"], "platform": "odk-collect"}.items() <= next(
        d for d in listed.json()["items"] if d["id"] == device["device_id"]).items()


async def test_only_inspectors_in_scope_get_a_collect_device(
    client: httpx.AsyncClient, phone: Phone, conn, clock: MutableClock
) -> None:
    other_county = await make_user(conn, role="supervisor", jurisdiction="140403", now=clock.now())
    response = await client.post("/v1/devices/collect", json={"username": phone.inspector.username},
                                 headers=other_county.headers)
    assert response.status_code == 404
    response = await client.post("/v1/devices/collect", json={"username": phone.supervisor.username},
                                 headers=phone.supervisor.headers)
    assert response.status_code == 422
    response = await client.post("/v1/devices/collect", json={"username": phone.inspector.username},
                                 headers=phone.inspector.headers)
    assert response.status_code == 403


async def test_public_url_setting_decides_the_server_url(
    settings: Settings, clock: MutableClock, conn, tmp_path: Path
) -> None:
    import dataclasses

    from fieldsync.app import create_app
    from tests.conftest import running

    app = create_app(dataclasses.replace(settings, public_url="https://fs.example.cn/"), clock=clock)
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140400", now=clock.now())
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    async with running(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://internal:8000") as c:
        device = await enroll(c, supervisor, inspector.username)
        assert device["server_url"].startswith("https://fs.example.cn/openrosa/key/fsd_")
        forms = await c.get(f"/openrosa/key/{device['token']}/formList", headers=headers())
        assert b"<downloadUrl>https://fs.example.cn/openrosa/key/" in forms.content


async def test_cli_enrolls_a_phone_and_writes_the_qr_png(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], conn, clock, tmp_path: Path
) -> None:
    from fieldsync.__main__ import main

    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    monkeypatch.setenv("FIELDSYNC_DATABASE_URL", settings.database_url.value)
    monkeypatch.setenv("FIELDSYNC_DATA_DIR", str(settings.data_dir))
    qr = tmp_path / "phone.png"
    argv = ["collect", "enroll", inspector.username, "--label", "李工", "--qr", str(qr), "--url", "https://fs.example.cn"]
    assert await asyncio.to_thread(main, argv) == 0
    url = capsys.readouterr().out.strip().splitlines()[-1]
    assert url.startswith("https://fs.example.cn/openrosa/key/fsd_")
    assert settings_of_qr_text(scanned(qr.read_bytes()))["general"]["server_url"] == url
    token = url.rsplit("/", 1)[-1]
    assert await conn.fetchval("SELECT label FROM devices WHERE user_id = $1", inspector.user_id) == "李工"
    assert token.startswith("fsd_")
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140400", now=clock.now())
    assert await asyncio.to_thread(main, ["collect", "enroll", supervisor.username]) == 1


async def test_the_device_token_never_appears_in_logs_metrics_or_errors(client: httpx.AsyncClient, phone: Phone) -> None:
    token = phone.token
    collect = phone.collect
    with structlog.testing.capture_logs() as logs:
        await collect.form_list()
        await collect.head_submission()
        missing_route = await client.get(collect.url("/nothing-here"), headers=headers())
        wrong_method = await client.put(collect.url("/formList"), headers=headers())
        no_version = await client.get(collect.url("/formList"))
        bad_body = await collect.post(b"garbage", "multipart/form-data; boundary=b")
    answers = [missing_route, wrong_method, no_version, bad_body]
    assert [a.status_code for a in answers] == [404, 405, 400, 400]
    assert all(token not in a.text and token not in str(a.headers) for a in answers)
    assert missing_route.json()["instance"] == "/openrosa/key/***/nothing-here"
    assert logs and all(token not in repr(entry) for entry in logs)
    assert any(entry.get("path") == "/openrosa/key/***/formList" for entry in logs)
    metrics = await client.get("/metrics")
    assert "/openrosa/key/{device_token}/formList" in metrics.text and token not in metrics.text


async def test_a_second_collect_device_has_its_own_token(client: httpx.AsyncClient, phone: Phone) -> None:
    other = await enroll(client, phone.supervisor, phone.inspector.username)
    assert other["token"] != phone.token
    assert (await Collect(client, other["server_url"]).head_submission()).status_code == 204
