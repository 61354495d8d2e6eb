"""OpenRosa use cases: the reference data a device's forms are built from, and accepting one
POST of an instance (SPEC §7).

An instance is not a second kind of report. Whatever arrives through ``{base}/submission``
becomes a ``ReportSubmission`` built by the wire layer from the same struct ``PUT
/v1/reports/{id}`` decodes, and goes through ``services.reports.submit_report``: the same
validation, scope, idempotency, duplicate detection and workflow. This module adds only what
OpenRosa needs around it, in the caller's transaction:

- ``openrosa_instances`` maps ``meta/instanceID`` to the report it made and keeps the SHA-256
  of its XML: the same instance with other XML is ``openrosa.instance_conflict`` (409), the same
  XML again is a resend whose report receipt is a duplicate (no second report).
- ``openrosa_attachments`` keeps, per instance, the SHA-256 of each file name received so far.
  Media are content-addressed, and a hash is known only once the bytes have arrived. So a POST
  marked ``*isIncomplete*`` (Collect splits a large submission and marks every POST but the
  last) only records its files; the report is submitted by the POST without the mark, with every
  file received for the instance, from any of its POSTs, as its media. A resend that brings a
  file the report lacks revises it (``base_version`` = the version the instance made), under
  §3's rules like any revision.
- ``meta/deprecatedID`` (an edit) makes a new version of the edited instance's report, with
  ``base_version`` = the version that instance made: editing a copy that is no longer current is
  ``report.stale_version`` (409). Files the edit does not re-send are carried forward.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable

import asyncpg

from fieldsync import errors
from fieldsync.db import openrosa as q
from fieldsync.db import reference
from fieldsync.domain.principals import Principal, Role, require_role
from fieldsync.domain.reports import ReceiptData, ReportSubmission
from fieldsync.services import reports

BuildReport = Callable[[uuid.UUID, dict[str, str]], ReportSubmission]
"""Makes the report of an instance: (report id, file name → sha256) → the submission."""


@dataclasses.dataclass(frozen=True, slots=True)
class Choice:
    code: str
    name_zh: str
    name_en: str


@dataclasses.dataclass(frozen=True, slots=True)
class FormReference:
    """What a device's forms are generated from: categories per kind and the places it may report."""

    categories: dict[str, list[Choice]]
    jurisdictions: list[Choice]
    home: str


@dataclasses.dataclass(frozen=True, slots=True)
class InstancePost:
    """One POST of an instance, as far as the rules need it."""

    instance_id: uuid.UUID
    deprecated_id: uuid.UUID | None
    form_id: str
    xml_sha256: bytes
    complete: bool
    files: dict[str, str]  # file name → sha256 of the attachments in this POST the XML names


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceOutcome:
    report_id: uuid.UUID
    receipt: ReceiptData | None  # None while the instance waits for its remaining parts
    files: dict[str, str]  # every file received for the instance so far


def require_device(actor: Principal) -> None:
    """OpenRosa is for inspectors' phones: a device token of an inspector."""
    require_role(actor, Role.INSPECTOR)
    if actor.device_id is None:
        raise errors.OpenRosaKeyInvalid()


async def form_reference(conn: asyncpg.Connection, actor: Principal) -> FormReference:
    categories: dict[str, list[Choice]] = {"hazard": [], "disaster": [], "accident": []}
    for row in await reference.list_categories(conn, kind=None):
        categories.setdefault(row["kind"], []).append(Choice(row["code"], row["name_zh"], row["name_en"] or row["code"]))
    places = [
        Choice(row["code"], row["name_zh"], row["name_en"] or row["name_zh"])
        for row in await reference.list_jurisdictions(conn, under_path=actor.jurisdiction_path)
    ]
    return FormReference(categories=categories, jurisdictions=places, home=actor.jurisdiction)


async def _edited_report(conn: asyncpg.Connection, actor: Principal, deprecated_id: uuid.UUID) -> tuple[uuid.UUID, int]:
    """The report and version the edited instance made; unknown unless it is the caller's and complete."""
    old = await q.get_instance(conn, deprecated_id)
    if old is None or old["user_id"] != actor.user_id or old["report_version"] is None:
        raise errors.DeprecatedInstanceUnknown(
            f"the submission uuid:{deprecated_id} that this one edits was never completely received"
        )
    return old["report_id"], old["report_version"]


async def accept_instance(
    conn: asyncpg.Connection,
    actor: Principal,
    post: InstancePost,
    build: BuildReport,
    *,
    now: dt.datetime,
    clock_skew_s: int,
) -> InstanceOutcome:
    """Record one POST of an instance and, once it is complete, submit its report."""
    require_device(actor)
    report_id, edited_version = post.instance_id, None
    if post.deprecated_id is not None:
        report_id, edited_version = await _edited_report(conn, actor, post.deprecated_id)
    row = await q.claim_instance(
        conn, instance_id=post.instance_id, form_id=post.form_id, report_id=report_id,
        deprecated_id=post.deprecated_id, user_id=actor.user_id, device_id=actor.device_id,
        xml_sha256=post.xml_sha256, now=now,
    )
    if not row["created"]:
        if row["user_id"] != actor.user_id or bytes(row["xml_sha256"]) != post.xml_sha256:
            raise errors.InstanceConflict(
                f"uuid:{post.instance_id} was received before with different content; "
                "an edited form must be sent as a new instance"
            )
        report_id = row["report_id"]
    elif post.deprecated_id is not None:
        await q.copy_attachments(conn, source=post.deprecated_id, target=post.instance_id)
    await q.upsert_attachments(conn, instance_id=post.instance_id, files=sorted(post.files.items()), now=now)
    files = await q.list_attachments(conn, post.instance_id)
    if not post.complete:
        return InstanceOutcome(report_id, None, files)
    submission = build(report_id, files)
    base_version = edited_version
    if row["report_version"] is not None:
        # a resend: the same content replays; a file the report lacked revises the version it made
        same = row["content_hash"] is not None and bytes(row["content_hash"]) == submission.content_hash
        base_version = None if same else row["report_version"]
    if base_version is not None:
        submission = dataclasses.replace(submission, base_version=base_version)
    receipt = await reports.submit_report(conn, actor, submission, now=now, clock_skew_s=clock_skew_s)
    await q.mark_completed(
        conn, instance_id=post.instance_id, version=receipt.version, content_hash=submission.content_hash, now=now
    )
    return InstanceOutcome(report_id, receipt, files)
