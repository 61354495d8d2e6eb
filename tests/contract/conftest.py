"""Give each schemathesis operation its own node id.

schemathesis 4.32.5 names each operation's item ``test_...[GET /v1/reports]`` but, on pytest 9.2,
leaves every item the function's bare node id. pytest-xdist schedules and reports by node id, so
under ``scripts/test`` the 43 operations collapsed into one test that ran once. The id gets the
item's parameter part back (the form schemathesis itself gives it on older pytest)."""

from __future__ import annotations

import pytest
from _pytest.nodeid import coerce_node_id


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "[" in item.name and "[" not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid}[{item.name.split('[', 1)[1]}")  # type: ignore[attr-defined]
