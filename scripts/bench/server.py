"""``fieldsync serve`` in a child process for the benchmarks (run.py, sync.py, export_memory.py).

A fresh data dir (embedded PostgreSQL under ``data_dir/pg``), a free 127.0.0.1 port, the
environment without any inherited ``FIELDSYNC_*`` plus ``FIELDSYNC_DATA_DIR``,
``FIELDSYNC_LOG_LEVEL=warning`` and ``PYTHONPATH`` starting with this checkout's ``src`` (so the
benchmarks measure the source tree they belong to). Ready when ``/readyz`` answers 200; stopped
with SIGINT (SIGKILL after a timeout), then checked for postgres processes left for its data dir.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psutil

HOST = "127.0.0.1"
SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind((HOST, 0))
        return int(probe_socket.getsockname()[1])


class Server:
    """``fieldsync serve`` on a loopback port and a fresh data dir; stopped with SIGINT.

    ``command`` is how to run the CLI (default: this interpreter with ``-m fieldsync``); ``cli``
    uses the same command and environment against the same data dir. ``src`` is the source tree
    it runs (another checkout's ``src`` measures a baseline with the same client). ``processes``
    is ``FIELDSYNC_PROCESSES``.
    """

    def __init__(self, data_dir: Path, port: int | None = None, *, command: Sequence[str] | None = None,
                 src: Path = SRC, processes: int = 1) -> None:
        self.data_dir = data_dir
        self.port = free_port() if port is None else port
        self.base_url = f"http://{HOST}:{self.port}"
        self.command = list(command) if command is not None else [sys.executable, "-m", "fieldsync"]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
        self.processes_wanted = processes
        self.env.update(FIELDSYNC_DATA_DIR=str(data_dir), FIELDSYNC_LOG_LEVEL="warning", FIELDSYNC_PROCESSES=str(processes),
                        PYTHONPATH=os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")])))
        self.log_path = data_dir.parent / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pg"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 120.0) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*self.command, "serve", "--host", HOST, "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir.parent,
            )
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fieldsync serve exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"fieldsync serve not ready (/readyz) within {timeout_s} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def cli(self, *args: str, timeout_s: float = 120.0) -> str:
        """``fieldsync <args>`` against the same data dir and environment; its stdout."""
        done = subprocess.run(
            [*self.command, *args], env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(f"fieldsync {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def processes(self) -> list[psutil.Process]:
        """The server and its children (uvicorn workers, if any), not PostgreSQL."""
        assert self.ps is not None
        try:
            return [self.ps, *[c for c in self.ps.children(recursive=True) if "postgres" not in c.name()]]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        """Resident set size of the server and its non-postgres children, in bytes."""
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def postgres_pids(self) -> list[int]:
        """Postgres processes running for this data dir (by command line, and the postmaster.pid)."""
        found: list[int] = []
        for proc in psutil.process_iter(["pid", "name", "cmdline"]):
            cmdline = " ".join(proc.info.get("cmdline") or [])
            if "postgres" in ((proc.info.get("name") or "") + " " + cmdline) and str(self.data_dir) in cmdline:
                found.append(proc.info["pid"])
        pidfile = self.pgdata / "postmaster.pid"
        with contextlib.suppress(ValueError, OSError, IndexError):
            pid = int(pidfile.read_text().split()[0])
            if psutil.pid_exists(pid) and pid not in found:
                found.append(pid)
        return found

    def cpu_pids(self) -> tuple[list[int], list[int]]:
        """(server pids: the process and its worker processes, if ``FIELDSYNC_PROCESSES`` made
        any; postgres pids: the postmaster of this data dir and its backends)."""
        assert self.process is not None
        pg = self.postgres_pids()
        for pid in list(pg):
            with contextlib.suppress(psutil.Error):
                pg += [c.pid for c in psutil.Process(pid).children(recursive=True) if c.pid not in pg]
        return [proc.pid for proc in self.processes() if proc.pid not in pg] or [self.process.pid], pg

    def postgres_left(self, wait_s: float = 15.0) -> list[int]:
        """Postgres pids still serving this data dir (waits a little: shutdown is asynchronous)."""
        deadline = time.monotonic() + wait_s
        while True:
            found = self.postgres_pids()
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def stop(self, timeout_s: float = 60.0) -> str:
        """SIGINT, wait (SIGKILL after ``timeout_s``), and report what is left of the server and its cluster.

        The text contains "LEFT BEHIND" if postgres processes remain for the data dir.
        """
        if self.process is None:
            return "server never started"
        notes: list[str] = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                notes.append(f"server pid {self.process.pid} ignored SIGINT for {timeout_s:.0f} s; sent SIGKILL")
                self.process.kill()
                self.process.wait(10)
        notes.append(f"server exited with {self.process.returncode}")
        leftovers = self.postgres_left()
        if leftovers:
            notes.append(f"LEFT BEHIND: postgres pids {leftovers} for {self.pgdata}")
        else:
            notes.append(f"no postgres process left for {self.pgdata}")
        return "; ".join(notes)
