"""The review workflow as one table: which action moves a report from which status to which,
for which kinds, by which roles. Pure; the database guards each move with
``UPDATE … WHERE version = $v AND status = $s``.

    submitted ──verify──▶ verified            (disaster / accident: terminal until reopened)
        │  └──reject──▶ rejected
        └──request_info──▶ needs_info ──(author resubmits a new version)──▶ submitted
    any non-terminal ──merge(into)──▶ merged   (duplicate_of = the surviving report)
    hazard: verified ──assign_rectification──▶ rectifying ──submit_rectification──▶ rectified
            rectified ──accept_rectification──▶ closed (销号)    rectified ──reopen──▶ rectifying
    disaster / accident: verified ──reopen──▶ submitted
    hazard (major): list_supervision (挂牌督办) in verified / rectifying / rectified; no move
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from fieldsync import errors
from fieldsync.domain.principals import Role

ALL_KINDS = frozenset({"hazard", "disaster", "accident"})
REVIEWERS = frozenset({Role.SUPERVISOR, Role.ADMIN})
TERMINAL = frozenset({"rejected", "merged", "closed"})


@dataclasses.dataclass(frozen=True, slots=True)
class Move:
    action: str
    kinds: frozenset[str]
    sources: frozenset[str]
    target: str | None  # None: the status stays (list_supervision)
    roles: frozenset[Role]


def _move(action: str, sources: set[str], target: str | None, *, kinds: frozenset[str] = ALL_KINDS,
          roles: frozenset[Role] = REVIEWERS) -> Move:
    return Move(action, kinds, frozenset(sources), target, roles)


HAZARD = frozenset({"hazard"})
NOT_HAZARD = frozenset({"disaster", "accident"})

MOVES: tuple[Move, ...] = (
    _move("verify", {"submitted"}, "verified"),
    _move("reject", {"submitted"}, "rejected"),
    _move("request_info", {"submitted"}, "needs_info"),
    _move("merge", {"submitted", "needs_info", "verified", "rectifying", "rectified"}, "merged", kinds=HAZARD),
    _move("merge", {"submitted", "needs_info"}, "merged", kinds=NOT_HAZARD),
    _move("assign_rectification", {"verified"}, "rectifying", kinds=HAZARD),
    _move("submit_rectification", {"rectifying"}, "rectified", kinds=HAZARD,
          roles=frozenset({Role.SUPERVISOR, Role.ADMIN, Role.INSPECTOR})),
    _move("accept_rectification", {"rectified"}, "closed", kinds=HAZARD),
    _move("reopen", {"rectified"}, "rectifying", kinds=HAZARD),
    _move("reopen", {"verified"}, "submitted", kinds=NOT_HAZARD),
    _move("list_supervision", {"verified", "rectifying", "rectified"}, None, kinds=HAZARD),
)
ACTIONS = tuple(dict.fromkeys(m.action for m in MOVES))


def find_move(action: str, *, kind: str, status: str, role: Role) -> Move:
    """The move for this action, or why not: 403 for the role, 422 from this state."""
    candidates = [m for m in MOVES if m.action == action and kind in m.kinds]
    if not candidates:
        raise errors.InvalidTransition(f"{action} does not apply to a {kind} report", status=status)
    if all(role not in m.roles for m in candidates):
        raise errors.RoleForbidden(f"a {role.value} may not {action}")
    for move in candidates:
        if status in move.sources:
            return move
    raise errors.InvalidTransition(f"{action} is not possible from {status}", status=status)


@dataclasses.dataclass(frozen=True, slots=True)
class Rectification:
    """The five implementations (五落实)."""

    responsible_person: str | None
    measures: str | None
    funds_cny: float | None
    deadline: dt.datetime | None
    contingency_plan: str | None


def check_rectification(plan: Rectification, *, grade: str | None, now: dt.datetime) -> None:
    """All five for a major hazard; person, measures and deadline for a general one."""
    required = ["responsible_person", "measures", "deadline"]
    if grade == "major":
        required += ["funds_cny", "contingency_plan"]
    for name in required:
        value = getattr(plan, name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise errors.InvalidInput(f"{name} is required to assign rectification of a {grade} hazard", field=name)
    if plan.deadline is not None and plan.deadline <= now:
        raise errors.InvalidInput("the rectification deadline must lie in the future", field="deadline")


def is_overdue(*, status: str, deadline: dt.datetime | None, now: dt.datetime) -> bool:
    """Rectifying past its deadline. Its SQL form, for filters and counts: ``db.rules.overdue_sql``."""
    return status == "rectifying" and deadline is not None and deadline < now
