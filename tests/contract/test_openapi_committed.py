"""The committed ``openapi/fieldsync.json`` is exactly what the running app serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "fieldsync.json"
FIX = "run .venv/bin/python scripts/export_openapi.py and commit openapi/fieldsync.json"


def _canonical(document: Any) -> str:
    """The text scripts/export_openapi.py writes for ``document``."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _differences(served: Any, committed: Any, where: str = "") -> list[str]:
    """JSON-pointer-like locations where two documents differ, for a readable failure."""
    if isinstance(served, dict) and isinstance(committed, dict):
        found: list[str] = []
        for key in sorted(served.keys() | committed.keys()):
            here = f"{where}/{key}"
            if key not in committed:
                found.append(f"{here}: served, not committed")
            elif key not in served:
                found.append(f"{here}: committed, no longer served")
            else:
                found.extend(_differences(served[key], committed[key], here))
        return found
    if served != committed:
        return [f"{where or '/'}: differs"]
    return []


async def test_committed_openapi_equals_the_served_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    served = response.json()
    assert COMMITTED.exists(), f"{COMMITTED} is missing: {FIX}"
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    differences = _differences(served, committed)
    assert not differences, f"openapi/fieldsync.json is out of date ({FIX}):\n  " + "\n  ".join(differences[:20])
    assert COMMITTED.read_text(encoding="utf-8") == _canonical(served), f"not in canonical form: {FIX}"
