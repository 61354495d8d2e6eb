"""How values look on a console page: times in China Standard Time, distances, durations,
money, and the names of jurisdictions and categories in the page's language.

Pure formatting; every word comes from the message catalogue or the reference data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable

from fieldsync.api.console.data import Category, Place
from fieldsync.api.console.messages import Translator
from fieldsync.domain.stats import REPORTING_TZ


@dataclasses.dataclass(frozen=True, slots=True)
class Names:
    """Localised names of the jurisdictions and categories a page mentions."""

    lang: str
    places: dict[str, Place]
    categories: dict[tuple[str, str], Category]

    @classmethod
    def of(cls, lang: str, places: Iterable[Place] = (), categories: Iterable[Category] = ()) -> Names:
        return cls(lang, {p.code: p for p in places}, {(c.kind, c.code): c for c in categories})

    def place(self, code: str | None) -> str:
        if code is None:
            return ""
        found = self.places.get(code)
        if found is None:
            return code
        return (found.name_en or found.name_zh) if self.lang == "en" else found.name_zh

    def category(self, kind: str, code: str) -> str:
        found = self.categories.get((kind, code))
        if found is None:
            return code
        return found.name_en if self.lang == "en" else found.name_zh

    def categories_of(self, kind: str) -> list[Category]:
        return [c for (k, _), c in self.categories.items() if k == kind]


@dataclasses.dataclass(frozen=True, slots=True)
class Format:
    t: Translator

    def time(self, value: dt.datetime | str | None) -> str:
        if value is None:
            return self.t("common.none")
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return value.astimezone(REPORTING_TZ).strftime("%Y-%m-%d %H:%M")

    def date(self, value: dt.datetime | None) -> str:
        return self.t("common.none") if value is None else value.astimezone(REPORTING_TZ).strftime("%Y-%m-%d")

    def local_input(self, value: dt.datetime | None) -> str:
        """A value for ``<input type=datetime-local>`` (China Standard Time)."""
        return "" if value is None else value.astimezone(REPORTING_TZ).strftime("%Y-%m-%dT%H:%M")

    def distance(self, metres: float | None) -> str:
        if metres is None:
            return self.t("common.none")
        if metres >= 1000:
            return self.t("common.km", km=f"{metres / 1000:.1f}")
        return self.t("common.metres", m=f"{metres:.0f}")

    def duration(self, seconds: float | None) -> str:
        if seconds is None:
            return self.t("common.none")
        hours = abs(seconds) / 3600
        if hours >= 48:
            return self.t("common.days", d=f"{hours / 24:.0f}")
        return self.t("common.hours", h=f"{hours:.1f}")

    def number(self, value: float | int | None) -> str:
        if value is None:
            return self.t("common.none")
        if isinstance(value, float) and not value.is_integer():
            return f"{value:,.2f}"
        return f"{int(value):,}"

    def percent(self, ratio: float | None) -> str:
        if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
            return self.t("common.none")
        return self.t("common.percent", p=f"{ratio * 100:.1f}")

    def change(self, ratio: float | None) -> str:
        """A relative change as +12.5 % / -3.0 %; a dash when there is nothing to compare with."""
        if ratio is None:
            return self.t("common.none")
        return ("+" if ratio > 0 else "") + self.t("common.percent", p=f"{ratio * 100:.1f}")
