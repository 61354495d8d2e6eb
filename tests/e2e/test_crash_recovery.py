"""Kill the server right after an acknowledged upload: its preview and thumbnail were stored
before the 201 (one decode, ADR 0012), the photo is intact after a restart, and a derivative lost
from the store is rendered again when it is asked for."""

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

    folder = data_dir / "media" / "derivatives" / sha[:2] / sha[2:4] / sha
    assert (folder / "thumbnail.jpg").stat().st_size > 0, "the 201 came before the thumbnail was stored"
    assert (folder / "preview.jpg").stat().st_size > 0, "the 201 came before the preview was stored"
    (folder / "preview.jpg").unlink()

    second = ServerProcess(data_dir)
    try:
        second.wait_ready()
        preview = httpx.get(f"{second.base_url}/v1/media/{sha}/preview", headers=headers, timeout=30)
        assert preview.status_code == 200 and preview.content[:2] == b"\xff\xd8"
        assert (folder / "preview.jpg").exists(), "the lost preview was not rendered again"
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
