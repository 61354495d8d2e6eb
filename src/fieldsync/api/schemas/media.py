"""Wire types for media."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from fieldsync.api.schemas.reports import Sha256


class Exif(msgspec.Struct):
    taken_at: dt.datetime | None
    lat: float | None
    lon: float | None
    make: str | None
    model: str | None


class MediaRead(msgspec.Struct):
    sha256: str
    bytes: int
    content_type: str
    width: int
    height: int
    exif: Exif


class MissingQuery(msgspec.Struct):
    sha256: Annotated[list[Sha256], msgspec.Meta(max_length=1000)]


class MissingRead(msgspec.Struct):
    missing: list[str]
