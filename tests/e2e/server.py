"""A real ``fieldsync serve`` process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from fieldsync.db.embedded import pid_alive

FIELDSYNC = [sys.executable, "-m", "fieldsync"]


@contextlib.contextmanager
def cloned_database(server_url: str, template: str, *, prefix: str) -> Iterator[str]:
    """The URL of a new database cloned from ``template`` on the test cluster, dropped afterwards
    (a server started with it skips initialising a cluster of its own)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> None:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(sql)
        finally:
            await admin.close()

    asyncio.run(run(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
    env.update({"FIELDSYNC_DATA_DIR": str(data_dir), "FIELDSYNC_LOG_LEVEL": "warning", **extra})
    return env


def cli(data_dir: Path, *args: str, stdin: str | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FIELDSYNC, *args], env=environment(data_dir, **extra), input=stdin, capture_output=True, text=True,
        timeout=120, check=True,
    )


def postgres_pids(data_dir: Path) -> list[int]:
    """Postgres processes whose command line names this data directory."""
    found: list[int] = []
    needle = str(data_dir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"postgres" in cmdline and needle in cmdline:
            found.append(int(entry.name))
    return found


class ServerProcess:
    def __init__(self, data_dir: Path, **extra_env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [*FIELDSYNC, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=environment(data_dir, **extra_env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stderr.read().decode() if self.process.stderr else ''}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("server did not become ready")

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 30) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@contextlib.contextmanager
def killed_on_failure(server: ServerProcess) -> Iterator[ServerProcess]:
    """A failure in the block kills the server (SIGKILL) before it propagates; after a success the
    server keeps running for the test to stop as it means to."""
    try:
        yield server
    except BaseException:
        server.kill()
        raise


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])


def assert_no_postgres_left(data_dir: Path, postmaster: int) -> None:
    deadline = time.monotonic() + 15
    while (postgres_pids(data_dir) or pid_alive(postmaster)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert postgres_pids(data_dir) == [], "a postgres process naming the data directory outlived the server"
    assert not pid_alive(postmaster), "the embedded postmaster outlived the server"
    assert not (data_dir / "pg" / "postmaster.pid").exists(), "postgres did not shut down cleanly"


def stop_gracefully(server: ServerProcess, sig: int) -> None:
    """Signal the server and check it shut down gracefully: uvicorn finishes the lifespan, then
    re-raises the signal, so SIGTERM ends with the conventional 'terminated by SIGTERM' status."""
    code = server.stop(sig, timeout_s=40)
    assert code in (0, 128 + sig, -sig), f"exit status {code}"
    stderr = server.process.stderr.read().decode() if server.process.stderr else ""
    assert "Traceback" not in stderr, stderr
