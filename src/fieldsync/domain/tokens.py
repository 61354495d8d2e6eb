"""Bearer tokens and enrollment codes: random secrets of which only a SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets

SESSION_PREFIX = "fsu_"
DEVICE_PREFIX = "fsd_"
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_session_token() -> str:
    return SESSION_PREFIX + secrets.token_urlsafe(32)


def new_device_token() -> str:
    return DEVICE_PREFIX + secrets.token_urlsafe(32)


def new_enrollment_code() -> str:
    """Twelve base32 characters (60 bits) in groups of four, easy to read out or type."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return f"{raw[0:4]}-{raw[4:8]}-{raw[8:12]}"


LOOK_ALIKES = str.maketrans("OIL", "011")


def normalize_enrollment_code(code: str) -> str:
    """Upper-case, drop separators and map look-alikes, so a typed code matches the issued one."""
    cleaned = "".join(ch for ch in code.upper() if ch.isalnum())
    cleaned = cleaned.translate(LOOK_ALIKES)
    if len(cleaned) != 12:
        return cleaned
    return f"{cleaned[0:4]}-{cleaned[4:8]}-{cleaned[8:12]}"
