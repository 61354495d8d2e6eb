"""The published forms: valid for ODK Validate, Chinese by default with English, the device user's
own jurisdiction subtree as choices, and a new version and hash when reference data changes.
Budget: about 5 s (three ODK Validate runs in parallel JVMs)."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import asyncpg
import httpx
import pytest
from pyxform.validators import odk_validate

from tests.openrosa.collect import XF
from tests.openrosa.conftest import Phone

JAR = Path(odk_validate.__file__).parent / "bin" / "ODK_Validate.jar"


async def published(phone: Phone) -> dict[str, tuple[dict[str, str], bytes]]:
    forms = await phone.collect.form_list()
    return {form["formID"]: (form, await phone.collect.download(form["downloadUrl"])) for form in forms}


async def test_every_form_passes_odk_validate(phone: Phone, tmp_path: Path) -> None:
    java = shutil.which("java")
    assert java, "ODK Validate needs a Java runtime: apt-get install openjdk-17-jre-headless (.ci/run does)"

    async def validate(form_id: str, xml: bytes) -> tuple[int, str]:
        path = tmp_path / f"{form_id}.xml"
        path.write_bytes(xml)
        process = await asyncio.create_subprocess_exec(
            java, "-Djava.awt.headless=true", "-jar", str(JAR), str(path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        return process.returncode or 0, output.decode()

    forms = await published(phone)
    results = await asyncio.gather(*(validate(form_id, xml) for form_id, (_, xml) in forms.items()))
    for (form_id, _), (code, output) in zip(forms.items(), results, strict=True):
        assert code == 0 and "Xform is valid" in output, f"{form_id}: {output}"


async def test_odk_validate_would_catch_a_broken_form(tmp_path: Path) -> None:
    """The check above can fail: a bind on a node the instance lacks is refused."""
    broken = tmp_path / "broken.xml"
    broken.write_text(
        '<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"><h:head>'
        "<h:title>x</h:title><model><instance><data id='x'><a/></data></instance>"
        "<bind nodeset='/data/b' type='int'/></model></h:head><h:body><input ref='/data/b'/></h:body></h:html>"
    )
    java = shutil.which("java")
    assert java
    process = await asyncio.create_subprocess_exec(
        java, "-jar", str(JAR), str(broken), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode != 0, output.decode()


async def test_forms_speak_chinese_first_with_english_and_list_the_users_subtree(phone: Phone) -> None:
    for form_id, (entry, xml) in (await published(phone)).items():
        assert entry["hash"] == "md5:" + hashlib.md5(xml).hexdigest()
        assert entry["downloadUrl"].startswith("http://testserver.local/openrosa/key/")
        root = ET.fromstring(xml)
        translations = root.findall(f".//{XF}itext/{XF}translation")
        assert [(t.get("lang"), t.get("default")) for t in translations] == [("中文 (zh)", "true()"), ("English (en)", None)]
        zh = {t.get("id"): t.findtext(f"{XF}value") for t in translations[0]}
        en = {t.get("id"): t.findtext(f"{XF}value") for t in translations[1]}
        assert zh["/data/title:label"] == "标题" and en["/data/title:label"] == "Title"
        places = [v.text for v in root.findall(f".//{XF}select1[@ref='/data/jurisdiction']/{XF}item/{XF}value")]
        assert places and places[0] == "140431" and all(p and p.startswith("140431") for p in places)
        data = root.find(f".//{XF}instance/{XF}data")
        assert data is not None and data.get("id") == form_id and data.get("version") == entry["version"]
        binds = {b.get("nodeset"): b.attrib for b in root.iter(f"{XF}bind")}
        assert binds["/data/photos/photo"]["type"] == "binary"
        assert binds["/data/location"]["type"] == "geopoint"
        assert binds["/data/meta/instanceID"]["{http://openrosa.org/javarosa}preload"] == "uid"
        if form_id != "fieldsync_disaster":
            assert "regex" in binds["/data/enterprise/credit_code"]["constraint"]
        else:
            assert binds["/data/losses/crop_area_ha"]["constraint"].startswith(". >= 0")


async def test_a_new_category_changes_only_its_forms_version_and_hash(phone: Phone, conn: asyncpg.Connection) -> None:
    before = {form["formID"]: form for form in await phone.collect.form_list()}
    again = {form["formID"]: form for form in await phone.collect.form_list()}
    assert again == before  # stable while nothing changes
    await conn.execute(
        "INSERT INTO categories (kind, code, name_zh, name_en, sort_order) VALUES ('disaster', 'volcano', '火山', 'Volcano', 99)"
    )
    after = {form["formID"]: form for form in await phone.collect.form_list()}
    changed = {form_id for form_id in before if before[form_id] != after[form_id]}
    assert changed == {"fieldsync_disaster"}
    assert after["fieldsync_disaster"]["version"] != before["fieldsync_disaster"]["version"]
    xml = await phone.collect.download(after["fieldsync_disaster"]["downloadUrl"])
    assert b"<value>volcano</value>" in xml


@pytest.mark.parametrize("name", ["fieldsync_nope.xml", "fieldsync_hazard", "fieldsync_hazard.json"])
async def test_an_unknown_form_is_404(phone: Phone, client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(phone.collect.url(f"/forms/{name}"), headers={"X-OpenRosa-Version": "1.0"})
    assert response.status_code == 404 and b"OpenRosaResponse" in response.content
