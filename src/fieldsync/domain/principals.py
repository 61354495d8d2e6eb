"""Who is calling, and the one rule for what they may see.

A principal is a user (logged in with a password) or a device (enrolled for one inspector user,
acting as that user). Every principal has a role and a home jurisdiction; it sees that
jurisdiction's subtree and nothing else, except admins, who see everything. An object outside
the caller's view is reported as missing (404), never as forbidden: existence is not revealed.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid

from fieldsync.errors import RoleForbidden


class Role(enum.StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    INSPECTOR = "inspector"


@dataclasses.dataclass(frozen=True, slots=True)
class Visibility:
    """``Principal.sees_report`` as data, for SQL: an author's own reports (inspectors: ``author_id``)
    within a jurisdiction subtree (``path_prefix``; '/' is every jurisdiction)."""

    author_id: uuid.UUID | None
    path_prefix: str


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    username: str
    role: Role
    jurisdiction: str
    jurisdiction_path: str
    device_id: uuid.UUID | None = None

    @property
    def kind(self) -> str:
        return "device" if self.device_id is not None else "user"

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def sees(self, jurisdiction_path: str) -> bool:
        """True if a jurisdiction with this materialised path lies in the caller's view."""
        return self.is_admin or jurisdiction_path.startswith(self.jurisdiction_path)

    def sees_report(self, *, author_id: uuid.UUID, jurisdiction_path: str) -> bool:
        """Inspectors see the reports they authored; supervisors and admins their subtree."""
        if self.role is Role.INSPECTOR:
            return author_id == self.user_id
        return self.sees(jurisdiction_path)

    @property
    def visibility(self) -> Visibility:
        if self.role is Role.INSPECTOR:
            return Visibility(author_id=self.user_id, path_prefix="/")
        return Visibility(author_id=None, path_prefix=self.scope_prefix)

    @property
    def scope_prefix(self) -> str:
        """The path prefix every visible jurisdiction's path starts with ('/' for admins)."""
        return "/" if self.is_admin else self.jurisdiction_path


def require_role(principal: Principal, *roles: Role) -> None:
    """Raise ``RoleForbidden`` unless the principal has one of ``roles``."""
    if principal.role not in roles:
        raise RoleForbidden(f"this action needs the role {' or '.join(r.value for r in roles)}")
