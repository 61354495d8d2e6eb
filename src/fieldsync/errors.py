"""The one catalogue of fieldsync errors, each with a stable machine code.

Codes are part of the API contract: clients branch on them, so a code never changes meaning.
Each error belongs to a category; the API edge (``fieldsync.api.problems``) maps the category
to an HTTP status and renders RFC 9457 problem+json. Nothing below ``api/`` knows about HTTP.

    FieldsyncError
    ├── ConfigurationInvalid                 (startup only, never rendered)
    ├── MigrationError                       (startup only)
    ├── BackupFailed                         (fieldsync backup / restore only)
    ├── InvalidInput          400  request.invalid, request.too_deep, report.invalid, media.hash_mismatch, openrosa.*,
    │                              webhook.url_invalid, webhook.target_forbidden, ...
    ├── Unauthenticated       401  auth.required, auth.invalid_token, auth.expired, auth.revoked, ...
    ├── Forbidden             403  auth.forbidden, jurisdiction.out_of_scope, report.not_author, openrosa.key_*
    ├── NotFound              404  not_found, report.not_found, media.not_found, webhook.not_found, ...
    ├── Conflict              409  report.conflict, report.version_conflict, user.exists, request.retry, openrosa.instance_conflict, ...
    ├── Gone                  410  upload.expired
    ├── PreconditionFailed    412  upload.version_unsupported
    ├── PayloadTooLarge       413  request.too_large, media.too_large, sync.too_many_mutations
    ├── UnsupportedMediaType  415  request.unsupported_media_type, media.unsupported_type
    ├── Unprocessable         422  media.undecodable, media.too_many_pixels, workflow.invalid_transition,
    │                              request.rule_violated
    ├── ChecksumMismatch      460  upload.checksum_mismatch (tus)
    ├── Throttled             429  auth.throttled, request.throttled
    ├── HeadersTooLarge       431  request.headers_too_large (at the transport)
    ├── Unavailable           503  dependency.unavailable, server.busy
    └── InsufficientStorage   507  storage.full

Errors that also derive from ``RetryLater`` (auth.throttled, dependency.unavailable, server.busy,
request.retry, storage.full) carry ``Retry-After``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class FieldsyncError(Exception):
    """Base of every error fieldsync raises on purpose."""

    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)


class ConfigurationInvalid(FieldsyncError):
    code = "config.invalid"
    title = "Configuration is invalid"


class MigrationError(FieldsyncError):
    code = "migration.failed"
    title = "Database migration failed"


class BackupFailed(FieldsyncError):
    """``fieldsync backup`` or ``restore`` cannot go on; the detail says why (CLI only)."""

    code = "backup.failed"
    title = "Backup or restore failed"


# --- categories ---------------------------------------------------------------------------------


class InvalidInput(FieldsyncError):
    code = "request.invalid"
    title = "The request is invalid"


class Unauthenticated(FieldsyncError):
    code = "auth.required"
    title = "Authentication required"


class Forbidden(FieldsyncError):
    code = "auth.forbidden"
    title = "Not allowed for this role"


class NotFound(FieldsyncError):
    code = "not_found"
    title = "Not found"


class Conflict(FieldsyncError):
    code = "conflict"
    title = "Conflict with the current state"


class Gone(FieldsyncError):
    code = "gone"
    title = "No longer available"


class PreconditionFailed(FieldsyncError):
    code = "precondition_failed"
    title = "Precondition failed"


class PayloadTooLarge(FieldsyncError):
    code = "request.too_large"
    title = "Request body too large"


class UnsupportedMediaType(FieldsyncError):
    code = "request.unsupported_media_type"
    title = "Unsupported content type"


class Unprocessable(FieldsyncError):
    code = "unprocessable"
    title = "The request cannot be processed"


class ChecksumMismatch(FieldsyncError):
    code = "upload.checksum_mismatch"
    title = "Chunk checksum does not match"


class RetryLater(FieldsyncError):
    """Not a category: an error that tells the client when to try again (``Retry-After``)."""

    def __init__(self, detail: str | None = None, *, retry_after_s: int, **extra: Any) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, **extra)
        self.retry_after_s = retry_after_s


class Throttled(RetryLater):
    code = "auth.throttled"
    title = "Too many failed attempts"


class Unavailable(FieldsyncError):
    code = "dependency.unavailable"
    title = "A dependency is unavailable"


class InsufficientStorage(FieldsyncError):
    code = "storage.full"
    title = "The server has no room left to store this"


# --- authentication -----------------------------------------------------------------------------


class AuthRequired(Unauthenticated):
    code = "auth.required"
    title = "A bearer token is required"


class TokenInvalid(Unauthenticated):
    code = "auth.invalid_token"
    title = "The bearer token is not valid"


class TokenExpired(Unauthenticated):
    code = "auth.expired"
    title = "The bearer token has expired"


class TokenRevoked(Unauthenticated):
    code = "auth.revoked"
    title = "The device has been revoked"


class BadCredentials(Unauthenticated):
    code = "auth.bad_credentials"
    title = "Wrong username or password"


class EnrollmentCodeInvalid(Unauthenticated):
    code = "enrollment.invalid"
    title = "The enrollment code is not valid"


class EnrollmentCodeUsed(Unauthenticated):
    code = "enrollment.used"
    title = "The enrollment code has already been used"


class EnrollmentCodeExpired(Unauthenticated):
    code = "enrollment.expired"
    title = "The enrollment code has expired"


# --- identity and scope -------------------------------------------------------------------------


class RoleForbidden(Forbidden):
    code = "auth.forbidden"
    title = "Not allowed for this role"


class JurisdictionOutOfScope(Forbidden):
    code = "jurisdiction.out_of_scope"
    title = "The jurisdiction lies outside the caller's scope"


class JurisdictionUnknown(InvalidInput):
    code = "jurisdiction.unknown"
    title = "No such jurisdiction"


class UserExists(Conflict):
    code = "user.exists"
    title = "A user with this username already exists"


class UserNotFound(NotFound):
    code = "user.not_found"
    title = "No such user"


class UserNotInspector(Unprocessable):
    code = "enrollment.not_inspector"
    title = "Devices can only be enrolled for inspector users"


class DeviceNotFound(NotFound):
    code = "device.not_found"
    title = "No such device"


# --- requests -----------------------------------------------------------------------------------


class MethodNotAllowed(FieldsyncError):
    code = "request.method_not_allowed"
    title = "Method not allowed"


class HeadersTooLarge(FieldsyncError):
    """Answered by the connection guard (``api.connections``) before any route runs."""

    code = "request.headers_too_large"
    title = "The request's headers are too large"


class RequestThrottled(FieldsyncError):
    code = "request.throttled"
    title = "Too many requests"


class NestingTooDeep(InvalidInput):
    code = "request.too_deep"
    title = "The body is nested too deeply to be read"


DEPENDENCY_RETRY_AFTER_S = 2  # a database restart or a store blip is over in seconds; clients back off anyway


class DependencyUnavailable(RetryLater, Unavailable):
    """The database or the media store cannot be reached (or timed out); nothing was changed."""

    code = "dependency.unavailable"
    title = "A dependency is unavailable"

    def __init__(self, detail: str | None = None, *, retry_after_s: int = DEPENDENCY_RETRY_AFTER_S,
                 **extra: Any) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, **extra)


STORAGE_FULL_RETRY_AFTER_S = 60


class StorageFull(RetryLater, InsufficientStorage):
    """A disk under the data directory (or the store) is full: nothing half-written was kept,
    and the same request succeeds once an operator frees space."""

    code = "storage.full"
    title = "The server's storage is full"

    def __init__(self, detail: str | None = None, *, retry_after_s: int = STORAGE_FULL_RETRY_AFTER_S,
                 **extra: Any) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, **extra)


class ConcurrentChange(RetryLater, Conflict):
    """A deadlock, a serialization failure or a key taken by a concurrent writer rolled the
    transaction back: nothing changed, and the same request sent again will apply."""

    code = "request.retry"
    title = "A concurrent change got in the way; nothing was changed"

    def __init__(self, detail: str | None = "retry the request", **extra: Any) -> None:
        super().__init__(detail, retry_after_s=1, **extra)


class RuleViolated(Unprocessable):
    code = "request.rule_violated"
    title = "The change would break a rule the database keeps; nothing was changed"


class ServerBusy(RetryLater, Unavailable):
    """Every pooled database connection stayed in use: the database is up, this server is full."""

    code = "server.busy"
    title = "The server is busy"
    RETRY_AFTER_S = 5  # what a busy answer asks a client to wait, from the pool and from the connection limit


# --- reports ------------------------------------------------------------------------------------


class ReportInvalid(InvalidInput):
    code = "report.invalid"
    title = "The report is invalid"


class ReportNotFound(NotFound):
    code = "report.not_found"
    title = "No such report"


class ReportConflict(Conflict):
    code = "report.conflict"
    title = "A different report with this id exists; send base_version to revise it"


class ReportStaleVersion(Conflict):
    code = "report.stale_version"
    title = "base_version is not the report's current version"


class ReportLocked(Conflict):
    code = "report.locked"
    title = "The report is under review and can no longer be revised by its author"


class ReportNotAuthor(Forbidden):
    code = "report.not_author"
    title = "Only the report's author may revise it"


# --- media --------------------------------------------------------------------------------------


class MediaNotFound(NotFound):
    code = "media.not_found"
    title = "No such media object"


class MediaUnsupportedType(UnsupportedMediaType):
    code = "media.unsupported_type"
    title = "Not an image of an allowed format (JPEG, PNG, WebP, HEIC)"


class MediaUndecodable(Unprocessable):
    code = "media.undecodable"
    title = "The image is truncated or corrupt"


class MediaTooManyPixels(Unprocessable):
    code = "media.too_many_pixels"
    title = "The image has more pixels than allowed"


class MediaHashMismatch(InvalidInput):
    code = "media.hash_mismatch"
    title = "The body's SHA-256 differs from the one in the URL"


class MediaTooLarge(PayloadTooLarge):
    code = "media.too_large"
    title = "The media object is larger than allowed"


class MediaTypeMismatch(UnsupportedMediaType):
    code = "media.type_mismatch"
    title = "The declared Content-Type differs from the image's actual format"


class MediaIncomplete(InvalidInput):
    code = "media.incomplete"
    title = "The upload ended before its last byte"


# --- sync ---------------------------------------------------------------------------------------


class TooManyMutations(PayloadTooLarge):
    code = "sync.too_many_mutations"
    title = "Too many mutations in one push"


# --- uploads (tus 1.0.0 at /v1/uploads) ---------------------------------------------------------


class UploadNotFound(NotFound):
    code = "upload.not_found"
    title = "No such upload"


class UploadExpired(Gone):
    code = "upload.expired"
    title = "The upload has expired; create a new one"


class UploadVersionUnsupported(PreconditionFailed):
    code = "upload.version_unsupported"
    title = "Tus-Resumable must be 1.0.0"


class UploadHeaderInvalid(InvalidInput):
    code = "upload.invalid_header"
    title = "A tus header is missing or malformed"


class UploadMetadataInvalid(InvalidInput):
    code = "upload.metadata_invalid"
    title = "Upload-Metadata must carry base64 'sha256' and 'content_type' values"


class UploadChecksumUnsupported(InvalidInput):
    code = "upload.checksum_unsupported"
    title = "Upload-Checksum names an algorithm this server does not support (sha1, sha256)"


class UploadInterrupted(InvalidInput):
    code = "upload.interrupted"
    title = "The chunk ended before its last byte"


class UploadOffsetMismatch(Conflict):
    code = "upload.offset_mismatch"
    title = "Upload-Offset differs from the upload's current offset"


class UploadLocked(Conflict):
    code = "upload.locked"
    title = "Another request is writing to this upload"


class UploadLengthExceeded(PayloadTooLarge):
    code = "upload.length_exceeded"
    title = "The chunk goes past the upload's Upload-Length"


class UploadContentTypeInvalid(UnsupportedMediaType):
    code = "upload.unsupported_content_type"
    title = "A chunk must be sent as application/offset+octet-stream"


class UploadChecksumMismatch(ChecksumMismatch):
    code = "upload.checksum_mismatch"
    title = "The chunk's checksum does not match Upload-Checksum; it was discarded"


# --- workflow -----------------------------------------------------------------------------------


class InvalidTransition(Unprocessable):
    code = "workflow.invalid_transition"
    title = "This action is not allowed from the report's current state"


class StaleVersion(Conflict):
    code = "workflow.stale_version"
    title = "The report changed since the version you acted on"


class ListingLevelForbidden(Forbidden):
    code = "workflow.listing_level"
    title = "Only a supervisor at the listing level or above may do this to a listed hazard"


class RectificationEvidenceMissing(InvalidInput):
    code = "workflow.after_photo_required"
    title = "Submitting a rectification needs at least one 'after' photo"


class IncidentStageTaken(Conflict):
    code = "incident.stage_taken"
    title = "A disaster chain has exactly one initial and at most one final report"


class IncidentNotFound(NotFound):
    code = "incident.not_found"
    title = "No visible report belongs to this incident"


# --- statistics ---------------------------------------------------------------------------------


class StatsWindowInvalid(InvalidInput):
    code = "stats.invalid_window"
    title = "The statistics window is invalid"


# --- OpenRosa (ODK Collect, KoboCollect; rendered as OpenRosaResponse XML, not problem+json) ----


class OpenRosaVersionRequired(InvalidInput):
    code = "openrosa.version_required"
    title = "OpenRosa requests must carry the header X-OpenRosa-Version: 1.0"


class OpenRosaKeyInvalid(Forbidden):
    """403, not 401: a 401 would make Collect ask for a username and password that do not exist."""

    code = "openrosa.key_invalid"
    title = "This server address is not valid; scan the QR code from your supervisor again"


class OpenRosaKeyRevoked(Forbidden):
    code = "openrosa.key_revoked"
    title = "This phone has been revoked; ask your supervisor for a new QR code"


class FormNotFound(NotFound):
    code = "openrosa.form_not_found"
    title = "No such form"


class SubmissionInvalid(InvalidInput):
    code = "openrosa.submission_invalid"
    title = "The submission cannot be read"


class SubmissionTooLarge(PayloadTooLarge):
    code = "openrosa.too_large"
    title = "The submission is larger than this server accepts in one request"


class InstanceConflict(Conflict):
    code = "openrosa.instance_conflict"
    title = "A different submission with this instanceID was received before"


class DeprecatedInstanceUnknown(NotFound):
    code = "openrosa.deprecated_unknown"
    title = "The submission this one edits (meta/deprecatedID) was never received"


# --- webhooks -----------------------------------------------------------------------------------


class WebhookNotFound(NotFound):
    code = "webhook.not_found"
    title = "No such webhook subscription"


class WebhookDeliveryNotFound(NotFound):
    code = "webhook.delivery_not_found"
    title = "No such delivery of this webhook subscription"


class WebhookUrlInvalid(InvalidInput):
    code = "webhook.url_invalid"
    title = "The webhook URL is not an http(s) URL this server can call"


class WebhookTargetForbidden(InvalidInput):
    code = "webhook.target_forbidden"
    title = "The webhook URL points at a loopback, private or link-local address"


class WebhookTargetUnresolved(InvalidInput):
    """The target's name did not resolve (in time): a delivery attempt's error, never a refusal."""

    code = "webhook.target_unresolved"
    title = "The webhook URL's host name does not resolve"
