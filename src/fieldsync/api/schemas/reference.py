"""Wire types for reference data."""

from __future__ import annotations

from typing import Literal

import msgspec


class JurisdictionRead(msgspec.Struct):
    code: str
    parent_code: str | None
    name_zh: str
    name_en: str | None
    level: Literal["province", "city", "county", "township"]


class CategoryRead(msgspec.Struct):
    kind: Literal["hazard", "disaster", "accident"]
    code: str
    name_zh: str
    name_en: str
