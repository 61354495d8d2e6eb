"""Settings, read once from ``FIELDSYNC_*`` environment variables and frozen.

Secrets (database URL password, S3 keys) are wrapped in :class:`Secret` so that neither ``repr``
nor a log line can print them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fieldsync.errors import ConfigurationInvalid


@dataclasses.dataclass(frozen=True, slots=True)
class Secret:
    """A string that never shows itself in ``repr`` or ``str``."""

    value: str = dataclasses.field(repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    database_url: Secret
    migrate_database_url: Secret
    media_url: str
    s3_endpoint: str
    s3_access_key: Secret
    s3_secret_key: Secret
    s3_secure: bool
    s3_region: str
    max_media_bytes: int
    max_media_pixels: int
    max_json_bytes: int
    session_ttl_s: int
    enrollment_ttl_s: int
    clock_skew_s: int
    throttle_max_failures: int
    throttle_window_s: int
    throttle_client_max_failures: int
    gc_grace_s: int
    upload_expiry_s: int
    upload_lease_s: int
    derivative_workers: int
    processes: int
    header_timeout_s: int
    idle_timeout_s: int
    request_timeout_s: int
    max_connections: int
    webhook_allow_private: bool
    webhook_timeout_s: int
    webhook_concurrency: int
    db_pool_size: int
    store_timeout_s: int
    disk_reserve_bytes: int
    log_json: bool
    log_level: str
    public_url: str = ""
    console_boundaries: Path | None = None

    @property
    def embedded_database(self) -> bool:
        return not self.database_url

    @property
    def database_url_redacted(self) -> str:
        return _redact_url(self.database_url.value) if self.database_url else "embedded"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read settings from ``env`` (default ``os.environ``); ``overrides`` win (tests use them)."""
        read = _Reader(os.environ if env is None else env)
        values: dict[str, object] = dict(
            data_dir=Path(read.text("DATA_DIR", "./data")).expanduser().resolve(),
            database_url=Secret(read.text("DATABASE_URL", "")),
            migrate_database_url=Secret(read.text("MIGRATE_DATABASE_URL", "")),
            media_url=read.url("MEDIA_URL", ("s3://", "file://"), "s3://bucket or file:///path"),
            s3_endpoint=read.text("S3_ENDPOINT", ""),
            s3_access_key=Secret(read.text("S3_ACCESS_KEY", "")),
            s3_secret_key=Secret(read.text("S3_SECRET_KEY", "")),
            s3_secure=read.flag("S3_SECURE", True),
            s3_region=read.text("S3_REGION", "us-east-1"),
            max_media_bytes=read.number("MAX_MEDIA_BYTES", 32 * 1024 * 1024, 1),
            max_media_pixels=read.number("MAX_MEDIA_PIXELS", 64_000_000, 1),
            max_json_bytes=read.number("MAX_JSON_BYTES", 8 * 1024 * 1024, 1024),
            session_ttl_s=read.number("SESSION_TTL_S", 12 * 3600, 60),
            enrollment_ttl_s=read.number("ENROLLMENT_TTL_S", 15 * 60, 30),
            clock_skew_s=read.number("CLOCK_SKEW_S", 600),
            throttle_max_failures=read.number("THROTTLE_MAX_FAILURES", 5, 1),
            throttle_window_s=read.number("THROTTLE_WINDOW_S", 15 * 60, 1),
            throttle_client_max_failures=read.number("THROTTLE_CLIENT_MAX_FAILURES", 20, 1),
            gc_grace_s=read.number("GC_GRACE_S", 7 * 24 * 3600),
            upload_expiry_s=read.number("UPLOAD_EXPIRY_S", 7 * 24 * 3600, 60),
            upload_lease_s=read.number("UPLOAD_LEASE_S", 20, 1),
            derivative_workers=read.number("DERIVATIVE_WORKERS", 1),
            processes=read.number("PROCESSES", 1, 1),
            header_timeout_s=read.number("HEADER_TIMEOUT_S", 30, 1),
            idle_timeout_s=read.number("IDLE_TIMEOUT_S", 60, 1),
            request_timeout_s=read.number("REQUEST_TIMEOUT_S", 3600, 1),
            max_connections=read.number("MAX_CONNECTIONS", 1000, 1),
            webhook_allow_private=read.flag("WEBHOOK_ALLOW_PRIVATE", False),
            webhook_timeout_s=read.number("WEBHOOK_TIMEOUT_S", 15, 1),
            webhook_concurrency=read.number("WEBHOOK_CONCURRENCY", 16),
            db_pool_size=read.number("DB_POOL_SIZE", 20, 2),
            store_timeout_s=read.number("STORE_TIMEOUT_S", 30, 1),
            disk_reserve_bytes=read.number("DISK_RESERVE_MB", 256) * 1024 * 1024,
            log_json=read.flag("LOG_JSON", True),
            log_level=read.text("LOG_LEVEL", "info").upper(),
            public_url=read.url("PUBLIC_URL", ("http://", "https://"), "an http:// or https:// URL").strip(),
            console_boundaries=read.path("CONSOLE_BOUNDARIES"),
        )
        values.update(overrides)
        for name in ("database_url", "migrate_database_url", "s3_access_key", "s3_secret_key"):
            value = values[name]
            if isinstance(value, str):
                values[name] = Secret(value)
        return cls(**values)  # type: ignore[arg-type]  # values are checked one by one above, by name


@dataclasses.dataclass(frozen=True, slots=True)
class _Reader:
    """``FIELDSYNC_*`` values of one environment, checked; a malformed one names its variable."""

    env: Mapping[str, str]

    def text(self, name: str, default: str) -> str:
        return self.env.get(f"FIELDSYNC_{name}", default)

    def number(self, name: str, default: int, minimum: int = 0) -> int:
        raw = self.text(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationInvalid(f"FIELDSYNC_{name} must be an integer, got {raw!r}") from None
        if value < minimum:
            raise ConfigurationInvalid(f"FIELDSYNC_{name} must be at least {minimum}, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name, "true" if default else "false").strip().lower()
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise ConfigurationInvalid(f"FIELDSYNC_{name} must be true or false, got {raw!r}")

    def path(self, name: str) -> Path | None:
        """An optional file path, resolved against the working directory."""
        value = self.text(name, "").strip()
        return Path(value).expanduser().resolve() if value else None

    def url(self, name: str, schemes: tuple[str, ...], shape: str) -> str:
        """An optional URL that must start with one of ``schemes``."""
        value = self.text(name, "").strip()
        if value and not value.startswith(schemes):
            raise ConfigurationInvalid(f"FIELDSYNC_{name} must be {shape}")
        return value
