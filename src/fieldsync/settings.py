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
    derivative_workers: int
    header_timeout_s: int
    idle_timeout_s: int
    request_timeout_s: int
    max_connections: int
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
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return env.get(f"FIELDSYNC_{name}", default)

        def get_int(name: str, default: int, minimum: int = 0) -> int:
            raw = get(name, str(default))
            try:
                value = int(raw)
            except ValueError:
                raise ConfigurationInvalid(f"FIELDSYNC_{name} must be an integer, got {raw!r}") from None
            if value < minimum:
                raise ConfigurationInvalid(f"FIELDSYNC_{name} must be at least {minimum}, got {value}")
            return value

        def get_bool(name: str, default: bool) -> bool:
            raw = get(name, "true" if default else "false").strip().lower()
            if raw in {"1", "true", "yes", "on"}:
                return True
            if raw in {"0", "false", "no", "off"}:
                return False
            raise ConfigurationInvalid(f"FIELDSYNC_{name} must be true or false, got {raw!r}")

        public_url = get("PUBLIC_URL", "").strip()
        if public_url and not public_url.startswith(("http://", "https://")):
            raise ConfigurationInvalid("FIELDSYNC_PUBLIC_URL must start with http:// or https://")
        media_url = get("MEDIA_URL", "")
        if media_url and not media_url.startswith(("s3://", "file://")):
            raise ConfigurationInvalid("FIELDSYNC_MEDIA_URL must be s3://bucket or file:///path")
        values: dict[str, object] = dict(
            data_dir=Path(get("DATA_DIR", "./data")).expanduser().resolve(),
            database_url=Secret(get("DATABASE_URL", "")),
            migrate_database_url=Secret(get("MIGRATE_DATABASE_URL", "")),
            media_url=media_url,
            s3_endpoint=get("S3_ENDPOINT", ""),
            s3_access_key=Secret(get("S3_ACCESS_KEY", "")),
            s3_secret_key=Secret(get("S3_SECRET_KEY", "")),
            s3_secure=get_bool("S3_SECURE", True),
            s3_region=get("S3_REGION", "us-east-1"),
            max_media_bytes=get_int("MAX_MEDIA_BYTES", 32 * 1024 * 1024, 1),
            max_media_pixels=get_int("MAX_MEDIA_PIXELS", 64_000_000, 1),
            max_json_bytes=get_int("MAX_JSON_BYTES", 8 * 1024 * 1024, 1024),
            session_ttl_s=get_int("SESSION_TTL_S", 12 * 3600, 60),
            enrollment_ttl_s=get_int("ENROLLMENT_TTL_S", 15 * 60, 30),
            clock_skew_s=get_int("CLOCK_SKEW_S", 600),
            throttle_max_failures=get_int("THROTTLE_MAX_FAILURES", 5, 1),
            throttle_window_s=get_int("THROTTLE_WINDOW_S", 15 * 60, 1),
            throttle_client_max_failures=get_int("THROTTLE_CLIENT_MAX_FAILURES", 20, 1),
            gc_grace_s=get_int("GC_GRACE_S", 7 * 24 * 3600),
            upload_expiry_s=get_int("UPLOAD_EXPIRY_S", 7 * 24 * 3600, 60),
            derivative_workers=get_int("DERIVATIVE_WORKERS", 1),
            header_timeout_s=get_int("HEADER_TIMEOUT_S", 30, 1),
            idle_timeout_s=get_int("IDLE_TIMEOUT_S", 60, 1),
            request_timeout_s=get_int("REQUEST_TIMEOUT_S", 3600, 1),
            max_connections=get_int("MAX_CONNECTIONS", 1000, 1),
            log_json=get_bool("LOG_JSON", True),
            log_level=get("LOG_LEVEL", "info").upper(),
            public_url=public_url,
            console_boundaries=Path(get("CONSOLE_BOUNDARIES", "")).expanduser().resolve()
            if get("CONSOLE_BOUNDARIES", "") else None,
        )
        values.update(overrides)
        for name in ("database_url", "migrate_database_url", "s3_access_key", "s3_secret_key"):
            if isinstance(values[name], str):
                values[name] = Secret(values[name])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]
