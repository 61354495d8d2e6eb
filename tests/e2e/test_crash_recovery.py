"""Kill the server between an upload and its derivative generation: after a restart the
derivatives appear with no client action, and the acknowledged photo is intact."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests import images
from tests.e2e.server import ServerProcess, cli, postgres_pids

pytestmark = pytest.mark.e2e


def test_derivatives_are_repaired_after_a_crash() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="fieldsync-e2e-", dir="/tmp"))
    token = cli(data_dir, "user", "add", "crash-inspector", "--role", "inspector", "--jurisdiction", "140431",
                "--token").stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    photo = images.jpeg(width=1600, height=1200, seed=7)
    sha = hashlib.sha256(photo).hexdigest()

    first = ServerProcess(data_dir, FIELDSYNC_DERIVATIVE_WORKERS="0")
    try:
        first.wait_ready()
        uploaded = httpx.put(f"{first.base_url}/v1/media/{sha}", content=photo,
                             headers={**headers, "Content-Type": "image/jpeg"}, timeout=30)
        assert uploaded.status_code == 201, uploaded.text
    finally:
        first.kill()

    thumbnail = data_dir / "media" / "derivatives" / sha[:2] / sha[2:4] / sha / "thumbnail.jpg"
    assert not thumbnail.exists(), "no worker ran before the crash"

    second = ServerProcess(data_dir)
    try:
        second.wait_ready()
        deadline = time.monotonic() + 30
        while not thumbnail.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert thumbnail.exists(), "the queued derivative job was not picked up after the restart"
        original = httpx.get(f"{second.base_url}/v1/media/{sha}", headers=headers, timeout=30)
        assert original.status_code == 200
        assert hashlib.sha256(original.content).hexdigest() == sha
    finally:
        assert second.stop() in (0, -2, 130)
    deadline = time.monotonic() + 10
    while postgres_pids(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert postgres_pids(data_dir) == [], "the embedded postgres outlived the server"
    shutil.rmtree(data_dir, ignore_errors=True)
