"""The console's one message catalogue and its place outside the JSON API's contract."""

from __future__ import annotations

import re
from pathlib import Path

from fieldsync.api.console import messages
from fieldsync.app import create_app
from fieldsync.domain import workflow
from fieldsync.domain.stats import COUNTED_STATUSES
from fieldsync.settings import Settings

TEMPLATES = Path(messages.__file__).parent / "templates"
SOURCES = Path(messages.__file__).parent


def test_both_languages_carry_the_same_keys() -> None:
    assert set(messages.ZH) == set(messages.EN)
    assert all(value.strip() for value in [*messages.ZH.values(), *messages.EN.values()])


def test_every_literal_key_the_templates_and_handlers_use_exists() -> None:
    used = set()
    for path in [*TEMPLATES.glob("*.html"), *SOURCES.glob("*.py")]:
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", path.read_text(encoding="utf-8")))
    assert used, "found no message keys: the pattern is wrong"
    assert sorted(used - set(messages.ZH)) == []


def test_every_status_and_action_has_a_name_in_both_languages() -> None:
    for lang in messages.LANGUAGES:
        for status in (*COUNTED_STATUSES, "merged"):
            assert messages.has(lang, f"status.{status}")
        for action in workflow.ACTIONS:
            assert messages.has(lang, f"action.{action}")


def test_language_negotiation() -> None:
    assert messages.negotiate(None, None, None) == "zh"
    assert messages.negotiate(None, None, "en-US,en;q=0.9") == "en"
    assert messages.negotiate(None, None, "fr-FR, en;q=0.5, zh;q=0.8") == "zh"
    assert messages.negotiate("en", "zh", "zh") == "en"
    assert messages.negotiate("xx", "en", "zh") == "en"


def test_console_routes_are_not_part_of_the_openapi_document() -> None:
    app = create_app(Settings.from_env({}, database_url="postgresql://unused.invalid/unused"))
    assert not [path for path in app.openapi_schema.paths or {} if path.startswith("/console")]


def test_every_audit_action_the_services_record_has_a_name() -> None:
    services = Path(messages.__file__).parents[2] / "services"
    recorded = set()
    for path in services.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        recorded |= set(re.findall(r'action="([a-z_]+)"', text))
        for first, second in re.findall(r'action="([a-z_]+)" if [^,]* else "([a-z_]+)"', text):
            recorded |= {first, second}
    assert {"created", "revised", "comment"} <= recorded, recorded
    for lang in messages.LANGUAGES:
        assert [a for a in sorted(recorded) if not messages.has(lang, f"action.{a}")] == []
