"""Read an OpenRosa submission body as a stream: ``multipart/form-data`` with the instance XML in
``xml_submission_file``, one part per attachment (named by its file name) and, on every POST of
a split submission but the last, ``*isIncomplete*`` = ``yes``.

Memory stays flat whatever the body: python-multipart is a push parser, each chunk of the
request body is fed to it as it arrives, and each attachment's bytes go straight into a spool
file (hashed as they are written) instead of a buffer. Only the XML part is held in memory, up
to ``max_xml_bytes``. Attachments may come before the XML (any client may order parts as it
likes); once the XML has been read, parts whose file name it does not mention are skipped
unread. Limits are enforced while reading: the announced ``Content-Length``, the running total,
each attachment (``max_media_bytes``) and the number of parts.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from litestar import Request
from litestar.exceptions import InternalServerException
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:  # a TypedDict the library defines for type checkers only
    from python_multipart.multipart import MultipartCallbacks

from fieldsync import errors
from fieldsync.storage.spool import Spool, StagedFile

XML_PART = "xml_submission_file"
INCOMPLETE_PART = "*isIncomplete*"
MAX_PARTS = 250
MAX_FIELD_BYTES = 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int
    max_xml_bytes: int
    max_media_bytes: int


@dataclasses.dataclass(slots=True)
class Attachment:
    filename: str
    content_type: str | None
    staged: StagedFile


@dataclasses.dataclass(slots=True)
class SubmissionBody:
    xml: bytes
    incomplete: bool
    attachments: dict[str, Attachment]


@dataclasses.dataclass(slots=True)
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    buffer: bytearray | None = None
    staged: StagedFile | None = None
    skip: bool = False


def boundary_of(content_type: str | None) -> bytes:
    kind, options = parse_options_header(content_type or "")
    if kind != b"multipart/form-data":
        raise errors.SubmissionInvalid(f"Required multipart POST field {XML_PART} missing.")
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise errors.SubmissionInvalid("Multipart form content failed to parse: boundary not found")
    return boundary


class _Reader:
    """Turns the parser's synchronous callbacks into events handled between chunks."""

    def __init__(self, spool: Spool, stack: contextlib.AsyncExitStack, limits: Limits,
                 wanted: Callable[[bytes], set[str]]) -> None:
        self.spool, self.stack, self.limits, self.wanted_of = spool, stack, limits, wanted
        self.events: list[tuple[str, Any]] = []
        self.header: list[bytes] = [b"", b""]
        self.headers: dict[bytes, bytes] = {}
        self.part = _Part()
        self.parts = 0
        self.ended = False
        self.xml: bytes | None = None
        self.wanted: set[str] | None = None
        self.incomplete = False
        self.attachments: dict[str, Attachment] = {}

    def callbacks(self) -> MultipartCallbacks:
        def header_field(data: bytes, start: int, end: int) -> None:
            self.header[0] += data[start:end]

        def header_value(data: bytes, start: int, end: int) -> None:
            self.header[1] += data[start:end]

        def header_end() -> None:
            self.headers[bytes(self.header[0]).lower()] = bytes(self.header[1])
            self.header = [b"", b""]

        def part_data(data: bytes, start: int, end: int) -> None:
            self.events.append(("data", data[start:end]))

        def part_begin() -> None:
            self.headers = {}

        def end() -> None:
            self.ended = True

        return {
            "on_part_begin": part_begin,
            "on_header_field": header_field,
            "on_header_value": header_value,
            "on_header_end": header_end,
            "on_headers_finished": lambda: self.events.append(("headers", dict(self.headers))),
            "on_part_data": part_data,
            "on_part_end": lambda: self.events.append(("end", None)),
            "on_end": end,
        }

    async def drain(self) -> None:
        events, self.events = self.events, []
        for kind, value in events:
            if kind == "headers":
                await self._begin(value)
            elif kind == "data":
                await self._data(value)
            else:
                await self._end()

    async def _begin(self, headers: dict[bytes, bytes]) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise errors.SubmissionTooLarge(f"at most {MAX_PARTS} parts per request")
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = options.get(b"filename")
        filename = raw_filename.decode("utf-8", "replace") if raw_filename is not None else None
        content_type = headers.get(b"content-type", b"").decode("latin-1").strip() or None
        part = _Part(name=name, filename=filename, content_type=content_type)
        if name in (XML_PART, INCOMPLETE_PART) or filename is None:
            part.buffer = bytearray()
        elif self.wanted is not None and (filename or name) not in self.wanted:
            part.skip = True
        else:
            part.staged = await self.stack.enter_async_context(self.spool.staged())
        self.part = part

    async def _data(self, chunk: bytes) -> None:
        part = self.part
        if part.buffer is not None:
            part.buffer += chunk
            limit = self.limits.max_xml_bytes if part.name == XML_PART else MAX_FIELD_BYTES
            if len(part.buffer) > limit:
                raise errors.SubmissionTooLarge(f"the part {part.name!r} is longer than {limit} bytes")
        elif part.staged is not None:
            await part.staged.write(chunk)
            if part.staged.size > self.limits.max_media_bytes:
                raise errors.MediaTooLarge(
                    f"{part.filename} is larger than {self.limits.max_media_bytes} bytes",
                    limit=self.limits.max_media_bytes,
                )

    async def _end(self) -> None:
        part = self.part
        if part.name == XML_PART and part.buffer is not None:
            self.xml = bytes(part.buffer)
            self.wanted = self.wanted_of(self.xml)
        elif part.name == INCOMPLETE_PART and part.buffer is not None:
            self.incomplete = part.buffer.strip().lower() in (b"yes", b"true", b"1")
        elif part.staged is not None:
            await part.staged.finish()
            key = part.filename or part.name
            self.attachments[key] = Attachment(key, part.content_type, part.staged)
        self.part = _Part()


@contextlib.asynccontextmanager
async def read_submission(
    request: Request[Any, Any, Any], spool: Spool, limits: Limits, wanted: Callable[[bytes], set[str]]
) -> AsyncIterator[SubmissionBody]:
    """The parsed body; its spool files exist until the block ends. ``wanted`` reads the XML
    (raising on a bad one) and names the attachment files it refers to."""
    boundary = boundary_of(request.headers.get("content-type"))
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limits.max_body_bytes:
        raise errors.SubmissionTooLarge(f"the limit is {limits.max_body_bytes} bytes per request")
    async with contextlib.AsyncExitStack() as stack:
        reader = _Reader(spool, stack, limits, wanted)
        parser = MultipartParser(boundary, reader.callbacks(), max_header_count=16)
        total = 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total > limits.max_body_bytes:
                    raise errors.SubmissionTooLarge(f"the limit is {limits.max_body_bytes} bytes per request")
                parser.write(chunk)
                await reader.drain()
        except MultipartParseError as exc:
            raise errors.SubmissionInvalid(f"Multipart form content failed to parse: {exc}") from exc
        except InternalServerException as exc:
            raise errors.SubmissionInvalid("the client disconnected before the last byte") from exc
        if not reader.ended:
            raise errors.SubmissionInvalid("Multipart form content failed to parse: unexpected end of form")
        if reader.xml is None:
            raise errors.SubmissionInvalid(f"Required multipart POST field {XML_PART} missing.")
        wanted_now = reader.wanted or set()
        attachments = {name: a for name, a in reader.attachments.items() if name in wanted_now}
        yield SubmissionBody(reader.xml, reader.incomplete, attachments)
