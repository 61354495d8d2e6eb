"""Wire types for reports: a tagged union on ``kind`` (hazard | disaster | accident).

Unknown fields are ignored (newer apps may send more); every bound is in the type so that it
shows in the OpenAPI document.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec

from fieldsync.api.schemas.common import (
    CATEGORY_PATTERN,
    CREDIT_CODE_PATTERN,
    JURISDICTION_PATTERN,
    NO_NUL,
    SHA256_PATTERN,
    CommentBody,
    LongText,
    ShortText,
)
from fieldsync.domain.reports import Kind, MediaRole, Status

Sha256 = Annotated[str, msgspec.Meta(pattern=SHA256_PATTERN, description="lower-case hex SHA-256")]
AwareTime = Annotated[dt.datetime, msgspec.Meta(tz=True, description="RFC 3339 with offset")]
Count = Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]
Amount = Annotated[float, msgspec.Meta(ge=0, le=1e15)]
CategoryCode = Annotated[str, msgspec.Meta(pattern=CATEGORY_PATTERN)]
CreditCode = Annotated[
    str,
    msgspec.Meta(
        pattern=CREDIT_CODE_PATTERN,
        description="18-character unified social credit code (GB 32100), checksum-validated",
        examples=["91350100M000100Y43"],
    ),
]
Severity = Literal["red", "orange", "yellow", "blue"]


class Location(msgspec.Struct):
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    accuracy_m: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)]
    altitude_m: Annotated[float, msgspec.Meta(ge=-500, le=9_000)] | None = None
    address: Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)] | None = None


class MediaRef(msgspec.Struct):
    sha256: Sha256
    role: MediaRole = "photo"
    caption: Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)] | None = None


class Enterprise(msgspec.Struct):
    name: ShortText
    credit_code: CreditCode
    industry: Annotated[str, msgspec.Meta(max_length=100, pattern=NO_NUL)] | None = None


class Losses(msgspec.Struct, omit_defaults=True):
    deaths: Count | None = None
    missing: Count | None = None
    injured: Count | None = None
    affected_people: Count | None = None
    evacuated_people: Count | None = None
    houses_collapsed: Count | None = None
    houses_damaged: Count | None = None
    crop_area_ha: Amount | None = None
    direct_loss_cny: Amount | None = None


class _ReportFields(msgspec.Struct, kw_only=True, tag_field="kind"):
    id: uuid.UUID | None = None
    category: CategoryCode
    title: ShortText
    description: LongText = ""
    jurisdiction: Annotated[str, msgspec.Meta(pattern=JURISDICTION_PATTERN)]
    location: Location
    observed_at: AwareTime
    media: Annotated[list[MediaRef], msgspec.Meta(max_length=50)] = []
    severity: Severity | None = None
    base_version: Annotated[int, msgspec.Meta(ge=1)] | None = None


class HazardReport(_ReportFields, kw_only=True, tag="hazard"):
    """A hidden safety hazard (隐患) found at an enterprise."""

    enterprise: Enterprise
    grade: Literal["general", "major"]


class DisasterReport(_ReportFields, kw_only=True, tag="disaster"):
    """Natural-disaster information (灾情); reports sharing ``incident_id`` form one chain."""

    incident_id: uuid.UUID
    stage: Literal["initial", "update", "final"]
    as_of: AwareTime
    losses: Losses = msgspec.field(default_factory=Losses)


class AccidentReport(_ReportFields, kw_only=True, tag="accident"):
    """A production-safety accident (生产安全事故)."""

    enterprise: Enterprise
    deaths: Count = 0
    injured: Count = 0
    direct_loss_cny: Amount = 0


ReportWrite = HazardReport | DisasterReport | AccidentReport


class DuplicateCandidate(msgspec.Struct):
    """A possible duplicate: another report, a score in [0, 1] and the signals that fired."""

    id: uuid.UUID
    score: float
    reasons: list[dict[str, Any]]


class Receipt(msgspec.Struct):
    id: uuid.UUID
    version: int
    status: Status
    missing_media: list[str]
    duplicate: bool
    possible_duplicates: list[uuid.UUID] = []
    duplicate_candidates: list[DuplicateCandidate] = []


class DuplicateRead(msgspec.Struct, kw_only=True):
    """A near-duplicate candidate of a report, as ``GET /v1/reports/{id}/duplicates`` ranks them."""

    id: uuid.UUID
    score: float
    reasons: list[dict[str, Any]]
    kind: Kind
    category: str
    title: str
    status: Status
    observed_at: dt.datetime
    found_at: dt.datetime


class MediaEvidence(msgspec.Struct):
    """Checks of one photo against its report: where and when it was taken."""

    distance_m: float | None
    time_gap_s: float | None
    flags: list[str]


class MediaAttachment(msgspec.Struct):
    sha256: str
    role: MediaRole
    caption: str | None
    present: bool
    url: str | None
    preview_url: str | None
    thumbnail_url: str | None
    content_type: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    taken_at: dt.datetime | None = None
    lat: float | None = None
    lon: float | None = None
    make: str | None = None
    model: str | None = None
    evidence: MediaEvidence | None = None


class Author(msgspec.Struct):
    id: uuid.UUID
    username: str


class RectificationRead(msgspec.Struct):
    """The five implementations (五落实) of an assigned rectification."""

    responsible_person: str | None
    measures: str | None
    funds_cny: float | None
    deadline: dt.datetime | None
    contingency_plan: str | None
    assigned_at: dt.datetime | None = None


class ListingRead(msgspec.Struct):
    """Listed supervision (挂牌督办): the supervising bureau and its deadline."""

    level: str
    deadline: dt.datetime


class WorkflowRead(msgspec.Struct):
    verified_at: dt.datetime | None = None
    rectification: RectificationRead | None = None
    rectification_note: str | None = None
    rectified_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    listing: ListingRead | None = None
    overdue: bool = False


class EventRead(msgspec.Struct):
    id: int
    action: str
    from_status: str | None
    to_status: str | None
    version: int | None
    actor: Author | None
    device_id: uuid.UUID | None
    detail: dict[str, Any]
    created_at: dt.datetime


class ReportRead(msgspec.Struct, kw_only=True):
    """A report as the server holds it: the author's fields plus the server-owned ones."""

    id: uuid.UUID
    kind: Kind
    category: str
    title: str
    description: str
    jurisdiction: str
    location: Location
    observed_at: dt.datetime
    media: list[MediaAttachment]
    severity: Severity | None = None
    enterprise: Enterprise | None = None
    grade: Literal["general", "major"] | None = None
    incident_id: uuid.UUID | None = None
    stage: Literal["initial", "update", "final"] | None = None
    as_of: dt.datetime | None = None
    losses: Losses | None = None
    deaths: int | None = None
    injured: int | None = None
    direct_loss_cny: float | None = None
    author: Author
    device_id: uuid.UUID | None
    received_at: dt.datetime
    updated_at: dt.datetime
    version: int
    status: Status
    missing_media: list[str]
    possible_duplicates: list[uuid.UUID] = []
    duplicate_of: uuid.UUID | None = None
    merged_from: list[uuid.UUID] = []
    merged_media: list[MediaAttachment] = []
    workflow: WorkflowRead = msgspec.field(default_factory=WorkflowRead)
    events: list[EventRead] | None = None


class TransitionCreate(msgspec.Struct, kw_only=True):
    """A workflow action on the report at ``version``, with the fields that action needs."""

    action: Literal[
        "verify", "reject", "request_info", "merge", "assign_rectification", "submit_rectification",
        "accept_rectification", "reopen", "list_supervision",
    ]
    version: Annotated[int, msgspec.Meta(ge=1)]
    note: LongText | None = None
    into: uuid.UUID | None = None
    responsible_person: ShortText | None = None
    measures: LongText | None = None
    funds_cny: Amount | None = None
    deadline: AwareTime | None = None
    contingency_plan: LongText | None = None
    level: Annotated[str, msgspec.Meta(pattern=JURISDICTION_PATTERN)] | None = None
    media: Annotated[list[MediaRef], msgspec.Meta(max_length=50)] = []


class CommentCreate(msgspec.Struct):
    body: CommentBody


class CommentRead(msgspec.Struct):
    id: uuid.UUID
    report_id: uuid.UUID
    author: Author
    device_id: uuid.UUID | None
    body: str
    created_at: dt.datetime


class IncidentDeadline(msgspec.Struct):
    stage: Literal["initial"]
    due_at: dt.datetime
    met_at: dt.datetime | None
    missed: bool


class IncidentRead(msgspec.Struct):
    incident_id: uuid.UUID
    category: str | None
    reports: list[ReportRead]
    stages: dict[str, int]
    deadlines: list[IncidentDeadline]
    missed: list[str]
