"""Fixtures of the fault suite: one migrated data directory per session, copied per test, and a
factory of real ``fieldsync serve`` processes that are always stopped afterwards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Server, copy_data_dir, make_golden


@pytest.fixture(scope="session")
def golden() -> Iterator[tuple[Path, str]]:
    root = Path(tempfile.mkdtemp(prefix="fieldsync-faults-golden-", dir="/tmp"))
    try:
        yield make_golden(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def golden_dir(golden: tuple[Path, str]) -> Path:
    return golden[0]


@pytest.fixture
def admin_token(golden: tuple[Path, str]) -> str:
    return golden[1]


@pytest.fixture
def serve(golden: tuple[Path, str]) -> Iterator[Callable[..., Server]]:
    """``serve(**env)``: a started, ready server on a copy of the golden data directory."""
    started: list[Server] = []

    def start(*, data_dir: Path | None = None, ready: bool = True, **env: str) -> Server:
        server = Server(data_dir or copy_data_dir(golden[0]), **env)
        started.append(server)
        server.start()
        if ready:
            server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.cleanup()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist the fault tier runs on one worker, in order: each test drives its own servers,
    fleets and (soak, storm) measures growth, which a second fault test beside it would blur."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.xdist_group("faults"))
