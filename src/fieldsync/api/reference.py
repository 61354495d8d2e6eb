"""Reference data endpoints: jurisdictions and categories."""

from __future__ import annotations

from typing import Annotated, Literal

import asyncpg
from litestar import Controller, get
from litestar.params import Parameter

from fieldsync.api.problems import problem_responses
from fieldsync.api.schemas.reference import CategoryRead, JurisdictionRead
from fieldsync.db import reference
from fieldsync.domain.principals import Principal


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
        conn: asyncpg.Connection,
        which: Annotated[
            Literal["all", "mine"], Parameter(query="scope", description="all, or mine: the caller's subtree")
        ] = "all",
    ) -> list[JurisdictionRead]:
        # Not a parameter named ``scope``: Litestar reserves that name for the ASGI scope, so
        # ``?scope=mine`` was silently ignored and every caller got the whole country.
        rows = await reference.list_jurisdictions(conn, under_path=principal.scope_prefix if which == "mine" else "/")
        return [
            JurisdictionRead(
                code=r["code"], parent_code=r["parent_code"], name_zh=r["name_zh"], name_en=r["name_en"],
                level=r["level"],
            )
            for r in rows
        ]

    @get("/categories", summary="Report categories per kind", responses=problem_responses(400, 401))
    async def list_categories(
        self,
        principal: Principal,
        conn: asyncpg.Connection,
        kind: Literal["hazard", "disaster", "accident"] | None = None,
    ) -> list[CategoryRead]:
        rows = await reference.list_categories(conn, kind=kind)
        return [
            CategoryRead(kind=r["kind"], code=r["code"], name_zh=r["name_zh"], name_en=r["name_en"]) for r in rows
        ]
