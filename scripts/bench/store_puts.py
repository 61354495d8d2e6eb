"""What the filesystem media store's puts of one photo cost in CPU (this process: user and system)
and time, as an accepted upload makes them (``services.media._put_objects``): the original
durably (``put_file`` from a spool file), its preview and thumbnail without fsync
(``put_bytes``), the three at once.

Why: the ingest benchmark's photo phases spend about a third of the server's CPU in the kernel.
This separates the store's share, on two stores:

- fresh: an empty media root, as the ingest benchmark's new server has. Nearly every photo
  creates the fan-out directories ``originals/ab/cd`` and ``derivatives/ab/cd`` (and fsyncs the
  parents of the durable ones), besides its own ``derivatives/ab/cd/<sha256>`` directory;
- established: the fan-out directories exist already (a store with a few hundred thousand
  photos), so a photo creates only its derivative directory; once more with the original alone,
  to separate the derivatives' share.

and, as the floor measured in the same run, writing the same bytes to a spool file and removing
it. Bytes are random (the store does not look inside); the preview is as large as the original,
as an in-box JPEG's own scan is. Sequential, one photo at a time.

    .venv/bin/python scripts/bench/store_puts.py [--count 600] [--dir /tmp] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import hashlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from fieldsync.imaging.derivatives import Derivatives  # noqa: E402 - after the path is set
from fieldsync.imaging.probe import ImageInfo  # noqa: E402
from fieldsync.imaging.process import Processed  # noqa: E402
from fieldsync.services.media import _put_objects  # noqa: E402 - the very puts of an accepted upload
from fieldsync.storage import FilesystemMediaStore  # noqa: E402

PHOTO_BYTES = 200_000
THUMBNAIL_BYTES = 10_000
INFO = ImageInfo(format="JPEG", mime_type="image/jpeg", width=1280, height=960)


@dataclasses.dataclass(frozen=True)
class Spooled:
    """A finished spool file, as ``services.media`` receives it (``ports.WholeUpload``)."""

    path: Path
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Cost:
    name: str
    user_ms: float
    system_ms: float
    wall_ms: float


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


async def _measure(name: str, count: int, one: Callable[[bytes, str], Awaitable[None]],
                   prepare: Callable[[list[str]], None] | None = None) -> Cost:
    """``one`` for each of ``count`` new photos, after ``prepare`` (not measured) saw their hashes."""
    photos = [os.urandom(PHOTO_BYTES) for _ in range(count)]
    shas = [hashlib.sha256(photo).hexdigest() for photo in photos]
    if prepare is not None:
        prepare(shas)
    (user0, system0), wall0 = _cpu(), time.perf_counter()
    for photo, sha in zip(photos, shas, strict=True):
        await one(photo, sha)
    (user1, system1), wall1 = _cpu(), time.perf_counter()
    return Cost(name, 1000 * (user1 - user0) / count, 1000 * (system1 - system0) / count,
                1000 * (wall1 - wall0) / count)


async def run(count: int, work: Path) -> list[Cost]:
    spool = work / "spool"
    spool.mkdir()

    def spooled(photo: bytes, sha: str) -> Path:
        path = spool / f"{sha}.part"
        with open(path, "xb") as out:
            out.write(photo)
        return path

    async def floor(photo: bytes, sha: str) -> None:
        spooled(photo, sha).unlink()

    def puts(store: FilesystemMediaStore, *, derivatives: bool = True) -> Callable[[bytes, str], Awaitable[None]]:
        async def one(photo: bytes, sha: str) -> None:
            path = spooled(photo, sha)
            rendered = Derivatives(preview=photo, thumbnail=photo[:THUMBNAIL_BYTES]) if derivatives else None
            await _put_objects(store, Spooled(path, len(photo), sha), Processed(INFO, rendered))
            path.unlink()
        return one

    fresh = FilesystemMediaStore(work / "fresh")
    await fresh.ensure_root()
    established = FilesystemMediaStore(work / "established")
    await established.ensure_root()

    def fan_out(shas: list[str]) -> None:
        """The directories a store of long standing has already, for these photos."""
        for sha in shas:
            for top in ("originals", "derivatives"):
                (work / "established" / top / sha[0:2] / sha[2:4]).mkdir(parents=True, exist_ok=True)

    return [
        await _measure("spool write and remove (floor)", count, floor),
        await _measure("puts, fresh store", count, puts(fresh)),
        await _measure("puts, established store", count, puts(established), fan_out),
        await _measure("the original alone, established store", count, puts(established, derivatives=False),
                       fan_out),
    ]


def markdown(costs: list[Cost], count: int, started: dt.datetime, command: str) -> str:
    rows = "\n".join(f"| {c.name} | {c.user_ms:.2f} | {c.system_ms:.2f} | {c.user_ms + c.system_ms:.2f} | "
                     f"{c.wall_ms:.2f} |" for c in costs)
    return f"""### Filesystem store puts per photo ({started:%Y-%m-%d %H:%M} UTC)

`{command}` — {count} photos per row; nproc {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}.

| what | user CPU ms | system CPU ms | CPU ms | wall ms |
|---|---|---|---|---|
{rows}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="where the stores live (their filesystem)")
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-store-", dir=args.dir) as work:
        costs = asyncio.run(run(args.count, Path(work)))
    options = [f"--count {args.count}"] * (args.count != 600) + [f"--dir {args.dir}"] * (args.dir != Path("/tmp"))
    text = markdown(costs, args.count, started, " ".join([".venv/bin/python scripts/bench/store_puts.py", *options]))
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
