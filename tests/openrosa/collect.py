"""A stand-in for ODK Collect that sends the exact request shapes Collect sends (read from
getodk/collect: ``OkHttpConnection``, ``OkHttpOpenRosaServerClientProvider``,
``OpenRosaServerInstanceUploader``, ``OpenRosaClient``), plus a generic form filler.

- every request carries ``User-Agent``, ``X-OpenRosa-Version: 1.0`` and a ``Date`` in Collect's
  own format; form-list, form and submission URLs get ``?deviceID=…``;
- before uploading, a HEAD to ``{server}/submission``; only 204 counts, and its
  ``X-OpenRosa-Accept-Content-Length`` (10,000,000 if absent) sets where a submission splits;
- the POST is OkHttp's ``multipart/form-data``: ``xml_submission_file`` (``text/xml``) first, then
  one part per file named (name and filename) by its file name, each part with its
  ``Content-Length``; when the next file would pass the limit (or after 100 files) the POST ends
  with a field ``*isIncomplete*`` = ``yes`` and the rest follows in another POST with the same
  XML. Only 201 and 202 count as success.

The filler reads an XForm's primary instance, binds and controls, and answers every question
with a valid value chosen from the control's items or by type (a string that must match a
``regex(...)`` constraint gets the first candidate that matches).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import httpx

XF = "{http://www.w3.org/2002/xforms}"
USER_AGENT = "org.odk.collect.android/v2025.2.0 okhttp/4.12.0 Dalvik/2.1.0 (Linux; U; Android 14)"
DEVICE_ID = "collect:Xk2q8ZrT0pLm4N7v"
STRING_CANDIDATES = ("测试文字 test", str(uuid.UUID(int=0x6F1C1D8E0C554D439B7E2F0F6F7F0A11)), "91350100M000100Y43")


def collect_date(now: dt.datetime | None = None) -> str:
    """``E, dd MMM yyyy hh:mm:ss zz`` in GMT (Collect's own pattern, 12-hour ``hh`` included)."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%a, %d %b %Y %I:%M:%S GMT")


def headers() -> dict[str, str]:
    return {"User-Agent": USER_AGENT, "X-OpenRosa-Version": "1.0", "Date": collect_date()}


def multipart_body(
    xml_name: str, xml: bytes, files: list[tuple[str, bytes]], *, incomplete: bool, xml_after: int = 0
) -> tuple[bytes, str]:
    """OkHttp's MultipartBody as Collect builds it (``xml_after`` files before the XML part, as
    other clients order them); returns (body, content type)."""
    boundary = str(uuid.uuid4())
    out = bytearray()

    def part(disposition: str, content_type: str | None, data: bytes) -> None:
        out.extend(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode())
        if content_type:
            out.extend(f"Content-Type: {content_type}\r\n".encode())
        out.extend(f"Content-Length: {len(data)}\r\n\r\n".encode())
        out.extend(data + b"\r\n")

    for index, (name, data) in enumerate([("", b""), *files]):
        if index == xml_after + 1 or (index == 0 and xml_after == 0):
            part(f'form-data; name="xml_submission_file"; filename="{xml_name}"', "text/xml", xml)
        if index:
            part(f'form-data; name="{name}"; filename="{name}"', _content_type(name), data)
    if incomplete:
        part('form-data; name="*isIncomplete*"', None, b"yes")
    out.extend(f"--{boundary}--\r\n".encode())
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _content_type(name: str) -> str:
    return {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png"}.get(name.rsplit(".", 1)[-1], "application/octet-stream")


def split_posts(files: list[tuple[str, bytes]], xml: bytes, limit: int) -> list[tuple[list[tuple[str, bytes]], bool]]:
    """Collect's split of one submission into POSTs: [(files, incomplete)], in sending order."""
    posts: list[tuple[list[tuple[str, bytes]], bool]] = []
    index, first = 0, True
    while index < len(files) or first:
        first, last_index, count, batch, incomplete = False, index, len(xml), [], False
        while index < len(files):
            batch.append(files[index])
            count += len(files[index][1])
            if index + 1 < len(files) and (index - last_index + 1 > 100 or count + len(files[index + 1][1]) > limit):
                incomplete = True
                index += 1
                break
            index += 1
        posts.append((batch, incomplete))
    return posts


@dataclasses.dataclass
class Collect:
    client: httpx.AsyncClient
    server_url: str

    def url(self, path: str) -> str:
        return f"{self.server_url.rstrip('/')}{path}"

    async def head_submission(self) -> httpx.Response:
        return await self.client.head(self.url("/submission"), params={"deviceID": DEVICE_ID}, headers=headers())

    async def form_list(self) -> list[dict[str, str]]:
        response = await self.client.get(self.url("/formList"), params={"deviceID": DEVICE_ID}, headers=headers())
        assert response.status_code == 200, response.text
        assert "text/xml" in response.headers["content-type"]
        assert response.headers["x-openrosa-version"] == "1.0"
        root = ET.fromstring(response.content)
        assert root.tag == "{http://openrosa.org/xforms/xformsList}xforms"
        ns = "{http://openrosa.org/xforms/xformsList}"
        return [{child.tag.removeprefix(ns): child.text or "" for child in entry} for entry in root]

    async def download(self, url: str) -> bytes:
        response = await self.client.get(url, params={"deviceID": DEVICE_ID}, headers=headers())
        assert response.status_code == 200, response.text
        return response.content

    async def submit(
        self, xml: bytes, files: list[tuple[str, bytes]], *, xml_name: str = "instance.xml", limit: int | None = None
    ) -> list[httpx.Response]:
        """HEAD, then the POSTs of one submission; stops at the first that is not 201/202.
        ``limit`` stands in for a smaller advertised accept length, to make Collect split."""
        head = await self.head_submission()
        assert head.status_code == 204, head.text
        limit = limit or int(head.headers.get("x-openrosa-accept-content-length", "10000000"))
        answers = []
        for batch, incomplete in split_posts(files, xml, limit):
            body, content_type = multipart_body(xml_name, xml, batch, incomplete=incomplete)
            response = await self.post(body, content_type)
            answers.append(response)
            if response.status_code not in (201, 202):
                break
        return answers


    async def post(self, body: bytes, content_type: str, **extra: str) -> httpx.Response:
        return await self.client.post(
            self.url("/submission"), params={"deviceID": DEVICE_ID}, content=body,
            headers={**headers(), "Content-Type": content_type, **extra},
        )


def message(response: httpx.Response) -> str:
    """The OpenRosaResponse message, as Collect's ResponseMessageParser reads it."""
    root = ET.fromstring(response.content)
    assert root.tag == "{http://openrosa.org/http/response}OpenRosaResponse", response.text
    found = root.find("{http://openrosa.org/http/response}message")
    assert found is not None
    return found.text or ""


# --- the generic form filler -------------------------------------------------------------------


@dataclasses.dataclass
class Filled:
    xml: bytes
    values: dict[str, str]  # instance path → value written
    photos: list[str]


def _paths(element: ET.Element, prefix: str) -> list[tuple[str, ET.Element]]:
    found: list[tuple[str, ET.Element]] = []
    for child in element:
        path = f"{prefix}/{child.tag.removeprefix(XF)}"
        found.append((path, child))
        found.extend(_paths(child, path))
    return found


def _value_for(bind: dict[str, str], items: list[str], now: str) -> str:
    kind = bind.get("type", "string")
    if items:
        return items[0]
    if kind == "int":
        return "3"
    if kind == "decimal":
        return "12.5"
    if kind == "dateTime":
        return now
    if kind == "geopoint":
        return "36.6881 112.3526 1050.0 4.5"
    regex = re.search(r"regex\(\., '([^']*)'\)", bind.get("constraint", ""))
    for candidate in STRING_CANDIDATES:
        if regex is None or re.search(regex.group(1), candidate):
            return candidate
    raise AssertionError(f"no candidate value satisfies {bind}")


def fill_form(xform: bytes, photos: list[str], *, now: str = "2026-06-01T15:40:00.000+08:00") -> Filled:
    root = ET.fromstring(xform)
    model = root.find(f".//{XF}model")
    assert model is not None
    data = next(i for i in model.findall(f"{XF}instance") if "id" not in i.attrib)[0]
    binds = {b.get("nodeset", ""): dict(b.attrib) for b in model.findall(f"{XF}bind")}
    items = {c.get("ref", ""): [v.text or "" for v in c.findall(f"{XF}item/{XF}value")]
             for c in root.iter() if c.tag == f"{XF}select1"}
    repeats = {r.get("nodeset", "") for r in root.iter(f"{XF}repeat")}
    out = ET.Element("data", {k: v for k, v in data.attrib.items()})
    values: dict[str, str] = {}

    def fill(source: ET.Element, target: ET.Element, prefix: str) -> None:
        for child in source:
            name = child.tag.removeprefix(XF)
            path = f"{prefix}/{name}"
            if child.get("{http://openrosa.org/javarosa}template") is not None:
                continue
            if path in repeats:
                for photo in photos:
                    entry = ET.SubElement(target, name)
                    for leaf in child:
                        leaf_name = leaf.tag.removeprefix(XF)
                        kind = binds.get(f"{path}/{leaf_name}", {}).get("type")
                        ET.SubElement(entry, leaf_name).text = photo if kind == "binary" else f"说明 {photo}"
                continue
            node = ET.SubElement(target, name)
            if len(child):
                fill(child, node, path)
            elif path == "/data/meta/instanceID":
                node.text = f"uuid:{uuid.uuid4()}"
            elif path in binds and "calculate" not in binds[path]:
                node.text = values[path] = _value_for(binds[path], items.get(path, []), now)

    fill(data, out, "/data")
    return Filled(b"<?xml version='1.0' ?>" + ET.tostring(out, encoding="unicode").encode(), values, photos)


def instance_id(xml: bytes) -> uuid.UUID:
    found = ET.fromstring(xml).find("meta/instanceID")
    assert found is not None and found.text
    return uuid.UUID(found.text.removeprefix("uuid:"))


def with_meta(xml: bytes, *, instance: uuid.UUID, deprecated: uuid.UUID | None = None, **replace: Any) -> bytes:
    """The same instance under another instanceID (and a deprecatedID, as an edit has)."""
    root = ET.fromstring(xml)
    meta = root.find("meta")
    assert meta is not None
    meta.find("instanceID").text = f"uuid:{instance}"  # type: ignore[union-attr]
    if deprecated is not None:
        ET.SubElement(meta, "deprecatedID").text = f"uuid:{deprecated}"
    for path, value in replace.items():
        root.find(path.replace("__", "/")).text = value  # type: ignore[union-attr]
    return b"<?xml version='1.0' ?>" + ET.tostring(root, encoding="unicode").encode()
