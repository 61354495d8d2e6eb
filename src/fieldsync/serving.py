"""``fieldsync serve``: the app under uvicorn, in one process or in ``FIELDSYNC_PROCESSES`` of them.

One process does at most about 1.4 cores' worth of work on this stack: its event loop, its
thread hand-offs and the GIL serialise what the cores could do side by side (issue 12's photo
benchmark: ~1.4 of 2 cores busy at any concurrency; with two processes, distinct photos ran up
to 1.3 times as fast at the same CPU per photo). Several processes on one host share the listening socket; uvicorn's supervisor starts
them, restarts one that dies and stops them all on SIGINT/SIGTERM (decisions/0056). Each is a
whole fieldsync: its own pool, group commit and background workers, coordinated through the
database exactly as replicas are (docs/operations.md, "Scaling out").

What the processes share on top of that, set up here by the supervisor before it starts them:

- the embedded cluster, started by the supervisor, so that the workers join a running server
  (each also holds a handle on it, so a worker restarted alone finds it running);
- the metrics: ``prometheus_client``'s multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a fresh
  directory under the data directory per start), so that ``/metrics`` on any worker counts the
  requests of all.

A worker dies with its supervisor (``PR_SET_PDEATHSIG``, SIGKILL): a supervisor killed with
SIGKILL must not leave workers serving its port beside a restarted one, and the service then
crashes as one process would have. (On SIGINT/SIGTERM the supervisor stops its workers gracefully
first.)
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from litestar import Litestar

from fieldsync.api.connections import ConnectionLimits, GuardedHttpToolsProtocol, guarded
from fieldsync.app import create_app
from fieldsync.db import embedded
from fieldsync.logging import configure_logging
from fieldsync.settings import Settings

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when it is imported
SUPERVISOR_PID = "FIELDSYNC_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """glibc gives every thread that allocates under contention an arena of its own (up to 8 per
    core) and rarely hands their memory back; the upload and store worker threads made RSS climb
    by a fifth before it levelled off (scripts/soak). Two arenas keep it flat at no measurable
    cost. ``MALLOC_ARENA_MAX`` in the environment wins; elsewhere than glibc this does nothing."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    with contextlib.suppress(OSError, AttributeError):
        _libc().mallopt(-8, MALLOC_ARENAS)  # M_ARENA_MAX


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        header_timeout_s=settings.header_timeout_s, idle_timeout_s=settings.idle_timeout_s,
        request_timeout_s=settings.request_timeout_s, max_connections=settings.max_connections,
    )


def _uvicorn_options() -> dict[str, Any]:
    return {
        "access_log": False,
        "log_level": "warning",
        "log_config": None,  # uvicorn logs through the one pipeline (fieldsync.logging)
        "timeout_graceful_shutdown": 20,
        "timeout_keep_alive": 30,
    }


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM, in ``settings.processes`` processes."""
    configure_logging(json=settings.log_json, level=settings.log_level)
    limit_malloc_arenas()
    print(f"fieldsync listening on http://{host}:{port} (data: {settings.data_dir}, "
          f"database: {settings.database_url_redacted}, processes: {settings.processes})",
          file=sys.stderr, flush=True)
    if settings.processes == 1:
        uvicorn.run(create_app(settings), host=host, port=port, http=guarded(connection_limits(settings)),
                    **_uvicorn_options())
        return
    with _shared_metrics(settings.data_dir), _shared_cluster(settings):
        os.environ[SUPERVISOR_PID] = str(os.getpid())
        # The workers are spawned: they import the app and the protocol by name, with these settings
        # from the environment they inherit.
        uvicorn.run("fieldsync.serving:worker_app", factory=True, host=host, port=port,
                    http="fieldsync.serving:WorkerHttpProtocol", workers=settings.processes,
                    **_uvicorn_options())


@contextlib.contextmanager
def _shared_metrics(data_dir: Path) -> Iterator[None]:
    """``data_dir/metrics/<supervisor pid>``, fresh; a directory a killed supervisor left is removed."""
    parent = data_dir / "metrics"
    parent.mkdir(parents=True, exist_ok=True)
    for left in parent.iterdir():
        if not (left.name.isdigit() and embedded.pid_alive(int(left.name))):
            shutil.rmtree(left, ignore_errors=True)
    directory = parent / str(os.getpid())
    directory.mkdir()
    os.environ[MULTIPROCESS_DIR] = str(directory)
    try:
        yield
    finally:
        os.environ.pop(MULTIPROCESS_DIR, None)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def _shared_cluster(settings: Settings) -> Iterator[None]:
    if settings.database_url.value:
        yield
        return
    cluster = embedded.start(settings.data_dir)
    try:
        yield
    finally:
        cluster.stop()


def _die_with_supervisor() -> None:
    """Ask the kernel for SIGKILL when the supervisor goes, however it goes (Linux); if it has
    already gone, leave now."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if str(os.getppid()) != os.environ.get(SUPERVISOR_PID):
        raise SystemExit("fieldsync: the serve supervisor has gone")


def worker_app() -> Litestar:
    """The app of one worker process (uvicorn's factory, called in the spawned worker)."""
    _die_with_supervisor()
    settings = Settings.from_env()
    configure_logging(json=settings.log_json, level=settings.log_level)
    limit_malloc_arenas()
    return create_app(settings)


def __getattr__(name: str) -> type[GuardedHttpToolsProtocol]:
    """``WorkerHttpProtocol``: the guarded protocol of a worker process, which uvicorn imports by
    name, with its limits from the environment (read when asked for, not when this is imported)."""
    if name == "WorkerHttpProtocol":
        return guarded(connection_limits(Settings.from_env()))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
