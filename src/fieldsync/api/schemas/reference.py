"""Wire types for reference data."""

from __future__ import annotations

import msgspec

from fieldsync.domain.views import Kind, Level


class JurisdictionRead(msgspec.Struct):
    code: str
    parent_code: str | None
    name_zh: str
    name_en: str | None
    level: Level


class CategoryRead(msgspec.Struct):
    kind: Kind
    code: str
    name_zh: str
    name_en: str
