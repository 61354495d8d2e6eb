"""What a running app holds: settings, clock, database pool, media store. Built in the lifespan."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg

from fieldsync.ports import Clock
from fieldsync.settings import Settings


@dataclasses.dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    pool: asyncpg.Pool
    media: Any = None
