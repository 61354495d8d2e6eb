"""ODK Collect against a real ``fieldsync serve`` over loopback: a phone enrolled with
``fieldsync collect enroll`` (the CLI, against the running server's data directory) lists and
downloads the forms and sends a form with a photo; every answer carries exactly one ``Date``
(uvicorn's) with the OpenRosa headers. (The device token's redaction from log lines is shown
in-process by ``tests/openrosa/test_enroll.py``.)
Budget: about 15 s (one server start)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import images
from tests.e2e.server import ServerProcess, cli, postgres_pids
from tests.openrosa.collect import Collect, fill_form, instance_id, message

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    data_dir = Path(tempfile.mkdtemp(prefix="fieldsync-e2e-collect-", dir="/tmp"))
    process = ServerProcess(data_dir)
    try:
        process.wait_ready()
        yield process
    finally:
        if process.process.poll() is None:
            process.stop()
        for pid in postgres_pids(data_dir):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_collect_sends_a_form_to_a_real_server(server: ServerProcess) -> None:
    data_dir = server.data_dir
    cli(data_dir, "user", "add", "qinyuan.insp1", "--role", "inspector", "--jurisdiction", "140431")
    out = cli(data_dir, "collect", "enroll", "qinyuan.insp1", "--qr", str(data_dir / "qr.png"),
              "--url", server.base_url).stdout
    server_url = out.strip().splitlines()[-1]
    token = server_url.rsplit("/", 1)[-1]
    assert (data_dir / "qr.png").read_bytes().startswith(b"\x89PNG")

    async def conversation() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            collect = Collect(client, server_url)
            forms = {form["formID"]: form for form in await collect.form_list()}
            xform = await collect.download(forms["fieldsync_disaster"]["downloadUrl"])
            photo = images.jpeg(width=320, height=240, seed=5)
            filled = fill_form(xform, ["scene.jpg"], now="2020-06-01T15:40:00.000+08:00")
            answers = await collect.submit(filled.xml, [("scene.jpg", photo)])
            head = await collect.head_submission()
            detail = await client.get(f"{server.base_url}/v1/reports/{instance_id(filled.xml)}",
                                      headers={"Authorization": f"Bearer {token}"})
            assert detail.status_code == 200 and detail.json()["media"][0]["present"] is True
            return [head, *answers]

    head, posted = asyncio.run(conversation())
    assert head.status_code == 204 and posted.status_code == 201, posted.text
    assert "version 1" in message(posted)
    for response in (head, posted):
        dates = [v for k, v in response.headers.multi_items() if k.lower() == "date"]
        assert len(dates) == 1, response.headers
        assert response.headers["x-openrosa-version"] == "1.0"
        assert response.headers["x-openrosa-accept-content-length"] == "10000000"
