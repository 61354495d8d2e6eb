"""Database errors translated into domain errors, by constraint name, in this one place.

The database is the arbiter of invariants (uniqueness, references, checks). Every named
constraint of the schema has an entry below, and ``tests/db/test_constraints.py`` fails when a
migration adds one without it, so no constraint violation can surface as a 500:

- ``BY_INPUT``: constraints a request can break (a username taken, a second initial report of an
  incident, a value the wire types let through). Each becomes the catalogue error that names
  the field.
- ``BY_RACE``: keys that only concurrent writers can collide on (the code checks or upserts them
  first). A collision means a concurrent change won; nothing was kept, so the answer is
  ``request.retry`` (409 with Retry-After), which clients already handle.
- ``BY_STATE``: checks on state only the server writes (versions, workflow columns, job rows).
  A violation there is a server bug, but the database refused it, so nothing changed: the client
  is told that its request could not be applied (422) and the error is logged as a bug.

A data error (a NUL byte in text, a number out of range) becomes a 400.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import structlog
from asyncpg.exceptions._base import DataError as _ClientDataError

from fieldsync import errors

log = structlog.get_logger("fieldsync.db")
Factory = Callable[[], errors.FieldsyncError]


def _invalid(detail: str, field: str) -> Factory:
    return lambda: errors.InvalidInput(detail, field=field)


BY_INPUT: dict[str, Factory] = {
    "users_username_key": lambda: errors.UserExists(),
    "users_username_format": _invalid("username must be 2-64 characters of letters, digits, '.', '_' or '-'",
                                      "username"),
    "users_role_check": _invalid("role must be admin, supervisor or inspector", "role"),
    "users_jurisdiction_fkey": lambda: errors.JurisdictionUnknown(field="jurisdiction"),
    "reports_incident_initial_key": lambda: errors.IncidentStageTaken(field="stage"),
    "reports_incident_final_key": lambda: errors.IncidentStageTaken(field="stage"),
    "reports_jurisdiction_fkey": lambda: errors.JurisdictionUnknown(field="jurisdiction"),
    "reports_category_fkey": lambda: errors.ReportInvalid("no such category for this kind", field="category"),
    "reports_kind_check": lambda: errors.ReportInvalid("kind must be hazard, disaster or accident", field="kind"),
    "reports_lat_check": lambda: errors.ReportInvalid("latitude must lie in -90..90", field="location.lat"),
    "reports_lon_check": lambda: errors.ReportInvalid("longitude must lie in -180..180", field="location.lon"),
    "reports_severity_check": lambda: errors.ReportInvalid("severity must be red, orange, yellow or blue",
                                                           field="severity"),
    "reports_grade_check": lambda: errors.ReportInvalid("grade must be general or major", field="grade"),
    "reports_stage_check": lambda: errors.ReportInvalid("stage must be initial, update or final", field="stage"),
    "reports_listed_level_fkey": lambda: errors.JurisdictionUnknown("no such jurisdiction", field="level"),
    "reports_not_own_duplicate": _invalid("a report cannot be merged into itself", "into"),
    "reports_duplicate_of_fkey": lambda: errors.ReportNotFound(field="into"),
    "report_media_sha256_format": _invalid("sha256 must be 64 lower-case hex digits", "media.sha256"),
    "report_media_role_check": _invalid("role must be photo, before, after or document", "media.role"),
    "media_sha256_format": lambda: errors.MediaHashMismatch("sha256 must be 64 lower-case hex digits"),
    "media_bytes_check": lambda: errors.MediaUndecodable("an empty body is not an image"),
    "uploads_sha256_format": lambda: errors.UploadMetadataInvalid(),
    "uploads_length_check": lambda: errors.UploadHeaderInvalid("Upload-Length must not be negative"),
    "comments_body_check": _invalid("a comment needs 1 to 20000 characters", "body"),
    "jurisdictions_pkey": lambda: errors.Conflict("a jurisdiction with this code exists"),
    "jurisdictions_parent_fkey": lambda: errors.JurisdictionUnknown("the parent jurisdiction does not exist"),
    "jurisdictions_code_format": _invalid("a code has 6 or 12 digits", "code"),
    "jurisdictions_level_check": _invalid("level must be province, city, county or township", "level"),
    "jurisdictions_path_check": _invalid("the jurisdiction's path does not end in its code", "code"),
    "webhook_subscriptions_jurisdiction_fkey": lambda: errors.JurisdictionUnknown(field="jurisdiction"),
    "webhook_subscriptions_events_check": _invalid("events must name at least one known event type", "events"),
    "webhook_subscriptions_url_check": lambda: errors.WebhookUrlInvalid(field="url"),
}

BY_RACE: frozenset[str] = frozenset({
    "users_pkey", "sessions_pkey", "devices_pkey", "devices_token_hash_key", "enrollments_pkey",
    "auth_failures_pkey", "reports_pkey", "report_versions_pkey", "report_media_pkey", "media_pkey",
    "media_uploads_pkey", "jobs_pkey", "jobs_kind_key", "uploads_pkey", "sync_mutations_pkey", "comments_pkey",
    "events_pkey", "events_chain_position_key", "audit_heads_pkey", "report_duplicates_pkey", "categories_pkey",
    "schema_migrations_pkey", "openrosa_instances_pkey", "openrosa_attachments_pkey",
    # webhooks: a subscription (or delivery) deleted while a change writes deliveries for it (or
    # a worker logs an attempt of it) is a concurrent change: retrying finds it gone
    "webhook_subscriptions_pkey", "webhook_events_pkey", "webhook_events_seq_key", "webhook_events_dedupe_key",
    "webhook_deliveries_pkey", "webhook_deliveries_event_subscription_key", "webhook_deliveries_subscription_fkey",
    "webhook_attempts_pkey", "webhook_attempts_delivery_fkey",
    "sync_feed_pkey",  # migration 0014: its one row is written by the migration and fieldsync restore only
})

BY_STATE: frozenset[str] = frozenset({
    "users_created_by_fkey", "sessions_user_fkey", "devices_user_fkey", "devices_enrolled_by_fkey",
    "devices_revoked_by_fkey", "enrollments_user_fkey", "enrollments_created_by_fkey", "enrollments_device_fkey",
    "enrollments_used_check", "categories_kind_check", "reports_author_fkey", "reports_device_fkey",
    "reports_version_check", "reports_status_check", "reports_listing_check", "reports_merge_check",
    "report_versions_report_fkey", "report_versions_author_fkey", "report_versions_device_fkey",
    "report_media_report_fkey", "report_media_attached_by_fkey", "media_uploads_media_fkey", "media_uploads_user_fkey", "media_uploads_device_fkey",
    "media_thumbprint_size_check", "uploads_user_fkey", "uploads_device_fkey", "uploads_offset_check",
    "uploads_completed_check", "report_moves_report_fkey", "report_moves_jurisdiction_fkey",
    "sync_mutations_user_fkey", "comments_report_fkey", "comments_author_fkey", "comments_device_fkey",
    "events_report_fkey", "events_actor_fkey", "events_device_fkey", "report_duplicates_not_self",
    "report_duplicates_score_check", "report_duplicates_reasons_check",
    # OpenRosa (migration 0012): every value is the server's (ids parsed, form ids from its own table)
    "openrosa_instances_deprecated_fkey", "openrosa_instances_user_fkey", "openrosa_instances_device_fkey",
    "openrosa_instances_form_check", "openrosa_instances_completed_check", "openrosa_attachments_instance_fkey",
    "openrosa_attachments_sha256_format",
    # webhooks (migration 0011): rows the server fills from its own reads
    "webhook_subscriptions_created_by_fkey", "webhook_subscriptions_path_check", "webhook_events_report_fkey",
    "webhook_deliveries_event_fkey", "webhook_deliveries_state_check",
    # upload leases and S3 parts (migration 0016): written by the server alone
    "uploads_lease_check", "uploads_parts_allocated_check", "uploads_multipart_check", "uploads_segments_check",
    "sync_feed_singleton",  # migration 0014
})


def translate(exc: BaseException) -> errors.FieldsyncError | None:
    """The domain error for a database exception, or None when it is not one of ours to name."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        name = getattr(exc, "constraint_name", None) or ""
        factory = BY_INPUT.get(name)
        if factory is not None:
            return factory()
        if name in BY_RACE:
            return errors.ConcurrentChange(f"a concurrent change took {name} first; nothing was changed")
        log.error("state_constraint_violated", constraint=name, error=str(exc))
        return errors.RuleViolated(f"the change breaks {name or 'a database rule'}; nothing was changed")
    if isinstance(exc, (asyncpg.DataError, _ClientDataError)):
        return errors.InvalidInput(f"a value cannot be stored: {exc.__class__.__name__}")
    return None
