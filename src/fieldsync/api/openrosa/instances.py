"""Read a submitted instance (the XML ODK Collect writes) and turn it into the very struct that
``PUT /v1/reports/{id}`` decodes, ``ReportWrite``, then into the domain submission with the same
``to_submission``. There is no second copy of the report rules: every check that matters
(types, bounds, patterns, required fields) happens in ``msgspec.convert`` against
``ReportWrite``, and the rest in ``services.reports``.

The XML is parsed with defusedxml with DTDs forbidden (no entity expansion, no external
references). Elements are matched by local name, so namespaced instances (``orx:meta`` from
Enketo) read the same. Unknown elements are ignored, as the JSON API ignores unknown fields.
An empty element is an unanswered question: the field is left out, exactly as a JSON client
that has no value leaves it out. Collect writes ``0.0`` as the altitude of a fix without one, so
altitude 0 is treated as unknown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import msgspec
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from fieldsync import errors
from fieldsync.api.openrosa.fields import CAPTION, FORMS, PHOTO, PHOTOS, Field, FormSpec, fields_of
from fieldsync.api.reports import to_submission
from fieldsync.api.schemas.reports import ReportWrite
from fieldsync.domain.reports import ReportSubmission

_INSTANCE_ID = re.compile(r"^uuid:([0-9a-fA-F-]{36})$")


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedInstance:
    spec: FormSpec
    form_version: str | None
    instance_id: uuid.UUID
    deprecated_id: uuid.UUID | None
    values: dict[str, str]  # field path → non-empty text
    photos: list[tuple[str, str | None]]  # (file name, caption) in document order
    xml_sha256: bytes

    @property
    def filenames(self) -> set[str]:
        return {name for name, _ in self.photos}


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _at(element: ET.Element, path: str) -> ET.Element | None:
    found: ET.Element | None = element
    for step in path.split("/"):
        found = _child(found, step) if found is not None else None
    return found


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _uuid_of(value: str, what: str) -> uuid.UUID:
    match = _INSTANCE_ID.match(value)
    if match is not None:
        with contextlib.suppress(ValueError):
            return uuid.UUID(match.group(1))
    raise errors.SubmissionInvalid(f"meta/{what} must be 'uuid:' followed by a UUID, got {value[:80]!r}")


def parse_instance(xml: bytes) -> ParsedInstance:
    """The instance's form, ids and answers; ``openrosa.submission_invalid`` for XML no form explains."""
    try:
        root = fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise errors.SubmissionInvalid(f"the submission is not well-formed XML: {exc}") from exc
    form_id = root.get("id") or ""
    spec = FORMS.get(form_id)
    if spec is None:
        raise errors.SubmissionInvalid(
            f"no form here has the id {form_id[:80]!r} (the form ID xml attribute of the root element); "
            f"this server takes {', '.join(FORMS)}"
        )
    meta = _child(root, "meta")
    instance_id = _text(_child(meta, "instanceID") if meta is not None else None)
    if not instance_id:
        raise errors.SubmissionInvalid("the submission has no meta/instanceID")
    deprecated = _text(_child(meta, "deprecatedID") if meta is not None else None)
    values = {field.path: text for field in fields_of(spec) if (text := _text(_at(root, field.path)))}
    photos = []
    for entry in root:
        if _local(entry.tag) == PHOTOS and (name := _text(_at(entry, PHOTO.split("/", 1)[1]))):
            photos.append((name, _text(_at(entry, CAPTION.split("/", 1)[1]))))
    return ParsedInstance(
        spec=spec, form_version=root.get("version"), instance_id=_uuid_of(instance_id, "instanceID"),
        deprecated_id=_uuid_of(deprecated, "deprecatedID") if deprecated else None,
        values=values, photos=[(name, caption or None) for name, caption in photos],
        xml_sha256=hashlib.sha256(xml).digest(),
    )


def _geopoint(value: str) -> dict[str, float]:
    parts = value.split()
    try:
        numbers = [float(part) for part in parts[:4]]
    except ValueError:
        numbers = []
    if len(numbers) < 2:
        raise errors.ReportInvalid(f"location must be 'lat lon [altitude accuracy]', got {value[:80]!r}",
                                   field="location")
    location = {"lat": numbers[0], "lon": numbers[1], "accuracy_m": numbers[3] if len(numbers) > 3 else 0.0}
    if len(numbers) > 2 and numbers[2] != 0.0:
        location["altitude_m"] = numbers[2]
    return location


def _value(field: Field, text: str) -> Any:
    try:
        if field.type == "int":
            return int(text)
        if field.type == "decimal":
            return float(text)
    except ValueError:
        raise errors.ReportInvalid(f"{field.path} must be a number, got {text[:80]!r}", field=field.path) from None
    if field.type == "geopoint":
        return _geopoint(text)
    return text


def report_body(parsed: ParsedInstance, files: dict[str, str]) -> dict[str, Any]:
    """The report as the JSON API would receive it; photos whose bytes never arrived are left out."""
    body: dict[str, Any] = {"kind": parsed.spec.kind}
    for field in fields_of(parsed.spec):
        text = parsed.values.get(field.path)
        if text is None:
            continue
        target = "location/address" if field.path == "address" else field.path
        *parents, leaf = target.split("/")
        node = body
        for parent in parents:
            node = node.setdefault(parent, {})
        value = _value(field, text)
        if isinstance(value, dict):
            node.setdefault(leaf, {}).update(value)
        else:
            node[leaf] = value
    body["media"] = [
        {"sha256": files[name], "role": parsed.spec.photo_role, "caption": caption}
        for name, caption in parsed.photos if name in files
    ]
    return body


def to_report(parsed: ParsedInstance, report_id: uuid.UUID, files: dict[str, str]) -> ReportSubmission:
    """``ReportWrite`` from the instance, through the JSON API's own conversion."""
    try:
        data = msgspec.convert(report_body(parsed, files), ReportWrite)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = re.search(r"at `\$\.([^`]+)`", message)
        field = match.group(1).replace(".", "/") if match else None
        raise errors.ReportInvalid(message, field=field) from exc
    return to_submission(report_id, data)
