"""A real ``fieldsync serve`` killed after the receiver answered 2xx but before it could record
the answer: the restarted server delivers the event again, with the same ``webhook-id``.

The receiver freezes the server (SIGSTOP) when the request arrives, sends its 200, then kills
the server (SIGKILL): the answer is on the wire and no instruction of the server ran after it,
whatever the scheduling. ``FIELDSYNC_WEBHOOK_TIMEOUT_S=1`` makes the delivery lease 3 s, the
time after which another worker (here: the restarted server) may send it again.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import ServerProcess, cli, postgres_pids
from tests.support import hazard_report
from tests.webhook_receiver import Received, Receiver

pytestmark = pytest.mark.e2e

ENV = {"FIELDSYNC_WEBHOOK_ALLOW_PRIVATE": "true", "FIELDSYNC_WEBHOOK_TIMEOUT_S": "1"}


def _token(data_dir: Path, username: str, role: str, jurisdiction: str) -> str:
    result = cli(data_dir, "user", "add", username, "--role", role, "--jurisdiction", jurisdiction, "--token")
    return result.stdout.strip().splitlines()[-1]


def _signal_on_first(receiver: Receiver, server: ServerProcess, sig: int) -> Callable[[Received], None]:
    def send(_: Received) -> None:
        if len(receiver.received) == 1:
            os.kill(server.process.pid, sig)

    return send


def test_a_server_killed_after_the_receivers_2xx_redelivers_with_the_same_webhook_id() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="fieldsync-e2e-webhooks-", dir="/tmp"))
    admin = {"Authorization": f"Bearer {_token(data_dir, 'wh-admin', 'admin', '140400')}"}
    inspector = {"Authorization": f"Bearer {_token(data_dir, 'wh-inspector', 'inspector', '140431')}"}
    first = ServerProcess(data_dir, **ENV)
    second: ServerProcess | None = None
    try:
        with Receiver() as receiver:
            first.wait_ready()
            receiver.on_request = _signal_on_first(receiver, first, signal.SIGSTOP)
            receiver.after_reply = _signal_on_first(receiver, first, signal.SIGKILL)
            created = httpx.post(f"{first.base_url}/v1/webhooks", headers=admin, timeout=10,
                                 json={"url": receiver.url, "events": ["report.created"]})
            assert created.status_code == 201, created.text
            receiver.secret = created.json()["secret"]
            report_id = str(uuid.uuid4())
            body = hazard_report(observed_at=(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat())
            put = httpx.put(f"{first.base_url}/v1/reports/{report_id}", json=body, headers=inspector, timeout=10)
            assert put.status_code == 201, put.text

            (answered,) = receiver.wait_for_sync(1)
            assert answered.answered == 200 and answered.verified, answered.verify_error
            assert first.process.wait(timeout=10) == -signal.SIGKILL

            second = ServerProcess(data_dir, **ENV)
            second.wait_ready()
            again = receiver.wait_for_sync(2)[1]
            assert again.webhook_id == answered.webhook_id and again.verified, again.verify_error
            assert again.event["subject"] == report_id and again.body == answered.body

            webhook_id = created.json()["id"]
            deadline = time.monotonic() + 10
            while True:
                listed = httpx.get(f"{second.base_url}/v1/webhooks/{webhook_id}/deliveries", headers=admin,
                                   timeout=10).json()["items"]
                if listed[0]["state"] == "delivered" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert listed[0]["state"] == "delivered" and listed[0]["attempts"] == 2
            assert [(a["attempt"], a["status_code"]) for a in listed[0]["attempt_log"]] == [(2, 200)], (
                "the first attempt's answer was never recorded: its process died first"
            )
            time.sleep(0.5)
            assert len(receiver.received) == 2
    finally:
        if first.process.poll() is None:
            first.kill()
        if second is not None:
            assert second.stop() in (0, -2, 130)
        else:  # the killed server's embedded cluster has no one left to stop it
            for pid in postgres_pids(data_dir):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while postgres_pids(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert postgres_pids(data_dir) == [], "the embedded postgres outlived the server"
    shutil.rmtree(data_dir, ignore_errors=True)
