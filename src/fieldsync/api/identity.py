"""Identity endpoints: login, the caller, users, enrollment codes, devices."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.params import Parameter

from fieldsync.api.deps import Connection
from fieldsync.api.problems import problem_responses
from fieldsync.api.runtime import Runtime
from fieldsync.api.schemas.common import NO_NUL, Limit
from fieldsync.api.schemas.identity import (
    DeviceEnroll,
    DevicePage,
    DeviceRead,
    DeviceToken,
    EnrollmentCreate,
    EnrollmentRead,
    LoginRequest,
    MeRead,
    TokenRead,
    UserCreate,
    UserPage,
    UserRead,
)
from fieldsync.db.transactions import transaction
from fieldsync.domain.principals import Principal, Role
from fieldsync.domain.views import DeviceView, UserView
from fieldsync.services import identity, reference

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


def _client(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def throttle_policy(runtime: Runtime) -> identity.ThrottlePolicy:
    return identity.ThrottlePolicy(
        max_failures=runtime.settings.throttle_max_failures, window_s=runtime.settings.throttle_window_s,
        client_max_failures=runtime.settings.throttle_client_max_failures,
    )


def user_read(view: UserView) -> UserRead:
    return UserRead(
        id=view.id, username=view.username, display_name=view.display_name, role=view.role,
        jurisdiction=view.jurisdiction, created_at=view.created_at, disabled=view.disabled,
    )


def device_read(view: DeviceView) -> DeviceRead:
    return DeviceRead(
        id=view.id, label=view.label, platform=view.platform, user_id=view.user_id, username=view.username,
        jurisdiction=view.jurisdiction, created_at=view.created_at, last_seen_at=view.last_seen_at,
        revoked_at=view.revoked_at,
    )


class AuthController(Controller):
    path = "/v1"
    tags = ["identity"]

    @post(
        "/auth/login",
        status_code=200,
        summary="Log in with a username and password",
        description="429 after too many failures for this username from this client, or for any usernames "
        "from this client; 503 `server.busy` when too many sign-ins are being checked at once.",
        responses=problem_responses(400, 401, 429, 503),
    )
    async def login(
        self, request: Request[Any, Any, Any], data: LoginRequest, conn: Connection, runtime: Runtime,
        now: dt.datetime,
    ) -> TokenRead:
        token, expires_at = await identity.login(
            conn,
            username=data.username,
            password=data.password,
            client=_client(request),
            now=now,
            session_ttl_s=runtime.settings.session_ttl_s,
            throttle=throttle_policy(runtime),
        )
        return TokenRead(token=token, expires_at=expires_at)

    @get("/me", summary="The calling principal", security=SECURITY, responses=problem_responses(401))
    async def me(self, principal: Principal, conn: Connection) -> MeRead:
        place_name = await reference.jurisdiction_name(conn, principal.jurisdiction)
        return MeRead(
            kind="device" if principal.device_id else "user",
            user_id=principal.user_id,
            username=principal.username,
            role=principal.role.value,
            jurisdiction=principal.jurisdiction,
            jurisdiction_name=place_name or principal.jurisdiction,
            device_id=principal.device_id,
        )


class UserController(Controller):
    path = "/v1/users"
    tags = ["identity"]
    security = SECURITY

    @post(
        "/",
        summary="Create a user (admin; supervisors: inspectors in their jurisdiction)",
        responses=problem_responses(400, 401, 403, 409),
    )
    async def create_user(self, data: UserCreate, principal: Principal, conn: Connection) -> UserRead:
        async with transaction(conn):
            user = await identity.create_user(
                conn,
                principal,
                username=data.username,
                role=Role(data.role),
                jurisdiction=data.jurisdiction,
                password=data.password,
                display_name=data.display_name,
            )
        return user_read(user)

    @get("/", summary="List users in the caller's jurisdiction", responses=problem_responses(400, 401, 403))
    async def list_users(
        self,
        principal: Principal,
        conn: Connection,
        limit: Limit = 100,
        cursor: Annotated[str | None, Parameter(max_length=64, pattern=NO_NUL)] = None,
    ) -> UserPage:
        users = await identity.list_users(conn, principal, after=cursor, limit=limit + 1)
        items = [user_read(user) for user in users[:limit]]
        return UserPage(items=items, next_cursor=items[-1].username if len(users) > limit else None)


class EnrollmentController(Controller):
    path = "/v1"
    tags = ["devices"]

    @post(
        "/enrollments",
        summary="Issue a one-time enrollment code for an inspector's device",
        security=SECURITY,
        responses=problem_responses(400, 401, 403, 404, 422),
    )
    async def create_enrollment(
        self, data: EnrollmentCreate, principal: Principal, conn: Connection, runtime: Runtime,
        now: dt.datetime,
    ) -> EnrollmentRead:
        async with transaction(conn):
            code, expires_at = await identity.issue_enrollment(
                conn,
                principal,
                username=data.username,
                ttl_s=data.ttl_s or runtime.settings.enrollment_ttl_s,
                now=now,
            )
        return EnrollmentRead(code=code, expires_at=expires_at, username=data.username)

    @post(
        "/devices/enroll",
        summary="Enroll a device with a one-time code; answers the device's token",
        responses=problem_responses(400, 401, 429),
    )
    async def enroll(
        self, request: Request[Any, Any, Any], data: DeviceEnroll, conn: Connection, runtime: Runtime,
        now: dt.datetime,
    ) -> DeviceToken:
        device_id, token = await identity.enroll_device(
            conn,
            code=data.code,
            label=data.label,
            platform=data.platform,
            client=_client(request),
            now=now,
            throttle=throttle_policy(runtime),
        )
        return DeviceToken(device_id=device_id, token=token)


class DeviceController(Controller):
    path = "/v1/devices"
    tags = ["devices"]
    security = SECURITY

    @get("/", summary="List devices in the caller's jurisdiction", responses=problem_responses(400, 401, 403))
    async def list_devices(
        self,
        principal: Principal,
        conn: Connection,
        limit: Limit = 100,
        cursor: uuid.UUID | None = None,
    ) -> DevicePage:
        devices = await identity.list_devices(conn, principal, after=cursor, limit=limit + 1)
        items = [device_read(device) for device in devices[:limit]]
        return DevicePage(items=items, next_cursor=str(items[-1].id) if len(devices) > limit else None)

    @delete(
        "/{device_id:uuid}",
        status_code=200,
        summary="Revoke a device; its token fails from the next request on",
        responses=problem_responses(401, 403, 404),
    )
    async def revoke_device(
        self, device_id: uuid.UUID, principal: Principal, conn: Connection, now: dt.datetime
    ) -> DeviceRead:
        async with transaction(conn):
            device = await identity.revoke_device(conn, principal, device_id=device_id, now=now)
        return device_read(device)
