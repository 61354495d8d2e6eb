"""``strip_metadata``: a baseline JPEG without its metadata segments, losslessly.

A photo that already fits the preview box, is upright and carries no colour profile needs no new
pixels: its preview is the same scan with every APPn (EXIF and its GPS, XMP, ICC, MPF, JFIF and
its thumbnail) and COM segment removed, which costs a scan for the end marker instead of a JPEG
encode, and loses nothing. Only the simplest layout is rewritten: segments DQT, DHT, DRI and one
baseline SOF0 before a single scan that runs to EOI. Anything else (progressive, several scans,
an Adobe APP14 marker, which can change how the three channels are read) answers ``None`` and the
caller re-encodes. This reads structure, not pixels: the caller must still decode the input.
Whatever follows EOI (phones append a second picture there) is dropped.
"""

from __future__ import annotations

import re

_SOI, _EOI, _SOS, _SOF0 = 0xD8, 0xD9, 0xDA, 0xC0
_KEPT = frozenset({0xDB, 0xC4, 0xDD, _SOF0})  # DQT, DHT, DRI, SOF0
_APP14 = 0xEE
_COM = 0xFE
# The next marker inside entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart
# marker (RST0-7) or another 0xFF (fill bytes).
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _is_metadata(marker: int) -> bool:
    return 0xE0 <= marker <= 0xEF or marker == _COM


def strip_metadata(data: bytes) -> bytes | None:
    """The JPEG with only DQT, DHT, DRI, SOF0 and its scan kept, or None when its layout is not
    the simple baseline one this rewrites."""
    if data[:2] != b"\xff\xd8":
        return None
    kept = [b"\xff\xd8"]
    index, seen_frame = 2, False
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        while index + 1 < len(data) and data[index + 1] == 0xFF:  # fill bytes before a marker
            index += 1
        marker = data[index + 1]
        length = int.from_bytes(data[index + 2 : index + 4], "big")
        end = index + 2 + length
        if length < 2 or end > len(data):
            return None
        segment = data[index:end]
        if marker == _APP14 and segment[4:9] == b"Adobe":
            return None
        if marker == _SOS:
            return _with_scan(data, kept, segment, end) if seen_frame else None
        if _is_metadata(marker):
            index = end
            continue
        if marker not in _KEPT:
            return None
        seen_frame = seen_frame or marker == _SOF0
        kept.append(segment)
        index = end
    return None


def _with_scan(data: bytes, kept: list[bytes], header: bytes, start: int) -> bytes | None:
    found = _MARKER.search(data, start)
    if found is None or data[found.start() + 1] != _EOI:
        return None  # a second scan, a table between scans, or no end marker
    return b"".join([*kept, header, data[start : found.start()], b"\xff\xd9"])
