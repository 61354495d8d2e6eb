"""Fixtures of the end-to-end tests that start ``fieldsync serve`` on embedded defaults."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import postgres_pids


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A fresh data directory under /tmp (the embedded cluster runs as another user, who cannot
    enter /root)."""
    path = Path(tempfile.mkdtemp(prefix="fieldsync-e2e-serve-", dir="/tmp"))
    try:
        yield path
    finally:
        for pid in postgres_pids(path):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)
