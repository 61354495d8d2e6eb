"""``fieldsync serve`` with ``FIELDSYNC_PROCESSES=2`` on embedded defaults: two worker processes
share the port and the cluster, ``/metrics`` counts the requests of both, a worker that dies is
replaced without losing its counts, SIGINT stops them all and the cluster, and a supervisor
killed with SIGKILL takes its workers with it (decisions/0056). On a configured database the
processes start no cluster of their own."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.server import (
    ServerProcess,
    assert_no_postgres_left,
    cli,
    cloned_database,
    killed_on_failure,
    postgres_pids,
    postmaster_pid,
    stop_gracefully,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _workers(server: ServerProcess) -> list[psutil.Process]:
    """The supervisor's worker processes (uvicorn spawns them; its resource tracker is not one)."""
    found = []
    for child in psutil.Process(server.process.pid).children():
        with contextlib.suppress(psutil.ZombieProcess, psutil.NoSuchProcess):  # a dead one not yet reaped
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
    return found


def _wait(condition: Callable[[], bool], timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _readyz_count(server: ServerProcess) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    found = re.search(r'fieldsync_http_requests_total\{method="GET",route="/readyz",status="200"\} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def test_two_processes_share_the_port_the_cluster_and_the_metrics(data_dir: Path) -> None:
    server = ServerProcess(data_dir, FIELDSYNC_PROCESSES="2")
    with killed_on_failure(server):
        server.wait_ready(timeout_s=90)
        workers = _workers(server)
        assert len(workers) == 2, [w.cmdline() for w in workers]
        postmaster = postmaster_pid(data_dir)
        added = cli(data_dir, "user", "add", "e2e-admin", "--role", "admin", "--jurisdiction", "140400", "--token")
        token = added.stdout.strip().splitlines()[-1]

        before = _readyz_count(server)
        for _ in range(60):  # a new connection each time: the kernel hands each to either worker
            assert httpx.get(f"{server.base_url}/readyz", timeout=10).status_code == 200
            me = httpx.get(f"{server.base_url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert me.status_code == 200, me.text
        metrics_dir = data_dir / "metrics" / str(server.process.pid)
        files = {p.name for p in metrics_dir.iterdir()}
        assert {f"counter_{w.pid}.db" for w in workers} <= files, files  # both counted requests
        assert _readyz_count(server) == before + 60  # whichever worker answers the scrape counts all

        workers[0].kill()  # a worker that dies is replaced, and what it counted still counts
        assert _wait(lambda: len(_workers(server)) == 2 and workers[0].pid not in {w.pid for w in _workers(server)},
                     timeout_s=60), "the supervisor did not replace a dead worker"
        assert _wait(lambda: httpx.get(f"{server.base_url}/readyz", timeout=10).status_code == 200)
        assert _readyz_count(server) >= before + 61
        workers = _workers(server)

    stop_gracefully(server, signal.SIGINT)
    assert all(not psutil.pid_exists(w.pid) or w.status() == psutil.STATUS_ZOMBIE for w in workers)
    assert_no_postgres_left(data_dir, postmaster)
    assert not metrics_dir.exists()


def test_workers_die_with_a_killed_supervisor_and_a_new_one_serves(data_dir: Path) -> None:
    server = ServerProcess(data_dir, FIELDSYNC_PROCESSES="2")
    with killed_on_failure(server):
        server.wait_ready(timeout_s=90)
        workers = _workers(server)
        assert len(workers) == 2
    server.kill()  # SIGKILL: no chance to stop anything
    assert _wait(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)), \
        "a worker outlived its supervisor"

    again = ServerProcess(data_dir, FIELDSYNC_PROCESSES="2")
    with killed_on_failure(again):
        again.wait_ready(timeout_s=90)
        assert httpx.get(f"{again.base_url}/readyz", timeout=10).json()["checks"]["database"] == "ok"
        assert sorted(p.name for p in (data_dir / "metrics").iterdir()) == [str(again.process.pid)]
        postmaster = postmaster_pid(data_dir)
    stop_gracefully(again, signal.SIGTERM)
    assert_no_postgres_left(data_dir, postmaster)
    assert postgres_pids(data_dir) == []
    assert os.listdir(data_dir / "metrics") == []


def test_processes_on_a_configured_database_start_no_cluster_of_their_own(
    data_dir: Path, pg_server_url: str, template_database: str
) -> None:
    with cloned_database(pg_server_url, template_database, prefix="fs_processes") as url:
        server = ServerProcess(data_dir, FIELDSYNC_PROCESSES="3", FIELDSYNC_DATABASE_URL=url)
        with killed_on_failure(server):
            server.wait_ready(timeout_s=90)
            assert len(_workers(server)) == 3
            assert httpx.get(f"{server.base_url}/readyz", timeout=10).json()["checks"]["database"] == "ok"
            assert not (data_dir / "pg").exists() and postgres_pids(data_dir) == []
        stop_gracefully(server, signal.SIGTERM)
