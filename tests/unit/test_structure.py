"""Contracts on the shape of the code that a machine checks, so a reviewer need not remember them:
the layers (import-linter, configured in pyproject.toml), the types (mypy on src/), and no
function in src/ longer than 60 lines."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is part of the test extras; reinstall with pip install -e '.[test]'"
    return found


def test_the_layers_keep_their_contracts() -> None:
    result = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_types_check() -> None:
    result = subprocess.run([_tool("mypy"), "src"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body, leaving out its signature (a declarative parameter list), its
    docstring and the inner lines of multi-line string constants (a single SQL statement)."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    if not body:
        return 0
    lines = set(range(body[0].lineno, (body[-1].end_lineno or body[-1].lineno) + 1))
    for node in ast.walk(function):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.end_lineno:
            lines -= set(range(node.lineno + 1, node.end_lineno + 1))
        if isinstance(node, ast.JoinedStr) and node.end_lineno:
            lines -= set(range(node.lineno + 1, node.end_lineno + 1))
    return len(lines)


def long_functions() -> list[str]:
    found = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                count = code_lines(node)
                if count > MAX_LINES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({count} lines)")
    return found


def test_no_function_is_longer_than_60_lines() -> None:
    assert long_functions() == []


def test_the_line_count_sees_code_but_not_sql_or_parameters() -> None:
    source = '\n'.join([
        "async def f(",
        *[f"    p{n}: int," for n in range(70)],
        ") -> None:",
        '    """Docstring."""',
        '    await conn.execute("""',
        *["        SELECT 1" for _ in range(80)],
        '    """)',
        *[f"    x{n} = {n}" for n in range(5)],
    ])
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.AsyncFunctionDef)
    assert code_lines(function) == 6


SESSION_STATE = re.compile(  # SQL here is written in capitals; prose in docstrings is not
    r"pg_(try_)?advisory_lock(_shared)?\s*\(|(?<!UN)\bLISTEN\b|(?:^|;)\s*SET\s+(?!LOCAL\b)|"
    r"set_config\s*\([^)]*false|\bWITH\s+HOLD\b",
)
# Not the request pool: migrations hold a session lock on a connection of their own, the webhook
# worker LISTENs on a pool of its own (reset on release), the schema snapshot filters pg_dump's SETs.
SESSION_STATE_ALLOWED = {"src/fieldsync/db/migrate.py", "src/fieldsync/services/delivery.py",
                         "src/fieldsync/db/snapshot.py"}


def test_request_connections_never_leave_session_state_behind() -> None:
    """The request pool skips asyncpg's reset query (``db.pool._keep_session``): no SQL in src/ may
    leave state on a session, and only the webhook worker (its own pool, reset on release) listens."""
    found = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        relative = str(path.relative_to(ROOT))
        source = path.read_text()
        for node in ast.walk(ast.parse(source, filename=relative)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and relative not in SESSION_STATE_ALLOWED:
                if match := SESSION_STATE.search(node.value):
                    found.append(f"{relative}:{node.lineno} {match.group(0)!r}")
        if ".add_listener(" in source and relative != "src/fieldsync/services/delivery.py":
            found.append(f"{relative}: add_listener")
    assert not found, found
    assert SESSION_STATE.search("SELECT pg_advisory_lock($1)") and SESSION_STATE.search("LISTEN deliveries")
    assert SESSION_STATE.search("SET statement_timeout = 0") and SESSION_STATE.search("BEGIN; SET work_mem = 1")
    assert not SESSION_STATE.search("SELECT pg_advisory_xact_lock($1); UNLISTEN *; UPDATE t\n  SET a = 1")
