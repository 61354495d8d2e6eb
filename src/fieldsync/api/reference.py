"""Reference data endpoints: jurisdictions and categories."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.params import Parameter

from fieldsync.api.deps import Connection
from fieldsync.api.problems import problem_responses
from fieldsync.api.schemas.reference import CategoryRead, JurisdictionRead
from fieldsync.domain.principals import Principal
from fieldsync.services import reference


class ReferenceController(Controller):
    path = "/v1"
    tags = ["reference"]
    security = [{"bearer": []}]

    @get(
        "/jurisdictions",
        summary="Jurisdictions as a flat list with parent codes (scope=mine: the caller's subtree)",
        responses=problem_responses(400, 401),
    )
    async def list_jurisdictions(
        self,
        principal: Principal,
        conn: Connection,
        which: Annotated[
            Literal["all", "mine"], Parameter(query="scope", description="all, or mine: the caller's subtree")
        ] = "all",
    ) -> list[JurisdictionRead]:
        # Not a parameter named ``scope``: Litestar reserves that name for the ASGI scope, so
        # ``?scope=mine`` was silently ignored and every caller got the whole country.
        places = await reference.list_jurisdictions(conn, principal, mine=which == "mine")
        return [
            JurisdictionRead(code=p.code, parent_code=p.parent_code, name_zh=p.name_zh, name_en=p.name_en,
                             level=p.level)
            for p in places
        ]

    @get("/categories", summary="Report categories per kind", responses=problem_responses(400, 401))
    async def list_categories(
        self,
        principal: Principal,
        conn: Connection,
        kind: Literal["hazard", "disaster", "accident"] | None = None,
    ) -> list[CategoryRead]:
        return [
            CategoryRead(kind=c.kind, code=c.code, name_zh=c.name_zh, name_en=c.name_en)
            for c in await reference.list_categories(conn, kind=kind)
        ]
