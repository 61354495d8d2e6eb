"""Wire types for identity: login, users, enrollments, devices, the caller."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from fieldsync.api.schemas.common import JurisdictionCode, OptionalShortText, Password, ShortText, Username
from fieldsync.domain.views import RoleName


class LoginRequest(msgspec.Struct):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


class TokenRead(msgspec.Struct):
    token: str
    expires_at: dt.datetime


class MeRead(msgspec.Struct):
    kind: Literal["user", "device"]
    user_id: uuid.UUID
    username: str
    role: RoleName
    jurisdiction: str
    jurisdiction_name: str
    device_id: uuid.UUID | None


class UserCreate(msgspec.Struct):
    username: Username
    role: RoleName
    jurisdiction: JurisdictionCode
    password: Password | None = None
    display_name: OptionalShortText | None = None


class UserRead(msgspec.Struct):
    id: uuid.UUID
    username: str
    display_name: str | None
    role: RoleName
    jurisdiction: str
    created_at: dt.datetime
    disabled: bool


class UserPage(msgspec.Struct):
    items: list[UserRead]
    next_cursor: str | None


class EnrollmentCreate(msgspec.Struct):
    username: Username
    ttl_s: Annotated[int, msgspec.Meta(ge=60, le=7 * 24 * 3600)] | None = None


class EnrollmentRead(msgspec.Struct):
    code: str
    expires_at: dt.datetime
    username: str


class DeviceEnroll(msgspec.Struct):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]
    label: ShortText
    platform: OptionalShortText | None = None


class DeviceToken(msgspec.Struct):
    device_id: uuid.UUID
    token: str


class DeviceRead(msgspec.Struct):
    id: uuid.UUID
    label: str
    platform: str | None
    user_id: uuid.UUID
    username: str
    jurisdiction: str
    created_at: dt.datetime
    last_seen_at: dt.datetime | None
    revoked_at: dt.datetime | None


class DevicePage(msgspec.Struct):
    items: list[DeviceRead]
    next_cursor: str | None
