"""Render a ``FormSpec`` as an ODK XForm for one device: Chinese labels by default and English as
the second language (itext), the device user's categories and jurisdiction subtree as choices,
a geopoint, photos as a repeat of image ``binary`` fields with a caption, and
``meta/instanceID``.

The bytes are deterministic for the same reference data. ``version`` is derived from the form's
own content (the bytes rendered with an empty version), so a new category or jurisdiction gives
a new ``version`` and, with it, a new ``md5:`` hash in the form list: Collect then offers the
update (with ``form_update_mode = match_exactly`` it fetches it by itself).
"""

from __future__ import annotations

import dataclasses
import hashlib
import xml.etree.ElementTree as ET

from fieldsync.api.openrosa.fields import CAPTION, FIXED_CHOICES, FORMS, PHOTO, PHOTOS, Field, FormSpec, Group
from fieldsync.services.openrosa import Choice, FormReference

XF = "http://www.w3.org/2002/xforms"
H = "http://www.w3.org/1999/xhtml"
JR = "http://openrosa.org/javarosa"
ODK = "http://www.opendatakit.org/xforms"
ORX = "http://openrosa.org/xforms"
for _prefix, _uri in (("", XF), ("h", H), ("jr", JR), ("odk", ODK), ("orx", ORX)):
    ET.register_namespace(_prefix, _uri)

LANGUAGES = (("中文 (zh)", 0), ("English (en)", 1))
ROOT = "/data"
_BIND_TYPES = {"string": "string", "select1": "string", "int": "int", "decimal": "decimal",
               "geopoint": "geopoint", "dateTime": "dateTime"}


@dataclasses.dataclass(frozen=True, slots=True)
class RenderedForm:
    form_id: str
    name: str
    version: str
    xml: bytes

    @property
    def md5(self) -> str:
        return hashlib.md5(self.xml, usedforsecurity=False).hexdigest()


def _x(tag: str) -> str:
    return f"{{{XF}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k.replace("__", ":"): v for k, v in attrs.items()})
    element.text = text
    return element


class _Builder:
    """Collects itext entries while the body and binds are written."""

    def __init__(self, spec: FormSpec, ref: FormReference) -> None:
        self.spec = spec
        self.ref = ref
        self.texts: list[tuple[str, tuple[str, str]]] = []

    def text(self, text_id: str, value: tuple[str, str]) -> str:
        self.texts.append((text_id, value))
        return f"jr:itext('{text_id}')"

    def choices(self, name: str) -> list[tuple[str, str, str]]:
        if name == "categories":
            source: list[Choice] = self.ref.categories.get(self.spec.kind, [])
            return [(c.code, c.name_zh, c.name_en) for c in source]
        if name == "jurisdictions":
            return [(c.code, c.name_zh, c.name_en) for c in self.ref.jurisdictions]
        return list(FIXED_CHOICES[name])

    def label(self, parent: ET.Element, text_id: str, value: tuple[str, str]) -> None:
        _sub(parent, _x("label"), ref=self.text(text_id, value))

    def control(self, body: ET.Element, field: Field) -> None:
        ref = f"{ROOT}/{field.path}"
        tag = "select1" if field.type == "select1" else "input"
        attrs = {"ref": ref} | ({"appearance": field.appearance} if field.appearance else {})
        control = _sub(body, _x(tag), **attrs)
        self.label(control, f"{ref}:label", field.label)
        if field.hint:
            _sub(control, _x("hint"), ref=self.text(f"{ref}:hint", field.hint))
        for value, zh, en in self.choices(field.choices) if field.choices else []:
            item = _sub(control, _x("item"))
            self.label(item, f"{field.choices}-{value}", (zh, en))
            _sub(item, _x("value"), value)

    def bind(self, model: ET.Element, field: Field) -> None:
        attrs = {"nodeset": f"{ROOT}/{field.path}", "type": _BIND_TYPES[field.type]}
        if field.required:
            attrs["required"] = "true()"
        if field.constraint:
            attrs["constraint"] = field.constraint
        if field.constraint_msg:
            attrs[f"{{{JR}}}constraintMsg"] = self.text(f"{ROOT}/{field.path}:jr:constraintMsg", field.constraint_msg)
        _sub(model, _x("bind"), **attrs)
        if field.default in ("now", "uuid"):
            value = "now()" if field.default == "now" else "uuid()"
            _sub(model, _x("setvalue"), event="odk-instance-first-load", ref=f"{ROOT}/{field.path}", value=value)


def _instance(spec: FormSpec, ref: FormReference, version: str, *, template: bool) -> ET.Element:
    data = ET.Element(_x("data"), {"id": spec.form_id, "version": version})
    for item in spec.items:
        parent = _sub(data, _x(item.path)) if isinstance(item, Group) else data
        for field in item.fields if isinstance(item, Group) else (item,):
            _sub(parent, _x(field.path.rsplit("/", 1)[-1]), ref.home if field.default == "home" else None)
    if template:
        photos = _sub(data, _x(PHOTOS), **{f"{{{JR}}}template": ""})
        _sub(photos, _x("photo"))
        _sub(photos, _x("caption"))
    photos = _sub(data, _x(PHOTOS))
    _sub(photos, _x("photo"))
    _sub(photos, _x("caption"))
    meta = _sub(data, _x("meta"))
    _sub(meta, _x("instanceID"))
    _sub(meta, _x("instanceName"))
    return data


def _body(builder: _Builder, body: ET.Element, model: ET.Element) -> None:
    for item in builder.spec.items:
        parent = body
        if isinstance(item, Group):
            parent = _sub(body, _x("group"), ref=f"{ROOT}/{item.path}")
            builder.label(parent, f"{ROOT}/{item.path}:label", item.label)
        for field in item.fields if isinstance(item, Group) else (item,):
            builder.control(parent, field)
            builder.bind(model, field)
    group = _sub(body, _x("group"), ref=f"{ROOT}/{PHOTOS}")
    builder.label(group, f"{ROOT}/{PHOTOS}:label", builder.spec.photos_label)
    repeat = _sub(group, _x("repeat"), nodeset=f"{ROOT}/{PHOTOS}")
    upload = _sub(repeat, _x("upload"), ref=f"{ROOT}/{PHOTO}", mediatype="image/*")
    builder.label(upload, f"{ROOT}/{PHOTO}:label", ("照片", "Photo"))
    caption = _sub(repeat, _x("input"), ref=f"{ROOT}/{CAPTION}")
    builder.label(caption, f"{ROOT}/{CAPTION}:label", ("照片说明", "Caption"))
    _sub(model, _x("bind"), nodeset=f"{ROOT}/{PHOTO}", type="binary")
    _sub(model, _x("bind"), nodeset=f"{ROOT}/{CAPTION}", type="string",
         constraint="string-length(.) <= 500")
    _sub(model, _x("bind"), nodeset=f"{ROOT}/meta/instanceID", type="string", readonly="true()",
         **{f"{{{JR}}}preload": "uid"})
    _sub(model, _x("bind"), nodeset=f"{ROOT}/meta/instanceName", type="string", calculate=f"{ROOT}/title")


def _itext(model: ET.Element, texts: list[tuple[str, tuple[str, str]]]) -> None:
    itext = ET.Element(_x("itext"))
    model.insert(0, itext)
    for lang, index in LANGUAGES:
        translation = _sub(itext, _x("translation"), lang=lang, **({"default": "true()"} if index == 0 else {}))
        for text_id, value in dict(texts).items():
            text = _sub(translation, _x("text"), id=text_id)
            _sub(text, _x("value"), value[index])


def _render(spec: FormSpec, ref: FormReference, version: str) -> bytes:
    html = ET.Element(f"{{{H}}}html")
    head = _sub(html, f"{{{H}}}head")
    _sub(head, f"{{{H}}}title", f"{spec.title[0]} {spec.title[1]}")
    model = _sub(head, _x("model"), **{f"{{{ODK}}}xforms-version": "1.0.0"})
    instance = _sub(model, _x("instance"))
    instance.append(_instance(spec, ref, version, template=True))
    builder = _Builder(spec, ref)
    body = _sub(html, f"{{{H}}}body")
    _body(builder, body, model)
    _itext(model, builder.texts)
    ET.indent(html)
    return ET.tostring(html, encoding="utf-8", xml_declaration=True)


def render_form(spec: FormSpec, ref: FormReference) -> RenderedForm:
    version = hashlib.sha256(_render(spec, ref, "")).hexdigest()[:16]
    return RenderedForm(spec.form_id, f"{spec.title[0]} {spec.title[1]}", version, _render(spec, ref, version))


def render_forms(ref: FormReference) -> list[RenderedForm]:
    return [render_form(spec, ref) for spec in FORMS.values()]
