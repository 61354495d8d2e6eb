"""Constrained scalar types shared by the wire structs.

Every free-text type forbids NUL, which PostgreSQL cannot store in ``text``; bounds are stated in
the type so that they appear in the OpenAPI document and clients see them.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.params import Parameter

NO_NUL = r"^[^\x00]*$"


def exact(core: str) -> str:
    """A pattern the whole string must match. msgspec and Litestar apply patterns with
    ``re.search``, where ``$`` also matches before a final newline, so ``^[0-9a-f]{64}$`` let
    ``"<hash>\\n"`` through to PostgreSQL's stricter check (a 500). The lookahead forbids that
    newline and reads the same in ECMA-262, so the OpenAPI document stays portable."""
    return rf"^(?:{core})(?!\n)$"


SHA256_PATTERN = exact(r"[0-9a-f]{64}")
JURISDICTION_PATTERN = exact(r"[0-9]{6}(?:[0-9]{6})?")
CATEGORY_PATTERN = exact(r"[a-z][a-z0-9_]{0,39}")
USERNAME_PATTERN = exact(r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}")
CREDIT_CODE_PATTERN = exact(r"[0-9A-HJ-NPQRTUWXY]{18}")
CURSOR_PATTERN = exact(r"[A-Za-z0-9_-]+")

ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
OptionalShortText = Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)]
LongText = Annotated[str, msgspec.Meta(max_length=20_000, pattern=NO_NUL)]
CommentBody = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000, pattern=NO_NUL)]
Username = Annotated[
    str,
    msgspec.Meta(
        pattern=USERNAME_PATTERN,
        description="2-64 characters: letters, digits, '.', '_' or '-'",
        examples=["wang.li"],
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=200, pattern=NO_NUL)]
JurisdictionCode = Annotated[
    str, msgspec.Meta(pattern=JURISDICTION_PATTERN, description="GB/T 2260 code", examples=["140431"])
]
# A query parameter: Litestar validates those against ``Parameter`` and ignores ``msgspec.Meta``
# there (with Meta, ``limit=-1`` went unchecked to SQL and failed with a 500).
Limit = Annotated[int, Parameter(ge=1, le=500, description="Page size")]
