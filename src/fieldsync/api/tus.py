"""The tus 1.0.0 header grammar, as pure functions: what a header says, or a catalogue error.
HTTP's business, so it lives at the edge; ``services.uploads`` gets the values.

Every header is untrusted text from a device; each parser accepts exactly the form the protocol
defines and answers ``upload.invalid_header`` / ``upload.metadata_invalid`` /
``upload.checksum_unsupported`` (all 400) for anything else, so bad input can never reach the
database or the disk. https://tus.io/protocols/resumable-upload (protocol.md, 1.0.0)
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import re

from fieldsync import errors
from fieldsync.services.uploads import Checksum, Declared

TUS_VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "checksum", "termination", "expiration")
CHUNK_CONTENT_TYPE = "application/offset+octet-stream"
CHECKSUM_ALGORITHMS = {"sha1": 20, "sha256": 32}
MAX_METADATA_CHARS = 4096

_DIGITS = re.compile(r"[0-9]{1,18}")
_KEY = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # printable ASCII without space and comma


def parse_size(value: str | None, header: str) -> int:
    """A non-negative decimal integer header (``Upload-Length``, ``Upload-Offset``)."""
    if value is None:
        raise errors.UploadHeaderInvalid(f"{header} is required", field=header)
    text = value.strip()
    if not _DIGITS.fullmatch(text):
        raise errors.UploadHeaderInvalid(f"{header} must be a non-negative integer, got {value[:40]!r}", field=header)
    return int(text)


def parse_metadata(value: str | None) -> dict[str, bytes | None]:
    """``Upload-Metadata``: comma-separated ``key`` or ``key base64(value)`` pairs, keys unique."""
    if value is None or not value.strip():
        raise errors.UploadMetadataInvalid("Upload-Metadata is required", field="Upload-Metadata")
    if len(value) > MAX_METADATA_CHARS:
        raise errors.UploadMetadataInvalid(
            f"Upload-Metadata is longer than {MAX_METADATA_CHARS} characters", field="Upload-Metadata"
        )
    pairs: dict[str, bytes | None] = {}
    for item in value.split(","):
        parts = item.strip().split(" ")
        if len(parts) > 2 or not _KEY.fullmatch(parts[0]):
            raise errors.UploadMetadataInvalid(
                f"malformed Upload-Metadata pair {item.strip()[:60]!r}", field="Upload-Metadata"
            )
        key = parts[0]
        if key in pairs:
            raise errors.UploadMetadataInvalid(f"Upload-Metadata repeats the key {key!r}", field="Upload-Metadata")
        if len(parts) == 1:
            pairs[key] = None
            continue
        try:
            pairs[key] = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            raise errors.UploadMetadataInvalid(
                f"the Upload-Metadata value of {key!r} is not base64", field="Upload-Metadata"
            ) from None
    return pairs


def metadata_text(pairs: dict[str, bytes | None], key: str) -> str:
    """A required metadata value as text (UTF-8), or ``upload.metadata_invalid`` naming the key."""
    raw = pairs.get(key)
    if not raw:
        raise errors.UploadMetadataInvalid(f"Upload-Metadata must carry {key!r}", field=f"Upload-Metadata.{key}")
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise errors.UploadMetadataInvalid(f"the {key!r} value is not UTF-8", field=f"Upload-Metadata.{key}") from None


def declared_sha256(pairs: dict[str, bytes | None]) -> str:
    text = metadata_text(pairs, "sha256").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise errors.UploadMetadataInvalid(
            "the 'sha256' value must be 64 hex digits", field="Upload-Metadata.sha256"
        )
    return text


def declared_upload(value: str | None) -> Declared:
    """What ``Upload-Metadata`` declares: the file's sha256 and its content type (still as sent)."""
    pairs = parse_metadata(value)
    assert value is not None
    return Declared(metadata=value.strip(), sha256=declared_sha256(pairs),
                    content_type=metadata_text(pairs, "content_type"))


def parse_checksum(value: str | None) -> Checksum | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``; ``None`` when absent."""
    if value is None:
        return None
    parts = value.strip().split(" ")
    if len(parts) != 2 or not parts[0]:
        raise errors.UploadHeaderInvalid(
            "Upload-Checksum must be '<algorithm> <base64 digest>'", field="Upload-Checksum"
        )
    algorithm = parts[0].lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise errors.UploadChecksumUnsupported(
            f"{parts[0][:20]!r} is not supported; use one of {', '.join(CHECKSUM_ALGORITHMS)}", field="Upload-Checksum"
        )
    try:
        digest = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise errors.UploadHeaderInvalid("the Upload-Checksum digest is not base64", field="Upload-Checksum") from None
    if len(digest) != CHECKSUM_ALGORITHMS[algorithm]:
        raise errors.UploadHeaderInvalid(
            f"a {algorithm} digest has {CHECKSUM_ALGORITHMS[algorithm]} bytes, got {len(digest)}",
            field="Upload-Checksum",
        )
    return Checksum(algorithm, digest)


def is_chunk_content_type(value: str | None) -> bool:
    return (value or "").split(";", 1)[0].strip().lower() == CHUNK_CONTENT_TYPE


def http_date(when: dt.datetime) -> str:
    """RFC 7231 IMF-fixdate, as ``Upload-Expires`` wants it."""
    return email.utils.format_datetime(when.astimezone(dt.UTC), usegmt=True)
