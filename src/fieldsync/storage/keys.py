"""Object keys: content-addressed, the same in every store.

    originals/ab/cd/<sha256>                  the uploaded bytes, byte-identical
    derivatives/ab/cd/<sha256>/preview.jpg    ≤1280 px JPEG, oriented, metadata stripped
    derivatives/ab/cd/<sha256>/thumbnail.jpg  ≤320 px JPEG, likewise

``ab``/``cd`` are the first two byte pairs of the hash, so no directory of the filesystem store
grows past 65 536 entries at the first levels. Everything about one photo sits under the prefixes
``originals/ab/cd/<sha256>`` and ``derivatives/ab/cd/<sha256>/``, which is what gc walks.

A key is a ``/``-separated relative path whose segments are non-empty, do not start with ``.``
(the filesystem store reserves dot-names for its temporary files) and contain only
``[0-9A-Za-z._-]``. ``check_key`` enforces that at every store entry point, so a key can never
escape the store's root.
"""

from __future__ import annotations

import re
from typing import Literal

ORIGINALS = "originals/"
DERIVATIVES = "derivatives/"

DerivativeKind = Literal["preview", "thumbnail"]
DERIVATIVE_KINDS: tuple[DerivativeKind, ...] = ("preview", "thumbnail")

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SEGMENT = re.compile(r"[0-9A-Za-z_-][0-9A-Za-z._-]*")


def is_sha256(value: str) -> bool:
    """True for a lowercase hex SHA-256 digest (the only form keys are built from)."""
    return _SHA256.fullmatch(value) is not None


def _fanout(sha256: str) -> str:
    if not is_sha256(sha256):
        raise ValueError(f"not a lowercase hex sha256: {sha256!r}")
    return f"{sha256[0:2]}/{sha256[2:4]}/{sha256}"


def original_key(sha256: str) -> str:
    return ORIGINALS + _fanout(sha256)


def derivative_key(sha256: str, kind: DerivativeKind) -> str:
    if kind not in DERIVATIVE_KINDS:
        raise ValueError(f"unknown derivative kind {kind!r}")
    return f"{DERIVATIVES}{_fanout(sha256)}/{kind}.jpg"


def sha256_of_key(key: str) -> str | None:
    """The photo a key belongs to, or ``None`` for a key outside the layout (gc leaves those)."""
    parts = key.split("/")
    if len(parts) == 4 and parts[0] + "/" == ORIGINALS:
        sha = parts[3]
    elif len(parts) == 5 and parts[0] + "/" == DERIVATIVES and parts[4] in ("preview.jpg", "thumbnail.jpg"):
        sha = parts[3]
    else:
        return None
    if is_sha256(sha) and parts[1] == sha[0:2] and parts[2] == sha[2:4]:
        return sha
    return None


def check_key(key: str) -> str:
    """Return ``key`` if it is a well-formed object key, else raise ``ValueError``."""
    if not key or len(key) > 512 or not all(_SEGMENT.fullmatch(part) for part in key.split("/")):
        raise ValueError(f"invalid object key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or whole segments followed by ``/`` and an optional partial one."""
    if prefix:
        *dirs, last = prefix.split("/")
        if not all(_SEGMENT.fullmatch(part) for part in dirs) or (last and not _SEGMENT.fullmatch(last)):
            raise ValueError(f"invalid key prefix {prefix!r}")
    return prefix
