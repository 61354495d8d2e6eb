"""GB/T 2260 code rules: levels and possible parents."""

from __future__ import annotations

import pytest

from fieldsync.domain.jurisdictions import child_path, is_valid_code, level_of, parent_candidates


@pytest.mark.parametrize(
    ("code", "level", "parents"),
    [
        ("140000", "province", []),
        ("140400", "city", ["140000"]),
        ("140431", "county", ["140400"]),
        ("140431101000", "township", ["140431"]),
        ("110101", "county", ["110100", "110000"]),
        ("500101", "county", ["500100", "500000"]),
        ("419001", "county", ["419000", "410000"]),
        ("130202", "county", ["130200"]),
    ],
)
def test_level_and_parent_candidates(code: str, level: str, parents: list[str]) -> None:
    assert level_of(code) == level
    assert parent_candidates(code) == parents


@pytest.mark.parametrize("code", ["14043", "1404310", "14043110100", "14043A", "", "140431 "])
def test_invalid_codes(code: str) -> None:
    assert not is_valid_code(code)


def test_child_path_extends_the_parent_path() -> None:
    assert child_path(None, "140000") == "/140000/"
    assert child_path("/140000/140400/", "140431") == "/140000/140400/140431/"
