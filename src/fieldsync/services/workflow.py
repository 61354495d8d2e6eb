"""Review use cases: apply a workflow action to a report, and comments. Each runs inside the
caller's transaction, locks the report row first, and records its audit event.

Order of refusals, so that the answer does not depend on timing: not visible → 404; role may
never do this → 403; ``version`` stale → 409; not possible from the current status → 422.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from fieldsync import errors
from fieldsync.db import reference
from fieldsync.db import workflow as q
from fieldsync.domain import workflow as rules
from fieldsync.domain.principals import Principal, Role
from fieldsync.domain.reports import MediaReference
from fieldsync.domain.views import CommentView, PersonView
from fieldsync.services import audit, events, feed


@dataclasses.dataclass(frozen=True, slots=True)
class TransitionRequest:
    action: str
    version: int
    note: str | None = None
    into: uuid.UUID | None = None
    responsible_person: str | None = None
    measures: str | None = None
    funds_cny: float | None = None
    deadline: dt.datetime | None = None
    contingency_plan: str | None = None
    level: str | None = None
    media: tuple[MediaReference, ...] = ()


def _role_may(action: str, kind: str, role: Role) -> None:
    moves = [m for m in rules.MOVES if m.action == action and kind in m.kinds]
    if moves and all(role not in m.roles for m in moves):
        raise errors.RoleForbidden(f"a {role.value} may not {action}")


async def current_version(conn: asyncpg.Connection, report_id: uuid.UUID) -> int | None:
    state = await q.lock_state(conn, report_id)
    return state["version"] if state else None


async def apply_transition(
    conn: asyncpg.Connection, actor: Principal, report_id: uuid.UUID, request: TransitionRequest, *, now: dt.datetime
) -> int:
    """Apply one action; returns the report's new version."""
    state = await q.lock_state(conn, report_id)
    if state is None or not actor.sees_report(author_id=state["author_id"], jurisdiction_path=state["jurisdiction_path"]):
        raise errors.ReportNotFound()
    _role_may(request.action, state["kind"], actor.role)
    if request.version != state["version"]:
        raise errors.StaleVersion(version=state["version"], status=state["status"])
    move = rules.find_move(request.action, kind=state["kind"], status=state["status"], role=actor.role)
    fields: dict[str, Any] = {
        name: state[name]
        for name in ("verified_at", "rectification", "rectification_deadline", "rectified_at", "rectification_note",
                     "closed_at", "listed_level", "listed_deadline", "duplicate_of")
    }
    detail: dict[str, Any] = {"note": request.note} if request.note else {}
    await EFFECTS[request.action](_Move(conn, actor, state, request, now, fields, detail))
    target = move.target or state["status"]
    new_version = await q.move(
        conn, report_id=report_id, version=request.version, from_status=state["status"], to_status=target,
        now=now, fields=fields,
    )
    assert new_version is not None, "the row is locked and its version and status were checked"
    await audit.record(
        conn,
        [audit.NewEvent(
            chain=audit.report_chain(report_id), action=request.action, actor_id=actor.user_id,
            device_id=actor.device_id, report_id=report_id, from_status=state["status"], to_status=target,
            version=new_version, detail=detail,
        )],
        now=now,
    )
    await events.transition_applied(conn, report_id, action=request.action, from_status=state["status"],
                                    to_status=target, into=request.into, now=now)
    return new_version


@dataclasses.dataclass(slots=True)
class _Move:
    """One action being applied: the locked state, the request, and what the action changes."""

    conn: asyncpg.Connection
    actor: Principal
    state: asyncpg.Record
    request: TransitionRequest
    now: dt.datetime
    fields: dict[str, Any]
    detail: dict[str, Any]


async def _verify(move: _Move) -> None:
    move.fields["verified_at"] = move.now


async def _merge(move: _Move) -> None:
    await _check_merge(move.conn, move.actor, move.state, move.request.into)
    move.fields["duplicate_of"] = move.request.into
    move.detail["into"] = str(move.request.into)
    # the survivor's merged_from and merged_media change: devices holding it pull it again
    await feed.restamp(move.conn, [move.fields["duplicate_of"]], now=move.now)


async def _assign_rectification(move: _Move) -> None:
    request = move.request
    plan = rules.Rectification(
        responsible_person=request.responsible_person, measures=request.measures, funds_cny=request.funds_cny,
        deadline=request.deadline, contingency_plan=request.contingency_plan,
    )
    rules.check_rectification(plan, grade=move.state["grade"], now=move.now)
    move.fields["rectification"] = {
        "responsible_person": plan.responsible_person, "measures": plan.measures, "funds_cny": plan.funds_cny,
        "deadline": plan.deadline.isoformat() if plan.deadline else None,
        "contingency_plan": plan.contingency_plan, "assigned_at": move.now.isoformat(),
        "assigned_by": str(move.actor.user_id),
    }
    move.fields["rectification_deadline"] = plan.deadline
    move.detail["rectification"] = move.fields["rectification"]


async def _submit_rectification(move: _Move) -> None:
    actor, state, request = move.actor, move.state, move.request
    if actor.role is Role.INSPECTOR and state["author_id"] != actor.user_id:
        raise errors.ReportNotAuthor("only the report's author or a supervisor may submit its rectification")
    if not any(m.role == "after" for m in request.media):
        raise errors.RectificationEvidenceMissing(field="media")
    await q.append_media(move.conn, report_id=state["id"], media=[(m.sha256, m.role, m.caption) for m in request.media],
                         attached_by=actor.user_id)
    move.fields["rectified_at"] = move.now
    move.fields["rectification_note"] = request.note
    move.detail["media"] = [m.sha256 for m in request.media]


async def _accept_rectification(move: _Move) -> None:
    state = move.state
    if state["listed_level"] is not None and not move.actor.sees(state["listed_path"]):
        raise errors.ListingLevelForbidden(
            f"listed for supervision by {state['listed_level']}; only that bureau or one above may accept it"
        )
    move.fields["closed_at"] = move.now


async def _reopen(move: _Move) -> None:
    move.fields["rectified_at"] = None


async def _list_supervision(move: _Move) -> None:
    request = move.request
    await _check_listing(move.conn, move.actor, move.state, request, now=move.now)
    move.fields["listed_level"] = request.level
    move.fields["listed_deadline"] = request.deadline
    move.detail |= {"level": request.level, "deadline": request.deadline.isoformat() if request.deadline else None}


async def _nothing(move: _Move) -> None:
    """The move itself (status, version, audit event) is the whole effect."""


# What each action of ``domain.workflow.MOVES`` does besides moving the status; a test holds the
# two tables to the same actions.
EFFECTS: dict[str, Callable[[_Move], Awaitable[None]]] = {
    "verify": _verify,
    "reject": _nothing,
    "request_info": _nothing,
    "merge": _merge,
    "assign_rectification": _assign_rectification,
    "submit_rectification": _submit_rectification,
    "accept_rectification": _accept_rectification,
    "reopen": _reopen,
    "list_supervision": _list_supervision,
}


async def _check_merge(conn: asyncpg.Connection, actor: Principal, state: asyncpg.Record, into: uuid.UUID | None) -> None:
    if into is None:
        raise errors.InvalidInput("merge needs `into`, the surviving report", field="into")
    if into == state["id"]:
        raise errors.InvalidInput("a report cannot be merged into itself", field="into")
    survivor = await q.lock_state(conn, into)
    if survivor is None or not actor.sees_report(author_id=survivor["author_id"],
                                                 jurisdiction_path=survivor["jurisdiction_path"]):
        raise errors.ReportNotFound("the surviving report does not exist or lies outside your view", field="into")
    if survivor["status"] in rules.TERMINAL - {"closed"} or survivor["kind"] != state["kind"]:
        raise errors.InvalidTransition("merge into an open report of the same kind", field="into")


async def _check_listing(
    conn: asyncpg.Connection, actor: Principal, state: asyncpg.Record, request: TransitionRequest, *, now: dt.datetime
) -> None:
    if state["grade"] != "major":
        raise errors.InvalidTransition("only a major hazard can be put under listed supervision")
    if request.level is None or request.deadline is None:
        raise errors.InvalidInput("list_supervision needs `level` and `deadline`", field="level")
    if request.deadline <= now:
        raise errors.InvalidInput("the supervision deadline must lie in the future", field="deadline")
    level = await reference.get_jurisdiction(conn, request.level)
    level_path = level["path"] if level else None
    if level_path is None or not state["jurisdiction_path"].startswith(level_path):
        raise errors.InvalidInput("level must be the report's jurisdiction or one above it", field="level")
    if not actor.sees(level_path):
        raise errors.ListingLevelForbidden("you may list at your own level or below only")


async def add_comment(
    conn: asyncpg.Connection, actor: Principal, report_id: uuid.UUID, *, body: str, now: dt.datetime
) -> CommentView:
    state = await q.lock_state(conn, report_id)
    if state is None or not actor.sees_report(author_id=state["author_id"], jurisdiction_path=state["jurisdiction_path"]):
        raise errors.ReportNotFound()
    comment = await q.insert_comment(
        conn, report_id=report_id, author_id=actor.user_id, device_id=actor.device_id, body=body, now=now
    )
    await audit.record(
        conn,
        [audit.NewEvent(chain=audit.report_chain(report_id), action="comment", actor_id=actor.user_id,
                        device_id=actor.device_id, report_id=report_id, detail={"comment_id": str(comment["id"])})],
        now=now,
    )
    return CommentView(
        id=comment["id"], report_id=comment["report_id"], author=PersonView(actor.user_id, actor.username),
        device_id=comment["device_id"], body=comment["body"], created_at=comment["created_at"],
    )
