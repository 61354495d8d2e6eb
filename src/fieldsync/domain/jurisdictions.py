"""GB/T 2260 administrative division codes: levels, parents and materialised paths."""

from __future__ import annotations

import re

_CODE = re.compile(r"[0-9]{6}([0-9]{6})?")
MUNICIPALITIES = frozenset({"11", "12", "31", "50"})  # 北京, 天津, 上海, 重庆


def is_valid_code(code: str) -> bool:
    return bool(_CODE.fullmatch(code))


def level_of(code: str) -> str:
    """Six digits: province (xx0000), city (xxxx00) or county; twelve digits: township."""
    if len(code) == 12:
        return "township"
    if code.endswith("0000"):
        return "province"
    if code.endswith("00"):
        return "city"
    return "county"


def parent_candidates(code: str) -> list[str]:
    """Possible parent codes, nearest first.

    A county-level unit belongs to its city; only the districts of the four municipalities and
    the province-administered units (``xx90xx``, e.g. 济源市 419001) may skip the city level.
    """
    level = level_of(code)
    if level == "township":
        return [code[:6]]
    if level == "county":
        city = code[:4] + "00"
        if code[:2] in MUNICIPALITIES or code[2:4] == "90":
            return [city, code[:2] + "0000"]
        return [city]
    if level == "city":
        return [code[:2] + "0000"]
    return []


def child_path(parent_path: str | None, code: str) -> str:
    return f"{parent_path or '/'}{code}/"
