"""Write ``openapi/fieldsync.json``: the OpenAPI document the app serves at /schema/openapi.json.

The document is fetched from ``create_app()`` through Litestar's test client (no lifespan, so no
database is started), then written in a canonical form (sorted keys, two-space indent, UTF-8,
trailing newline) so that a change to the API shows up as a small, reviewable diff.
``tests/contract/test_openapi_committed.py`` fails when the committed file drifts.

Usage: ``.venv/bin/python scripts/export_openapi.py [--check]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "openapi" / "fieldsync.json"


def served_document() -> Any:
    """The OpenAPI document exactly as the app serves it, parsed."""
    from litestar.serialization import decode_json
    from litestar.testing import TestClient

    from fieldsync.app import create_app
    from fieldsync.logging import configure_logging
    from fieldsync.settings import Settings

    configure_logging(json=False, level="WARNING")
    app = create_app(Settings.from_env({}))
    response = TestClient(app).get("/schema/openapi.json")
    response.raise_for_status()
    return decode_json(response.content)


def render(document: Any) -> str:
    """The canonical text of an OpenAPI document."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    args = parser.parse_args(argv)
    text = render(served_document())
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else None
    if args.check:
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run .venv/bin/python scripts/export_openapi.py")
            return 1
        print(f"{TARGET.relative_to(ROOT)} is up to date")
        return 0
    if current == text:
        print(f"{TARGET.relative_to(ROOT)} unchanged")
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
