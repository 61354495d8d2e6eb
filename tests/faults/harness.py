"""Real ``fieldsync serve`` processes for the fault tests: start, ``kill -9``, restart on the same
data directory and port, and watch (RSS, open files, pooled database connections).

Creating a data directory (initdb, migrations, an admin) costs a few seconds, so the suite does
it once (``golden_data_dir``) and every test starts from a copy (``cp -a`` keeps the cluster's
owner). Devices are enrolled through the API, as a supervisor's phone would do it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psutil

from tests.e2e.server import FIELDSYNC, environment, free_port
from tests.faults.cluster import stop_embedded

ADMIN = "faults-admin"


def make_golden(root: Path) -> tuple[Path, str]:
    """A migrated data directory with an admin; returns it and the admin's token."""
    data_dir = root / "golden"
    added = subprocess.run(
        [*FIELDSYNC, "user", "add", ADMIN, "--role", "admin", "--jurisdiction", "140400", "--token"],
        env=environment(data_dir), capture_output=True, text=True, timeout=120, check=True,
    )
    return data_dir, added.stdout.strip().splitlines()[-1]


def copy_data_dir(golden: Path, into: Path | None = None) -> Path:
    target = (into or Path(tempfile.mkdtemp(prefix="fieldsync-faults-", dir="/tmp"))) / "data"
    subprocess.run(["cp", "-a", str(golden), str(target)], check=True)
    return target


class Server:
    """One ``fieldsync serve`` on a fixed port; ``restart`` keeps the port and the data."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        # Devices are enrolled in parallel from one address: every attempt counts until it succeeds.
        self.env = {"FIELDSYNC_LOG_LEVEL": "warning", "FIELDSYNC_THROTTLE_MAX_FAILURES": "100000", **env}
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        logs = Path(tempfile.gettempdir()) / "fieldsync-faults-logs"
        logs.mkdir(exist_ok=True)
        self.log = logs / f"serve-{time.strftime('%H%M%S')}-{self.port}.log"  # never on the data's disk

    def start(self) -> None:
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            [*FIELDSYNC, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=environment(self.data_dir, **self.env), stdout=log, stderr=log,
        )

    def wait_ready(self, timeout_s: float = 60, path: str = "/healthz") -> float:
        """Wait until ``path`` answers 200; returns the monotonic time it did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}{path}", timeout=2).status_code == 200:
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server did not answer {path}: {self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def restart(self) -> None:
        self.start()
        self.wait_ready()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if not self.env.get("FIELDSYNC_DATABASE_URL"):
            stop_embedded(self.data_dir)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    # --- watching the process -------------------------------------------------------------------

    def rss_bytes(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def embedded_dsn(self) -> str:
        """The embedded cluster's URL (its socket directory is in ``postmaster.pid``)."""
        lines = (self.data_dir / "pg" / "postmaster.pid").read_text().splitlines()
        return f"postgresql://postgres@/postgres?host={lines[4].strip()}&port={lines[3].strip()}"

    def database_url(self) -> str:
        return self.env.get("FIELDSYNC_DATABASE_URL") or self.embedded_dsn()

    def cli(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*FIELDSYNC, *args], env=environment(self.data_dir, **self.env), capture_output=True,
                              text=True, timeout=timeout_s)


async def enroll(base_url: str, admin_token: str, *, users: int, devices_per_user: int,
                 jurisdiction: str = "140431", prefix: str = "insp") -> list[tuple[str, str, str]]:
    """Create ``users`` inspectors with ``devices_per_user`` devices each, through the API;
    returns ``(device name, username, device token)``."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    found: list[tuple[str, str, str]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one_user(u: int) -> list[tuple[str, str, str]]:
            username = f"{prefix}{u:04d}"
            created = await client.post("/v1/users", headers=admin, json={
                "username": username, "role": "inspector", "jurisdiction": jurisdiction})
            assert created.status_code == 201, created.text
            tokens = []
            for d in range(devices_per_user):
                code = await client.post("/v1/enrollments", headers=admin, json={"username": username})
                assert code.status_code in (200, 201), code.text
                device = await client.post("/v1/devices/enroll",
                                           json={"code": code.json()["code"], "label": f"{username}-d{d}"})
                assert device.status_code in (200, 201), device.text
                tokens.append((f"{username}-d{d}", username, device.json()["token"]))
            return tokens

        gate = asyncio.Semaphore(8)

        async def gated(u: int) -> list[tuple[str, str, str]]:
            async with gate:
                return await one_user(u)

        for tokens in await asyncio.gather(*(gated(u) for u in range(users))):
            found.extend(tokens)
    return found


class Prober:
    """Polls ``path`` every ``every_s`` and keeps ``(time, status or None)``: when the service
    answered what, independent of the devices' backoff."""

    def __init__(self, base_url: str, token: str, path: str = "/v1/me", every_s: float = 0.05) -> None:
        self.base_url, self.path, self.every_s = base_url, path, every_s
        self.headers = {"Authorization": f"Bearer {token}"}
        self.samples: list[tuple[float, int | None, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as client:
            while True:
                started = time.monotonic()
                try:
                    status: int | None = (await client.get(self.path, headers=self.headers)).status_code
                except httpx.TransportError:
                    status = None
                self.samples.append((started, status, time.monotonic() - started))
                await asyncio.sleep(self.every_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    def first_success_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the end of the first 200 that started after it."""
        for started, status, took in self.samples:
            if started >= moment and status == 200:
                return started + took - moment
        return None


class Moto:
    """A moto S3 server of the test's own on a fixed port, that can go down (connections
    refused) and come back with its objects (moto keeps them in this process)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._factory = ThreadedMotoServer
        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.up = True

    def stop(self) -> None:
        """Down: stop serving and close the listening socket, so connecting is refused."""
        if self.up:
            self._server.stop()
            if self._server._server is not None:
                self._server._server.server_close()
            self.up = False

    def start(self) -> None:
        if not self.up:
            self._server = self._factory(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()
            self.up = True


def s3_env(endpoint_port: int, *, timeout_s: int) -> dict[str, str]:
    """Environment of a server whose media live in a fresh bucket at ``127.0.0.1:endpoint_port``."""
    return {
        "FIELDSYNC_MEDIA_URL": f"s3://fs-faults-{uuid.uuid4().hex[:12]}",
        "FIELDSYNC_S3_ENDPOINT": f"127.0.0.1:{endpoint_port}",
        "FIELDSYNC_S3_ACCESS_KEY": "fieldsync-faults",
        "FIELDSYNC_S3_SECRET_KEY": "fieldsync-faults-secret",
        "FIELDSYNC_S3_SECURE": "false",
        "FIELDSYNC_STORE_TIMEOUT_S": str(timeout_s),
    }
