"""The S3 ``MediaStore`` (MinIO in production) through the ``minio`` client.

The client is blocking (urllib3), so every call runs in a worker thread bounded by the store's
limiter; uploads have a second, smaller limiter because of how the client uploads:

- ``minio`` reads each part fully into memory before sending it (it signs the payload hash over
  plain HTTP and sends Content-MD5 over HTTPS). Memory per upload in flight is therefore one part
  (``part_size``, default 8 MiB, uploaded sequentially), and ``max_concurrent_puts`` (default 4)
  caps the total at about 32 MiB whatever the number of concurrent requests.
- Objects up to ``part_size`` go up in one PUT carrying ``x-amz-checksum-sha256``: AWS S3 and
  MinIO recompute it and refuse the PUT if the bytes differ. Larger objects go up as multipart;
  a whole-object SHA-256 cannot be sent for those (S3 offers SHA-256 only as a checksum of part
  checksums, and ``minio`` 7.2 has no API for per-part checksums), so each part is protected by
  its signed payload hash / Content-MD5 instead. moto, the test server, stores the checksum
  header without verifying it, so the tests can show it is sent but not that it is enforced.
- Every object carries ``x-amz-meta-sha256`` and its content type. After a put the store stats
  the object and compares the size (and the checksum, when the server reports one); on a
  mismatch it deletes the object and raises, so a content-addressed key never holds wrong bytes.
- A put is idempotent: it stats first and returns if the key exists. Concurrent puts of the
  same key both upload the same bytes; S3 PUTs are atomic, the last one wins, nothing is partial.

``media_url`` is ``s3://bucket`` or ``s3://bucket/prefix``: with a prefix every key is stored
under ``prefix/`` and ``list_keys`` strips it again. ``FIELDSYNC_S3_ENDPOINT`` is ``host:port``;
a scheme (``http://`` / ``https://``) may be given and then decides TLS over
``FIELDSYNC_S3_SECURE``. The region is always configured (default ``us-east-1``), so the client
never has to ask the server for a bucket's location and presigning needs no round trip.

Errors: ``NoSuchKey`` is ``MediaNotFound``; MinIO's ``XMinioStorageFull`` (its disks are nearly
full) is ``StorageFull``; everything else the server or the network says
(refused connection, timeout, 5xx, AccessDenied, NoSuchBucket) is ``DependencyUnavailable``
naming the S3 error code or the exception class, never the credentials.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import os
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import certifi
import urllib3
from anyio import CapacityLimiter
from minio import Minio
from minio.error import MinioException, S3Error
from minio.helpers import MIN_PART_SIZE

from fieldsync.errors import ConfigurationInvalid, DependencyUnavailable, FieldsyncError, MediaNotFound, StorageFull
from fieldsync.ports import StoredObject
from fieldsync.settings import Settings
from fieldsync.storage import _threads
from fieldsync.storage.filesystem import check_range
from fieldsync.storage.keys import check_key, check_prefix

T = TypeVar("T")

PART_SIZE = 8 * 1024 * 1024
CHUNK_SIZE = 256 * 1024
MAX_PRESIGN_S = 7 * 24 * 3600
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchObject"})


def translate(exc: Exception, key: str | None = None) -> FieldsyncError:
    """The catalogue error for whatever the minio client or urllib3 raised."""
    if isinstance(exc, S3Error):
        if exc.code in _NOT_FOUND_CODES and key is not None:
            return MediaNotFound(detail=f"no object {key}")
        if exc.code == "XMinioStorageFull":
            return StorageFull(f"media store (S3): {exc.code}")
        return DependencyUnavailable(f"media store (S3): {exc.code}", dependency="media_store")
    return DependencyUnavailable(f"media store (S3): {exc.__class__.__name__}", dependency="media_store")


_CLIENT_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError)


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the RFC 5987 UTF-8 name."""
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else "_" for ch in filename)
    encoded = urllib.parse.quote(filename, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def parse_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """``host:port`` and TLS from ``FIELDSYNC_S3_ENDPOINT`` (a scheme, if given, decides TLS)."""
    if "://" in endpoint:
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigurationInvalid("FIELDSYNC_S3_ENDPOINT must be host:port or http(s)://host:port")
        return parts.netloc, parts.scheme == "https"
    if not endpoint or "/" in endpoint:
        raise ConfigurationInvalid("FIELDSYNC_S3_ENDPOINT must be host:port or http(s)://host:port")
    return endpoint, secure


def parse_media_url(media_url: str) -> tuple[str, str]:
    """(bucket, key prefix ending in ``/`` or empty) from ``s3://bucket[/prefix]``."""
    parts = urllib.parse.urlsplit(media_url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigurationInvalid("FIELDSYNC_MEDIA_URL must be s3://bucket or s3://bucket/prefix")
    prefix = parts.path.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except ValueError:
            raise ConfigurationInvalid(f"FIELDSYNC_MEDIA_URL has an invalid prefix {prefix!r}") from None
        prefix += "/"
    return parts.netloc, prefix


def http_client(*, secure: bool, pool_size: int, timeout_s: float = 30) -> urllib3.PoolManager:
    """Shorter timeouts and fewer retries than minio's defaults (5 min, 5 retries), so an
    unreachable store fails readiness and requests within seconds. A read that times out is not
    retried: a store that hangs must cost a request ``timeout_s`` (``FIELDSYNC_STORE_TIMEOUT_S``),
    not a multiple of it, and the worker thread must come free then too."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(5.0, timeout_s), read=timeout_s),
        maxsize=pool_size,
        cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=3, connect=2, read=0, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )


class S3MediaStore:
    """``MediaStore`` on one S3 bucket. Call ``ensure_bucket()`` once before use."""

    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        prefix: str = "",
        part_size: int = PART_SIZE,
        max_threads: int = 16,
        max_concurrent_puts: int = 4,
        chunk_size: int = CHUNK_SIZE,
        timeout_s: float = 30,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE}")
        self._client = client
        self.bucket = bucket
        self._prefix = prefix
        self._part_size = part_size
        self._limiter = CapacityLimiter(max_threads)
        self._put_limiter = CapacityLimiter(max_concurrent_puts)
        self._chunk_size = chunk_size
        self._deadline = _threads.Deadline(timeout_s, "media store (S3)")

    @classmethod
    def from_settings(cls, settings: Settings) -> S3MediaStore:
        bucket, prefix = parse_media_url(settings.media_url)
        host, secure = parse_endpoint(settings.s3_endpoint, settings.s3_secure)
        max_threads = 16
        client = Minio(
            host,
            access_key=settings.s3_access_key.value or None,
            secret_key=settings.s3_secret_key.value or None,
            secure=secure,
            region=settings.s3_region or "us-east-1",
            http_client=http_client(secure=secure, pool_size=max_threads, timeout_s=settings.store_timeout_s),
        )
        return cls(client, bucket, prefix=prefix, max_threads=max_threads, timeout_s=settings.store_timeout_s)

    def __repr__(self) -> str:
        return f"S3MediaStore(bucket={self.bucket!r}, prefix={self._prefix!r})"

    def _name(self, key: str) -> str:
        return self._prefix + check_key(key)

    async def _run(self, func: Callable[..., T], *args: object, key: str | None = None) -> T:
        return await _threads.run(self._limiter, self._translated(func, key), *args, deadline=self._deadline)

    # --- what the upload area (``storage.multipart``) shares: client, bucket, names, limiters -----

    @property
    def client(self) -> Minio:
        return self._client

    def object_name(self, key: str) -> str:
        """The bucket's name for ``key`` (the configured prefix in front)."""
        return self._name(key)

    def listing_prefix(self, prefix: str) -> str:
        """The bucket's name for a listing ``prefix`` (``keys.check_prefix``)."""
        return self._prefix + check_prefix(prefix)

    async def call(self, func: Callable[[], T]) -> T:
        """A blocking client call in the store's threads, its errors translated."""
        return await self._run(func)

    async def call_put(self, func: Callable[[], T]) -> T:
        """Like ``call`` for a call that holds a part in memory: bounded like ``put_file``."""
        return await _threads.run(self._put_limiter, self._translated(func, None))

    @staticmethod
    def _translated(func: Callable[..., T], key: str | None) -> Callable[..., T]:
        def call(*args: Any) -> T:
            try:
                return func(*args)
            except _CLIENT_ERRORS as exc:
                raise translate(exc, key) from exc

        return call

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (startup); idempotent and race-safe."""

        def ensure() -> None:
            if self._client.bucket_exists(self.bucket):
                return
            try:
                self._client.make_bucket(self.bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

        await self._run(ensure)
        await self.ping()

    # --- writes ---------------------------------------------------------------------------------

    async def put_file(self, key: str, path: Path, *, sha256: str, size: int, content_type: str) -> None:
        name = self._name(key)

        def upload() -> None:
            if self._stat(name) is not None:
                return
            actual = os.stat(path).st_size
            if actual != size:
                raise ValueError(f"{path} has {actual} bytes, the caller said {size}")
            with open(path, "rb") as source:
                self._upload(name, source, size, sha256, content_type)

        await _threads.run(self._put_limiter, self._translated(upload, key), deadline=self._deadline)

    async def put_bytes(self, key: str, data: bytes, *, content_type: str, durable: bool = True) -> None:
        name = self._name(key)
        digest = hashlib.sha256(data).hexdigest()

        def upload() -> None:
            if self._stat(name) is None:
                self._upload(name, io.BytesIO(data), len(data), digest, content_type)

        await _threads.run(self._put_limiter, self._translated(upload, key), deadline=self._deadline)

    def _upload(self, name: str, source: BinaryIO, size: int, sha256: str, content_type: str) -> None:
        headers: dict[str, str] = {"x-amz-meta-sha256": sha256}
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        single_part = size <= self._part_size
        if single_part:
            headers["x-amz-checksum-sha256"] = checksum
            headers["x-amz-sdk-checksum-algorithm"] = "SHA256"
        self._client.put_object(
            self.bucket,
            name,
            source,
            size,
            content_type=content_type,
            metadata=headers,  # type: ignore[arg-type]  # minio types metadata narrower than it accepts
            part_size=self._part_size,
            num_parallel_uploads=1,
        )
        stored = self._stat(name, checksum_mode=single_part)
        problem = None
        if stored is None:
            problem = "object missing right after upload"
        elif stored.size != size:
            problem = f"stored {stored.size} bytes, sent {size}"
        else:
            reported = (stored.metadata or {}).get("x-amz-checksum-sha256") if single_part else None
            if reported is not None and reported.split("-")[0] != checksum:
                problem = "stored checksum differs from the sent one"
        if problem is not None:
            self._client.remove_object(self.bucket, name)
            raise DependencyUnavailable(f"media store (S3): {problem}", dependency="media_store")

    def _stat(self, name: str, *, checksum_mode: bool = False) -> Any:
        try:
            return self._client.stat_object(
                self.bucket, name, extra_headers={"x-amz-checksum-mode": "ENABLED"} if checksum_mode else None
            )
        except S3Error as exc:
            if exc.code in _NOT_FOUND_CODES:
                return None
            raise

    async def delete(self, key: str) -> None:
        await self._run(self._client.remove_object, self.bucket, self._name(key), key=key)

    # --- reads ----------------------------------------------------------------------------------

    async def exists(self, key: str) -> bool:
        name = self._name(key)
        return await self._run(lambda: self._stat(name) is not None, key=key)

    async def size(self, key: str) -> int:
        name = self._name(key)

        def size() -> int:
            stored = self._stat(name)
            if stored is None:
                raise MediaNotFound(detail=f"no object {key}")
            return int(stored.size)

        return await self._run(size, key=key)

    async def open(self, key: str, *, offset: int = 0, length: int | None = None) -> AsyncGenerator[bytes, None]:
        check_range(offset, length)
        name = self._name(key)
        if length == 0:
            await self.size(key)
            return _empty()

        def get() -> urllib3.BaseHTTPResponse | None:
            try:
                return self._client.get_object(self.bucket, name, offset=offset, length=length or 0)
            except S3Error as exc:
                if exc.code == "InvalidRange":
                    return None
                raise

        response = await self._run(get, key=key)
        if response is None:
            return _empty()
        return self._chunks(response, key)

    async def _chunks(self, response: urllib3.BaseHTTPResponse, key: str) -> AsyncGenerator[bytes, None]:
        try:
            while True:
                data = await self._run(response.read, self._chunk_size, key=key)
                if not data:
                    return
                yield data
        finally:
            response.close()
            response.release_conn()

    async def list_keys(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        check_prefix(prefix)
        strip = len(self._prefix)

        def listing() -> Iterator[StoredObject]:
            for item in self._client.list_objects(self.bucket, prefix=self._prefix + prefix, recursive=True):
                if item.object_name is None or item.is_dir:
                    continue
                modified = item.last_modified or dt.datetime.fromtimestamp(0, dt.UTC)
                yield StoredObject(item.object_name[strip:], int(item.size or 0), modified)

        async for item in _threads.iterate(self._limiter, lambda: _TranslatingIterator(listing()),
                                           deadline=self._deadline):
            yield item

    # --- operations -----------------------------------------------------------------------------

    async def ping(self) -> None:
        def ping() -> None:
            if not self._client.bucket_exists(self.bucket):
                raise DependencyUnavailable(
                    f"media store (S3): bucket {self.bucket} does not exist", dependency="media_store"
                )

        await self._run(ping)

    async def presigned_get_url(
        self, key: str, *, expires_s: int, filename: str | None = None, content_type: str | None = None
    ) -> str | None:
        if not 1 <= expires_s <= MAX_PRESIGN_S:
            raise ValueError(f"expires_s must be within 1..{MAX_PRESIGN_S}")
        overrides: dict[str, str | list[str] | tuple[str]] = {}
        if filename:
            overrides["response-content-disposition"] = content_disposition(filename)
        if content_type:
            overrides["response-content-type"] = content_type
        try:
            return self._client.presigned_get_object(
                self.bucket,
                self._name(key),
                expires=dt.timedelta(seconds=expires_s),
                response_headers=overrides or None,
            )
        except _CLIENT_ERRORS as exc:
            raise translate(exc, key) from exc


async def _empty() -> AsyncGenerator[bytes, None]:
    return
    yield


class _TranslatingIterator(Iterator[StoredObject]):
    """Wrap the listing generator so errors raised while paging are translated in the thread."""

    def __init__(self, inner: Iterator[StoredObject]) -> None:
        self._inner = inner

    def __next__(self) -> StoredObject:
        try:
            return next(self._inner)
        except _CLIENT_ERRORS as exc:
            raise translate(exc) from exc
