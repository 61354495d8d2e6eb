"""OpenRosa answers: the headers every answer carries, ``OpenRosaResponse`` documents for success
and for errors, and the form list.

Errors are mapped exactly as everywhere else: the app's own handler for the exception
(``api.problems``) decides status and wording, and this module only re-renders that problem
document as an ``OpenRosaResponse`` whose ``message`` Collect shows to the inspector. The
``Date`` header comes from the HTTP server (uvicorn adds it to every response; a second one
from the app would be sent twice).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from litestar import Request, Response
from litestar.datastructures import ResponseHeader

from fieldsync.api.openrosa.xforms import RenderedForm
from fieldsync.api.problems import EXCEPTION_HANDLERS

OPENROSA_VERSION = "1.0"
ACCEPT_CONTENT_LENGTH = 10_000_000
"""Advertised per-request limit: Collect splits a submission whose files add up to more (its own
default is the same 10 MB); a single larger photo still comes alone, up to max_media_bytes."""
XML_MEDIA_TYPE = "text/xml; charset=utf-8"
RESPONSE_NS = "http://openrosa.org/http/response"
FORM_LIST_NS = "http://openrosa.org/xforms/xformsList"

HEADERS = {
    "X-OpenRosa-Version": OPENROSA_VERSION,
    "X-OpenRosa-Accept-Content-Length": str(ACCEPT_CONTENT_LENGTH),
}
RESPONSE_HEADERS = [ResponseHeader(name=name, value=value) for name, value in HEADERS.items()]


def message_document(message: str, *, nature: str | None = None) -> bytes:
    root = ET.Element("OpenRosaResponse", {"xmlns": RESPONSE_NS, "items": "0"})
    element = ET.SubElement(root, "message", {"nature": nature} if nature else {})
    element.text = message
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def xml_response(body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(body, status_code=status, media_type=XML_MEDIA_TYPE, headers={**HEADERS, **(headers or {})})


def form_list_document(forms: list[RenderedForm], base_url: str) -> bytes:
    root = ET.Element("xforms", {"xmlns": FORM_LIST_NS})
    for form in forms:
        entry = ET.SubElement(root, "xform")
        for tag, text in (
            ("formID", form.form_id),
            ("name", form.name),
            ("version", form.version),
            ("hash", f"md5:{form.md5}"),
            ("downloadUrl", f"{base_url}/forms/{form.form_id}.xml"),
        ):
            ET.SubElement(entry, tag).text = text
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _app_handler(exc: Exception) -> Any:
    for cls in type(exc).__mro__:
        if cls in EXCEPTION_HANDLERS:
            return EXCEPTION_HANDLERS[cls]
    return EXCEPTION_HANDLERS[Exception]


def handle_openrosa_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """The app's answer to ``exc`` (status, wording, logging), as an OpenRosaResponse."""
    problem = _app_handler(exc)(request, exc)
    document: dict[str, Any] = problem.content
    title, detail = str(document.get("title", "Error")), document.get("detail")
    message = title if not detail or detail == title else f"{title}: {detail}"
    if document.get("request_id"):
        message = f"{message} (request {document['request_id']})"
    headers = {k: v for k, v in problem.headers.items() if k.lower() in {"retry-after"}}
    return xml_response(
        message_document(message, nature="error"), status=problem.status_code, headers=headers
    )
