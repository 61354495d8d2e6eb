"""The filesystem ``MediaStore``: the embedded default, one file per key under a root directory.

Durability and visibility (what "nothing acknowledged is ever lost" needs from a disk):

- A put never writes the final name directly. It creates ``<dir>/.tmp-<random>-<name>`` in the
  final directory, fills it, ``fsync``s the file, ``rename``s it over the final name (atomic on
  POSIX) and ``fsync``s the directory so the new entry survives a power cut. Directories it had
  to create are fsynced into their parents the same way. A reader sees the whole object or none.
- ``put_file`` copies the source (the kernel's copy: ``copy_file_range``/``sendfile``) and
  makes the copy read-only. It never hard-links: a stored original must not share an inode with
  a file someone may still write, or a tus part file truncated by a retried last chunk would
  truncate the evidence with it. The source is left for the caller to remove.
- On any failure the temporary file is removed before the error propagates. A crash can still
  leave a ``.tmp-*`` file; dot-names are never valid keys (``keys.check_key``), so such files are
  invisible to ``exists``/``open``/``list_keys`` and can be swept by age.
- Keys are idempotent: a put whose key already exists returns at once. Two concurrent puts of the
  same key both complete and the last rename wins; keys are content-addressed, so both files
  hold the same bytes.
- ``put_file`` trusts the caller's ``sha256`` (it was computed while spooling) and checks only
  the size it wrote; re-hashing would read every photo twice.
- Deleting leaves empty fan-out directories behind: removing them would race with a concurrent
  put that has just created them.

Errors: a missing key is ``MediaNotFound``; a full disk is ``StorageFull`` (507); any other
``OSError`` (permissions, I/O) is ``DependencyUnavailable`` with the OS reason. A bad key or a size that disagrees with the file
is a programming error and raises ``ValueError``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from anyio import CapacityLimiter

from fieldsync.errors import DependencyUnavailable, MediaNotFound, StorageFull
from fieldsync.ports import StoredObject
from fieldsync.storage import _threads
from fieldsync.storage._files import fsync_directory
from fieldsync.storage.disk import NO_SPACE
from fieldsync.storage.keys import check_key, check_prefix

T = TypeVar("T")

CHUNK_SIZE = 256 * 1024
TEMP_PREFIX = ".tmp-"


def _unavailable(exc: OSError) -> DependencyUnavailable | StorageFull:
    reason = exc.strerror or exc.__class__.__name__
    if exc.errno in NO_SPACE:
        return StorageFull(f"media store (filesystem): {reason}")
    return DependencyUnavailable(f"media store (filesystem): {reason}", dependency="media_store")


def check_range(offset: int, length: int | None) -> None:
    if offset < 0 or (length is not None and length < 0):
        raise ValueError(f"invalid byte range offset={offset} length={length}")


class FilesystemMediaStore:
    """``MediaStore`` on a local directory. Call ``ensure_root()`` once before use."""

    def __init__(
        self, root: Path, *, max_threads: int = 16, chunk_size: int = CHUNK_SIZE, timeout_s: float = 30
    ) -> None:
        self.root = root
        self._limiter = CapacityLimiter(max_threads)
        self._chunk_size = chunk_size
        self._deadline = _threads.Deadline(timeout_s, "media store (filesystem)")

    def __repr__(self) -> str:
        return f"FilesystemMediaStore({str(self.root)!r})"

    async def _run(self, func: Callable[..., T], *args: object) -> T:
        return await _threads.run(self._limiter, func, *args, deadline=self._deadline)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def ensure_root(self) -> None:
        """Create the root directory if needed and check it is usable (startup)."""

        def ensure() -> None:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _unavailable(exc) from exc

        await self._run(ensure)
        await self.ping()

    # --- writes ---------------------------------------------------------------------------------

    async def put_file(self, key: str, path: Path, *, sha256: str, size: int, content_type: str) -> None:
        await self._run(self._put_file, self._path(key), path, size)

    async def put_bytes(self, key: str, data: bytes, *, content_type: str, durable: bool = True) -> None:
        await self._run(self._put_bytes, self._path(key), data, durable)

    def _put_file(self, final: Path, source: Path, size: int) -> None:
        if final.is_file():
            return
        actual = os.stat(source).st_size
        if actual != size:
            raise ValueError(f"{source} has {actual} bytes, the caller said {size}")

        def fill(temp: Path) -> None:
            shutil.copyfile(source, temp)
            os.chmod(temp, 0o444)
            fd = os.open(temp, os.O_RDONLY)
            try:
                written = os.fstat(fd).st_size
                if written != size:
                    raise ValueError(f"wrote {written} bytes of {source}, expected {size}")
                os.fsync(fd)
            finally:
                os.close(fd)

        self._commit(final, fill)

    def _put_bytes(self, final: Path, data: bytes, durable: bool) -> None:
        if final.is_file() and final.stat().st_size > 0:
            return  # the first object stays; only an empty file (a power cut after a put without fsync) is replaced

        def fill(temp: Path) -> None:
            with open(temp, "xb") as out:
                out.write(data)
                if durable:
                    out.flush()
                    os.fsync(out.fileno())

        self._commit(final, fill, durable=durable)

    def _commit(self, final: Path, fill: Callable[[Path], None], *, durable: bool = True) -> None:
        """Fill a temporary sibling of ``final``, then make it visible atomically (and durably,
        unless the caller can make the object again: then no fsync of the file or directories)."""
        try:
            self._make_directories(final.parent, durable=durable)
            temp = final.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}-{final.name}"
            try:
                fill(temp)
                os.replace(temp, final)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            if durable:
                fsync_directory(final.parent)
        except OSError as exc:
            raise _unavailable(exc) from exc

    def _make_directories(self, directory: Path, *, durable: bool = True) -> None:
        missing: list[Path] = []
        while not directory.is_dir():
            if directory == self.root:
                raise FileNotFoundError(2, "media root directory is missing", str(directory))
            missing.append(directory)
            directory = directory.parent
        for created in reversed(missing):
            try:
                created.mkdir()
            except FileExistsError:
                continue
            if durable:
                fsync_directory(created.parent)

    async def delete(self, key: str) -> None:
        path = self._path(key)

        def delete() -> None:
            try:
                path.unlink(missing_ok=True)
            except IsADirectoryError:
                return
            except OSError as exc:
                raise _unavailable(exc) from exc

        await self._run(delete)

    # --- reads ----------------------------------------------------------------------------------

    async def exists(self, key: str) -> bool:
        return await self._run(self._path(key).is_file)

    async def size(self, key: str) -> int:
        path = self._path(key)

        def size() -> int:
            try:
                info = os.stat(path)
            except FileNotFoundError:
                raise MediaNotFound(detail=f"no object {key}") from None
            except OSError as exc:
                raise _unavailable(exc) from exc
            if not stat.S_ISREG(info.st_mode):
                raise MediaNotFound(detail=f"no object {key}")
            return info.st_size

        return await self._run(size)

    async def open(self, key: str, *, offset: int = 0, length: int | None = None) -> AsyncGenerator[bytes, None]:
        check_range(offset, length)
        path = self._path(key)

        def open_at() -> BinaryIO:
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed by the generator below
            except (FileNotFoundError, IsADirectoryError):
                raise MediaNotFound(detail=f"no object {key}") from None
            except OSError as exc:
                raise _unavailable(exc) from exc
            if offset:
                handle.seek(offset)
            return handle

        handle = await self._run(open_at)
        return self._chunks(handle, length)

    async def _chunks(self, handle: BinaryIO, length: int | None) -> AsyncGenerator[bytes, None]:
        try:
            remaining = length
            while remaining is None or remaining > 0:
                want = self._chunk_size if remaining is None else min(self._chunk_size, remaining)
                try:
                    data = await self._run(handle.read, want)
                except OSError as exc:
                    raise _unavailable(exc) from exc
                if not data:
                    return
                if remaining is not None:
                    remaining -= len(data)
                yield data
        finally:
            handle.close()

    async def list_keys(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        check_prefix(prefix)
        async for item in _threads.iterate(self._limiter, lambda: self._walk(prefix), deadline=self._deadline):
            yield item

    def _walk(self, prefix: str) -> Iterator[StoredObject]:
        base = prefix.rpartition("/")[0]
        top = self.root / base if base else self.root
        for directory, subdirectories, filenames in os.walk(top):
            relative = Path(directory).relative_to(self.root).as_posix()
            lead = "" if relative == "." else relative + "/"
            subdirectories[:] = sorted(
                name
                for name in subdirectories
                if not name.startswith(".")
                and ((lead + name + "/").startswith(prefix) or prefix.startswith(lead + name + "/"))
            )
            for name in sorted(filenames):
                key = lead + name
                if name.startswith(".") or not key.startswith(prefix):
                    continue
                try:
                    info = os.stat(os.path.join(directory, name))
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    yield StoredObject(key, info.st_size, dt.datetime.fromtimestamp(info.st_mtime, dt.UTC))

    # --- operations -----------------------------------------------------------------------------

    async def ping(self) -> None:
        def ping() -> None:
            if not self.root.is_dir():
                raise DependencyUnavailable(
                    f"media store (filesystem): {self.root} is not a directory", dependency="media_store"
                )
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise DependencyUnavailable(
                    f"media store (filesystem): {self.root} is not writable", dependency="media_store"
                )

        await self._run(ping)

    async def presigned_get_url(
        self, key: str, *, expires_s: int, filename: str | None = None, content_type: str | None = None
    ) -> str | None:
        """Files are served by the app itself: there is no URL to hand out."""
        check_key(key)
        return None
