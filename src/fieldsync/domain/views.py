"""Read models: what services hand to the surfaces that show data (the JSON API, the console, the
pull feed), as typed, frozen values. Rows never leave ``services`` and ``db``; every rule about
what a reader sees (scope, evidence flags, overdue, which photos count) has been applied by the
time a view exists, so a surface only maps fields.

A report's own fields (what its author sent: title, location, enterprise, losses, ...) stay the
author's document, ``ReportView.content``, exactly as stored; every server-owned field is typed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from fieldsync.domain.reports import Kind, MediaRole, Status

# Closed vocabularies a view carries, which the wire schemas (api/schemas) share.
RoleName = Literal["admin", "supervisor", "inspector"]
Level = Literal["province", "city", "county", "township"]


@dataclasses.dataclass(frozen=True, slots=True)
class PersonView:
    id: uuid.UUID
    username: str


@dataclasses.dataclass(frozen=True, slots=True)
class EvidenceView:
    """Where and when a photo was taken, against its report (``domain.evidence``)."""

    distance_m: float | None
    time_gap_s: float | None
    flags: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class PhotoView:
    """A report's reference to a photo; the object's facts only when the reference counts."""

    sha256: str
    role: MediaRole
    caption: str | None
    present: bool
    content_type: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    taken_at: dt.datetime | None = None
    lat: float | None = None
    lon: float | None = None
    make: str | None = None
    model: str | None = None
    evidence: EvidenceView | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RectificationView:
    """The five implementations (五落实) of an assigned rectification."""

    responsible_person: str | None
    measures: str | None
    funds_cny: float | None
    deadline: dt.datetime | None
    contingency_plan: str | None
    assigned_at: dt.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class ListingView:
    """Listed supervision (挂牌督办): the supervising bureau and its deadline."""

    level: str
    deadline: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowView:
    verified_at: dt.datetime | None
    rectification: RectificationView | None
    rectification_note: str | None
    rectified_at: dt.datetime | None
    closed_at: dt.datetime | None
    listing: ListingView | None
    overdue: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ReportView:
    id: uuid.UUID
    kind: Kind
    content: Mapping[str, Any]
    jurisdiction: str
    author: PersonView
    device_id: uuid.UUID | None
    received_at: dt.datetime
    updated_at: dt.datetime
    version: int
    status: Status
    media: tuple[PhotoView, ...]
    missing_media: tuple[str, ...]
    possible_duplicates: tuple[uuid.UUID, ...]
    duplicate_of: uuid.UUID | None
    merged_from: tuple[uuid.UUID, ...]
    merged_media: tuple[PhotoView, ...]
    workflow: WorkflowView


@dataclasses.dataclass(frozen=True, slots=True)
class EventView:
    """One audit event of a report's chain."""

    id: int
    action: str
    from_status: str | None
    to_status: str | None
    version: int | None
    actor: PersonView | None
    device_id: uuid.UUID | None
    detail: Mapping[str, Any]
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class CommentView:
    id: uuid.UUID
    report_id: uuid.UUID
    author: PersonView
    device_id: uuid.UUID | None
    body: str
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class CandidateView:
    """A near-duplicate candidate of a report, with what a reviewer needs to compare them."""

    id: uuid.UUID
    score: float
    reasons: tuple[Mapping[str, Any], ...]
    kind: Kind
    category: str
    title: str
    status: Status
    observed_at: dt.datetime
    found_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class DeadlineView:
    stage: str
    due_at: dt.datetime
    met_at: dt.datetime | None
    missed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class IncidentView:
    """A disaster's chain of reports (those the caller may see), its stages and deadlines."""

    incident_id: uuid.UUID
    category: str | None
    reports: tuple[ReportView, ...]
    stages: Mapping[str, int]
    deadlines: tuple[DeadlineView, ...]
    missed: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class UserView:
    id: uuid.UUID
    username: str
    display_name: str | None
    role: RoleName
    jurisdiction: str
    created_at: dt.datetime
    disabled: bool


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceView:
    id: uuid.UUID
    label: str
    platform: str | None
    user_id: uuid.UUID
    username: str
    jurisdiction: str
    created_at: dt.datetime
    last_seen_at: dt.datetime | None
    revoked_at: dt.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class JurisdictionView:
    code: str
    parent_code: str | None
    name_zh: str
    name_en: str | None
    level: Level
    path: str


@dataclasses.dataclass(frozen=True, slots=True)
class CategoryView:
    kind: Kind
    code: str
    name_zh: str
    name_en: str
